"""The window reacts to the job queue's reports from what they carry (pytest-qt, offscreen, real tiny.en on this
computer): a running job's new segments, its ending (status, error, transcript) and a saved edit are shown
without the window reading the library (an SQLite trace on the library's connection sees no SELECT from the GUI
thread meanwhile), and a region is re-transcribed on the queue's backend pool with the preferences the window
holds in memory, never read from disk."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from speech_text import JFK_PHRASE, normalise

from gui.main_window import MainWindow
from gui.queue_model import STATUS
from gui.settings import Preferences
from worker.jobs.events import JobFinished

GUI_WAIT_MS = 120_000


class SelectTrace:
    """Every SELECT run on the library's connection, with the thread that ran it, while installed."""

    def __init__(self, library) -> None:
        self.connection = library.database.connection
        self.selects: list[tuple[str, str]] = []  # (thread name, statement)

    def __enter__(self) -> SelectTrace:
        self.connection.set_trace_callback(self._traced)
        return self

    def __exit__(self, *_exc) -> None:
        self.connection.set_trace_callback(None)

    def _traced(self, statement: str) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            self.selects.append((threading.current_thread().name, statement))

    def on_thread(self, thread: threading.Thread) -> list[str]:
        return [statement for name, statement in self.selects if name == thread.name]


@pytest.fixture
def window(qtbot, library, lent_backend):
    win = MainWindow(library=library, preferences=Preferences(check_modal_on_start=False),
                     backend_factory=lambda name, prefs: lent_backend)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    qtbot.waitUntil(lambda: win.transcript_pane.uses_editor, timeout=10_000)
    qtbot.wait(600)  # the start-up timers (queue start, Modal check) have run: their reads are not the test's
    yield win
    win.shutdown()


def test_the_window_shows_new_segments_an_ending_and_an_edit_from_the_reports_alone(qtbot, window, library, jfk):
    gui_thread = threading.current_thread()
    pane = window.transcript_pane
    arrived: list[int] = []  # how many segments each SegmentsArrived brought
    shown_live: list[tuple[int, int]] = []  # after each: (segments so far, rows the live pane shows)
    endings: list[JobFinished] = []

    def segments_arrived(_job_id: int, segments: list) -> None:  # connected after the window's own slot
        arrived.append(len(segments))
        shown_live.append((sum(arrived), pane.editor.model.rowCount() if pane.live else -1))

    window.controller.segmentsArrived.connect(segments_arrived)
    window.controller.jobFinished.connect(endings.append)
    queued: list = []
    with SelectTrace(library) as trace:
        # queued from another thread: the queue's own reads run there, so the GUI thread only handles reports
        adder = threading.Thread(target=lambda: queued.extend(window.controller.queue.add_files([jfk])))
        adder.start()
        qtbot.waitUntil(lambda: bool(endings), timeout=GUI_WAIT_MS)
        adder.join()
        [job] = queued
        [ending] = endings
        qtbot.waitUntil(lambda: not pane.live and pane.job_id == job.id, timeout=10_000)

        assert ending.status == "done" and ending.error is None and ending.record.status == "done"
        assert arrived and all(rows == count for count, rows in shown_live), shown_live  # each batch shown live
        assert window.model.index(window.model.row_of(job.id), STATUS).data() == "done"
        assert JFK_PHRASE in normalise(window.transcript_text())
        assert window.transcript_text() == ending.transcript.text
        assert "transcribing" not in pane.title.text() and not pane.title.text().endswith(" — edited")

        with qtbot.waitSignal(window.controller.transcriptEdited, timeout=10_000) as edited:
            pane.editor.edit_text(0, "And so, my fellow Americans,")
        assert edited.args[0].job_id == job.id and edited.args[0].edited
        assert pane.title.text().endswith(" — edited")
        assert window.transcript_text().startswith("And so, my fellow Americans,")

    assert trace.on_thread(gui_thread) == []  # the window read nothing: every change came with its report
    assert trace.selects  # (the trace saw the queue's own reads, on its threads)
    assert library.transcripts.is_edited(job.id)
    assert library.transcripts.get(job.id).segments[0].text.strip() == "And so, my fellow Americans,"
    assert library.transcripts.get(job.id).text == window.transcript_text()


def test_a_region_is_re_transcribed_on_the_queues_pool_with_the_preferences_held_in_memory(
        qtbot, library, lent_backend, jfk, tmp_path, monkeypatch):
    made: list[tuple[str, Preferences]] = []
    transcribed: list[str] = []

    class Recorded:
        """The lent real backend, noting what it transcribes."""

        name = "local"

        def transcribe(self, path, options, emit, cancel, ledger=None):
            transcribed.append(f"{path.name} {options.model}")
            return lent_backend.transcribe(path, options, emit, cancel, ledger=ledger)

        def close(self) -> None:
            pass

    def factory(name: str, preferences: Preferences) -> Recorded:
        made.append((name, preferences))
        return Recorded()

    window = MainWindow(library=library, preferences=Preferences(check_modal_on_start=False), backend_factory=factory)
    qtbot.addWidget(window)
    try:
        window.show()
        qtbot.waitUntil(lambda: window.transcript_pane.uses_editor, timeout=10_000)
        subtitles = tmp_path / "jfk.srt"
        subtitles.write_text("1\n00:00:00,000 --> 00:00:03,000\nAnd so my fellow Americans\n\n"
                             "2\n00:00:03,000 --> 00:00:11,000\nsomething garbled here\n", encoding="utf-8")
        from worker.jobs.review_import import fit_to_audio, read_subtitles

        transcript, _audio = read_subtitles(subtitles, guess_audio=False)
        job_id = window.controller.add_review_job(fit_to_audio(transcript, subtitles, jfk, 11.0), jfk, subtitles)
        window.select_jobs([job_id])
        qtbot.waitUntil(lambda: window.transcript_pane.job_id == job_id, timeout=10_000)

        in_memory = replace(window.preferences, local_threads=2, model="tiny.en")  # never saved
        window.controller.set_preferences(in_memory)

        def read_from_disk(*_args, **_kwargs):
            raise AssertionError("the preferences were read from disk")

        monkeypatch.setattr(Preferences, "load", classmethod(read_from_disk))
        editor = window.transcript_pane.editor
        with qtbot.waitSignal(window.controller.regionTranscribed, timeout=GUI_WAIT_MS) as region, \
                qtbot.waitSignal(editor.tools.regionFinished, timeout=GUI_WAIT_MS):
            assert editor.tools.retranscribe(rows=[1], language="en")

        assert made == [("local", in_memory)]  # the queue's pool made the backend, from the window's preferences
        assert transcribed == ["jfk 3.000-11.000.wav tiny.en"]  # the range, with the model the preferences hold
        report = region.args[0]
        assert (report.job_id, report.start_s, report.end_s) == (job_id, 3.0, 11.0)
        new_text = normalise(" ".join(s.text for s in editor.transcript().segments[1:]))
        assert "ask what you can do for your country" in new_text and "garbled" not in new_text
        assert normalise(" ".join(s.text for s in report.segments)) == new_text
    finally:
        window.shutdown()


def test_moving_jobs_reorders_the_rows_from_the_report_and_the_selection_follows(qtbot, window, library, jfk,
                                                                                 tmp_path):
    import shutil

    window.controller.set_paused(True)  # nothing runs: only the order matters here
    files = []
    for name in ("first", "second", "third"):
        files.append(tmp_path / f"{name}.flac")
        shutil.copy(jfk, files[-1])
    first, second, third = window.controller.add_files(files)
    orders: list[tuple[int, ...]] = []
    window.controller.jobsReordered.connect(orders.append)
    window.select_jobs([third.id])
    window.move_selected(-1)
    window.move_selected(-1)

    expected = [third.id, first.id, second.id]
    assert orders[-1] == tuple(expected)  # the report carries the new order
    assert [window.model.job_id_at(row) for row in range(window.model.rowCount())] == expected
    assert window.selected_job_ids() == [third.id]
    assert [record.id for record in library.jobs.all()] == expected


def test_subtitles_imported_for_review_arrive_as_a_finished_row_with_their_log_line(qtbot, window, library, jfk,
                                                                                   tmp_path):
    subtitles = tmp_path / "jfk.srt"
    subtitles.write_text("1\n00:00:00,000 --> 00:00:03,000\nAnd so my fellow Americans\n\n"
                         "2\n00:00:03,000 --> 00:00:11,000\nask not what your country can do for you\n", encoding="utf-8")
    added: list = []
    window.controller.jobAdded.connect(added.append)
    importer = window.import_subtitles(subtitles, jfk)
    with qtbot.waitSignal(importer.done, timeout=30_000) as done:
        pass
    job_id = done.args[0]

    assert [record.id for record in added] == [job_id] and added[0].status == "done"  # reported by the queue
    assert window.model.index(window.model.row_of(job_id), STATUS).data() == "done"
    assert window.log_panel.lines()[-1] == "imported jfk.srt (2 cues) for review"
    assert window.selected_job_ids() == [job_id]
    assert normalise(window.transcript_text()) == normalise("And so my fellow Americans ask not what your country "
                                                            "can do for you")
    assert library.jobs.get(job_id).status == "done" and library.transcripts.get(job_id).source == str(jfk)
