"""The Qt binding keeps Python's reference counts: PySide6 6.12.0 on CPython 3.11 returned True from
SignalInstance.emit() and disconnect() without owning a reference, so every emit took one from True; after a
few thousand (a handful of transcriptions) the app died at exit with "Fatal Python error: bool_dealloc".
pyproject.toml leaves that release out; this fails on any binding that does it again. (From CPython 3.12 on,
True, False and None are immortal and their counts never move.)"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal

ROUNDS = 500


class _Sender(QObject):
    number = Signal(int)
    anything = Signal(object)


def _counts() -> tuple[int, int, int]:
    return sys.getrefcount(True), sys.getrefcount(False), sys.getrefcount(None)


def test_emitting_connecting_and_disconnecting_take_no_reference_from_true_false_or_none(qtbot):
    sender = _Sender()
    heard = 0

    def slot(_value: object) -> None:
        nonlocal heard
        heard += 1

    sender.anything.connect(slot)
    sender.number.connect(slot)  # what is created on first use exists before counting
    sender.number.disconnect(slot)
    sender.number.emit(0)
    sender.anything.emit(None)
    heard = 0
    before = _counts()
    for number in range(ROUNDS):
        sender.number.emit(number)
        sender.anything.emit(None)
        sender.number.connect(slot)
        sender.number.disconnect(slot)
    after = _counts()
    assert heard == ROUNDS
    assert after == before, f"True, False, None counts went {before} -> {after} over {ROUNDS} rounds"
