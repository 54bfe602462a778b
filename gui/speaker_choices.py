"""The "Speakers" choice of a job (Off, Automatic, 2..8 speakers): the queue's per-job menu and the Preferences'
default. Kept apart from the editor so the window builds its menus without loading the editor."""

from __future__ import annotations

from typing import Callable

from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu, QWidget

from worker.core.options import MAX_SPEAKERS

SPEAKER_CHOICES: tuple[tuple[str, str | None], ...] = (
    ("Off", None), ("Automatic", "auto"), *((f"{n} speakers", str(n)) for n in range(2, MAX_SPEAKERS + 1)))


def speakers_label(value: str | None) -> str:
    return next((label for label, choice in SPEAKER_CHOICES if choice == value), "Off")


def speakers_menu(parent: QWidget, choose: Callable[[str | None], None], current: Callable[[], set[str | None]]) -> QMenu:
    """"Speakers" for the selected jobs: Off, Automatic, 2..8 (checked: the selected jobs' setting)."""
    menu = QMenu("&Speakers", parent)
    menu.setObjectName("speakersMenu")
    menu.setToolTip("Label who speaks in the selected jobs (runs after transcription; Retry a finished job)")
    group = QActionGroup(menu)
    group.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)  # jobs set differently: none checked
    actions: dict[str | None, QAction] = {}
    for label, value in SPEAKER_CHOICES:
        action = menu.addAction(label)
        action.setCheckable(True)
        action.setData(value)
        group.addAction(action)
        action.triggered.connect(lambda _checked=False, v=value: choose(v))
        actions[value] = action

    def update() -> None:
        values = current()
        for value, action in actions.items():
            action.setChecked(values == {value})

    menu.aboutToShow.connect(update)
    return menu
