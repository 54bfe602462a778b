"""Test media made from the real recordings in ../shared/audio: every container and codec a user might drop,
plus the broken files a user might drop by mistake.

    make_media(directory, kind) -> Path    builds one file into `directory` (reused if already there)
    shared_media(kind) -> Path             the same, in one temporary folder per test process (built once)

Audio is encoded with PyAV (its bundled FFmpeg) or soundfile; no system ffmpeg is needed.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

SHARED_AUDIO = Path(__file__).resolve().parent.parent.parent / "shared" / "audio"
JFK = SHARED_AUDIO / "jfk.flac"
JFK_SECONDS = 11.0
UNICODE_NAME = "Grüße – 日本.m4a"

# kind -> (file name, builder(path)); a builder writes exactly `path`.
_Builder = Callable[[Path], None]


@lru_cache(maxsize=None)
def jfk_source() -> tuple[np.ndarray, int]:
    """jfk.flac as float32 (frames, channels) at its own rate (44.1 kHz stereo)."""
    import soundfile as sf

    data, rate = sf.read(str(JFK), dtype="float32", always_2d=True)
    return data, rate


def _resampled(data: np.ndarray, rate: int, new_rate: int, channels: int) -> np.ndarray:
    """(frames, channels) float32 at new_rate with `channels` channels (mono = the channels' mean),
    resampled by FFmpeg."""
    import av

    if channels == 1 and data.shape[1] > 1:
        data = data.mean(axis=1, keepdims=True, dtype=np.float32)
    if new_rate == rate and data.shape[1] == channels:
        return np.ascontiguousarray(data, dtype=np.float32)
    layout_in = "mono" if data.shape[1] == 1 else "stereo"
    layout_out = "mono" if channels == 1 else "stereo"
    resampler = av.AudioResampler(format="flt", layout=layout_out, rate=new_rate)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data.reshape(1, -1)), format="flt", layout=layout_in)
    frame.sample_rate = rate
    parts = [f.to_ndarray() for f in resampler.resample(frame)] + [f.to_ndarray() for f in resampler.resample(None)]
    out = np.concatenate(parts, axis=1).reshape(-1, channels)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _encode(
    path: Path,
    audio: tuple[str, int, int] | None,
    container_format: str | None = None,
    container_options: dict[str, str] | None = None,
    video: str | None = None,
    audio_options: dict[str, str] | None = None,
    source: tuple[np.ndarray, int] | None = None,
    video_seconds: float | None = None,
    vbr_quality: int | None = None,
) -> None:
    """Write jfk (or `source`) with PyAV: audio=(codec, rate, channels), plus an optional tiny video track
    (as long as the audio unless video_seconds says otherwise); vbr_quality makes libmp3lame encode VBR."""
    import av

    data, rate = source if source is not None else jfk_source()
    seconds = video_seconds if video_seconds is not None else data.shape[0] / rate
    with av.open(str(path), "w", format=container_format, options=container_options or {}) as out:
        vstream = None
        if video is not None:
            vstream = out.add_stream(video, rate=10)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        astream = None
        if audio is not None:
            codec, new_rate, channels = audio
            astream = out.add_stream(codec, rate=new_rate, layout="mono" if channels == 1 else "stereo")
            if audio_options:
                astream.codec_context.options = dict(audio_options)
            if vbr_quality is not None:
                astream.codec_context.qscale = vbr_quality
            samples = _resampled(data, rate, new_rate, channels)
            step = 4096
            for start in range(0, samples.shape[0], step):
                block = np.ascontiguousarray(samples[start : start + step].reshape(1, -1))
                frame = av.AudioFrame.from_ndarray(block, format="flt", layout=astream.layout.name)
                frame.sample_rate = new_rate
                frame.pts = start
                frame.time_base = Fraction(1, new_rate)
                out.mux(astream.encode(frame))
            out.mux(astream.encode(None))
        if vstream is not None:
            for index in range(int(seconds * 10)):
                pixels = np.full((48, 64, 3), (index * 23) % 256, dtype=np.uint8)
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                frame.pts = index
                out.mux(vstream.encode(frame))
            out.mux(vstream.encode(None))


def _soundfile(path: Path, data: np.ndarray, rate: int, fmt: str, subtype: str) -> None:
    import soundfile as sf

    sf.write(str(path), data, rate, format=fmt, subtype=subtype)


def _jfk_soundfile(path: Path, rate: int, channels: int, fmt: str, subtype: str) -> None:
    _soundfile(path, _resampled(*jfk_source(), rate, channels), rate, fmt, subtype)


def _truncated(source_kind: str, fraction: float = 0.5) -> _Builder:
    def build(path: Path) -> None:
        whole = make_media(path.parent, source_kind).read_bytes()
        path.write_bytes(whole[: int(len(whole) * fraction)])

    return build


def _copy_of(source_kind: str) -> _Builder:
    def build(path: Path) -> None:
        shutil.copyfile(make_media(path.parent, source_kind), path)

    return build


_LONG_GAPS_S = [0.6, 1.4, 0.8, 2.0, 1.0, 0.7, 1.6, 0.9]
_LONG_REPEATS = 15


def _long_speech(path: Path) -> None:
    """About 3 minutes: jfk at 16 kHz mono repeated 15 times with silent gaps of 0.6-2.0 s after each."""
    data, rate = jfk_source()
    speech = _resampled(data, rate, 16000, 1)[:, 0]
    parts: list[np.ndarray] = []
    for index in range(_LONG_REPEATS):
        parts.append(speech)
        parts.append(np.zeros(int(_LONG_GAPS_S[index % len(_LONG_GAPS_S)] * 16000), dtype=np.float32))
    _soundfile(path, np.concatenate(parts), 16000, "FLAC", "PCM_16")


def long_speech_gaps() -> list[tuple[float, float]]:
    """The inserted silent gaps of the "long_speech" file, as (start_s, end_s)."""
    speech_s = round(jfk_source()[0].shape[0] / jfk_source()[1] * 16000) / 16000
    gaps: list[tuple[float, float]] = []
    t = 0.0
    for index in range(_LONG_REPEATS):
        t += speech_s
        gap = int(_LONG_GAPS_S[index % len(_LONG_GAPS_S)] * 16000) / 16000
        gaps.append((t, t + gap))
        t += gap
    return gaps


def _loud_stereo(path: Path) -> None:
    """2 s of a full-scale 300 Hz square wave, the same in both channels: mono must not exceed 1.0."""
    t = np.arange(2 * 44100) / 44100
    wave = np.where(np.sin(2 * np.pi * 300 * t) >= 0, 1.0, -1.0).astype(np.float32)
    _soundfile(path, np.stack([wave, wave], axis=1), 44100, "WAV", "FLOAT")


def _tone(path: Path, seconds: float = 0.05, rate: int = 44100) -> None:
    t = np.arange(int(seconds * rate)) / rate
    _soundfile(path, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, "WAV", "PCM_16")


def _random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(7).bytes(64_000))


def _text(path: Path) -> None:
    path.write_text("Meeting notes\n\nThese are not audio, just text renamed by mistake.\n" * 40, encoding="utf-8")


def _white_noise(path: Path) -> None:
    noise = np.random.default_rng(3).uniform(-0.9, 0.9, 60 * 16000).astype(np.float32)
    _soundfile(path, noise, 16000, "WAV", "PCM_16")


KINDS: dict[str, tuple[str, _Builder]] = {
    # good media: jfk in every container a user might drop (~11.0 s each)
    "flac": ("jfk.flac", lambda p: shutil.copyfile(JFK, p)),
    "wav_8k_stereo": ("jfk_8k_stereo.wav", lambda p: _jfk_soundfile(p, 8000, 2, "WAV", "PCM_16")),
    "wav_48k_float": ("jfk_48k_float.wav", lambda p: _jfk_soundfile(p, 48000, 1, "WAV", "FLOAT")),
    "mp3": ("jfk.mp3", lambda p: _encode(p, ("libmp3lame", 44100, 2))),
    "mp3_22k_mono": ("jfk_22k_mono.mp3", lambda p: _encode(p, ("libmp3lame", 22050, 1))),
    "ogg": ("jfk.ogg", lambda p: _jfk_soundfile(p, 44100, 2, "OGG", "VORBIS")),
    "opus": ("jfk.opus", lambda p: _encode(p, ("libopus", 48000, 2), container_format="opus")),
    "m4a": ("jfk.m4a", lambda p: _encode(p, ("aac", 44100, 2), container_format="ipod")),
    "aac": ("jfk.aac", lambda p: _encode(p, ("aac", 24000, 1), container_format="adts")),
    "mp4": ("jfk.mp4", lambda p: _encode(p, ("aac", 48000, 2), video="mpeg4")),
    "mov": ("jfk.mov", lambda p: _encode(p, ("pcm_s16le", 48000, 2), video="libx264")),
    "mkv": ("jfk.mkv", lambda p: _encode(p, ("libmp3lame", 32000, 1), video="mpeg4")),
    "webm": ("jfk.webm", lambda p: _encode(p, ("libopus", 48000, 1), video="libvpx")),
    "unicode_m4a": (UNICODE_NAME, _copy_of("m4a")),
    "mp3_vbr_no_header": (  # duration in its header is only FFmpeg's estimate
        "jfk_vbr_no_xing.mp3",
        lambda p: _encode(p, ("libmp3lame", 44100, 2), "mp3", {"write_xing": "0"}, vbr_quality=2),
    ),
    "video_longer_than_audio": (
        "jfk_long_video.mp4",
        lambda p: _encode(p, ("aac", 44100, 1), video="mpeg4", video_seconds=20.0),
    ),
    # valid but odd
    "silence_wav": ("silence.wav", lambda p: _soundfile(p, np.zeros(5 * 16000, np.float32), 16000, "WAV", "PCM_16")),
    "tone_50ms": ("tone_50ms.wav", _tone),
    "white_noise_wav": ("white_noise.wav", _white_noise),
    "loud_stereo_wav": ("loud_stereo.wav", _loud_stereo),
    "long_speech": ("long_speech.flac", _long_speech),
    # bad input
    "video_no_audio": ("no_audio.mp4", lambda p: _encode(p, None, video="mpeg4")),
    "random_m4a": ("random.m4a", _random_bytes),
    "text_m4a": ("notes.m4a", _text),
    "empty": ("empty.mp3", lambda p: p.write_bytes(b"")),
    "truncated_flac": ("truncated.flac", _truncated("flac")),
    "truncated_mp3": ("truncated.mp3", _truncated("mp3")),
    "truncated_m4a": ("truncated.m4a", _truncated("m4a")),
    "truncated_m4a_faststart": ("truncated_faststart.m4a", _truncated("m4a_faststart")),
    "m4a_faststart": (  # index (moov) at the start, as streaming sites write it
        "jfk_faststart.m4a",
        lambda p: _encode(p, ("aac", 44100, 2), "ipod", container_options={"movflags": "+faststart"}),
    ),
}

GOOD_KINDS = [
    "flac", "wav_8k_stereo", "wav_48k_float", "mp3", "mp3_22k_mono", "ogg", "opus", "m4a", "aac",
    "mp4", "mov", "mkv", "webm", "unicode_m4a", "m4a_faststart", "mp3_vbr_no_header", "video_longer_than_audio",
]  # fmt: skip
BAD_KINDS = [
    "video_no_audio", "random_m4a", "text_m4a", "empty",
    "truncated_flac", "truncated_mp3", "truncated_m4a", "truncated_m4a_faststart",
]  # fmt: skip


def make_media(directory: Path, kind: str) -> Path:
    """Build the test file `kind` (see KINDS) in `directory`, or reuse it if it is already there."""
    name, build = KINDS[kind]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    if not path.exists():
        partial = directory / f".partial-{kind}{Path(name).suffix}"
        build(partial)
        partial.replace(path)
    return path


_shared_dir: Path | None = None


def shared_media(kind: str) -> Path:
    """make_media in one temporary folder per test process, so each file is built once per run."""
    global _shared_dir
    if _shared_dir is None:
        _shared_dir = Path(tempfile.mkdtemp(prefix="whisper-desk-media-"))
        atexit.register(shutil.rmtree, _shared_dir, True)
    return make_media(_shared_dir, kind)
