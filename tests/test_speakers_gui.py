"""Speakers in the window (pytest-qt, offscreen), on transcripts labelled by the real pipeline: tiny.en, the real
speaker encoder, and a two-speaker dialogue joined from the shared recordings (bench.speakers_bench).

Done when: renaming a speaker in the window changes the SRT, VTT, TXT, DOCX and JSON exports and survives a
restart. Also: the per-job option and its Preferences default, reassign and merge (one undo step each), the
colours, saving and deleting a known voice, and the match confidence of a recognised voice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QComboBox

from bench.speakers_bench import REAL_DIALOGUES, join_turns, real_dialogue, real_pieces
from gui.editor import SPEAKER, SPEAKER_COLOURS, TEXT, TranscriptEditor
from gui.main_window import MainWindow
from gui.queue_model import MODEL
from gui.settings import Preferences, SettingsDialog
from worker.backends.events import ignore_events
from worker.core.cancel import CancelToken
from worker.core.options import TranscriptionOptions
from worker.speakers.edits import NEW_SPEAKER
from worker.speakers.labelling import KNOWN_VOICE_SIMILARITY, label_speakers
from worker.transcripts.formats import render
from worker.transcripts.model import Transcript

AUTO = TranscriptionOptions(speakers="auto")
TWO_SPEAKERS = REAL_DIALOGUES["real, 2 speakers (A-B-A-B)"]  # the multilingual.mp3 reader and JFK, taking turns


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory):
    return real_dialogue(tmp_path_factory.mktemp("dialogue"), TWO_SPEAKERS)


@pytest.fixture(scope="module")
def labelled(local_backend, dialogue) -> Transcript:
    """The dialogue as the job queue labels it: the local backend, then label_speakers."""
    transcript = local_backend.transcribe(dialogue.path, AUTO, ignore_events, CancelToken())
    return label_speakers(dialogue.path, transcript, AUTO)


def open_window(qtbot, lent_backend, **prefs) -> MainWindow:
    """A window as the app opens it: its own library at the (per-test) user data folder."""
    window = MainWindow(preferences=Preferences(check_modal_on_start=False, **prefs),
                        backend_factory=lambda name, preferences: lent_backend)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def shown_editor(qtbot, window: MainWindow, job_id: int) -> TranscriptEditor:
    window.select_jobs([job_id])
    pane = window.transcript_pane
    # editable: the finished job, not the live view of it running (the library says done a moment earlier)
    qtbot.waitUntil(lambda: pane.uses_editor and pane.job_id == job_id and pane.editor.model.rowCount() > 0
                    and not pane.editor.model.read_only, timeout=15000)
    return pane.editor


def column(editor: TranscriptEditor, role=Qt.ItemDataRole.DisplayRole) -> list:
    return [editor.model.index(row, SPEAKER).data(role) for row in range(editor.model.rowCount())]


def docx_runs(path: Path) -> list[tuple[str, bool]]:
    import docx

    return [(run.text, bool(run.bold)) for paragraph in docx.Document(str(path)).paragraphs for run in paragraph.runs]


EXPORTED = ("srt", "vtt", "txt", "docx", "json")


def exports(qtbot, window: MainWindow, folder: Path) -> dict[str, str]:
    """File > Export… for the selected job, as a user does it: the text of each file written (DOCX: its path)."""
    dialog = window.export_selected()
    dialog.folder_edit.setText(str(folder))
    for fmt, check in dialog.format_checks.items():
        check.setChecked(fmt in EXPORTED)
    with qtbot.waitSignal(dialog.exportFinished, timeout=60000) as finished:
        assert dialog.export()
    written, failures = finished.args
    assert not failures and sorted(Path(p).suffix for p in written) == sorted(f".{fmt}" for fmt in EXPORTED)
    dialog.close()
    return {Path(p).suffix[1:]: (str(p) if p.endswith(".docx") else Path(p).read_text()) for p in map(str, written)}


def test_renaming_a_speaker_in_the_window_reaches_every_export_and_survives_a_restart(qtbot, lent_backend, dialogue, tmp_path):
    window = open_window(qtbot, lent_backend)
    window.set_paused(True)
    with qtbot.waitSignal(window.controller.pathsAdded, timeout=10000) as added:
        window.add_paths([dialogue.path])
    [job] = added.args[0]
    assert job.options.speakers is None  # the Preferences' default: off
    window.select_jobs([job.id])
    # the per-job option: Queue > Speakers > Automatic
    window.speakers_menu.aboutToShow.emit()
    assert [a.text() for a in window.speakers_menu.actions() if a.isChecked()] == ["Off"]
    next(a for a in window.speakers_menu.actions() if a.text() == "Automatic").trigger()
    assert window.library.jobs.get(job.id).options.speakers == "auto"
    row = window.model.row_of(job.id)
    assert "speaker labels: found automatically" in window.model.index(row, MODEL).data(Qt.ItemDataRole.ToolTipRole)
    window.speakers_menu.aboutToShow.emit()
    assert [a.text() for a in window.speakers_menu.actions() if a.isChecked()] == ["Automatic"]
    window.set_paused(False)
    qtbot.waitUntil(lambda: window.library.jobs.get(job.id).status == "done", timeout=300000)

    editor = shown_editor(qtbot, window, job.id)
    assert [s.name for s in editor.model.speakers] == ["Speaker 1", "Speaker 2"]
    assert not editor.view.isColumnHidden(SPEAKER) and editor.speakers.isVisible()
    assert set(column(editor)) == {"Speaker 1", "Speaker 2"}
    # colours: a fixed palette, by the speaker's place in the list
    for row, speaker_id in enumerate(s.speaker for s in editor.model.segments()):
        position = [s.id for s in editor.model.speakers].index(speaker_id)
        assert editor.model.index(row, SPEAKER).data(Qt.ItemDataRole.DecorationRole) == QColor(SPEAKER_COLOURS[position])
        assert editor.model.index(row, SPEAKER).data(Qt.ItemDataRole.BackgroundRole).rgb() == QColor(SPEAKER_COLOURS[position]).rgb()
    first_speaker = editor.model.segment(0).speaker
    assert first_speaker == "S1"  # in order of first appearance

    # rename through the dialog the speaker's button opens: one undo step
    steps = editor.undo_stack.index()
    dialog = editor.speakers.open_rename("S1")
    dialog.name_edit.setText("Ada Reader")
    dialog.accept()
    assert editor.undo_stack.index() == steps + 1
    assert [s.name for s in editor.model.speakers] == ["Ada Reader", "Speaker 2"]
    assert "Ada Reader" in column(editor) and "Speaker 1" not in column(editor)
    assert editor.speakers.buttons["S1"].text().startswith("Ada Reader")
    assert window.transcript_pane.title.text().endswith(" — edited")
    editor.undo_stack.undo()
    assert editor.flush_saves()  # edits are written off the GUI thread, in order
    assert "Speaker 1" in column(editor) and window.library.transcripts.get(job.id).speakers[0].name == "Speaker 1"
    editor.undo_stack.redo()
    assert editor.flush_saves()

    texts = exports(qtbot, window, tmp_path / "first")
    assert "Ada Reader: " in texts["srt"] and "Speaker 1" not in texts["srt"] and "Speaker 2: " in texts["srt"]
    assert "<v Ada Reader>" in texts["vtt"] and "<v Speaker 1>" not in texts["vtt"]
    assert texts["txt"].startswith("Ada Reader: ") and "Speaker 1" not in texts["txt"]
    data = json.loads(texts["json"])
    assert [s["name"] for s in data["speakers"]] == ["Ada Reader", "Speaker 2"]
    assert data["segments"][0]["speaker"] == "Ada Reader"
    runs = docx_runs(Path(texts["docx"]))
    assert ("Ada Reader", True) in [(text.strip(": "), bold) for text, bold in runs]
    assert not any("Speaker 1" in text for text, _bold in runs)
    window.close()  # closes its library

    again = open_window(qtbot, lent_backend)
    editor = shown_editor(qtbot, again, job.id)
    assert [s.name for s in editor.model.speakers] == ["Ada Reader", "Speaker 2"]
    assert column(editor)[0] == "Ada Reader"
    assert again.transcript_pane.title.text().endswith(" — edited")
    reopened = exports(qtbot, again, tmp_path / "after restart")
    assert "Ada Reader: " in reopened["srt"] and "<v Ada Reader>" in reopened["vtt"]
    again.close()


def test_new_jobs_take_the_preferences_default(qtbot, lent_backend, dialogue):
    dialog = SettingsDialog(Preferences(speakers_default="3"))
    qtbot.addWidget(dialog)
    assert dialog.speakers.currentText() == "3 speakers"
    dialog.speakers.setCurrentIndex(dialog.speakers.findText("Automatic"))
    assert dialog.preferences().speakers_default == "auto"
    dialog.speakers.setCurrentIndex(dialog.speakers.findText("Off"))
    assert dialog.preferences().speakers_default == ""

    window = open_window(qtbot, lent_backend, speakers_default="auto")
    window.set_paused(True)
    with qtbot.waitSignal(window.controller.pathsAdded, timeout=10000) as added:
        window.add_paths([dialogue.path])
    [job] = added.args[0]
    assert job.options.speakers == "auto" and job.options.word_timestamps
    window.select_jobs([job.id])
    next(a for a in window.speakers_menu.actions() if a.text() == "Off").trigger()
    assert window.library.jobs.get(job.id).options.speakers is None
    voices = window.open_known_voices()  # Settings > Known voices…
    qtbot.waitUntil(lambda: voices.note.text().startswith("No known voices yet"), timeout=15000)
    assert voices.names() == [] and not voices.delete_button.isEnabled()
    voices.close()
    window.close()


@pytest.fixture
def editor(qtbot, library, labelled, dialogue):
    job = library.jobs.add(dialogue.path, AUTO, "local")
    library.transcripts.save(job.id, labelled)
    widget = TranscriptEditor(library=library)
    qtbot.addWidget(widget)
    widget.set_transcript(library.transcripts.get(job.id), original=library.transcripts.original(job.id), job_id=job.id)
    widget.job = job
    return widget


def test_reassign_a_segment_or_a_selection_in_one_undo_step(editor, library):
    job_id = editor.job.id
    assert len(editor.model.speakers) == 2 and editor.model.rowCount() >= 4
    before = [s.speaker for s in editor.model.segments()]
    row = before.index("S2")
    # one segment, through the Speaker column's editor (a combo box of the speakers)
    assert editor.model.setData(editor.model.index(row, SPEAKER), "S1")
    assert editor.model.segment(row).speaker == "S1" and column(editor)[row] == "Speaker 1"
    assert editor.flush_saves()
    assert library.transcripts.get(job_id).segments[row].speaker == "S1"  # saved as it happened
    assert editor.model.is_edited(row)
    editor.undo_stack.undo()
    assert [s.speaker for s in editor.model.segments()] == before
    assert editor.flush_saves()
    assert library.transcripts.get(job_id).segments[row].speaker == "S2"

    # a selection, to a new speaker, in the combo box of one of its rows
    rows = [0, 1, 2]
    for r in rows:
        editor.view.selectionModel().select(editor.model.index(r, TEXT), editor.view.selectionModel().SelectionFlag.Select
                                            | editor.view.selectionModel().SelectionFlag.Rows)
    steps = editor.undo_stack.index()
    editor.view.edit(editor.model.index(1, SPEAKER))  # as a double-click does
    combo = editor.view.findChild(QComboBox, "segmentSpeakerEditor")
    assert [combo.itemText(i) for i in range(combo.count())] == ["Speaker 1", "Speaker 2", "New speaker", "No speaker"]
    combo.setCurrentIndex(combo.findData(NEW_SPEAKER))
    combo.activated.emit(combo.currentIndex())
    assert editor.undo_stack.index() == steps + 1
    assert [s.name for s in editor.model.speakers] == ["Speaker 1", "Speaker 2", "Speaker 3"]
    assert [editor.model.segment(r).speaker for r in rows] == ["S3"] * 3
    assert column(editor)[:3] == ["Speaker 3"] * 3
    assert editor.model.index(0, SPEAKER).data(Qt.ItemDataRole.DecorationRole) == QColor(SPEAKER_COLOURS[2])
    assert editor.flush_saves()
    assert [s.name for s in library.transcripts.get(job_id).speakers] == ["Speaker 1", "Speaker 2", "Speaker 3"]
    editor.undo_stack.undo()
    assert [s.speaker for s in editor.model.segments()] == before and len(editor.model.speakers) == 2
    assert editor.flush_saves()
    assert not library.transcripts.is_edited(job_id)  # back to the original: the edit is dropped


def test_merge_two_speakers_in_one_undo_step(editor, library):
    job_id = editor.job.id
    steps = editor.undo_stack.index()
    assert editor.speakers.merge("S1", "S2")
    assert editor.undo_stack.index() == steps + 1
    assert [s.id for s in editor.model.speakers] == ["S1"]
    assert set(column(editor)) == {"Speaker 1"} and list(editor.speakers.buttons) == ["S1"]
    assert editor.flush_saves()
    srt = render(library.transcripts.get(job_id), "srt")
    assert "Speaker 2" not in srt and srt.count("Speaker 1: ") == editor.model.rowCount()
    editor.undo_stack.undo()
    assert [s.name for s in editor.model.speakers] == ["Speaker 1", "Speaker 2"]
    assert set(column(editor)) == {"Speaker 1", "Speaker 2"}
    assert editor.flush_saves()
    assert library.transcripts.get(job_id) == library.transcripts.original(job_id)


def test_a_saved_voice_is_named_with_its_confidence_and_can_be_deleted(qtbot, editor, library, local_backend, tmp_path):
    # name the reader and remember the voice (saved in the background, then one undo step)
    steps = editor.undo_stack.index()
    with qtbot.waitSignal(editor.speakers.voiceSaved, timeout=15000) as saved:
        assert editor.speakers.rename("S1", "Ada Reader", save_voice=True)
    voice_id = saved.args[0]
    assert editor.undo_stack.index() == steps + 1
    [voice] = library.voices.all()
    assert (voice.id, voice.name, voice.count) == (voice_id, "Ada Reader", 1)
    speaker = editor.model.speakers[0]
    assert (speaker.name, speaker.voice_id, speaker.confidence) == ("Ada Reader", voice_id, None)
    assert editor.model.index(0, SPEAKER).data(Qt.ItemDataRole.ToolTipRole).startswith("Ada Reader (known voice)")

    # another recording of the reader: labelled by name, and the editor shows how sure the match is
    other = tmp_path / "reader.wav"
    join_turns([real_pieces()["A3"]], other)
    transcript = label_speakers(other, local_backend.transcribe(other, AUTO, ignore_events, CancelToken()), AUTO,
                                voices=library.voices.all())
    job = library.jobs.add(other, AUTO, "local")
    library.transcripts.save(job.id, transcript)
    second = TranscriptEditor(library=library)
    qtbot.addWidget(second)
    second.set_transcript(library.transcripts.get(job.id), original=library.transcripts.original(job.id), job_id=job.id)
    [recognised] = second.model.speakers
    assert recognised.name == "Ada Reader" and recognised.voice_id == voice_id
    assert KNOWN_VOICE_SIMILARITY <= recognised.confidence <= 1.0
    shown = f"Ada Reader (known voice, {recognised.confidence:.2f})"
    assert second.model.index(0, SPEAKER).data(Qt.ItemDataRole.ToolTipRole).startswith(shown)
    assert second.speakers.buttons[recognised.id].text().startswith(shown)

    # the known voices: listed, and deleted
    dialog = second.speakers.open_known_voices()
    qtbot.waitUntil(lambda: dialog.names() == ["Ada Reader"], timeout=15000)
    assert dialog.table.item(0, 0).text() == "Ada Reader"
    dialog.table.selectRow(0)
    with qtbot.waitSignal(dialog.loaded, timeout=15000):
        dialog.delete_selected()
    assert dialog.names() == [] and library.voices.all() == []
    assert not dialog.delete_button.isEnabled()
    dialog.close()


def test_re_transcribed_segments_keep_their_speaker(qtbot, editor, library, lent_backend, dialogue):
    editor.tools.backend_factory = lambda _name: lent_backend
    shown = library.transcripts.get(editor.job.id)
    shown.source = str(dialogue.path)  # the recording the region is transcribed from
    editor.set_transcript(shown, original=library.transcripts.original(editor.job.id), job_id=editor.job.id)
    before = editor.transcript()
    row = [s.speaker for s in before.segments].index("S2")
    with qtbot.waitSignal(editor.tools.regionFinished, timeout=300_000) as finished:
        assert editor.tools.retranscribe(rows=[row], model="tiny.en", language="en")
    new = editor.transcript().segments[row:row + finished.args[1]]
    assert new and all(s.speaker == "S2" for s in new)
    assert all(name == "Speaker 2" for name in column(editor)[row:row + len(new)])
