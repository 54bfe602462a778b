"""The export dialog (every format, bulk, overwrite prompt) and importing subtitles for review."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pysubs2
import pytest
from editor_fixtures import jfk_transcript
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

import gui.export_dialog
from gui.background import running_calls
from gui.editor import TranscriptEditor
from gui.export_dialog import CANCEL, KEEP_BOTH, OVERWRITE, ExportDialog, ImportForReview, ask_overwrite_dialog
from worker.core.options import TranscriptionOptions
from worker.library.library import Library
from worker.transcripts.formats import EXPORT_FORMATS, Exported, export_transcript


@pytest.fixture
def out(tmp_path) -> Path:
    folder = tmp_path / "exports"
    folder.mkdir()
    return folder


def make_dialog(qtbot, items, out, **kwargs) -> ExportDialog:
    dialog = ExportDialog(items, folder=out, formats=EXPORT_FORMATS, **kwargs)
    qtbot.addWidget(dialog)
    return dialog


def export_and_wait(qtbot, dialog: ExportDialog) -> list[Path]:
    """Start the export and wait until its background thread has written everything."""
    with qtbot.waitSignal(dialog.exportFinished, timeout=10000) as finished:
        assert dialog.export()
    assert finished.args == [dialog.written, dialog.failures]
    return dialog.written


def start_import(qtbot, expected: str, subtitle_path=None, audio_path=None, library=None, notify=pytest.fail) -> Any:
    """Run an ImportForReview to its end and check that it ended with `expected` (done, failed or cancelled)
    and nothing else; returns that signal's argument."""
    importer = ImportForReview(None, library, notify=notify)
    outcomes: list[tuple[str, tuple]] = []
    for name in ("done", "failed", "cancelled"):
        getattr(importer, name).connect(lambda *args, name=name: outcomes.append((name, args)))
    importer.start(subtitle_path, audio_path)
    qtbot.waitUntil(lambda: bool(outcomes), timeout=10000)
    [(name, args)] = outcomes
    assert name == expected, args
    return args[0] if args else None


def test_exports_every_format_for_many_transcripts_in_one_step(qtbot, out):
    second = jfk_transcript()
    second.segments[1].text = " ask what you can do for your planet"
    items = [(jfk_transcript(), "/talks/jfk.flac"), (second, "/other/jfk.mp3")]
    dialog = make_dialog(qtbot, items, out)
    dialog.max_line_length.setValue(20)
    dialog.max_lines.setValue(1)
    dialog.timestamps.setChecked(True)
    assert all(check.isChecked() for check in dialog.format_checks.values())
    with qtbot.waitSignal(dialog.exportFinished, timeout=10000):
        dialog.export_button.click()
    expected = {f"{stem}.{fmt}" for stem in ("jfk", "jfk (2)") for fmt in EXPORT_FORMATS}
    assert {p.name for p in out.iterdir()} == expected == {p.name for p in dialog.written}
    assert dialog.failures == []
    summary = dialog.summary.toPlainText()
    assert summary.startswith(f"Wrote {len(expected)} files to {out}") and "jfk (2).docx" in summary
    # the edited segment lost its word timestamps: they were computed again from the audio for the subtitles
    assert "timed by characters" not in summary and "planet" in (out / "jfk (2).srt").read_text(encoding="utf-8")
    subs = pysubs2.load(str(out / "jfk.srt"))
    assert all(len(line) <= 20 for event in subs for line in event.plaintext.split("\n"))
    assert all(len(event.plaintext.split("\n")) == 1 for event in subs)
    assert (out / "jfk.txt").read_text(encoding="utf-8").startswith("[00:00:00.000 --> ")
    assert "planet" in (out / "jfk (2).txt").read_text(encoding="utf-8")


def test_only_the_checked_formats_and_nothing_without_a_format(qtbot, out):
    dialog = make_dialog(qtbot, [(jfk_transcript(), "/talks/jfk.flac")], out)
    for fmt, check in dialog.format_checks.items():
        check.setChecked(fmt == "vtt")
    export_and_wait(qtbot, dialog)
    assert [p.name for p in out.iterdir()] == ["jfk.vtt"]
    dialog.format_checks["vtt"].setChecked(False)
    assert not dialog.export_button.isEnabled() and not dialog.export()


def test_the_dialog_remembers_the_last_choices(qtbot, out):
    first = make_dialog(qtbot, [(jfk_transcript(), "/talks/jfk.flac")], out)
    for fmt, check in first.format_checks.items():
        check.setChecked(fmt in ("vtt", "json"))
    first.max_line_length.setValue(30)
    first.max_lines.setValue(3)
    export_and_wait(qtbot, first)
    again = ExportDialog([(jfk_transcript(), "/talks/jfk.flac")])
    qtbot.addWidget(again)
    assert again.formats() == ["vtt", "json"]
    assert (again.max_line_length.value(), again.max_lines.value()) == (30, 3)
    assert again.folder_edit.text() == str(out)


def test_exports_the_edited_text_of_library_jobs(qtbot, out, tmp_path):
    library = Library(tmp_path / "library.sqlite3")
    ids = []
    for name in ("one.flac", "two.flac"):
        job = library.jobs.add(f"/talks/{name}", TranscriptionOptions(), "local")
        library.transcripts.save(job.id, jfk_transcript())
        ids.append(job.id)
    edited = jfk_transcript()
    edited.segments[0].text = " Edited in the editor"
    library.transcripts.save_edit(ids[1], edited)
    dialog = ExportDialog(library, ids, folder=out, formats=["txt", "srt"])
    qtbot.addWidget(dialog)
    export_and_wait(qtbot, dialog)
    assert sorted(p.name for p in out.iterdir()) == ["one.srt", "one.txt", "two.srt", "two.txt"]
    assert (out / "two.txt").read_text(encoding="utf-8").splitlines()[0] == "Edited in the editor"
    assert "Edited" not in (out / "one.txt").read_text(encoding="utf-8")
    library.close()


def test_asks_before_overwriting(qtbot, out):
    items = [(jfk_transcript(), "/talks/jfk.flac")]
    (out / "jfk.srt").write_text("precious", encoding="utf-8")
    asked: list[list[Path]] = []
    answers = [CANCEL, KEEP_BOTH, OVERWRITE]

    def ask(existing: list[Path]) -> str:
        asked.append(existing)
        return answers.pop(0)

    dialog = make_dialog(qtbot, items, out, ask_overwrite=ask)
    for fmt, check in dialog.format_checks.items():
        check.setChecked(fmt in ("srt", "txt"))
    assert not dialog.export() and dialog.written == []
    assert asked == [[out / "jfk.srt"]]
    assert sorted(p.name for p in out.iterdir()) == ["jfk.srt"] and (out / "jfk.srt").read_text() == "precious"
    assert "nothing was written" in dialog.summary.toPlainText()

    written = export_and_wait(qtbot, dialog)  # keep both: the existing file gets a numbered sibling
    assert sorted(p.name for p in written) == ["jfk (2).srt", "jfk.txt"]
    assert (out / "jfk.srt").read_text() == "precious"

    export_and_wait(qtbot, dialog)  # overwrite
    assert len(asked) == 3 and set(asked[2]) == {out / "jfk.srt", out / "jfk.txt"}
    assert "Americans" in (out / "jfk.srt").read_text(encoding="utf-8")


def fake_export(started: list[str], seconds: float = 0.0, gate: threading.Event | None = None):
    """A stand-in for the export pipeline whose writes take their time (or wait for `gate`) and note each file
    begun."""
    class SlowExporter:
        notes: list[str] = []

        def write(self, transcript, path: Path, fmt: str | None = None, **options) -> Exported:
            started.append(path.name)
            time.sleep(seconds)
            if gate is not None:
                assert gate.wait(10)
            path.write_text(fmt or "", encoding="utf-8")
            return Exported(path)

        write_new = write

    return lambda rules, **options: SlowExporter()


def test_a_slow_export_never_blocks_the_window(qtbot, out, monkeypatch):
    started: list[str] = []
    monkeypatch.setattr(gui.export_dialog, "export_pipeline", fake_export(started, seconds=0.3))
    items = [(jfk_transcript(), "/talks/one.flac"), (jfk_transcript(), "/talks/two.flac")]
    dialog = ExportDialog(items, folder=out, formats=["txt", "srt", "vtt"])
    qtbot.addWidget(dialog)
    third = dialog.planned()[2][2].name
    ticks = [time.monotonic()]
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(20)
    with qtbot.waitSignal(dialog.exportFinished, timeout=10000):
        assert dialog.export()
        assert not dialog.export_button.isEnabled() and not dialog.cancel_button.isHidden()
        qtbot.waitUntil(lambda: dialog.progress.text() == f"Writing 3 of 6: {third}…", timeout=5000)
    timer.stop()
    ticks.append(time.monotonic())
    longest_gap = max(later - earlier for earlier, later in zip(ticks, ticks[1:]))
    assert ticks[-1] - ticks[0] >= 1.8 and longest_gap < 0.6  # the GUI thread kept running its timer
    assert len(dialog.written) == 6 and dialog.summary.toPlainText().startswith(f"Wrote 6 files to {out}")
    assert dialog.export_button.isEnabled() and dialog.cancel_button.isHidden() and dialog.progress.isHidden()


def test_cancel_stops_after_the_file_being_written(qtbot, out, monkeypatch):
    started: list[str] = []
    gate = threading.Event()
    monkeypatch.setattr(gui.export_dialog, "export_pipeline", fake_export(started, gate=gate))
    dialog = ExportDialog([(jfk_transcript(), "/talks/jfk.flac")], folder=out, formats=["txt", "srt", "vtt"])
    qtbot.addWidget(dialog)
    assert dialog.export()
    qtbot.waitUntil(lambda: started == ["jfk.txt"], timeout=5000)
    dialog.cancel_button.click()
    assert dialog.progress.text() == "Stopping after the current file…" and not dialog.cancel_button.isEnabled()
    with qtbot.waitSignal(dialog.exportFinished, timeout=10000) as finished:
        gate.set()
    assert finished.args == [[out / "jfk.txt"], []] and started == ["jfk.txt"]
    assert [p.name for p in out.iterdir()] == ["jfk.txt"]  # the file being written when cancelled stays
    assert dialog.summary.toPlainText() == f"Wrote 1 file to {out}:\n  jfk.txt\nCancelled: 2 files not written."
    assert dialog.export_button.isEnabled() and dialog.cancel_button.isHidden()


def test_closing_while_writing_stops_and_waits_for_the_thread(qtbot, out, monkeypatch):
    started: list[str] = []
    monkeypatch.setattr(gui.export_dialog, "export_pipeline", fake_export(started, seconds=0.3))
    dialog = ExportDialog([(jfk_transcript(), "/talks/jfk.flac")], folder=out, formats=["txt", "srt", "vtt"])
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.export()
    qtbot.waitUntil(lambda: started == ["jfk.txt"], timeout=5000)
    with qtbot.waitSignal(dialog.exported, timeout=1000) as exported:  # what was written is still reported
        dialog.reject()
    assert not dialog.is_writing() and not running_calls()
    assert exported.args == [[out / "jfk.txt"]] and started == ["jfk.txt"]


def test_the_overwrite_question_is_a_real_message_box(qtbot, out):
    existing = [out / "a.srt"]

    def answer() -> None:
        box = QApplication.activeModalWidget()
        assert isinstance(box, QMessageBox) and "a.srt" in box.text()
        next(b for b in box.buttons() if b.text() == "Overwrite").click()

    QTimer.singleShot(50, answer)
    assert ask_overwrite_dialog(None, existing) == OVERWRITE
    QTimer.singleShot(50, lambda: QApplication.activeModalWidget().reject())
    assert ask_overwrite_dialog(None, existing) == CANCEL


def test_import_srt_with_its_audio_keeps_text_and_times(qtbot, out, jfk):
    transcript = jfk_transcript()
    srt = export_transcript(transcript, out / "reviewed.srt")
    notes: list[str] = []
    result = start_import(qtbot, "done", srt, jfk, notify=notes.append)
    assert notes == []
    imported, audio = result
    assert audio == jfk and imported.source == str(jfk) and imported.duration == pytest.approx(11.0, abs=0.05)
    assert [(s.start, s.end, s.text) for s in imported.segments] == [(s.start, s.end, s.text.strip()) for s in transcript.segments]
    editor = TranscriptEditor()
    qtbot.addWidget(editor)
    editor.set_transcript(imported)
    assert editor.edit_text(0, "Corrected by a reviewer")


def test_import_vtt_into_the_library_as_a_finished_job(qtbot, out, jfk, tmp_path):
    transcript = jfk_transcript()
    vtt = export_transcript(transcript, out / "team.vtt")
    library = Library(tmp_path / "library.sqlite3")
    job_id = start_import(qtbot, "done", vtt, jfk, library=library)
    record = library.jobs.get(job_id)
    assert record.status == "done" and record.path == str(jfk)
    stored = library.transcripts.get(job_id)
    assert [(s.start, s.end, s.text) for s in stored.segments] == [(s.start, s.end, s.text.strip()) for s in transcript.segments]
    assert not library.transcripts.is_edited(job_id) and "imported team.vtt" in library.log.lines(job_id)[0]
    library.close()


def test_import_asks_for_files_and_suggests_the_matching_audio(qtbot, out, jfk, monkeypatch):
    shutil.copy(jfk, out / "speech.flac")
    srt = export_transcript(jfk_transcript(), out / "speech.srt")
    calls = []

    def fake_open(parent, caption, directory, filter):
        calls.append((caption, directory, filter))
        return (str(srt), "") if len(calls) == 1 else (directory, "")

    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(fake_open))
    transcript, audio = start_import(qtbot, "done")
    assert "*.srt" in calls[0][2] and "*.vtt" in calls[0][2]
    assert calls[1][0] == "Choose the audio or video of speech.srt" and calls[1][1] == str(out / "speech.flac")
    assert audio == out / "speech.flac" and len(transcript.segments) == len(jfk_transcript().segments)
    # cancelling a file dialog imports nothing and says nothing
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a: ("", "")))
    start_import(qtbot, "cancelled")

    def cancel_the_audio(parent, caption, directory, filter):  # the audio dialog, once the subtitles are read
        calls.append(caption)
        return (str(srt), "") if caption == "Open subtitles to review" else ("", "")

    calls.clear()
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(cancel_the_audio))
    start_import(qtbot, "cancelled")
    assert calls == ["Open subtitles to review", "Choose the audio or video of speech.srt"]


def test_bad_subtitles_or_audio_get_a_clear_reason(qtbot, out, jfk):
    notes: list[str] = []
    bad = out / "notes.srt"
    bad.write_text("Meeting notes, not subtitles.\n", encoding="utf-8")
    assert start_import(qtbot, "failed", bad, jfk, notify=notes.append) == notes[-1]
    assert notes[-1] == "notes.srt: not SRT or WebVTT subtitles"

    empty = out / "empty.vtt"
    empty.write_text("", encoding="utf-8")
    assert start_import(qtbot, "failed", empty, jfk, notify=notes.append) == notes[-1]
    assert notes[-1] == "empty.vtt: the file is empty"

    srt = export_transcript(jfk_transcript(), out / "good.srt")
    not_audio = out / "notes.mp3"
    not_audio.write_text("not audio", encoding="utf-8")
    assert start_import(qtbot, "failed", srt, not_audio, notify=notes.append) == notes[-1]
    assert notes[-1].startswith("notes.mp3: ") and "\n" not in notes[-1]

    late = jfk_transcript()
    for segment in late.segments:
        segment.start += 600
        segment.end += 600
    late_srt = export_transcript(late, out / "late.srt")
    assert start_import(qtbot, "failed", late_srt, jfk, notify=notes.append) == notes[-1]
    assert "after the end of jfk.flac" in notes[-1]
    assert len(notes) == 4
