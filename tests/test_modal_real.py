"""The Modal path through the real `modal` client (1.6.x), against the loopback control plane
(tests/modal_control_plane.py), which runs the deployed worker class for real with tiny.en.

What a user would check: a long file runs each chunk exactly once and the transcript is right; a hiccup costs
at most one extra run and a refused chunk none; Ctrl-C and Cancel stop every call on Modal; a job killed
half-way collects its calls when it runs again instead of paying for them twice.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from modal_control_plane import ControlPlane, DeployedApp, Faults  # noqa: E402
from speech_text import JFK_PHRASE, JFK_REFERENCE, normalise  # noqa: E402

from worker.backends.modal_fanout import ModalBackend  # noqa: E402
from worker.errors import Cancelled, TranscriptionError  # noqa: E402
from worker.events import CancelToken, Progress, SegmentsReady  # noqa: E402
from worker.library import Library  # noqa: E402
from worker.options import TranscriptionOptions  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ENGLISH = TranscriptionOptions(language="en", beam_size=1)
MIT_PHRASE = "permission is hereby granted"
NOISE = ("Traceback", "Task was destroyed", "Event loop is closed", "never retrieved", "coroutine was never awaited")
WARM = collections.defaultdict(list)  # containers stay warm from one plane to the next, as on Modal


@pytest.fixture(scope="module")
def plane():
    with ControlPlane(apps={"whisper-desk": DeployedApp()}, containers=3, warm_containers=WARM) as served:
        yield served


@pytest.fixture
def cp(plane, monkeypatch):
    """The plane with fresh records and no faults; this process (and its children) pointed at it."""
    plane.wait_idle(60)
    plane.reset_records()
    plane.calls.clear()
    plane.faults = Faults()
    for name, value in plane.env().items():
        monkeypatch.setenv(name, value)
    yield plane
    plane.faults = Faults()
    plane.wait_idle(60)


@pytest.fixture(scope="module")
def medley(shared_audio, tmp_path_factory) -> Path:
    """About 70 s made from the shared recordings with the project's own decoder: JFK, the English half of
    the licence, JFK, the hotwords sentence, JFK; short pauses between them."""
    from worker.audio import decode_audio

    jfk = decode_audio(shared_audio / "jfk.flac")
    licence = decode_audio(shared_audio / "multilingual.mp3")[: 16000 * 27]
    hotwords = decode_audio(shared_audio / "hotwords.mp3")
    pause = np.zeros(16000 * 2, dtype=np.float32)
    audio = np.concatenate([jfk, pause, licence, pause, jfk, pause, hotwords, pause, jfk, pause])
    path = tmp_path_factory.mktemp("modal-real") / "medley.flac"
    sf.write(path, audio, 16000)
    return path


def cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "worker.cli", *args], cwd=ROOT, env=dict(os.environ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def runs_per_chunk(plane: ControlPlane) -> list[int]:
    """How many times each distinct chunk ran on the plane's containers."""
    return sorted(plane.executions_per_audio().values())


def wait_for(condition, timeout_s: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


def unfinished_when_cancelled(plane: ControlPlane) -> set[str]:
    """Calls sent that had no output when the client cancelled them, or have none now."""
    return {call_id for call_id, call in plane.calls.items() if call_id in plane.cancelled_calls or not call.done.is_set()}


# ---------------------------------------------------------------- a long file


def test_cli_long_file_runs_each_chunk_once_and_the_transcript_is_right(cp, medley):
    app = cli("transcribe", str(medley), "--backend", "modal", "--chunk-seconds", "12", "--max-containers", "3")
    stdout, stderr = app.communicate(timeout=900)
    assert app.returncode == 0, stderr
    text = normalise(stdout)
    assert text.count(JFK_PHRASE) == 3, stdout
    assert MIT_PHRASE in text
    chunks = len(cp.calls_sent)
    assert chunks >= 5
    assert runs_per_chunk(cp) == [1] * chunks  # each chunk ran exactly once
    assert cp.count("FunctionBindParams") == 1  # the model is bound once per job, not once per chunk
    assert cp.count("FunctionCallCancel") == 0
    assert not any(noise in stderr for noise in NOISE), stderr
