"""How the text and time cells are edited and painted: the multi-line text editor (Enter commits, Shift+Enter adds a
line, Ctrl+Enter splits), the time editor, and the text painted with marked words (karaoke, uncertain words)."""

from __future__ import annotations

import html
from typing import Callable

from PySide6.QtCore import QAbstractItemModel, QEvent, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QAbstractTextDocumentLayout, QColor, QKeyEvent, QPainter, QPalette, QTextCursor, QTextDocument
from PySide6.QtWidgets import (
    QApplication,
    QLineEdit,
    QPlainTextEdit,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

KARAOKE_COLOUR = QColor(255, 213, 79)  # the word being spoken: amber behind dark text
UNCERTAIN_COLOUR = QColor(198, 40, 40)  # a word below the confidence threshold: red, underlined
TEXT_EDITOR_NAME = "segmentTextEditor"  # the object name of the open text cell editor


class TextDelegate(QStyledItemDelegate):
    """Edits text in a multi-line box: Enter commits, Shift+Enter adds a line, Ctrl+Enter splits at the cursor."""

    splitRequested = Signal(int, int)  # row, cursor position in the edited text

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QWidget:
        editor = QPlainTextEdit(parent)
        editor.setObjectName(TEXT_EDITOR_NAME)
        editor.setTabChangesFocus(True)
        editor.setProperty("row", index.row())
        editor.installEventFilter(self)
        return editor

    def setEditorData(self, editor: QWidget, index: QModelIndex | QPersistentModelIndex) -> None:
        assert isinstance(editor, QPlainTextEdit)
        editor.setPlainText(str(index.data(Qt.ItemDataRole.EditRole) or ""))
        editor.moveCursor(QTextCursor.MoveOperation.End)

    def setModelData(self, editor: QWidget, model: QAbstractItemModel, index: QModelIndex | QPersistentModelIndex) -> None:
        assert isinstance(editor, QPlainTextEdit)
        model.setData(index, editor.toPlainText(), Qt.ItemDataRole.EditRole)

    def updateEditorGeometry(self, editor: QWidget, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> None:
        rect = option.rect
        rect.setHeight(max(rect.height(), editor.fontMetrics().lineSpacing() * 3 + 10))
        editor.setGeometry(rect)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if isinstance(watched, QPlainTextEdit) and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                modifiers = event.modifiers()
                if modifiers & Qt.KeyboardModifier.ControlModifier:
                    self.splitRequested.emit(int(watched.property("row")), watched.textCursor().position())
                    return True
                if not modifiers & Qt.KeyboardModifier.ShiftModifier:
                    self.commitData.emit(watched)
                    self.closeEditor.emit(watched, QStyledItemDelegate.EndEditHint.NoHint)
                    return True
                watched.insertPlainText("\n")
                return True
        return super().eventFilter(watched, event)


class TimeDelegate(QStyledItemDelegate):
    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QWidget:
        editor = QLineEdit(parent)
        editor.setObjectName("segmentTimeEditor")
        editor.setPlaceholderText("HH:MM:SS.mmm")
        return editor


def marked_html(text: str, spans: list[tuple[int, int]], spoken: int, uncertain: set[int]) -> str | None:
    """The cell's text as HTML with the spoken word highlighted and uncertain words marked; None when no word
    is marked (the cell is painted as usual)."""
    marks = {i for i in uncertain if i < len(spans)} | ({spoken} if 0 <= spoken < len(spans) else set())
    if not marks:
        return None
    out, position = [], 0
    for index, (start, end) in enumerate(spans):
        if index not in marks or end <= start:
            continue
        out.append(html.escape(text[position:start]))
        style = []
        if index == spoken:
            style += [f"background-color:{KARAOKE_COLOUR.name()}", "color:#000000"]
        if index in uncertain:
            style += ["text-decoration:underline"] + ([] if index == spoken else [f"color:{UNCERTAIN_COLOUR.name()}"])
        out.append(f'<span style="{";".join(style)}">{html.escape(text[start:end])}</span>')
        position = end
    out.append(html.escape(text[position:]))
    return "".join(out).replace("\n", "<br>")


class MarkedTextDelegate(TextDelegate):
    """The text delegate, painting a row's marked words as rich text: `cell_html(row)` gives the marked HTML,
    or None for a cell painted as usual (gui.editor.tools.EditorTools.cell_html)."""

    def __init__(self, parent: QObject, cell_html: Callable[[int], str | None]) -> None:
        super().__init__(parent)
        self.cell_html = cell_html

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> None:
        marked = self.cell_html(index.row())
        if marked is None:
            super().paint(painter, option, index)
            return
        item = QStyleOptionViewItem(option)
        self.initStyleOption(item, index)
        widget = item.widget
        style = widget.style() if widget is not None else QApplication.style()
        item.text = ""
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, item, painter, widget)
        rect = style.subElementRect(QStyle.SubElement.SE_ItemViewItemText, item, widget)
        margin = style.pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, widget) + 1
        document = QTextDocument()
        document.setDocumentMargin(0)
        document.setDefaultFont(item.font)
        document.setTextWidth(max(1, rect.width() - 2 * margin))
        document.setHtml(marked)
        context = QAbstractTextDocumentLayout.PaintContext()
        selected = bool(item.state & QStyle.StateFlag.State_Selected)
        context.palette.setColor(QPalette.ColorRole.Text, item.palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text))
        painter.save()
        painter.translate(rect.left() + margin, rect.top())
        painter.setClipRect(0, 0, rect.width() - margin, rect.height())
        document.documentLayout().draw(painter, context)
        painter.restore()
