"""The editor's speakers strip: one coloured button per speaker of the transcript (its name, how many segments,
"known voice, 0.91" for a voice the library recognised), each with a menu to rename (and remember the voice),
give it the selected segments, or merge it into another speaker. Also the known-voices dialog (list, delete).

Every change is one undo step on the editor's stack (gui.editor.speaker_commands.SpeakerEdit), so it is saved
through the editor's usual path and reaches every export. Library writes (save/delete a voice, list voices)
run off the GUI thread in gui.background calls."""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING, Callable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gui.background import Call
from gui.editor.columns import SPEAKER
from gui.editor.speaker_commands import SpeakerDelegate, SpeakerEdit, speaker_colour
from worker.speakers.edits import (
    NEW_SPEAKER,
    describe_speaker,
    find_speaker,
    mark_saved_voice,
    merge_speakers,
    reassign_segments,
    rename_speaker,
    segment_counts,
)
from worker.transcripts.model import Transcript

if TYPE_CHECKING:
    from gui.editor.widget import TranscriptEditor
    from worker.library.library import Library
    from worker.library.voices import KnownVoice


def colour_icon(position: int, size: int = 12) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(speaker_colour(position))
    return QIcon(pixmap)


class SpeakersPanel(QWidget):
    """See the module docstring. `voiceSaved(int)` after a voice is saved to the library."""

    voiceSaved = Signal(int)  # the known voice's id

    def __init__(self, editor: "TranscriptEditor") -> None:
        super().__init__(editor)
        self.setObjectName("speakersPanel")
        self.editor = editor
        self.buttons: dict[str, QToolButton] = {}
        self.calls: list[Call] = []  # library calls started here (tests and shutdown wait on them)
        self._row = QHBoxLayout(self)
        self._row.setContentsMargins(4, 0, 4, 0)
        self._row.addWidget(QLabel("Speakers:"))
        self._buttons_row = QHBoxLayout()
        self._row.addLayout(self._buttons_row)
        self._row.addStretch(1)
        self.voices_button = QPushButton("Known voices…")
        self.voices_button.setObjectName("knownVoicesButton")
        self.voices_button.setToolTip("The voices the library recognises by name in new recordings")
        self.voices_button.clicked.connect(self.open_known_voices)
        self._row.addWidget(self.voices_button)
        self.delegate = SpeakerDelegate(editor)
        view = editor.view
        view.setItemDelegateForColumn(SPEAKER, self.delegate)
        header = view.horizontalHeader()
        header.moveSection(header.visualIndex(SPEAKER), header.visualIndex(SPEAKER - 1))  # shown before the text
        header.resizeSection(SPEAKER, view.fontMetrics().horizontalAdvance("Speaker 10") + 40)
        editor.model.speakersChanged.connect(self.refresh)
        editor.model.modelReset.connect(self.refresh)
        # rows split, merged or deleted change the counts: once per burst of changes
        self._recount = QTimer(self)
        self._recount.setSingleShot(True)
        self._recount.setInterval(0)
        self._recount.timeout.connect(self.refresh)
        editor.model.rowsInserted.connect(lambda *_: self._recount.start())
        editor.model.rowsRemoved.connect(lambda *_: self._recount.start())
        self.refresh()

    # --- showing ------------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """One button per speaker; the panel and the Speaker column only show for a labelled transcript."""
        speakers = self.editor.model.speakers
        self.editor.view.setColumnHidden(SPEAKER, not speakers)
        self.setVisible(bool(speakers))
        for button in self.buttons.values():
            self._buttons_row.removeWidget(button)
            button.deleteLater()
        self.buttons = {}
        counts = segment_counts(self.editor.model.shared_transcript())
        for position, speaker in enumerate(speakers):
            button = QToolButton(self)
            button.setObjectName(f"speaker_{speaker.id}")
            button.setText(f"{describe_speaker(speaker)} · {counts.get(speaker.id, 0)}")
            button.setIcon(colour_icon(position))
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            button.setToolTip(f"{describe_speaker(speaker)}: {counts.get(speaker.id, 0)} segment(s). Click to rename, "
                              "merge, or give it the selected segments.")
            button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
            button.setMenu(self._menu(speaker.id))
            self._buttons_row.addWidget(button)
            self.buttons[speaker.id] = button

    def _menu(self, speaker_id: str) -> QMenu:
        menu = QMenu(self)
        menu.addAction("Rename…", lambda: self.open_rename(speaker_id))
        menu.addAction("Give the selected segments to this speaker",
                       lambda: self.reassign(self.editor.selected_rows(), speaker_id))
        merge = menu.addMenu("Merge into")
        for other in self.editor.model.speakers:
            if other.id != speaker_id:
                merge.addAction(other.name, partial(self.merge, other.id, speaker_id))
        merge.setEnabled(len(self.editor.model.speakers) > 1)
        save = menu.addAction("Save voice (recognise in new recordings)", lambda: self.save_voice(speaker_id))
        speaker = find_speaker(self.editor.model.shared_transcript(), speaker_id)
        save.setEnabled(self.editor.jobs is not None and bool(speaker.embedding))
        return menu

    # --- edits (one undo step each) ------------------------------------------------------------------------

    def _transcript(self) -> Transcript:
        return self.editor.model.shared_transcript()

    def _push(self, label: str, change: Callable[[], Transcript]) -> bool:
        if self.editor.model.read_only:
            self.editor.show_status("This transcript cannot be edited while it is being transcribed.")
            return False
        try:
            after = change()
        except ValueError as exc:
            self.editor.show_status(f"Not changed: {exc}")
            return False
        self.editor.push(SpeakerEdit(label, self.editor.model, after))
        return True

    def rename(self, speaker_id: str, name: str, save_voice: bool = False) -> bool:
        """Rename a speaker everywhere (one undo step). With `save_voice`, the voice is saved to the library
        under the new name first (in the background), and the rename then marks the speaker as that voice."""
        try:
            renamed = rename_speaker(self._transcript(), speaker_id, name)
        except ValueError as exc:
            self.editor.show_status(f"Not changed: {exc}")
            return False
        new_name = find_speaker(renamed, speaker_id).name
        if save_voice:
            return self._save_voice(speaker_id, new_name, rename=True)
        if new_name == find_speaker(self._transcript(), speaker_id).name:
            return False
        return self._push(f"Rename {speaker_id} to {new_name}", lambda: renamed)

    def reassign(self, rows: list[int], speaker_id: str | None, name: str | None = None) -> bool:
        """Give the segments at `rows` to `speaker_id` (NEW_SPEAKER: a new one; None: no speaker), one undo step."""
        rows = sorted(set(rows))
        if speaker_id != NEW_SPEAKER and all(self.editor.model.segment(r).speaker == speaker_id for r in rows if
                                             0 <= r < self.editor.model.rowCount()):
            return False
        label = f"Give {len(rows)} segment{'s' if len(rows) != 1 else ''} to " + (
            "a new speaker" if speaker_id == NEW_SPEAKER else (speaker_id or "no speaker"))
        return self._push(label, lambda: reassign_segments(self._transcript(), rows, speaker_id, name))

    def merge(self, keep_id: str, drop_id: str) -> bool:
        """`drop_id`'s segments go to `keep_id`, and `drop_id` is no longer listed (one undo step)."""
        return self._push(f"Merge {drop_id} into {keep_id}", lambda: merge_speakers(self._transcript(), keep_id, drop_id))

    # --- known voices -------------------------------------------------------------------------------------

    def save_voice(self, speaker_id: str) -> bool:
        """Remember the speaker's voice under its name (the library averages it with earlier saves)."""
        return self._save_voice(speaker_id, find_speaker(self._transcript(), speaker_id).name, rename=False)

    def _save_voice(self, speaker_id: str, name: str, rename: bool) -> bool:
        jobs = self.editor.jobs  # the voice is written (and reported) through the job service
        speaker = find_speaker(self._transcript(), speaker_id)
        if jobs is None or not speaker.embedding:
            self.editor.show_status("This speaker's voice cannot be saved (no voice was measured for it).")
            return rename and self.rename(speaker_id, name)
        if self.editor.model.read_only:
            self.editor.show_status("This transcript cannot be edited while it is being transcribed.")
            return False
        embedding = list(speaker.embedding)
        call = Call(lambda: jobs.save_voice(name, embedding), self)

        def saved(voice_id: int) -> None:
            def change() -> Transcript:
                transcript = self._transcript()
                if rename:
                    transcript = rename_speaker(transcript, speaker_id, name)
                return mark_saved_voice(transcript, speaker_id, voice_id)

            verb = f"Rename {speaker_id} to {name} and save the voice" if rename else f"Save the voice of {name}"
            self._push(verb, change)
            self.editor.show_status(f"Saved the voice of {name}: new recordings will name it.")
            self.voiceSaved.emit(voice_id)

        def failed(exc: Exception) -> None:
            self.editor.show_status(f"The voice of {name} was not saved: {exc}")
            if rename:
                self.rename(speaker_id, name)

        call.returned.connect(saved)
        call.raised.connect(failed)
        self._start(call)
        return True

    def _start(self, call: Call) -> None:
        self.calls = [c for c in self.calls if c.isRunning()] + [call]
        call.start()

    def open_rename(self, speaker_id: str) -> "RenameDialog":
        speaker = find_speaker(self._transcript(), speaker_id)
        dialog = RenameDialog(speaker.name, self.editor.jobs is not None and bool(speaker.embedding), self)
        dialog.accepted.connect(lambda: self.rename(speaker_id, dialog.name_edit.text(), dialog.save_box.isChecked()))
        dialog.open()
        return dialog

    def open_known_voices(self) -> "KnownVoicesDialog | None":
        if self.editor.library is None:
            return None
        dialog = KnownVoicesDialog(self.editor.library, self)
        dialog.open()
        return dialog

    def wait(self, timeout_ms: int = 10_000) -> bool:
        return all(call.wait(timeout_ms) for call in self.calls)


class RenameDialog(QDialog):
    """A speaker's new name, and whether to remember the voice under it."""

    def __init__(self, name: str, can_save: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Rename speaker")
        self.name_edit = QLineEdit(name)
        self.name_edit.setObjectName("speakerName")
        self.name_edit.selectAll()
        self.save_box = QCheckBox("Remember this voice: name it in new recordings")
        self.save_box.setObjectName("saveVoice")
        self.save_box.setEnabled(can_save)
        self.save_box.setToolTip("Saves an averaged voice print (never the audio) to the library")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Name", self.name_edit)
        form.addRow("", self.save_box)
        form.addRow(buttons)


class KnownVoicesDialog(QDialog):
    """The library's known voices (name, how many saves it averages, when first saved), with Delete."""

    loaded = Signal()  # the list is (re)read

    def __init__(self, library: Library, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("knownVoicesDialog")
        self.setWindowTitle("Known voices")
        self.library = library
        self.voices: list[KnownVoice] = []
        self.calls: list[Call] = []
        self.table = QTableWidget(0, 3, self)
        self.table.setObjectName("knownVoicesTable")
        self.table.setHorizontalHeaderLabels(["Name", "Saved from", "First saved"])
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.note = QLabel("Loading…")
        self.note.setWordWrap(True)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setObjectName("deleteVoice")
        self.delete_button.setToolTip("Forget the selected voices (transcripts keep the names they were given)")
        self.delete_button.clicked.connect(self.delete_selected)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addWidget(self.delete_button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(self.note)
        layout.addLayout(buttons)
        self.resize(460, 300)
        self.reload()

    def _run(self, function: Callable[[], list[KnownVoice]], then: Callable[[list[KnownVoice]], None]) -> None:
        call = Call(function, self)
        call.returned.connect(then)
        call.raised.connect(lambda exc: self.note.setText(f"The known voices could not be read: {exc}"))
        self.calls = [c for c in self.calls if c.isRunning()] + [call]
        call.start()

    def reload(self) -> None:
        self._run(self.library.voices.all, self._show)

    def _show(self, voices: list[KnownVoice]) -> None:
        self.voices = list(voices)
        self.table.setRowCount(len(self.voices))
        for row, voice in enumerate(self.voices):
            created = time.strftime("%Y-%m-%d %H:%M", time.localtime(voice.created)) if voice.created else ""
            for column, text in enumerate((voice.name, f"{voice.count} recording(s)", created)):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.note.setText("New recordings label these voices by name when they match confidently."
                          if self.voices else "No known voices yet: rename a speaker and tick “Remember this voice”.")
        self.delete_button.setEnabled(bool(self.voices))
        self.loaded.emit()

    def names(self) -> list[str]:
        return [voice.name for voice in self.voices]

    def delete_selected(self) -> None:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        ids = [self.voices[row].id for row in rows if row < len(self.voices)]
        if ids:
            self.delete_voices(ids)

    def delete_voices(self, voice_ids: list[int]) -> None:
        def delete() -> list[KnownVoice]:
            for voice_id in voice_ids:
                self.library.voices.delete(voice_id)
            return self.library.voices.all()

        self._run(delete, self._show)

    def wait(self, timeout_ms: int = 10_000) -> bool:
        return all(call.wait(timeout_ms) for call in self.calls)
