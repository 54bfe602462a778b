"""The local backend: a long-lived engine process with real tiny.en, driven the way the window drives it."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import jiwer
import pytest
from speech_text import JFK_REFERENCE, normalise

from worker.backends.events import Progress, SegmentsReady, Stage, TimingReport
from worker.backends.local import LocalBackend
from worker.core.cancel import CancelToken
from worker.core.errors import Cancelled, MediaError, TranscriptionError
from worker.core.options import TranscriptionOptions
from worker.jobs.backend_pool import create_backend


@pytest.fixture(scope="module")
def backend():
    backend = create_backend("local")
    assert isinstance(backend, LocalBackend)
    yield backend
    backend.close()


def run(backend: LocalBackend, path: Path, options: TranscriptionOptions | None = None, cancel: CancelToken | None = None):
    events: list[object] = []
    transcript = backend.transcribe(path, options or TranscriptionOptions(), events.append, cancel or CancelToken())
    return transcript, events


def test_events_arrive_in_order_and_progress_grows(backend: LocalBackend, jfk: Path) -> None:
    transcript, events = run(backend, jfk, TranscriptionOptions(word_timestamps=True))

    assert jiwer.wer(JFK_REFERENCE, normalise(transcript.text)) <= 0.1, transcript.text
    assert transcript.backend == "local" and transcript.model == "tiny.en (bundled, offline)"
    assert transcript.source == str(jfk) and transcript.language == "en"
    assert any(w.text == "Americans" for s in transcript.segments for w in s.words)

    stages = [e.stage for e in events if isinstance(e, Progress)]
    first_seen = list(dict.fromkeys(stages))
    assert first_seen == [Stage.DECODING, Stage.LOADING_MODEL, Stage.TRANSCRIBING]
    fractions = [e.fraction for e in events if isinstance(e, Progress) and e.stage is Stage.TRANSCRIBING]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(0.0 < f < 1.0 for f in fractions)  # it moved during the job, not only at the end
    streamed = [s for e in events if isinstance(e, SegmentsReady) for s in e.segments]
    assert [s.text for s in streamed] == [s.text for s in transcript.segments]
    # a segment's progress follows it: fraction = its end / duration
    first_segment_at = next(i for i, e in enumerate(events) if isinstance(e, SegmentsReady))
    after = next(e for e in events[first_segment_at:] if isinstance(e, Progress))
    assert after.fraction == pytest.approx(streamed[0].end / transcript.duration, abs=0.01)
    timing = [e for e in events if isinstance(e, TimingReport)]
    assert len(timing) == 1 and timing[0].timings["gpu"] == "cpu" and timing[0].timings["rtf"] > 0
    assert transcript.timings["cold_start"] is True


def test_model_stays_loaded_and_jobs_run_one_at_a_time(backend: LocalBackend, jfk: Path) -> None:
    run(backend, jfk)  # whatever ran before, the model is loaded now
    pid = backend.pid
    results: list[object] = []

    def job() -> None:
        try:
            results.append(run(backend, jfk, TranscriptionOptions(beam_size=1))[0])
        except Exception as exc:  # pragma: no cover - reported by the asserts below
            results.append(exc)

    threads = [threading.Thread(target=job) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 2
    for transcript in results:
        assert not isinstance(transcript, Exception), transcript
        assert jiwer.wer(JFK_REFERENCE, normalise(transcript.text)) <= 0.1
        assert transcript.timings["cold_start"] is False and transcript.timings["model_load_s"] == 0.0
        assert transcript.timings["worker_pid"] == pid
    assert backend.pid == pid


def test_missing_file_is_a_media_error_and_the_backend_keeps_working(backend: LocalBackend, jfk: Path, tmp_path: Path) -> None:
    missing = tmp_path / "gone.wav"
    with pytest.raises(MediaError) as error:
        run(backend, missing)
    assert str(error.value) == "gone.wav: file not found" and error.value.path == str(missing)
    text_file = tmp_path / "notes.mp3"
    text_file.write_text("not audio at all")
    with pytest.raises(MediaError, match="^notes.mp3: "):
        run(backend, text_file)
    with pytest.raises(TranscriptionError, match="English-only"):
        run(backend, jfk, TranscriptionOptions(language="fr"))
    pid = backend.pid
    transcript, _ = run(backend, jfk, TranscriptionOptions(beam_size=1))
    assert "fellow americans" in normalise(transcript.text) and backend.pid == pid


def test_cancel_mid_job_stops_at_once_and_the_next_job_works(backend: LocalBackend, shared_audio: Path, jfk: Path) -> None:
    run(backend, jfk, TranscriptionOptions(beam_size=1))
    old_pid = backend.pid
    cancel = CancelToken()
    segments: list[object] = []
    cancelled_at: list[float] = []

    def emit(event: object) -> None:
        if isinstance(event, SegmentsReady):
            segments.extend(event.segments)
            if not cancelled_at:  # cancel from another thread, as the window's button does
                cancelled_at.append(time.monotonic())
                threading.Thread(target=cancel.cancel).start()

    with pytest.raises(Cancelled):
        backend.transcribe(shared_audio / "multilingual.mp3", TranscriptionOptions(), emit, cancel)
    # at once: well before the rest of the minute-long file (generous for a loaded machine)
    assert segments and cancelled_at and time.monotonic() - cancelled_at[0] < 6.0
    assert backend.pid is None  # the process was stopped

    transcript, _ = run(backend, jfk, TranscriptionOptions(beam_size=1))
    assert "fellow americans" in normalise(transcript.text)
    assert transcript.timings["cold_start"] is True and transcript.timings["worker_pid"] != old_pid
    cancel.cancel()  # a late cancel of the finished job does not touch the new process
    assert backend.pid == transcript.timings["worker_pid"]


def test_a_killed_engine_process_is_a_clear_error_and_a_fresh_one_takes_over(backend: LocalBackend, jfk: Path) -> None:
    run(backend, jfk, TranscriptionOptions(beam_size=1))
    pid = backend.pid
    assert pid is not None

    killed: list[bool] = []

    def kill_when_transcribing(event: object) -> None:
        if isinstance(event, Progress) and event.stage is Stage.TRANSCRIBING and not killed:
            killed.append(True)
            os.kill(pid, signal.SIGKILL)

    with pytest.raises(TranscriptionError, match=r"^the engine process stopped unexpectedly \(exit code -9\)$"):
        backend.transcribe(jfk, TranscriptionOptions(), kill_when_transcribing, CancelToken())
    transcript, _ = run(backend, jfk, TranscriptionOptions(beam_size=1))
    assert "fellow americans" in normalise(transcript.text) and backend.pid not in (None, pid)


def test_openai_engine_and_closing_mid_job(jfk: Path, shared_audio: Path) -> None:
    backend = LocalBackend(engine="openai", threads=1)
    try:
        transcript, events = run(backend, jfk, TranscriptionOptions(beam_size=1))
        assert jiwer.wer(JFK_REFERENCE, normalise(transcript.text)) <= 0.1, transcript.text
        assert transcript.timings["engine"] == "openai-whisper" and transcript.backend == "local"
        assert any(isinstance(e, SegmentsReady) for e in events)
        process_pid = backend.pid
        assert process_pid is not None

        # the window closes while a job runs: the job ends with Cancelled, the process is gone
        transcribing = threading.Event()
        outcome: list[BaseException] = []

        def job() -> None:
            def emit(event: object) -> None:
                if isinstance(event, Progress) and event.stage is Stage.TRANSCRIBING:
                    transcribing.set()

            try:
                backend.transcribe(shared_audio / "multilingual.mp3", TranscriptionOptions(beam_size=1), emit, CancelToken())
            except BaseException as exc:  # noqa: BLE001 - checked below
                outcome.append(exc)

        thread = threading.Thread(target=job)
        thread.start()
        assert transcribing.wait(30)
    finally:
        backend.close()
    thread.join(5)
    assert not thread.is_alive() and len(outcome) == 1 and isinstance(outcome[0], Cancelled)
    assert backend.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(process_pid, 0)
    with pytest.raises(TranscriptionError, match="closed"):
        run(backend, jfk)


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown local engine"):
        LocalBackend(engine="whisper.cpp")


def test_a_long_file_streams_through_the_engine_in_blocks_with_nothing_lost_or_doubled_at_the_seams(tmp_path: Path) -> None:
    from readings import two_readings

    path, reference = two_readings(tmp_path)  # about 132 s of read speech
    backend = LocalBackend(block_s=20.0)  # 6 blocks or more, as a 3-hour file makes 90 of 2 minutes
    try:
        transcript, events = run(backend, path, TranscriptionOptions(language="en", word_timestamps=True))
    finally:
        backend.close()

    words = normalise(transcript.text).split()
    assert jiwer.wer(reference, " ".join(words)) <= 0.15, transcript.text  # 0.09 as one block
    assert abs(len(words) - len(reference.split())) <= 10, transcript.text  # nothing lost or doubled
    assert transcript.timings["blocks"] >= 6 and transcript.timings["audio_s"] == pytest.approx(transcript.duration, abs=0.1)
    segments = transcript.segments
    assert [s.id for s in segments] == list(range(len(segments)))
    assert all(a.end <= b.start for a, b in zip(segments, segments[1:])) and segments[-1].end <= transcript.duration
    times = [w.start for s in segments for w in s.words]
    assert times == sorted(times) and times[-1] <= transcript.duration  # word times in the file's time

    # the log says what happened: one pass over the whole file (its windows run across the blocks' seams)
    timings = [e for e in events if isinstance(e, TimingReport)]
    assert len(timings) == 1 and timings[0].timings["audio_s"] == pytest.approx(transcript.duration, abs=0.1)
    progress = [e for e in events if isinstance(e, Progress) and e.stage is Stage.TRANSCRIBING]
    fractions = [e.fraction for e in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(set(fractions)) > 10
    assert {e.label() for e in progress} == {"transcribing"}
    streamed = [s for e in events if isinstance(e, SegmentsReady) for s in e.segments]
    assert [(s.start, s.text) for s in streamed] == [(s.start, s.text) for s in segments]
