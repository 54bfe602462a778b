"""The Modal fan-out, run against the stand-in remote (the same worker body, in-process) and, for the
connection path, against no token and a loopback fake of Modal's API."""

from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile as sf

from tests.modal_standin import StandInRemote
from worker.backends.events import Progress, SegmentsReady, Stage, TimingReport
from worker.core.cancel import CancelToken
from worker.core.errors import Cancelled, MediaError, ModalSetupError, TranscriptionError
from worker.core.options import TranscriptionOptions
from worker.media.chunking import estimate_chunk_count
from worker.modal.fanout import ModalBackend

sys.path.insert(0, str(Path(__file__).resolve().parent))
from modal_control_plane import ControlPlane, DeployedApp, free_port  # noqa: E402
from speech_text import JFK_REFERENCE, normalise  # noqa: E402

GAPS_S = (19.0, 20.0, 19.0, 21.0, 20.0)  # silence after each of five JFK sentences: about one per 30 s chunk
ENGLISH = TranscriptionOptions(language="en", beam_size=1)
TIMING_KEYS = {"gpu", "cold_start", "model_load_s", "inference_s", "audio_s", "rtf", "cuda_mem_mb", "container_id"}
GOOD_ID = "ak-goodtoken0000000000"
GOOD_SECRET = "as-goodsecret000000000"


class Recorder:
    """An emit callback that keeps every event (and may act on one)."""

    def __init__(self, on_event=None) -> None:
        self.events: list = []
        self.on_event = on_event

    def __call__(self, event) -> None:
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture(scope="module")
def model_remote() -> StandInRemote:
    """The stand-in running the real worker body with tiny.en (loaded once for the module)."""
    remote = StandInRemote(run_model=True)
    remote.body("tiny.en").load()
    return remote


@pytest.fixture(scope="module")
def repeated_jfk(jfk, tmp_path_factory) -> tuple[Path, list[float]]:
    """~2.5 minutes: the JFK sentence five times, with silences between; and where each one starts."""
    from worker.media.audio import decode_audio

    speech = decode_audio(jfk)
    pieces, offsets, at = [], [], 0.0
    for gap in GAPS_S:
        offsets.append(at)
        pieces += [speech, np.zeros(int(16000 * gap), dtype=np.float32)]
        at += len(speech) / 16000 + gap
    path = tmp_path_factory.mktemp("fanout") / "five times jfk.flac"
    sf.write(path, np.concatenate(pieces), 16000)
    return path, offsets


@pytest.fixture(scope="module")
def minute_of_speech(shared_audio) -> Path:
    return shared_audio / "multilingual.mp3"  # 60 s of dense speech


def test_long_file_fans_out_and_stitches_every_sentence_once_in_place(model_remote, repeated_jfk):
    path, offsets = repeated_jfk
    calls_before = model_remote.calls
    emit = Recorder()
    backend = ModalBackend(remote=model_remote, chunk_s=30.0, max_containers=8)
    options = TranscriptionOptions(language="en", beam_size=1, word_timestamps=True)
    transcript = backend.transcribe(path, options, emit, CancelToken())

    chunk_count = transcript.timings["chunk_count"]
    assert chunk_count == 5 and model_remote.calls - calls_before == chunk_count
    assert transcript.backend == "modal" and "tiny.en" in transcript.model
    assert transcript.duration == pytest.approx(offsets[-1] + 11.0 + GAPS_S[-1], abs=0.1)

    # every sentence exactly once: nothing lost or doubled at the seams
    text = normalise(transcript.text)
    assert text.count("ask not what your country can do for you") == 5, transcript.text
    assert text.count("ask what you can do for your country") == 5, transcript.text
    assert jiwer.wer(" ".join([JFK_REFERENCE] * 5), text) <= 0.05

    # absolute times: each sentence starts where it is in the file; segments in order, no overlaps
    # (word timestamps: Whisper's segment starts alone may snap to the start of a chunk's leading silence)
    firsts = [s.words[0] for s in transcript.segments if normalise(s.text).startswith("and so")]
    assert len(firsts) == 5
    for word, offset in zip(firsts, offsets):
        assert abs(word.start - offset) < 0.5, ([w.start for w in firsts], offsets)
    americans = [w for s in transcript.segments for w in s.words if "americans" in w.text.lower()]
    assert [round(w.start) for w in americans] == [round(offset + 1.8) for offset in offsets]
    words = [w for s in transcript.segments for w in s.words]
    assert all(a.start <= b.start for a, b in zip(words, words[1:]))
    assert [s.id for s in transcript.segments] == list(range(len(transcript.segments)))
    for before, after in zip(transcript.segments, transcript.segments[1:]):
        assert before.start < after.start and before.end <= after.start + 0.01
    assert transcript.segments[-1].end <= transcript.duration

    # events: segments and progress per chunk, in chunk order, with the bar only moving forward
    ready = emit.of(SegmentsReady)
    assert [e.chunk_index for e in ready] == list(range(5))
    assert [s.text for e in ready for s in e.segments] == [s.text for s in transcript.segments]
    progress = [e for e in emit.of(Progress) if e.stage is Stage.TRANSCRIBING]
    assert [e.chunk_index for e in progress] == list(range(5))
    assert all(e.chunk_count == 5 for e in progress)
    assert progress[-1].label() == "transcribing chunk 5 of 5"
    fractions = [e.fraction for e in emit.of(Progress)]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert emit.of(Progress)[0].stage is Stage.DECODING
    reports = emit.of(TimingReport)
    assert [r.chunk_index for r in reports] == list(range(5))
    for report in reports:
        assert TIMING_KEYS <= set(report.timings) and report.timings["gpu"] == "cpu"
        assert report.timings["chunk_count"] == 5 and report.timings["container_id"] == "stand-in"
    assert sum(r.timings["cold_start"] for r in reports) <= 1  # one body: at most its first call is cold

    timings = transcript.timings
    assert len(timings["chunks"]) == 5 and timings["audio_s"] == pytest.approx(transcript.duration, abs=0.1)
    assert timings["wall_s"] > 0 and timings["gpu_seconds"] > 0 and timings["cost_usd"] == 0.0  # CPU: no GPU bill
    assert timings["upload_bytes_per_min"] <= 1_000_000


def test_answers_arriving_out_of_order_are_emitted_in_order(minute_of_speech):
    remote = StandInRemote(run_model=False, latency_s=0.05, chunk_latency_s={0: 0.6, 2: 0.3})
    emit = Recorder()
    transcript = ModalBackend(remote=remote, chunk_s=10.0).transcribe(minute_of_speech, ENGLISH, emit, CancelToken())
    count = transcript.timings["chunk_count"]
    assert count >= 5
    assert [e.chunk_index for e in emit.of(SegmentsReady)] == list(range(count))
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts) and starts[0] == 0.0
    assert transcript.segments[-1].end == pytest.approx(transcript.duration, abs=0.01)


def test_short_file_goes_up_in_one_call(model_remote, jfk):
    calls_before = model_remote.calls
    emit = Recorder()
    transcript = ModalBackend(remote=model_remote, chunk_s=30.0).transcribe(jfk, ENGLISH, emit, CancelToken())
    assert model_remote.calls - calls_before == 1
    assert transcript.timings["chunk_count"] == 1 and len(emit.of(SegmentsReady)) == 1
    assert jiwer.wer(JFK_REFERENCE, normalise(transcript.text)) <= 0.05
    assert transcript.language == "en" and transcript.duration == pytest.approx(11.0, abs=0.05)


def test_a_chunk_that_fails_now_and_then_is_retried(minute_of_speech):
    remote = StandInRemote(run_model=False, fail_chunks={1: 1, 3: 2})
    backend = ModalBackend(remote=remote, chunk_s=10.0, max_retries=2, retry_delay_s=0.01)
    transcript = backend.transcribe(minute_of_speech, ENGLISH, Recorder(), CancelToken())
    count = transcript.timings["chunk_count"]
    assert remote.calls_by_chunk[1] == 2 and remote.calls_by_chunk[3] == 3
    assert all(remote.calls_by_chunk[i] == 1 for i in range(count) if i not in (1, 3))
    assert [s.text for s in transcript.segments] == [f"stand-in chunk {i + 1}" for i in range(count)]


def test_a_chunk_that_always_fails_fails_its_job_while_another_job_finishes(minute_of_speech, jfk):
    remote = StandInRemote(run_model=False, always_fail={2}, latency_s=0.05)
    backend = ModalBackend(remote=remote, chunk_s=10.0, max_retries=2, retry_delay_s=0.01)
    outcomes: dict[str, object] = {}

    def run(name: str, path: Path) -> None:
        try:
            outcomes[name] = backend.transcribe(path, ENGLISH, Recorder(), CancelToken())
        except Exception as exc:  # handed to the test thread
            outcomes[name] = exc

    threads = [threading.Thread(target=run, args=("long", minute_of_speech)), threading.Thread(target=run, args=("short", jfk))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    failure = outcomes["long"]
    assert isinstance(failure, TranscriptionError), failure
    message = str(failure)
    assert "\n" not in message
    assert message.startswith("multilingual.mp3: chunk 3 of ")
    assert "after 3 tries" in message and "try again" in message
    assert remote.calls_by_chunk[2] == 3
    assert outcomes["short"].text == "stand-in chunk 1"  # the other job, on the same backend, finished
    assert remote.in_flight == 0


def test_worker_refusals_are_not_retried_and_name_the_chunk(model_remote, jfk):
    calls_before = model_remote.calls
    with pytest.raises(TranscriptionError) as caught:
        ModalBackend(remote=model_remote).transcribe(jfk, TranscriptionOptions(task="translate"), Recorder(), CancelToken())
    assert model_remote.calls - calls_before == 1
    assert re.match(r"jfk\.flac: chunk 1 of 1 \(0:00\.0–0:11\.0\) failed: tiny\.en is an English-only model", str(caught.value))


def test_bad_file_fails_before_any_call(tmp_path):
    bad = tmp_path / "notes.m4a"
    bad.write_text("this is not audio\n" * 100)
    remote = StandInRemote(run_model=False)
    with pytest.raises(MediaError) as caught:
        ModalBackend(remote=remote).transcribe(bad, ENGLISH, Recorder(), CancelToken())
    assert str(caught.value).startswith("notes.m4a: ") and "\n" not in str(caught.value)
    assert remote.calls == 0


def test_a_call_past_its_timeout_fails_with_what_to_do(jfk):
    remote = StandInRemote(run_model=False, latency_s=30.0)
    started = time.monotonic()
    with pytest.raises(TranscriptionError) as caught:
        ModalBackend(remote=remote, call_timeout_s=0.5).transcribe(jfk, ENGLISH, Recorder(), CancelToken())
    assert time.monotonic() - started < 5
    assert "jfk.flac: chunk 1 of 1" in str(caught.value) and "no answer within 0.5 s" in str(caught.value)
    assert "shorter chunks or a longer timeout" in str(caught.value)
    assert remote.in_flight == 0


def test_an_outdated_deployed_worker_says_to_deploy(jfk):
    class OldWorker(StandInRemote):
        async def transcribe(self, audio, options, chunk_index=0):
            answer = await super().transcribe(audio, options, chunk_index)
            return {**answer, "api_version": "0"}

    with pytest.raises(TranscriptionError) as caught:
        ModalBackend(remote=OldWorker(run_model=False)).transcribe(jfk, ENGLISH, Recorder(), CancelToken())
    assert "speaks API v0" in str(caught.value) and "whisper-desk deploy" in str(caught.value)


def test_cancel_mid_way_stops_outstanding_calls_at_once(minute_of_speech):
    # chunk 0 answers at once, every other call would take 30 s: when the first segments arrive, the calls
    # sent after it are certainly still out (with equal latencies they could all have answered already)
    remote = StandInRemote(run_model=False, latency_s=30.0, chunk_latency_s={0: 0.2})
    cancel = CancelToken()
    marks: dict[str, float] = {}

    def on_event(event) -> None:
        if isinstance(event, SegmentsReady) and "cancel" not in marks:
            marks["cancel"] = time.monotonic()
            marks["calls"] = remote.calls
            threading.Thread(target=cancel.cancel).start()

    backend = ModalBackend(remote=remote, chunk_s=10.0, max_containers=2)
    with pytest.raises(Cancelled):
        backend.transcribe(minute_of_speech, ENGLISH, Recorder(on_event), cancel)
    assert time.monotonic() - marks["cancel"] < 10.0  # not the 30 s the outstanding calls would take
    assert remote.in_flight == 0 and remote.cancelled >= 1
    assert remote.calls <= marks["calls"] + 1  # nothing new went out after the cancel
    assert remote.calls < estimate_chunk_count(60.0, 10.0)


def test_cancel_while_the_model_runs(model_remote, repeated_jfk):
    path, _ = repeated_jfk
    cancel = CancelToken()
    marks: dict[str, float] = {}
    cancelled_before = model_remote.cancelled

    def on_event(event) -> None:
        if isinstance(event, SegmentsReady) and "cancel" not in marks:
            marks["cancel"] = time.monotonic()
            cancel.cancel()  # from the job's own thread, as the CLI's Ctrl+C handler might

    with pytest.raises(Cancelled):
        ModalBackend(remote=model_remote, chunk_s=30.0).transcribe(path, ENGLISH, Recorder(on_event), cancel)
    assert time.monotonic() - marks["cancel"] < 2.0
    assert model_remote.in_flight == 0 and model_remote.cancelled > cancelled_before
    deadline = time.monotonic() + 20
    while model_remote.running and time.monotonic() < deadline:  # a model run stops at its next 30 s window
        time.sleep(0.05)
    assert model_remote.running == 0


@pytest.mark.parametrize("containers", [1, 3])
def test_no_more_calls_in_flight_than_containers(minute_of_speech, containers):
    remote = StandInRemote(run_model=False, latency_s=0.15)
    transcript = ModalBackend(remote=remote, chunk_s=5.0, max_containers=containers).transcribe(
        minute_of_speech, ENGLISH, Recorder(), CancelToken()
    )
    assert transcript.timings["chunk_count"] >= 8
    assert remote.peak_in_flight == containers


def test_upload_stays_within_1mb_per_audio_minute(minute_of_speech):
    remote = StandInRemote(run_model=False)
    transcript = ModalBackend(remote=remote, chunk_s=30.0).transcribe(minute_of_speech, ENGLISH, Recorder(), CancelToken())
    minutes = transcript.duration / 60
    assert transcript.timings["upload_bytes"] == remote.bytes_received
    assert remote.bytes_received / minutes <= 1_000_000
    assert transcript.timings["upload_bytes_per_min"] <= 1_000_000


# ---------------------------------------------------------------- the real remote path, without Modal


def test_without_a_token_the_modal_path_says_to_run_the_wizard_at_once(jfk):
    started = time.monotonic()
    with pytest.raises(ModalSetupError) as caught:
        ModalBackend().transcribe(jfk, ENGLISH, Recorder(), CancelToken())
    assert time.monotonic() - started < 5
    assert str(caught.value) == "Modal is not set up: run the setup wizard or `modal token new`"


@pytest.fixture(scope="module")
def fake_modal():
    with ControlPlane(token_id=GOOD_ID, token_secret=GOOD_SECRET) as server:
        yield server


def test_the_modal_path_explains_what_the_server_says(fake_modal, jfk, monkeypatch):
    monkeypatch.setenv("MODAL_SERVER_URL", fake_modal.url)
    monkeypatch.setenv("MODAL_TOKEN_ID", GOOD_ID)
    monkeypatch.setenv("MODAL_TOKEN_SECRET", GOOD_SECRET)
    fake_modal.apps.clear()
    with pytest.raises(ModalSetupError) as not_deployed:
        ModalBackend().transcribe(jfk, ENGLISH, Recorder(), CancelToken())
    assert "whisper-desk deploy" in str(not_deployed.value)
    assert {"ClientHello", "ClassGet"} <= set(fake_modal.rpcs)

    fake_modal.apps["whisper-desk"] = DeployedApp(methods=())  # an app without our method: an old or foreign deploy
    with pytest.raises(ModalSetupError) as no_method:
        ModalBackend().transcribe(jfk, ENGLISH, Recorder(), CancelToken())
    assert "whisper-desk deploy" in str(no_method.value)

    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-wrongsecret11111111")
    with pytest.raises(ModalSetupError) as rejected:
        ModalBackend().transcribe(jfk, ENGLISH, Recorder(), CancelToken())
    assert "setup wizard" in str(rejected.value)
    for error in (not_deployed.value, no_method.value, rejected.value):
        assert "\n" not in str(error) and GOOD_SECRET not in str(error) and "wrongsecret" not in str(error)


def test_an_unreachable_modal_is_reported_within_the_connect_timeout(jfk, monkeypatch):
    monkeypatch.setenv("MODAL_SERVER_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MODAL_TOKEN_ID", GOOD_ID)
    monkeypatch.setenv("MODAL_TOKEN_SECRET", GOOD_SECRET)
    started = time.monotonic()
    with pytest.raises(ModalSetupError) as caught:
        ModalBackend(connect_timeout_s=1.5).transcribe(jfk, ENGLISH, Recorder(), CancelToken())
    assert time.monotonic() - started < 5
    assert "network" in str(caught.value)


def test_estimated_chunk_count_matches_the_cutter():
    from worker.media.chunking import plan_split_points

    rng = np.random.default_rng(1)
    for seconds in (5, 36, 37, 59, 61, 90, 95, 100, 150, 601):
        audio = (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
        assert estimate_chunk_count(seconds, 30.0) == len(plan_split_points(audio, 30.0)) + 1, seconds


def test_text_past_a_chunk_end_is_clamped_so_chunks_never_overlap(minute_of_speech):
    class RunsPastTheEnd(StandInRemote):
        """Whisper sometimes stamps a segment past the audio it got, or invents one after the end."""

        async def transcribe(self, audio, options, chunk_index=0):
            answer = await super().transcribe(audio, options, chunk_index)
            length = answer["duration"]
            answer["segments"][0]["end"] = length + 1.5
            answer["segments"].append({"id": 1, "start": length + 0.5, "end": length + 3.0, "text": "thank you", "words": []})
            return answer

    transcript = ModalBackend(remote=RunsPastTheEnd(run_model=False), chunk_s=10.0).transcribe(
        minute_of_speech, ENGLISH, Recorder(), CancelToken()
    )
    count = transcript.timings["chunk_count"]
    assert [s.text for s in transcript.segments] == [f"stand-in chunk {i + 1}" for i in range(count)]
    for before, after in zip(transcript.segments, transcript.segments[1:]):
        assert before.end == pytest.approx(after.start, abs=0.002)
    assert transcript.segments[-1].end == pytest.approx(transcript.duration, abs=0.002)


def test_retries_show_in_progress(minute_of_speech):
    emit = Recorder()
    ModalBackend(remote=StandInRemote(run_model=False, fail_chunks={0: 1}), chunk_s=30.0, retry_delay_s=0.01).transcribe(
        minute_of_speech, ENGLISH, emit, CancelToken()
    )
    assert any(e.message.startswith("retrying chunk 1 of 2 (Modal had an internal failure") for e in emit.of(Progress))
