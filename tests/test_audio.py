"""Audio in: every format a user might drop decodes to the same 16 kHz mono speech; bad files get one clear
line; long files stream; folders are searched for media."""

from __future__ import annotations

import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from media_factory import BAD_KINDS, GOOD_KINDS, JFK_SECONDS, UNICODE_NAME, make_media, shared_media

from worker.core.cancel import CancelToken
from worker.core.errors import Cancelled, MediaError
from worker.media.audio import MEDIA_EXTENSIONS, SAMPLE_RATE, collect_media, decode_audio, iter_audio_blocks, probe_duration


def similarity(a: np.ndarray, b: np.ndarray, max_lag_s: float = 0.1) -> float:
    """Peak normalised cross-correlation within +-max_lag_s (codecs add a little delay)."""
    n = min(len(a), len(b))
    a, b = a[:n].astype(np.float64), b[:n].astype(np.float64)
    size = 1 << (2 * n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    lag = int(max_lag_s * SAMPLE_RATE)
    window = np.concatenate([corr[: lag + 1], corr[-lag:]])
    return float(window.max() / np.sqrt(np.dot(a, a) * np.dot(b, b)))


@pytest.fixture(scope="module")
def reference(jfk: Path) -> np.ndarray:
    return decode_audio(jfk)


def test_reference_decode_is_16k_mono_float(reference: np.ndarray) -> None:
    assert reference.dtype == np.float32 and reference.ndim == 1
    assert len(reference) == int(JFK_SECONDS * SAMPLE_RATE)
    assert 0.3 < np.abs(reference).max() <= 1.0  # real speech, mixed down without clipping


@pytest.mark.parametrize("kind", GOOD_KINDS)
def test_every_format_decodes_to_the_same_speech(kind: str, reference: np.ndarray) -> None:
    path = shared_media(kind)
    audio = decode_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) / SAMPLE_RATE == pytest.approx(JFK_SECONDS, abs=0.1)
    assert float(np.abs(audio).max()) <= 1.0
    assert similarity(audio, reference) > 0.95, f"{path.name} does not sound like jfk.flac"
    assert probe_duration(path) == pytest.approx(JFK_SECONDS, abs=0.1)


def test_real_recordings_of_other_rates_and_layouts(shared_audio: Path) -> None:
    expected = {"stereo_diarization.wav": 5.0, "multilingual.mp3": 59.9, "hotwords.mp3": 4.0}
    for name, seconds in expected.items():
        audio = decode_audio(shared_audio / name)
        assert len(audio) / SAMPLE_RATE == pytest.approx(seconds, abs=0.15), name
        assert probe_duration(shared_audio / name) == pytest.approx(len(audio) / SAMPLE_RATE, abs=0.1), name
        assert 0.05 < np.abs(audio).max() <= 1.0


def test_full_scale_stereo_mixes_down_within_range() -> None:
    audio = decode_audio(shared_media("loud_stereo_wav"))
    assert len(audio) == 2 * SAMPLE_RATE
    assert float(np.abs(audio).max()) <= 1.0
    assert float(np.abs(audio).max()) > 0.9  # not attenuated either


def test_odd_but_valid_files_decode() -> None:
    silence = decode_audio(shared_media("silence_wav"))
    assert len(silence) == 5 * SAMPLE_RATE and not silence.any()
    tone = decode_audio(shared_media("tone_50ms"))
    assert len(tone) == pytest.approx(0.05 * SAMPLE_RATE, abs=2)
    assert 0.4 < np.abs(tone).max() <= 0.55
    assert probe_duration(shared_media("tone_50ms")) == pytest.approx(0.05, abs=0.001)
    assert probe_duration(shared_media("silence_wav")) == pytest.approx(5.0)


def test_non_ascii_names_work_and_appear_in_errors(tmp_path: Path) -> None:
    assert shared_media("unicode_m4a").name == UNICODE_NAME  # decoded in the format test
    bad = tmp_path / "Grüße – 日本 notes.m4a"
    shutil.copyfile(shared_media("text_m4a"), bad)
    with pytest.raises(MediaError) as info:
        decode_audio(bad)
    assert str(info.value).startswith("Grüße – 日本 notes.m4a: ")


BAD_REASONS = {
    "video_no_audio": "has no audio track",
    "random_m4a": "not an audio or video file",
    "text_m4a": "not an audio or video file",
    "empty": "file is empty",
    "truncated_flac": "truncated",
    "truncated_mp3": "truncated",
    "truncated_m4a": "damaged",  # its index (moov) was at the end and is gone
    "truncated_m4a_faststart": "truncated",
}


def assert_one_clear_line(error: MediaError, path: Path, reason: str) -> None:
    message = str(error)
    assert message.startswith(f"{path.name}: "), message
    assert reason in message, message
    assert "\n" not in message and "Traceback" not in message and "Errno" not in message, message
    assert str(path.parent) not in message  # the name, not a long path or FFmpeg's own echo of it
    assert error.path == str(path)


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_files_raise_one_clear_line(kind: str) -> None:
    path = shared_media(kind)
    with pytest.raises(MediaError) as info:
        decode_audio(path)
    assert_one_clear_line(info.value, path, BAD_REASONS[kind])
    with pytest.raises(MediaError) as info:
        list(iter_audio_blocks(path, block_s=2.0))
    assert_one_clear_line(info.value, path, BAD_REASONS[kind])


@pytest.mark.parametrize("kind", ["video_no_audio", "random_m4a", "text_m4a", "empty", "truncated_m4a"])
def test_probe_rejects_files_that_cannot_be_audio(kind: str) -> None:
    path = shared_media(kind)
    with pytest.raises(MediaError) as info:
        probe_duration(path)
    assert_one_clear_line(info.value, path, BAD_REASONS[kind])


def test_missing_path_and_folder(tmp_path: Path) -> None:
    missing = tmp_path / "gone.wav"
    for call in (decode_audio, probe_duration, iter_audio_blocks):
        with pytest.raises(MediaError) as info:
            call(missing)
        assert_one_clear_line(info.value, missing, "file not found")
        with pytest.raises(MediaError) as info:
            call(tmp_path)
        assert str(info.value) == f"{tmp_path.name}: is a folder, not a file"


def test_truncated_file_fails_after_streaming_what_it_had() -> None:
    """A file cut in half streams its first part and then says it is truncated, with how much was there."""
    path = shared_media("truncated_flac")
    got = []
    with pytest.raises(MediaError) as info:
        for block in iter_audio_blocks(path, block_s=1.0):
            got.append(block)
    assert 4 <= len(got) <= 6
    assert "only 5." in str(info.value) and "of its 11.0 s" in str(info.value)


def test_blocks_are_exact_and_add_up_to_the_whole_file(reference: np.ndarray, jfk: Path) -> None:
    blocks = list(iter_audio_blocks(jfk, block_s=3.0))
    assert [len(b) for b in blocks] == [48000, 48000, 48000, 32000]
    assert np.array_equal(np.concatenate(blocks), reference)


def test_long_file_streams_without_holding_it_all() -> None:
    path = shared_media("long_speech")  # ~3 minutes
    whole_bytes = probe_duration(path) * SAMPLE_RATE * 4  # also imports av before measuring
    tracemalloc.start()
    try:
        total = 0
        for block in iter_audio_blocks(path, block_s=10.0):
            total += len(block)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total / SAMPLE_RATE == pytest.approx(182.1, abs=0.01)
    assert peak < whole_bytes / 4, f"peak {peak / 1e6:.1f} MB while streaming {whole_bytes / 1e6:.1f} MB of audio"


def test_cancel_stops_between_blocks(jfk: Path) -> None:
    cancel = CancelToken()
    blocks = iter_audio_blocks(jfk, block_s=1.0, cancel=cancel)
    next(blocks)
    cancel.cancel()
    with pytest.raises(Cancelled):
        next(blocks)
    with pytest.raises(Cancelled):
        decode_audio(jfk, cancel=cancel)


def test_decode_releases_the_file_so_it_can_be_removed(tmp_path: Path) -> None:
    copy = tmp_path / "copy.m4a"
    shutil.copyfile(shared_media("m4a"), copy)
    blocks = iter_audio_blocks(copy, block_s=1.0)
    next(blocks)
    blocks.close()  # a consumer that stops early closes the container
    assert decode_audio(copy).size
    copy.unlink()
    assert not copy.exists()


def test_media_extensions_cover_what_users_drop() -> None:
    for suffix in [".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".mp4", ".mov", ".mkv", ".webm"]:
        assert suffix in MEDIA_EXTENSIONS
    assert ".txt" not in MEDIA_EXTENSIONS and ".jpg" not in MEDIA_EXTENSIONS
    assert all(s == s.lower() and s.startswith(".") for s in MEDIA_EXTENSIONS)


def test_collect_media_from_files_and_folders(tmp_path: Path) -> None:
    root = tmp_path / "Recordings"
    (root / "b-sub" / "deeper").mkdir(parents=True)
    (root / ".git").mkdir()
    wanted = [root / "a.MP3", root / "b-sub" / "deeper" / "c.wav", root / "b-sub" / "talk.webm", root / "Zed.m4a"]
    for path in wanted:
        path.write_bytes(b"x")
    for junk in [root / "notes.txt", root / "cover.jpg", root / ".DS_Store", root / "._a.m4a", root / ".git" / "x.wav"]:
        junk.write_bytes(b"x")
    loose = tmp_path / "loose.ogg"
    loose.write_bytes(b"x")
    readme = tmp_path / "readme.txt"
    readme.write_text("hi")
    empty_folder = tmp_path / "empty"
    empty_folder.mkdir()

    files, notes = collect_media([loose, root, readme, tmp_path / "nope.wav", root / "a.MP3", str(empty_folder)])

    in_root = [root / "a.MP3", root / "b-sub" / "deeper" / "c.wav", root / "b-sub" / "talk.webm", root / "Zed.m4a"]
    assert files == [loose, *in_root]  # in order given, folders sorted, each file once, hidden ones left out
    assert len(notes) == 4 and all("\n" not in note for note in notes)
    assert notes[0].startswith(f"{root}: skipped 2 file(s)") and "cover.jpg" in notes[0] and "notes.txt" in notes[0]
    assert notes[1].startswith(f"{readme}: skipped, not an audio or video file")
    assert notes[2] == f"{tmp_path / 'nope.wav'}: not found"
    assert notes[3] == f"{empty_folder}: no audio or video files in this folder"


def test_make_media_reuses_files(tmp_path: Path) -> None:
    first = make_media(tmp_path, "tone_50ms")
    stamp = first.stat().st_mtime_ns
    assert make_media(tmp_path, "tone_50ms") == first and first.stat().st_mtime_ns == stamp
