"""Search across every transcript: a search box, and the hits (file, time, highlighted snippet) below it.

Typing never waits on the library: the query runs in the background (gui.background) a moment after the last
key, and a hit that arrives for an older query is dropped. Choosing a hit (click, Enter) emits `hitChosen(SearchHit)`;
the window opens that transcript at the segment and plays from there.
"""

from __future__ import annotations

import html

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAbstractTextDocumentLayout, QPainter, QPalette, QStandardItem, QStandardItemModel, QTextDocument
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QLineEdit,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from gui.background import Call
from worker.library.library import Library
from worker.library.search import DEFAULT_LIMIT, QueryError, SearchHit, search
from worker.transcripts.editing import format_timestamp

DEBOUNCE_MS = 200  # the search runs this long after the last key
FILE, TIME, SNIPPET = range(3)
HIT_ROLE = Qt.ItemDataRole.UserRole + 1
PLACEHOLDER = 'Search all transcripts: words, "a phrase", prefix*'


def snippet_html(hit: SearchHit) -> str:
    """The hit's snippet as HTML, the matches in bold (the text itself escaped)."""
    return "".join(f"<b>{html.escape(text)}</b>" if matched else html.escape(text) for text, matched in hit.snippet_parts())


class _RichTextDelegate(QStyledItemDelegate):
    """Paints a column's DisplayRole as HTML (the snippet, with its matches in bold)."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> None:
        options = QStyleOptionViewItem(option)
        self.initStyleOption(options, index)
        document = QTextDocument()
        document.setDefaultFont(options.font)
        document.setHtml(options.text)
        document.setTextWidth(options.rect.width())
        options.text = ""
        style = options.widget.style() if options.widget is not None else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, options, painter, options.widget)
        context = QAbstractTextDocumentLayout.PaintContext()
        selected = bool(options.state & QStyle.StateFlag.State_Selected)
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        context.palette.setColor(QPalette.ColorRole.Text, options.palette.color(role))
        painter.save()
        painter.translate(options.rect.topLeft())
        painter.setClipRect(QRectF(0, 0, options.rect.width(), options.rect.height()))
        document.documentLayout().draw(painter, context)
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        hint = super().sizeHint(option, index)
        return QSize(hint.width(), max(hint.height(), option.fontMetrics.height() + 6))


class SearchPanel(QWidget):
    """The search box and its hits. `search_now()` runs the box's query at once (tests, Enter)."""

    hitChosen = Signal(object)  # SearchHit
    searched = Signal(str, int)  # the query, and how many hits it found (-1: a query that cannot be searched)

    def __init__(self, library: Library, parent: QWidget | None = None, limit: int = DEFAULT_LIMIT) -> None:
        super().__init__(parent)
        self.library = library
        self.limit = limit
        self._generation = 0  # the newest query asked; older answers are dropped
        self._shown_query = ""  # the query whose hits are listed
        self._closed = False

        self.box = QLineEdit()
        self.box.setObjectName("searchBox")
        self.box.setPlaceholderText(PLACEHOLDER)
        self.box.setClearButtonEnabled(True)
        self.box.textEdited.connect(self._typed)
        self.box.returnPressed.connect(self._enter)
        self.status = QLabel()
        self.status.setObjectName("searchStatus")
        self.status.setWordWrap(True)

        self.model = QStandardItemModel(0, 3, self)
        self.model.setHorizontalHeaderLabels(["File", "Time", "Text"])
        self.view = QTreeView()
        self.view.setObjectName("searchResults")
        self.view.setModel(self.model)
        self.view.setRootIsDecorated(False)
        self.view.setUniformRowHeights(True)
        self.view.setAlternatingRowColors(True)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setItemDelegateForColumn(SNIPPET, _RichTextDelegate(self.view))
        header = self.view.header()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(FILE, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(TIME, QHeaderView.ResizeMode.ResizeToContents)
        self.view.setColumnWidth(FILE, self.fontMetrics().horizontalAdvance("a recording name.flac"))
        self.view.activated.connect(self._activated)
        self.view.clicked.connect(self._activated)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.search_now)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.box)
        layout.addWidget(self.status)
        layout.addWidget(self.view, 1)

    # --- asking ------------------------------------------------------------------------------------------

    def _typed(self, _text: str) -> None:
        self._debounce.start()

    def _enter(self) -> None:
        """Enter: search at once, or open the first hit when the hits are already those of this query."""
        if self._debounce.isActive() or self.box.text() != self._shown_query:
            self.search_now()
        elif self.model.rowCount():
            self._activated(self.model.index(0, FILE))

    def search_now(self) -> None:
        """Run the box's query in a worker; its hits replace the list when they arrive (if still the newest)."""
        self._debounce.stop()
        query = self.box.text()
        self._generation += 1
        generation = self._generation
        if not query.strip():
            self._show(generation, query, [], None)
            return
        library, limit = self.library, self.limit

        def run() -> tuple[list[SearchHit], str | None]:
            try:
                return search(library, query, limit), None
            except QueryError as exc:
                return [], str(exc)

        call = Call(run)  # gui.background keeps it referenced until it ends
        call.returned.connect(lambda result: self._show(generation, query, *result))
        call.raised.connect(lambda exc: self._show(generation, query, [], f"search failed: {exc}"))
        call.start()

    def _show(self, generation: int, query: str, hits: list[SearchHit], problem: str | None) -> None:
        if self._closed or generation != self._generation:
            return  # an older query's answer, or the window is closing
        self._shown_query = query
        self.model.removeRows(0, self.model.rowCount())
        for hit in hits:
            file_item = QStandardItem(hit.name)
            file_item.setToolTip(hit.path)
            file_item.setData(hit, HIT_ROLE)
            time_item = QStandardItem(format_timestamp(hit.start))
            snippet_item = QStandardItem(snippet_html(hit))
            snippet_item.setToolTip(hit.text)
            self.model.appendRow([file_item, time_item, snippet_item])
        if problem is not None:
            self.status.setText(problem)
        elif not query.strip():
            self.status.setText("")
        elif not hits:
            self.status.setText("No transcript says that.")
        else:
            more = " (the best ones)" if len(hits) >= self.limit else ""
            self.status.setText(f"{len(hits)} hit{'s' if len(hits) != 1 else ''}{more}")
        self.searched.emit(query, -1 if problem is not None else len(hits))

    def refresh(self) -> None:
        """Search again for what is shown (a transcript was saved), when the panel is on screen."""
        if not self._closed and self.isVisible() and self.box.text().strip() and not self._debounce.isActive():
            self.search_now()

    # --- choosing ----------------------------------------------------------------------------------------

    def hits(self) -> list[SearchHit]:
        return [self.model.item(row, FILE).data(HIT_ROLE) for row in range(self.model.rowCount())]

    def _activated(self, index: QModelIndex) -> None:
        if index.isValid():
            hit = self.model.item(index.row(), FILE).data(HIT_ROLE)
            if hit is not None:
                self.hitChosen.emit(hit)

    def focus_box(self) -> None:
        self.box.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.box.selectAll()

    def shutdown(self) -> None:
        """No more searches; answers still on their way are dropped."""
        self._closed = True
        self._debounce.stop()
