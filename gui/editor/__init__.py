"""The transcript editor: segments in a table, edited in place, every change an undoable command, saved as it happens.

Owns: the table model (model.py, columns.py, copies.py), the undo commands (commands.py; speaker_commands.py for the
Speaker column), the cell delegates (delegates.py), the find bar (find_bar.py), the speakers strip and known-voices
dialog (speakers_panel.py), the Tools menu: shift, re-transcribe a region, fit to subtitle rules, karaoke, uncertain
words (tools.py), and the widget that holds them (widget.py).

May import: worker (the data operations live in worker/transcripts/editing.py, worker/speakers/edits.py), and from
gui only gui.background, gui.edit_saver and gui.icons. Inside, the order is columns, copies < speaker_commands <
commands < model < delegates, find_bar, speakers_panel, tools < widget: a module names one above it only for types.

The rest of gui/ and the tests use what is exported here.
"""

from gui.editor.columns import END, HEADERS, SPEAKER, START, TEXT
from gui.editor.commands import (
    ChangeSegments,
    DeleteSegments,
    EditText,
    EditTimes,
    InsertSegment,
    MergeWithNext,
    ReplaceRows,
    ReplaceTexts,
    RevertToOriginal,
    SplitSegment,
)
from gui.editor.delegates import KARAOKE_COLOUR, UNCERTAIN_COLOUR, marked_html
from gui.editor.model import SegmentTableModel
from gui.editor.speaker_commands import SPEAKER_COLOURS, SpeakerEdit, speaker_colour
from gui.editor.speakers_panel import KnownVoicesDialog, RenameDialog, SpeakersPanel
from gui.editor.tools import EditorTools
from gui.editor.widget import TranscriptEditor

__all__ = [
    "END", "HEADERS", "SPEAKER", "START", "TEXT",
    "ChangeSegments", "DeleteSegments", "EditText", "EditTimes", "InsertSegment", "MergeWithNext", "ReplaceRows",
    "ReplaceTexts", "RevertToOriginal", "SplitSegment",
    "KARAOKE_COLOUR", "UNCERTAIN_COLOUR", "marked_html",
    "SegmentTableModel",
    "SPEAKER_COLOURS", "SpeakerEdit", "speaker_colour",
    "KnownVoicesDialog", "RenameDialog", "SpeakersPanel",
    "EditorTools",
    "TranscriptEditor",
]
