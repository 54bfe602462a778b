"""The editor saves edits off the GUI thread, in order, and flush() waits for them (gui/edit_saver.py)."""

from __future__ import annotations

import threading

from editor_fixtures import jfk_transcript

from gui.editor import TranscriptEditor
from worker.core.options import TranscriptionOptions
from worker.library.library import Library


def test_edits_are_written_in_the_background_in_order_and_flushed(qtbot, tmp_path):
    library = Library(tmp_path / "library.sqlite3")
    job = library.jobs.add("/work/shared/audio/jfk.flac", TranscriptionOptions(), "local")
    library.transcripts.save(job.id, jfk_transcript())
    editor = TranscriptEditor(library=library)
    qtbot.addWidget(editor)
    editor.set_transcript(library.transcripts.get(job.id), original=library.transcripts.original(job.id), job_id=job.id)

    release = threading.Event()
    writes: list[tuple[str, bool, str]] = []  # (thread, released when it ran, first segment's text)
    save_edit = library.transcripts.save_edit

    def held_save(job_id, transcript):
        writes.append((threading.current_thread().name, release.wait(30), transcript.segments[0].text))
        save_edit(job_id, transcript)

    library.transcripts.save_edit = held_save
    gui_thread = threading.current_thread().name
    for n in range(5):
        editor.edit_text(0, f"edit number {n}")  # returns while the first write is still held
    release.set()
    assert editor.flush_saves()
    assert writes and all(thread != gui_thread and released for thread, released, _text in writes)
    assert writes[-1][2].strip() == "edit number 4" and len(writes) <= 5  # the last state written is the latest
    library.close()

    reopened = Library(tmp_path / "library.sqlite3")
    assert reopened.transcripts.get(job.id).segments[0].text.strip() == "edit number 4"
    reopened.close()


def test_a_write_the_library_refuses_is_reported_and_the_rest_go_on(qtbot, tmp_path):
    library = Library(tmp_path / "library.sqlite3")
    job = library.jobs.add("/work/shared/audio/jfk.flac", TranscriptionOptions(), "local")
    library.transcripts.save(job.id, jfk_transcript())
    editor = TranscriptEditor(library=library)
    qtbot.addWidget(editor)
    editor.set_transcript(library.transcripts.get(job.id), original=library.transcripts.original(job.id), job_id=job.id)
    save_edit, refusals = library.transcripts.save_edit, []

    def refused_once(job_id, transcript):  # a stand-in for a disk that refuses one write
        if not refusals:
            refusals.append(transcript)
            raise OSError("disk I/O error")
        save_edit(job_id, transcript)

    library.transcripts.save_edit = refused_once
    with qtbot.waitSignal(editor.statusMessage, timeout=10000,
                          check_params_cb=lambda message: message == "The edit was not saved: disk I/O error"):
        editor.edit_text(0, "refused")
    assert editor.flush_saves()
    editor.edit_text(0, "written")  # the next edit is saved as usual
    assert editor.flush_saves()
    assert library.transcripts.get(job.id).segments[0].text.strip() == "written"
    library.close()
