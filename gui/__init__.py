"""Whisper Desk's window: a thin PySide6 layer over the Qt-free core in `worker/`."""
