"""Chunking at silences (planned on an array and streamed from a file) and the compact upload format."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from media_factory import long_speech_gaps, shared_media

from worker.core.cancel import CancelToken
from worker.core.errors import Cancelled, MediaError
from worker.media.audio import SAMPLE_RATE, decode_audio
from worker.media.chunking import (
    MAX_BYTES_PER_MINUTE,
    Chunk,
    decode_chunk,
    encode_chunk,
    iter_chunks,
    max_chunk_bytes,
    plan_split_points,
)


def frame_db(audio: np.ndarray, frame_s: float = 0.03, hop_s: float = 0.01) -> np.ndarray:
    frame, hop = int(frame_s * SAMPLE_RATE), int(hop_s * SAMPLE_RATE)
    frames = np.lib.stride_tricks.sliding_window_view(audio, frame)[::hop].astype(np.float64)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-10)


def db_at(audio: np.ndarray, t: float) -> float:
    """Level of the 30 ms window centred on t."""
    centre = int(t * SAMPLE_RATE)
    window = audio[centre - 240 : centre + 240].astype(np.float64)
    return float(10 * np.log10(np.mean(window**2) + 1e-10))


@pytest.fixture(scope="module")
def long_path() -> Path:
    return shared_media("long_speech")


@pytest.fixture(scope="module")
def long_audio(long_path: Path) -> np.ndarray:
    return decode_audio(long_path)


@pytest.fixture(scope="module")
def multilingual(shared_audio: Path) -> np.ndarray:
    return decode_audio(shared_audio / "multilingual.mp3")


@pytest.mark.parametrize("target_s", [5.0, 8.0, 10.0, 15.0, 20.0])
def test_cuts_land_in_quiet_spots_of_real_speech(multilingual: np.ndarray, target_s: float) -> None:
    cuts = plan_split_points(multilingual, target_s)
    levels = frame_db(multilingual)
    quiet = np.percentile(levels, 25)
    assert cuts, "60 s of speech must be split"
    for cut in cuts:
        assert db_at(multilingual, cut) < quiet, f"cut at {cut:.2f} s is not in a quiet spot"


def test_cuts_use_the_pauses_when_there_are_pauses(long_audio: np.ndarray) -> None:
    """Every boundary of a ~3 min recording with a 0.6-2 s pause every ~12 s falls inside a pause."""
    gaps = long_speech_gaps()
    for target_s in (30.0, 45.0):
        cuts = plan_split_points(long_audio, target_s)
        for cut in cuts:
            assert any(start + 0.05 <= cut <= end - 0.05 for start, end in gaps), f"{cut:.2f} s is inside speech"


def test_chunk_lengths_stay_near_the_target(long_audio: np.ndarray) -> None:
    total_s = len(long_audio) / SAMPLE_RATE
    for target_s in (10.0, 20.0, 30.0):
        bounds = [0.0, *plan_split_points(long_audio, target_s), total_s]
        lengths = np.diff(bounds)
        assert all(0.8 * target_s - 0.01 <= x <= 1.2 * target_s + 0.01 for x in lengths[:-2]), lengths
        assert all(0.4 * target_s <= x <= 1.2 * target_s + 0.01 for x in lengths[-2:]), lengths  # no sliver at the end
        assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds)


def test_short_audio_is_one_chunk(jfk: Path) -> None:
    audio = decode_audio(jfk)  # 11 s
    assert plan_split_points(audio, 30.0) == []
    assert plan_split_points(audio, 10.0) == []  # within 1.2 x target
    chunks = list(iter_chunks(jfk, target_s=30.0))
    assert len(chunks) == 1
    only = chunks[0]
    assert (only.index, only.start_s, only.end_s) == (0, 0.0, 11.0)
    assert np.array_equal(only.samples, audio)


def test_silence_is_cut_on_target_and_the_rest_shared() -> None:
    silence = np.zeros(100 * SAMPLE_RATE, dtype=np.float32)
    cuts = plan_split_points(silence, 30.0)
    assert cuts == pytest.approx([30.0, 60.0, 80.0], abs=0.02)  # 40 s left: two halves, not 30 + 10


def test_tiny_and_empty_audio() -> None:
    assert plan_split_points(np.zeros(0, dtype=np.float32), 30.0) == []
    chunks = list(iter_chunks(shared_media("tone_50ms"), target_s=30.0))
    assert len(chunks) == 1 and chunks[0].end_s == pytest.approx(0.05, abs=0.001)


def test_target_must_be_positive() -> None:
    for bad in (0.0, -5.0, float("nan")):
        with pytest.raises(ValueError):
            plan_split_points(np.zeros(16000, dtype=np.float32), bad)


@pytest.mark.parametrize("target_s", [10.0, 30.0])
def test_streamed_chunks_match_the_plan_and_cover_the_file(
    long_path: Path, long_audio: np.ndarray, target_s: float
) -> None:
    chunks = list(iter_chunks(long_path, target_s=target_s))
    planned = plan_split_points(long_audio, target_s)
    assert [c.start_s for c in chunks[1:]] == planned
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[0].start_s == 0.0 and chunks[-1].end_s == len(long_audio) / SAMPLE_RATE
    for before, after in zip(chunks, chunks[1:]):
        assert before.end_s == after.start_s  # no gap, no overlap
    for chunk in chunks:
        assert isinstance(chunk, Chunk) and chunk.samples.dtype == np.float32
        assert len(chunk.samples) == round(chunk.duration_s * SAMPLE_RATE)
    assert sum(len(c.samples) for c in chunks) == len(long_audio)
    assert np.array_equal(np.concatenate([c.samples for c in chunks]), long_audio)


def test_streaming_memory_does_not_grow_with_the_file(long_path: Path) -> None:
    target_s = 5.0
    next(iter_chunks(long_path, target_s=target_s))  # imports and warms the decoder before measuring
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_chunks(long_path, target_s=target_s))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    whole = 182.1 * SAMPLE_RATE * 4
    target_bytes = target_s * SAMPLE_RATE * 4
    assert count >= 30
    assert peak < 10 * target_bytes, f"peak {peak / 1e6:.1f} MB for {target_bytes / 1e6:.2f} MB chunks"
    assert peak < whole / 3


def test_cancel_and_bad_input(long_path: Path) -> None:
    cancel = CancelToken()
    chunks = iter_chunks(long_path, target_s=10.0, cancel=cancel)
    next(chunks)
    cancel.cancel()
    with pytest.raises(Cancelled):
        next(chunks)
    text = shared_media("text_m4a")
    with pytest.raises(MediaError) as info:
        list(iter_chunks(text))
    assert str(info.value).startswith(f"{text.name}: ")


# ---------------------------------------------------------------- upload format


def per_minute(data: bytes, samples: int) -> float:
    return len(data) / (samples / SAMPLE_RATE / 60)


def test_speech_chunks_fit_the_budget_and_read_back(shared_audio: Path, jfk: Path) -> None:
    for path in (jfk, shared_audio / "multilingual.mp3", shared_audio / "hotwords.mp3"):
        audio = decode_audio(path)
        data = encode_chunk(audio)
        assert data[:4] == b"fLaC", path.name  # speech stays FLAC
        assert per_minute(data, len(audio)) <= MAX_BYTES_PER_MINUTE, path.name
        back = decode_chunk(data)
        assert back.dtype == np.float32 and len(back) == len(audio)
        assert float(np.abs(back - audio).max()) < 2**-10  # at worst 12-bit precision, far below speech
        assert len(data) <= max_chunk_bytes(len(audio))


def test_quiet_or_sparse_speech_stays_lossless(long_audio: np.ndarray) -> None:
    piece = long_audio[: 30 * SAMPLE_RATE]  # 30 s with pauses: fits at 16 bits
    data = encode_chunk(piece)
    assert data[:4] == b"fLaC" and per_minute(data, len(piece)) <= MAX_BYTES_PER_MINUTE
    assert float(np.abs(decode_chunk(data) - piece).max()) <= 1 / 32767


def test_white_noise_fits_the_budget_as_opus() -> None:
    noise = decode_audio(shared_media("white_noise_wav"))  # 60 s, incompressible for FLAC
    data = encode_chunk(noise)
    assert data[:4] == b"OggS"
    assert len(data) <= MAX_BYTES_PER_MINUTE
    back = decode_chunk(data)
    assert len(back) == len(noise)
    rms = lambda x: float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))  # noqa: E731
    assert rms(back) == pytest.approx(rms(noise), rel=0.2)


def test_empty_and_bad_chunks() -> None:
    assert decode_chunk(encode_chunk(np.zeros(0, dtype=np.float32))).shape == (0,)
    with pytest.raises(MediaError) as info:
        decode_chunk(b"definitely not audio")
    assert "\n" not in str(info.value) and "not readable audio" in str(info.value)
