"""Icons from resources/*.svg, drawn at any size (high-DPI) in the palette's text colour.

The SVGs use `currentColor`; each paint substitutes the current palette colour, so icons follow the
system light/dark palette (and look disabled when their action is).
"""

from __future__ import annotations

from functools import lru_cache

from PySide6.QtCore import QByteArray, QPoint, QRect, QSize, Qt
from PySide6.QtGui import QGuiApplication, QIcon, QIconEngine, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer

from gui.resources import RESOURCES


@lru_cache(maxsize=None)
def _svg_text(name: str) -> str:
    return (RESOURCES / f"{name}.svg").read_text(encoding="utf-8")


_pixmaps: dict[tuple[str, int, int, str], QPixmap] = {}


@lru_cache(maxsize=256)
def _renderer(name: str, colour: str) -> QSvgRenderer:
    return QSvgRenderer(QByteArray(_svg_text(name).replace("currentColor", colour).encode("utf-8")))


def _colour_for(mode: QIcon.Mode) -> str:
    palette = QGuiApplication.palette()
    if mode == QIcon.Mode.Disabled:
        return palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText).name()
    if mode == QIcon.Mode.Selected:
        return palette.color(QPalette.ColorRole.HighlightedText).name()
    return palette.color(QPalette.ColorRole.WindowText).name()


class SvgIconEngine(QIconEngine):
    """Renders one SVG on demand at the requested size, in the palette colour for the icon mode."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def paint(self, painter: QPainter, rect: QRect, mode: QIcon.Mode, state: QIcon.State) -> None:
        _renderer(self.name, _colour_for(mode)).render(painter, rect)

    def pixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State) -> QPixmap:
        key = (self.name, size.width(), size.height(), _colour_for(mode))
        cached = _pixmaps.get(key)
        if cached is not None:
            return QPixmap(cached)
        pixmap = QPixmap(size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        self.paint(painter, QRect(QPoint(0, 0), size), mode, state)
        painter.end()
        if len(_pixmaps) > 512:  # palette changes leave old colours behind; keep the cache small
            _pixmaps.clear()
        _pixmaps[key] = pixmap
        return QPixmap(pixmap)

    def scaledPixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State, scale: float) -> QPixmap:
        pixmap = self.pixmap(QSize(round(size.width() * scale), round(size.height() * scale)), mode, state)
        pixmap.setDevicePixelRatio(scale)
        return pixmap

    def clone(self) -> "SvgIconEngine":
        return SvgIconEngine(self.name)

    def key(self) -> str:
        return "whisper-desk-svg"

    def isNull(self) -> bool:
        return not (RESOURCES / f"{self.name}.svg").is_file()


def icon(name: str) -> QIcon:
    """The icon resources/<name>.svg (a null icon if there is no such file)."""
    if not (RESOURCES / f"{name}.svg").is_file():
        return QIcon()
    return QIcon(SvgIconEngine(name))


def available() -> list[str]:
    return sorted(p.stem for p in RESOURCES.glob("*.svg"))
