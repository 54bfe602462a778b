"""Cut long audio into chunks at silences, and pack chunks as compact bytes for upload.

A cut is placed at the quietest spot in a search range around each target boundary (target +- 20 %): the
centre of the quietest ~200 ms stretch (so a real pause wins over the brief silence inside a word), refined to
the quietest 30 ms within it, with a small pull towards the target so ties in silence land on the target.
The last two chunks share what is left when less than two targets remain, so no file ends in a sliver.

plan_split_points (whole array) and iter_chunks (streamed from the file) make the same decisions on the same
samples, so they cut at exactly the same points.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worker.core.cancel import CancelToken
from worker.core.errors import MediaError
from worker.media.audio import SAMPLE_RATE, iter_audio_blocks

SEARCH_FRACTION = 0.2  # cuts are searched within target +- this fraction of the target
SINGLE_CHUNK_FACTOR = 1.2  # audio up to target * this is one chunk
MIN_TARGET_S = 1.0
_HOP_S = 0.010  # energy is measured per 10 ms
_PAUSE_HOPS = 21  # ~200 ms: the stretch that should be quiet around a cut
_REFINE_HOPS = 3  # ~30 ms: the window the final cut point minimises
_PULL_DB = 6.0  # score penalty at the edge of the search range (pulls ties towards the target)
_FLOOR = 1e-10  # power floor (-100 dB) so digital silence compares equal

MAX_BYTES_PER_MINUTE = 1_000_000  # upload budget: at most 1 MB per minute of audio
_HEADER_ALLOWANCE = 1024  # container headers, which matter only for very short chunks
_FLAC_BITS = (16, 14, 12)  # FLAC precisions tried in turn; then Opus
_OPUS_COMPRESSION_LEVEL = 0.8  # libsndfile's Opus setting: ~57 kbit/s, ~0.43 MB per minute


@dataclass(frozen=True, eq=False)
class Chunk:
    index: int  # 0-based
    start_s: float  # absolute, in the whole file
    end_s: float
    samples: np.ndarray  # 16 kHz mono float32

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


# ---------------------------------------------------------------- choosing cuts


def _target_samples(target_s: float, sample_rate: int) -> int:
    if not math.isfinite(target_s) or target_s <= 0:
        raise ValueError(f"chunk length must be a positive number of seconds, not {target_s!r}")
    return int(round(max(target_s, MIN_TARGET_S) * sample_rate))


def _lookahead(target: int) -> int:
    """Samples past a chunk's start that must be known before its end can be chosen (unless at the end)."""
    return 2 * target


def _next_cut(audio: np.ndarray, target: int, sample_rate: int, at_end: bool) -> int | None:
    """Where the chunk starting at audio[0] ends (a sample index), or None when all of `audio` is the last
    chunk. With at_end False, `audio` is only known to continue and must hold _lookahead(target) samples."""
    remaining = len(audio)
    if at_end and remaining <= SINGLE_CHUNK_FACTOR * target:
        return None
    if not at_end and remaining < _lookahead(target):
        raise ValueError("not enough audio buffered to choose a cut")
    aim = target if (not at_end or remaining >= 2 * target) else remaining // 2
    reach = int(SEARCH_FRACTION * target)
    hop = max(1, int(round(_HOP_S * sample_rate)))
    low = max(hop, aim - reach)
    high = min(remaining - hop, aim + reach)

    # power per hop over the range, padded by half a pause on each side (hops anchored at the range start)
    pad = (_PAUSE_HOPS // 2) * hop
    first = max(0, low - pad)
    hops = (min(remaining, high + pad) - first) // hop
    frames = audio[first : first + hops * hop].reshape(hops, hop)
    power = np.einsum("ij,ij->i", frames, frames).astype(np.float64) / hop  # no big temporaries

    def smoothed(width: int) -> np.ndarray:  # centred moving average, same length as power
        kernel = np.ones(width) / width
        return np.convolve(np.pad(power, width // 2, mode="edge"), kernel, mode="valid")

    pause_db = 10 * np.log10(smoothed(_PAUSE_HOPS) + _FLOOR)
    centres = first + np.arange(hops) * hop + hop // 2
    in_range = (centres >= low) & (centres <= high)
    if not in_range.any():
        return min(max(aim, 1), remaining - 1)
    score = pause_db + _PULL_DB * np.abs(centres - aim) / max(reach, 1)
    score[~in_range] = np.inf
    best = int(np.argmin(score))

    # refine: the quietest 30 ms within the chosen pause
    short_db = 10 * np.log10(smoothed(_REFINE_HOPS) + _FLOOR)
    half = _PAUSE_HOPS // 2
    window = np.arange(max(0, best - half), min(hops, best + half + 1))
    window = window[in_range[window]]
    best = int(window[np.argmin(short_db[window] + 1e-3 * np.abs(window - best))])
    return int(centres[best])


def plan_split_points(audio: np.ndarray, target_s: float, sample_rate: int = SAMPLE_RATE) -> list[float]:
    """Cut times in seconds (ascending, excluding 0 and the end) that split `audio` into chunks of about
    target_s, each cut at the quietest spot near its target boundary. Short audio gives no cuts."""
    target = _target_samples(target_s, sample_rate)
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    cuts: list[float] = []
    start = 0
    while True:
        cut = _next_cut(audio[start:], target, sample_rate, at_end=True)
        if cut is None:
            return cuts
        start += cut
        cuts.append(start / sample_rate)


def iter_chunks(path: str | Path, target_s: float = 30.0, cancel: CancelToken | None = None) -> Iterator[Chunk]:
    """Decode `path` and yield its chunks in order, cut as plan_split_points would. What is held whatever the
    file's length: one buffer of about two target lengths (the look-ahead a cut needs), reused, and the chunk
    being handed over. The chunks cover the file exactly (no gap, no overlap); a file up to 1.2 x target_s is
    one chunk; an empty audio track yields none. Raises MediaError and Cancelled as iter_audio_blocks does."""
    target = _target_samples(target_s, SAMPLE_RATE)
    block_s = min(30.0, max(1.0, target / SAMPLE_RATE / 4))
    blocks = iter_audio_blocks(path, block_s=block_s, cancel=cancel)
    buffer = np.zeros(0, dtype=np.float32)
    held = 0  # buffer[:held]: decoded, not yet in a chunk
    start = 0  # absolute sample index of buffer[0]
    index = 0

    def make(samples: np.ndarray) -> Chunk:
        nonlocal start, index
        chunk = Chunk(index, start / SAMPLE_RATE, (start + len(samples)) / SAMPLE_RATE, samples)
        start += len(samples)
        index += 1
        return chunk

    for block in blocks:
        if held + len(block) > len(buffer):  # sized once for the look-ahead (and again only for an odd block)
            grown = np.empty(max(_lookahead(target) + len(block), held + len(block)), dtype=np.float32)
            grown[:held] = buffer[:held]
            buffer = grown
        buffer[held : held + len(block)] = block
        held += len(block)
        del block
        while held >= _lookahead(target):
            cut = _next_cut(buffer[:held], target, SAMPLE_RATE, at_end=False)
            assert cut is not None
            samples = buffer[:cut].copy()  # the buffer is reused: the chunk is a copy
            _move_to_front(buffer, cut, held)
            held -= cut
            if cancel is not None:
                cancel.raise_if_cancelled()
            yield make(samples)
            del samples  # the consumer holds the chunk as long as it needs
    rest = buffer[:held]
    while len(rest):
        cut = _next_cut(rest, target, SAMPLE_RATE, at_end=True)
        if cancel is not None:
            cancel.raise_if_cancelled()
        if cut is None:
            yield make(rest)  # the last chunk: nothing is decoded after it, the buffer can be its storage
            return
        yield make(rest[:cut].copy())
        rest = rest[cut:]


def _move_to_front(buffer: np.ndarray, cut: int, held: int) -> None:
    """buffer[:held - cut] = buffer[cut:held], in pieces that do not overlap (so numpy needs no temporary copy)."""
    for at in range(0, held - cut, cut):
        piece = min(cut, held - cut - at)
        buffer[at : at + piece] = buffer[cut + at : cut + at + piece]


# ---------------------------------------------------------------- packing chunks for upload


def max_chunk_bytes(sample_count: int, sample_rate: int = SAMPLE_RATE) -> int:
    """The upload budget for a chunk of this many samples: 1 MB per audio minute (plus headers)."""
    return int(MAX_BYTES_PER_MINUTE * sample_count / sample_rate / 60) + _HEADER_ALLOWANCE


def _flac(pcm: np.ndarray, bits: int) -> bytes:
    import soundfile as sf

    step = 1 << (16 - bits)  # dropping low bits: FLAC stores the zeroed "wasted bits" for free
    quantized = pcm if step == 1 else (np.round(pcm / step) * step).clip(-32768, 32767).astype(np.int16)
    out = io.BytesIO()
    sf.write(out, quantized, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return out.getvalue()


def _opus(samples: np.ndarray) -> bytes:
    import soundfile as sf

    out = io.BytesIO()
    with sf.SoundFile(
        out, "w", SAMPLE_RATE, 1, format="OGG", subtype="OPUS", compression_level=_OPUS_COMPRESSION_LEVEL
    ) as file:
        for start in range(0, len(samples), SAMPLE_RATE * 10):  # in pieces: libsndfile's Ogg writer
            file.write(samples[start : start + SAMPLE_RATE * 10])
    return out.getvalue()


def encode_chunk(samples: np.ndarray) -> bytes:
    """16 kHz mono float32 -> compact audio bytes within max_chunk_bytes (1 MB per audio minute).

    FLAC at 16 bits when it fits (lossless). Speech at 16 kHz often needs 1.02-1.14 MB/min that way (measured
    on ../shared/audio), so FLAC then drops to 14 and 12 bits (quantisation noise at -84/-72 dBFS; on those
    recordings tiny.en's words changed no more than under any tiny perturbation: one word of 13 at 14 bits,
    none at 12). Audio that still does not fit (noise, loud music) goes as Ogg Opus at ~57 kbit/s. Both
    formats read back with decode_chunk, soundfile or ffmpeg."""
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    if len(samples) == 0:  # FLAC cannot hold zero samples in a form libsndfile reads back; WAV can
        import soundfile as sf

        out = io.BytesIO()
        sf.write(out, samples, SAMPLE_RATE, format="WAV", subtype="PCM_16")
        return out.getvalue()
    budget = max_chunk_bytes(len(samples))
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype(np.int16)
    for bits in _FLAC_BITS:
        data = _flac(pcm, bits)
        if len(data) <= budget:
            return data
    return _opus(np.clip(samples, -1.0, 1.0))


def decode_chunk(data: bytes) -> np.ndarray:
    """Audio bytes (what encode_chunk makes, or any FLAC/WAV/Ogg) -> 16 kHz mono float32. Needs only
    soundfile for 16 kHz input, so the Modal worker can use it."""
    import soundfile as sf

    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError/RuntimeError/TypeError for bad bytes
        reason = getattr(exc, "error_string", None) or type(exc).__name__
        raise MediaError("audio chunk", f"not readable audio ({reason})") from None
    mono = audio.mean(axis=1, dtype=np.float32) if audio.shape[1] > 1 else audio[:, 0]
    if rate != SAMPLE_RATE:
        mono = _resample(mono, rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _resample(mono: np.ndarray, rate: int) -> np.ndarray:
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(mono)[None, :], format="flt", layout="mono")
    frame.sample_rate = rate
    pieces = [f.to_ndarray().reshape(-1) for f in [*resampler.resample(frame), *resampler.resample(None)]]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


def estimate_chunk_count(duration_s: float, chunk_s: float) -> int:
    """How many chunks worker.media.chunking cuts a file of this length into (it may differ by one, as cuts move
    to the nearest silence): one up to 1.2 x chunk_s; else chunk_s pieces, the last two sharing the rest."""
    if duration_s <= 0:
        return 0
    if duration_s <= 1.2 * chunk_s:
        return 1
    full = max(0, math.floor((duration_s - 2 * chunk_s) / chunk_s) + 1) if duration_s >= 2 * chunk_s else 0
    rest = duration_s - full * chunk_s
    return full + (1 if rest <= 1.2 * chunk_s else 2)

