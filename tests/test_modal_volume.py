"""The model Volume as Modal runs it, through the real `modal` client against the loopback control plane, whose
containers mount it as Modal's do (issue 17, defect 9 and "one weight download per model"): a first job on an
uncached model downloads the weights once, before the fan-out, and nothing half-written is ever committed, even
with background commits and several containers starting at once."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speech_text import JFK_PHRASE, normalise  # noqa: E402

from worker.backends.events import JobNote, Progress  # noqa: E402
from worker.core.cancel import CancelToken  # noqa: E402
from worker.core.options import MODEL_NAMES, TranscriptionOptions  # noqa: E402
from worker.media.chunking import encode_chunk  # noqa: E402
from worker.modal.fanout import ModalBackend  # noqa: E402
from worker.modal.remote import ModalRemote  # noqa: E402
from worker.modal.settings import WEIGHTS_FOLDER, checkpoint_file  # noqa: E402

ENGLISH = TranscriptionOptions(language="en", beam_size=1)
CHECKPOINT = f"{WEIGHTS_FOLDER}/tiny.en.pt"


def weights_size() -> int:
    from worker.engines.weights import openai_checkpoint

    checkpoint = openai_checkpoint("tiny.en")
    assert isinstance(checkpoint, Path)
    return checkpoint.stat().st_size


def assert_nothing_half_written(plane) -> None:
    """Every commit that wrote the checkpoint wrote all of it, nothing else was left in the Volume, and no
    download's own files (staging, partial copies) were ever committed."""
    size = weights_size()
    for commit in plane.volume.commits:
        for name, written in commit.files.items():
            assert "partial" not in name and "whisper-desk-weights" not in name, commit
            if name == CHECKPOINT:
                assert written == size, commit
    assert plane.volume.listing(WEIGHTS_FOLDER) == [(CHECKPOINT, size)]  # the download's claim is gone too


def test_a_first_job_on_an_uncached_model_downloads_once_before_the_fan_out(cp, medley):
    """The first large-v3 job started up to 8 T4s that each downloaded 3 GB and committed the same file (last
    write wins); background commits could commit half-written download folders."""
    cp.empty_volume()
    cp.slow_downloads(40e6)  # 72 MB: about two seconds, while the Volume is committed every 0.1 s
    cp.commit_in_background(0.1)
    before = len(cp.downloads)
    events: list = []
    transcript = ModalBackend(chunk_s=12.0, max_containers=4).transcribe(medley, ENGLISH, events.append, CancelToken())
    assert normalise(transcript.text).count(JFK_PHRASE) == 3
    assert len(cp.downloads) - before == 1  # exactly one download
    assert_nothing_half_written(cp)
    first = min(cp.executions, key=lambda execution: execution.started)
    later = [execution for execution in cp.executions if execution is not first]
    assert later and all(execution.started >= first.finished for execution in later)  # chunk 1 went alone
    assert len({execution.container for execution in cp.executions}) >= 2  # then the fan-out
    notes = " ".join(event.text for event in events if isinstance(event, JobNote))
    assert "the tiny.en weights are not in the Modal Volume yet" in notes, notes
    assert any(isinstance(event, Progress) and "waiting for the tiny.en weights to download" in event.message
               for event in events)
    assert transcript.timings["chunks"][0]["downloaded"] is True

    again: list = []
    ModalBackend(chunk_s=12.0, max_containers=4).transcribe(medley, ENGLISH, again.append, CancelToken())
    assert len(cp.downloads) - before == 1  # the next job finds them there
    assert not any(isinstance(event, JobNote) and "weights are not in" in event.text for event in again)


def test_containers_that_start_at_once_on_an_uncached_model_download_it_once(cp):
    """Defect 9 and the rest of "one download": several containers start at once (another computer's job,
    say): one claims the download, the others wait for the Volume to hold the weights (reloading), then read
    them; the class body runs as in a container (modal.is_local() is False there)."""
    cp.empty_volume()
    cp.slow_downloads(20e6)
    cp.commit_in_background(0.1)
    before = len(cp.downloads)
    silence = encode_chunk(np.zeros(2 * 16000, dtype=np.float32))

    async def three_at_once() -> list[dict]:
        remote = ModalRemote()
        await remote.open("tiny.en")
        try:
            calls = await asyncio.gather(*(remote.spawn(silence, {"language": "en"}) for _ in range(3)))
            return list(await asyncio.gather(*(remote.collect(call_id) for call_id in calls)))
        finally:
            await remote.aclose()

    answers = asyncio.run(three_at_once())
    assert all("error" not in answer and answer["duration"] == 2.0 for answer in answers), answers
    containers = {answer["timings"]["container_id"] for answer in answers}
    assert len(containers) == 3  # three containers started at once
    assert len(cp.downloads) - before == 1
    assert sum(answer["timings"]["downloaded"] for answer in answers) == 1  # the others read the Volume
    assert cp.count("VolumePutFiles2") == 4  # the claim that won, the two refused, the weights
    assert cp.count("VolumeReload") >= 3  # the waiting containers reloaded to see them
    assert_nothing_half_written(cp)


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_the_client_looks_for_the_file_the_worker_downloads(model):
    import whisper

    assert checkpoint_file(model) == os.path.basename(whisper._MODELS[model])  # noqa: SLF001
