"""Audio in: any audio or video file a user drops -> 16 kHz mono float32 in [-1, 1], decoded in-process.

Everything goes through PyAV (FFmpeg bundled in its wheel; no system ffmpeg). Decoded frames are batched in an
AudioFifo before FFmpeg's resampler (which also mixes down to mono), so the per-frame Python overhead stays
small: about 500x real time on one core here, the same as soundfile's mp3 path and faster than its FLAC and
Opus paths (measured on 10 minutes of speech), with one code path and one set of error rules for every format.

Bad input raises MediaError, whose message is one line naming the file and saying why.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.core.cancel import CancelToken
from worker.core.constants import SAMPLE_RATE
from worker.core.errors import MediaError

if TYPE_CHECKING:  # numpy and av load on first decode, not when the window imports this module
    import numpy as np


AUDIO_EXTENSIONS = frozenset(
    {
        ".wav", ".wave", ".flac", ".mp3", ".mp2", ".ogg", ".oga", ".opus", ".m4a", ".m4b", ".aac", ".wma",
        ".aif", ".aiff", ".aifc", ".amr", ".ac3", ".eac3", ".mka", ".wv", ".ape", ".caf", ".au", ".weba",
    }
)  # fmt: skip
VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".flv", ".3gp", ".3g2", ".mpg", ".mpeg",
        ".ts", ".mts", ".m2ts", ".ogv", ".vob",
    }
)  # fmt: skip
MEDIA_EXTENSIONS = AUDIO_EXTENSIONS | VIDEO_EXTENSIONS

# Containers whose duration FFmpeg may only estimate (from the bit rate): count their packets instead.
_ESTIMATED_DURATION_FORMATS = frozenset({"mp3", "aac", "ac3", "eac3", "dts", "amr", "mp2", "mpeg", "mpegts", "asf"})
_FIFO_SAMPLES = 16384  # decoded samples batched per resampler call
_MAX_BAD_PACKETS = 50  # undecodable packets skipped (as ffmpeg does) before giving up, or 10 % of the good ones


def is_media_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in MEDIA_EXTENSIONS


def collect_media(paths: Iterable[str | Path]) -> tuple[list[Path], list[str]]:
    """Media files among `paths`: files as given, folders searched recursively (sorted, hidden entries
    skipped). Returns the files (each once, in order) and one-line notes about what was skipped."""
    found: list[Path] = []
    notes: list[str] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.append(path)

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            media, others = _scan_folder(path)
            for file in media:
                add(file)
            if others:
                examples = ", ".join(p.name for p in others[:3]) + (", …" if len(others) > 3 else "")
                notes.append(f"{path}: skipped {len(others)} file(s) that are not audio or video ({examples})")
            if not media:
                notes.append(f"{path}: no audio or video files in this folder")
        elif path.is_file():
            if is_media_path(path):
                add(path)
            else:
                kind = f"'{path.suffix}' files" if path.suffix else "files without an extension"
                notes.append(f"{path}: skipped, not an audio or video file ({kind} are not supported)")
        elif path.exists():
            notes.append(f"{path}: skipped, not a regular file")
        else:
            notes.append(f"{path}: not found")
    return found, notes


def _scan_folder(folder: Path) -> tuple[list[Path], list[Path]]:
    media: list[Path] = []
    others: list[Path] = []
    for root, dirs, files in os.walk(folder):  # does not follow symlinked folders (no loops)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("."):  # .DS_Store, ._x.m4a (macOS metadata), editor temp files
                continue
            path = Path(root) / name
            (media if is_media_path(path) else others).append(path)
    order = lambda p: [part.casefold() for part in p.relative_to(folder).parts]  # noqa: E731
    return sorted(media, key=order), sorted(others, key=order)


# ---------------------------------------------------------------- opening and checking


def _checked_file(path: str | Path) -> Path:
    """The path as a readable, non-empty regular file, or MediaError saying what is wrong with it."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise MediaError(path, "file not found") from None
    except PermissionError:
        raise MediaError(path, "cannot be read (permission denied)") from None
    except OSError as exc:
        raise MediaError(path, f"cannot be read ({exc.strerror or exc})") from None
    if path.is_dir():
        raise MediaError(path, "is a folder, not a file")
    if not path.is_file():
        raise MediaError(path, "is not a regular file")
    if info.st_size == 0:
        raise MediaError(path, "file is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise MediaError(path, "cannot be read (permission denied)")
    return path


def _ffmpeg_reason(exc: BaseException) -> str:
    """FFmpeg's own words for an error, without the path it likes to append."""
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


@dataclass
class _Source:
    path: Path
    container: Any  # av.container.InputContainer
    stream: Any  # av.audio.stream.AudioStream
    declared_s: float | None  # the audio's length as the file states it, when that can be trusted

    def close(self) -> None:
        self.container.close()


def _open_source(path: Path) -> _Source:
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.InvalidDataError:
        raise MediaError(path, "not an audio or video file, or the file is damaged") from None
    except PermissionError:
        raise MediaError(path, "cannot be read (permission denied)") from None
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(path, f"cannot be opened as audio or video ({_ffmpeg_reason(exc)})") from None
    try:
        audio = [s for s in container.streams if s.type == "audio"]
        if not audio:
            has_video = any(s.type == "video" for s in container.streams)
            raise MediaError(path, "has no audio track (video only)" if has_video else "contains no audio")
        stream = container.streams.best("audio") or audio[0]  # FFmpeg's pick: the default track of several
        context = stream.codec_context
        if context is None or not context.is_decoder:
            name = getattr(context, "name", None) or "unknown"
            raise MediaError(path, f"its audio format ({name}) is not supported")
        context.thread_type = "AUTO"
        return _Source(path, container, stream, _declared_duration(path, container, stream))
    except BaseException:
        container.close()
        raise


def _declared_duration(path: Path, container: Any, stream: Any) -> float | None:
    """The audio track's length from the file's headers, or None when it is only an estimate."""
    fmt = set(container.format.name.split(","))
    stream_s = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
    container_s = container.duration / 1_000_000 if container.duration and container.duration > 0 else None
    if fmt & _ESTIMATED_DURATION_FORMATS:
        if fmt == {"mp3"} and _mp3_has_frame_count(path):
            return stream_s or container_s
        return None
    if len(container.streams) > 1:  # a video's container duration may be the longest track, not the audio
        return stream_s
    return stream_s or container_s


def _mp3_has_frame_count(path: Path) -> bool:
    """True when the mp3 has a Xing/Info/VBRI header, so FFmpeg's duration is exact and not a guess."""
    try:
        with open(path, "rb") as file:
            head = file.read(10)
            offset = 0
            if head[:3] == b"ID3" and len(head) == 10:  # skip an ID3v2 tag (syncsafe size)
                size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
                offset = 10 + size + (10 if head[5] & 0x10 else 0)
            file.seek(offset)
            data = file.read(4096)
    except OSError:
        return False
    sync = next((i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] & 0xE0 == 0xE0), None)
    if sync is None:
        return False
    frame = data[sync : sync + 200]
    return b"Xing" in frame or b"Info" in frame or b"VBRI" in frame


# ---------------------------------------------------------------- decoding


def _decoded_pieces(source: _Source, cancel: CancelToken | None) -> Iterator[np.ndarray]:
    """16 kHz mono float32 pieces of any length, in order, for the whole audio track."""
    import av
    import numpy as np

    path, stream = source.path, source.stream
    fifo: Any = None
    resampler: Any = None
    setup: tuple[str, str, int] | None = None
    good_packets = bad_packets = 0
    first_error = ""
    position_s = 0.0

    def resampled(frame: Any) -> Iterator[np.ndarray]:
        for out in resampler.resample(frame):
            yield out.to_ndarray().reshape(-1).astype(np.float32) / 32768.0

    def drain() -> Iterator[np.ndarray]:
        if fifo is not None and fifo.samples:
            yield from resampled(fifo.read())
        if resampler is not None:
            yield from resampled(None)

    packets = source.container.demux(stream)
    while True:
        if cancel is not None:
            cancel.raise_if_cancelled()
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.error.FFmpegError as exc:  # the container itself is cut off or garbled
            raise MediaError(path, f"damaged or truncated at {position_s:.1f} s ({_ffmpeg_reason(exc)})") from None
        try:
            frames = packet.decode()
            good_packets += 1
        except av.error.FFmpegError as exc:  # a bad packet: skip it, as ffmpeg does, unless most are bad
            bad_packets += 1
            first_error = first_error or _ffmpeg_reason(exc)
            if bad_packets > max(_MAX_BAD_PACKETS, good_packets // 10):
                raise MediaError(path, f"damaged audio data at {position_s:.1f} s ({first_error})") from None
            continue
        for frame in frames:
            key = (frame.format.name, frame.layout.name, frame.sample_rate)
            if key != setup:  # first frame, or the stream changed its format mid-way
                yield from drain()
                fifo = av.AudioFifo()
                resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
                setup = key
            position_s += frame.samples / frame.sample_rate
            frame.pts = None  # the fifo only batches samples; timing is the sample count
            fifo.write(frame)
            if fifo.samples >= _FIFO_SAMPLES:
                yield from resampled(fifo.read())
    if setup is None and bad_packets:
        raise MediaError(path, f"no audio could be decoded ({first_error})")
    yield from drain()


def _check_complete(source: _Source, decoded_samples: int) -> None:
    declared = source.declared_s
    decoded_s = decoded_samples / SAMPLE_RATE
    if declared is not None and declared - decoded_s > max(1.0, 0.02 * declared):
        raise MediaError(
            source.path, f"truncated or damaged: only {decoded_s:.1f} s of its {declared:.1f} s could be decoded"
        )


def iter_audio_blocks(
    path: str | Path, block_s: float = 30.0, cancel: CancelToken | None = None
) -> Iterator[np.ndarray]:
    """Stream the file as 16 kHz mono float32 blocks of block_s seconds (the last one shorter), so a long
    file never sits in memory at once. Opening errors raise MediaError here; decoding errors (a file cut
    off half-way) raise MediaError from the iteration; cancel raises Cancelled between blocks."""
    path = _checked_file(path)
    if cancel is not None:
        cancel.raise_if_cancelled()
    block = max(1, int(round(block_s * SAMPLE_RATE)))
    return _iter_blocks(_open_source(path), block, cancel)


def _iter_blocks(source: _Source, block: int, cancel: CancelToken | None) -> Iterator[np.ndarray]:
    import numpy as np

    try:
        pending: list[np.ndarray] = []
        pending_samples = 0
        total = 0
        for piece in _decoded_pieces(source, cancel):
            pending.append(piece)
            pending_samples += len(piece)
            if pending_samples < block:
                continue
            joined = np.concatenate(pending)
            cut = len(joined) - len(joined) % block
            for start in range(0, cut, block):
                if cancel is not None:
                    cancel.raise_if_cancelled()
                total += block
                yield joined[start : start + block]
            pending = [joined[cut:]]
            pending_samples = len(pending[0])
        tail = np.concatenate(pending) if pending else np.zeros(0, dtype=np.float32)
        total += len(tail)
        _check_complete(source, total)
        if len(tail):
            yield tail
    finally:
        source.close()


def decode_audio(path: str | Path, cancel: CancelToken | None = None) -> np.ndarray:
    """The whole file as one 16 kHz mono float32 array in [-1, 1] (may be empty for an empty track)."""
    import numpy as np

    blocks = list(iter_audio_blocks(path, block_s=60.0, cancel=cancel))
    if not blocks:
        return np.zeros(0, dtype=np.float32)
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def probe_duration(path: str | Path) -> float:
    """The audio's length in seconds: from the file's headers, or by counting packets (no decoding) where the
    headers only hold an estimate (mp3 without a frame count, raw AAC). Checks that the audio decodes;
    MediaError for bad files."""
    import av

    path = _checked_file(path)
    source = _open_source(path)
    try:
        container, stream = source.container, source.stream
        estimated = bool(set(container.format.name.split(",")) & _ESTIMATED_DURATION_FORMATS)
        metadata_s = source.declared_s
        if metadata_s is None and not estimated and container.duration and container.duration > 0:
            metadata_s = container.duration / 1_000_000
        decodes = False
        counted = 0
        for packet in container.demux(stream):
            if not decodes and packet.size:
                try:
                    decodes = bool(packet.decode())
                except av.error.FFmpegError:
                    pass
            if decodes and metadata_s is not None:
                return metadata_s
            counted += packet.duration or 0
        if not decodes:
            if counted == 0:
                return 0.0  # a valid file with an empty audio track
            raise MediaError(path, "no audio could be decoded")
        if counted and stream.time_base:
            return float(counted * stream.time_base)
    except av.error.FFmpegError as exc:
        raise MediaError(path, f"damaged or truncated ({_ffmpeg_reason(exc)})") from None
    finally:
        source.close()
    return len(decode_audio(path)) / SAMPLE_RATE  # nothing states the length: decode it
