"""Constants shared by the app and the Modal worker image, defined once. No imports: the image (no PyAV,
no numpy at import) and the window both load this cheaply."""

SAMPLE_RATE = 16000  # Hz, mono: what every engine is fed and every chunk is sent at
APP_DIRS_NAME = "whisper-desk"  # the folder name under the platform's config, data and cache folders (platformdirs)
