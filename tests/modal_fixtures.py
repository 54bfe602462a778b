"""Fixtures for tests that drive the real `modal` client against the loopback control plane
(tests/modal_control_plane.py); registered in conftest.

- `modal_plane`: a fresh ControlPlane, with the environment pointing modal (and the `modal` CLI that
  `whisper-desk deploy` runs) at it: MODAL_SERVER_URL, MODAL_TOKEN_ID/SECRET, HOME and MODAL_CONFIG_PATH
  in the test's temporary home. Nothing is deployed yet; its model Volume holds tiny.en's weights, as after
  a first job (`modal_plane.empty_volume()` for a first download).
- `deployed_modal`: the same, after the real `whisper-desk deploy` code (worker.modal.deploy, which runs
  `python -m modal deploy -m worker.modal.app`) ran against it; the plane's records are then cleared.
- `cp`: `deployed_modal`, with its faults cleared and its containers idle again after the test.
- `medley`: about 74 s of real speech for multi-chunk jobs (JFK, the English half of the licence, JFK, the
  hotwords sentence, JFK, with 2 s pauses), made once per session with the project's own decoder.

Warm containers (the deployed class with its model loaded) are shared by the whole session, as Modal keeps
containers warm between calls: a test that needs cold ones calls `modal_plane.cold_containers()`.
"""

from __future__ import annotations

import collections
import time

import pytest

_WARM: "collections.defaultdict[str, list]" = collections.defaultdict(list)


@pytest.fixture
def modal_plane(isolated_dirs, monkeypatch):
    from modal_control_plane import ControlPlane

    plane = ControlPlane(warm_containers=_WARM)
    plane.cache_weights()  # as after a first job: tests of a first download call plane.empty_volume()
    plane.start()
    for name, value in plane.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOME", str(isolated_dirs))
    monkeypatch.delenv("MODAL_PROFILE", raising=False)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def deployed_modal(modal_plane):
    from worker.modal.deploy import deploy

    lines: list[str] = []
    deploy(lines.append, timeout_s=120)
    assert modal_plane.deployment.published, lines
    modal_plane.reset_records()
    return modal_plane


@pytest.fixture
def cp(deployed_modal):
    """The control plane after the real `whisper-desk deploy`; this process (and its children) point at it."""
    from modal_control_plane import Faults

    yield deployed_modal
    deployed_modal.faults = Faults()
    deployed_modal.wait_idle(60)


@pytest.fixture(scope="session")
def medley(shared_audio, tmp_path_factory):
    """About 74 s from the shared recordings: JFK, the English half of the licence, JFK, hotwords, JFK."""
    import numpy as np
    import soundfile as sf

    from worker.media.audio import decode_audio

    jfk = decode_audio(shared_audio / "jfk.flac")
    licence = decode_audio(shared_audio / "multilingual.mp3")[: 16000 * 27]
    hotwords = decode_audio(shared_audio / "hotwords.mp3")
    pause = np.zeros(16000 * 2, dtype=np.float32)
    audio = np.concatenate([jfk, pause, licence, pause, jfk, pause, hotwords, pause, jfk, pause])
    path = tmp_path_factory.mktemp("modal-medley") / "medley.flac"
    sf.write(path, audio, 16000)
    return path


def wait_for(condition, timeout_s: float = 120.0, what: str = "") -> None:
    """Wait until condition() holds; an AssertionError naming `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)
