"""The segment table's columns. The Speaker column is shown before the text (gui/editor/speakers_panel.py)."""

START, END, TEXT, SPEAKER = 0, 1, 2, 3
HEADERS = ("Start", "End", "Text", "Speaker")
