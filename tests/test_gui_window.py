"""The window itself (pytest-qt, offscreen): title, menus and shortcuts, icons, preferences, the Modal state
in the status bar, a Modal job without Modal set up, the timing log panel, and a light start."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from modal_control_plane import ControlPlane, free_port
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QColor, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QApplication, QWizard

from gui import status as modal_states
from gui.icons import available, icon
from gui.log_panel import LogPanel
from gui.main_window import MainWindow
from gui.queue_model import BACKEND, MODEL, PROGRESS, STATUS, ProgressDelegate, QueueModel
from gui.settings import Preferences, SettingsDialog
from worker.core.options import TranscriptionOptions
from worker.library.library import Library

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "whisper", "faster_whisper", "ctranslate2", "modal", "av")
GOOD_ID, GOOD_SECRET = "ak-guistatus0000000000", "as-guistatus0000000000"


def make_window(qtbot, library: Library, **prefs) -> MainWindow:
    prefs.setdefault("check_modal_on_start", False)
    window = MainWindow(library=library, preferences=Preferences(**prefs))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


@pytest.fixture
def window(qtbot, library):
    win = make_window(qtbot, library)
    yield win
    win.shutdown()


def action_named(window: MainWindow, text: str) -> QAction:
    for action in window.findChildren(QAction):
        if action.text().replace("&", "") == text:
            return action
    raise AssertionError(f"no action {text!r}")


def test_window_title_menus_and_shortcuts(window):
    assert window.windowTitle() == "Whisper Desk"
    menus = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert menus == ["File", "Queue", "Modal", "Settings", "Live"]
    expected = {
        "Open…": "Ctrl+O", "Export…": "Ctrl+E", "Retry": "Ctrl+R", "Pause queue": "Ctrl+P",
        "Remove": "Del", "Move up": "Ctrl+Up", "Move down": "Ctrl+Down", "Preferences…": "Ctrl+,",
    }
    for text, key in expected.items():
        shortcuts = [s.toString() for s in action_named(window, text).shortcuts()]
        assert key in shortcuts, (text, shortcuts)
    assert "Esc" in [s.toString() for s in action_named(window, "Cancel").shortcuts()]
    assert "Ctrl+." in [a.shortcut().toString() for a in window.actions()]  # cancel from anywhere in the window
    assert action_named(window, "Import subtitles for review…").isEnabled()
    headers = [window.model.headerData(c, Qt.Orientation.Horizontal) for c in range(window.model.columnCount())]
    assert headers == ["File", "Duration", "Backend", "Model", "Status", "Progress", "Elapsed"]
    assert window.statusBar().isVisible() and window.totals_label.text() == "queue empty"
    assert window.modal_label.text().startswith("Modal: ")


def _opaque_colours(image) -> set[str]:
    return {image.pixelColor(x, y).name() for x in range(image.width()) for y in range(image.height())
            if image.pixelColor(x, y).alpha() == 255}


def test_icons_are_sharp_at_high_dpi_and_follow_the_palette(qapp):
    names = available()
    assert {"open", "pause", "cancel", "retry", "remove", "up", "down", "export", "settings", "app"} <= set(names)
    original = QPalette(qapp.palette())
    try:
        for name in names:
            pixmap = icon(name).pixmap(QSize(24, 24), 2.0)
            assert pixmap.devicePixelRatio() == 2.0 and pixmap.width() == 48, name  # drawn at 48 px, not upscaled
        dark = QPalette(original)
        dark.setColor(QPalette.ColorRole.WindowText, QColor("#f0f0f0"))
        qapp.setPalette(dark)
        assert _opaque_colours(icon("open").pixmap(QSize(32, 32)).toImage()) == {"#f0f0f0"}
        light = QPalette(original)
        light.setColor(QPalette.ColorRole.WindowText, QColor("#101010"))
        qapp.setPalette(light)
        assert _opaque_colours(icon("open").pixmap(QSize(32, 32)).toImage()) == {"#101010"}
        disabled = icon("open").pixmap(QSize(32, 32), QIcon.Mode.Disabled).toImage()
        assert _opaque_colours(disabled) == {light.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText).name()}
    finally:
        qapp.setPalette(original)


def test_progress_column_draws_a_bar_that_grows(qtbot, library, jfk):
    """The delegate paints a real progress bar: the filled part grows with the fraction."""
    from PySide6.QtWidgets import QTableView

    model = QueueModel()
    record = library.jobs.add(jfk, TranscriptionOptions(), "local")
    record.status = "running"
    model.set_jobs([record])
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.setItemDelegateForColumn(PROGRESS, ProgressDelegate(view))
    view.setColumnWidth(PROGRESS, 400)
    view.resize(1200, 200)
    view.show()
    qtbot.waitExposed(view)

    def filled_columns(fraction: float) -> int:
        model.set_progress(record.id, fraction, "transcribing chunk 3 of 8", 12.0)
        rect = view.visualRect(model.index(0, PROGRESS))
        image = view.viewport().grab(rect).toImage()
        y = 5  # a line above the text
        highlight = view.palette().color(QPalette.ColorRole.Highlight)

        def close(c: QColor) -> bool:
            return abs(c.red() - highlight.red()) + abs(c.green() - highlight.green()) + abs(c.blue() - highlight.blue()) < 90

        return sum(1 for x in range(image.width()) if close(image.pixelColor(x, y)))

    model.set_progress(record.id, 0.42, "transcribing chunk 3 of 8", 12.0)
    assert model.index(0, PROGRESS).data() == "transcribing chunk 3 of 8 — 42% · ETA 0:12"
    quarter, three_quarters = filled_columns(0.25), filled_columns(0.75)
    assert quarter > 20 and three_quarters > 2 * quarter


def test_preferences_persist_and_the_dialog_edits_them(qtbot, window, isolated_dirs):
    prefs = Preferences(backend="modal", model="base.en", language="de", task="translate", word_timestamps=True,
                        modal_parallel=4, max_containers=12, chunk_s=45.0, dollars_per_gpu_hour=0.75,
                        auto_export_formats=("srt", "txt"), auto_export_folder="/tmp/exports")
    prefs.save()
    stored = isolated_dirs / ".config" / "whisper-desk" / "preferences.json"
    assert stored.is_file()  # by platform convention (XDG config dir on Linux)
    assert Preferences.load() == prefs
    assert prefs.options() == TranscriptionOptions(model="base.en", language="de", task="translate", word_timestamps=True)
    assert prefs.backend_settings("modal") == {"max_containers": 12, "chunk_s": 45.0, "dollars_per_hour": 0.75,
                                               "plan": "fastest"}

    dialog = SettingsDialog(Preferences())
    qtbot.addWidget(dialog)
    dialog.model.setCurrentText("small.en")
    dialog.backend.setCurrentIndex(dialog.backend.findData("modal"))
    dialog.cost.setValue(1.1)
    dialog.export_checks["vtt"].setChecked(True)
    edited = dialog.preferences()
    assert (edited.model, edited.backend, edited.dollars_per_gpu_hour, edited.auto_export_formats) == ("small.en", "modal", 1.1, ("vtt",))

    window.set_paused(True)
    window.apply_preferences(edited)
    assert Preferences.load() == edited
    with qtbot.waitSignal(window.controller.pathsAdded, timeout=10000) as added:  # searched in the background
        window.add_paths([ROOT.parent / "shared" / "audio" / "jfk.flac"])
    [record] = added.args[0]
    row = window.model.row_of(record.id)
    assert window.model.index(row, MODEL).data() == "small.en"
    assert window.model.index(row, BACKEND).data() == "Modal T4"


def test_modal_job_without_modal_set_up_says_so_and_offers_the_wizard(qtbot, library, jfk):
    window = make_window(qtbot, library, backend="modal")
    with qtbot.waitSignal(window.controller.pathsAdded, timeout=10000) as added:  # searched in the background
        window.add_paths([jfk])
    [record] = added.args[0]
    qtbot.waitUntil(lambda: library.jobs.get(record.id).status == "failed", timeout=15000)
    row = window.model.row_of(record.id)
    qtbot.waitUntil(lambda: window.model.index(row, STATUS).data() == "failed", timeout=15000)  # shown just after
    reason = window.model.index(row, PROGRESS).data()
    assert "Modal is not set up" in reason and "modal token new" in reason
    assert window.model.index(row, STATUS).data() == "failed"
    assert window.banner.isVisible() and window.banner_button.isVisible()
    assert "Modal is not set up" in window.banner_label.text()
    assert QApplication.activeModalWidget() is None  # said in the row and a banner, not a dialog

    window.banner_button.click()
    wizards = [w for w in QApplication.topLevelWidgets() if isinstance(w, QWizard) and w.isVisible()]
    assert len(wizards) == 1 and "Modal" in wizards[0].windowTitle()
    wizards[0].reject()
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=15000)
    qtbot.waitUntil(lambda: window.modal_label.text() == "Modal: not set up", timeout=5000)  # checked again
    window.shutdown()


def _write_modal_profile(home: Path, server_url: str, secret: str = GOOD_SECRET) -> None:
    (home / ".modal.toml").write_text(textwrap.dedent(f"""\
        [gui-test]
        token_id = "{GOOD_ID}"
        token_secret = "{secret}"
        server_url = "{server_url}"
        active = true
        """))


def test_modal_state_is_checked_in_the_background(qtbot, isolated_dirs):
    status = modal_states.ModalStatus()
    states: list[str] = []
    status.changed.connect(lambda state, _detail: states.append(state))
    status.check()
    qtbot.waitUntil(lambda: status.state == modal_states.NOT_SET_UP, timeout=15000)  # no token: no network at all
    assert status.token_known is False
    qtbot.waitUntil(lambda: not status.busy(), timeout=15000)

    with ControlPlane(token_id=GOOD_ID, token_secret=GOOD_SECRET) as server:
        _write_modal_profile(isolated_dirs, server.url)
        started = time.monotonic()
        status.check()
        assert status.state == modal_states.CHECKING and status.busy()  # returned at once: the check is in a thread
        assert time.monotonic() - started < 5.0  # generous for a loaded machine (CHECKING above shows it did not wait)
        qtbot.waitUntil(lambda: status.state != modal_states.CHECKING, timeout=15000)
        assert status.state == modal_states.READY, status.detail
        assert status.token_known is True
        qtbot.waitUntil(lambda: not status.busy(), timeout=15000)

        _write_modal_profile(isolated_dirs, server.url, secret="as-wrongsecret00000000")
        status.check()
        qtbot.waitUntil(lambda: status.state not in (modal_states.CHECKING,), timeout=15000)
        assert status.state == modal_states.REJECTED
        qtbot.waitUntil(lambda: not status.busy(), timeout=15000)

    _write_modal_profile(isolated_dirs, f"http://127.0.0.1:{free_port()}")  # nobody listens: no answer
    status.timeout_s = 2.0  # the app uses 10 s; a shorter bound keeps the test quick
    started = time.monotonic()
    status.check()
    qtbot.waitUntil(lambda: status.state != modal_states.CHECKING, timeout=15000)
    assert status.state == modal_states.UNREACHABLE
    assert time.monotonic() - started < 4.5  # bounded
    assert states[:4] == [modal_states.CHECKING, modal_states.NOT_SET_UP, modal_states.CHECKING, modal_states.READY]
    status.wait()


def test_timing_log_panel_copies_and_saves(qtbot, tmp_path):
    panel = LogPanel()
    qtbot.addWidget(panel)
    lines = ["jfk.flac: chunk 1/2 gpu=Tesla T4 cold_start=yes load=2.10s inference=0.80s audio=30.0s rtf=0.027",
             "jfk.flac: summary wall=4.00s audio=60.0s GPU-s=3.90 cost≈$0.0006 speed=15.0x real time"]
    for line in lines:
        panel.append_line(line)
    assert panel.lines() == lines
    panel.copy_button.click()
    assert QGuiApplication.clipboard().text() == "\n".join(lines)
    target = panel.save_to(tmp_path / "timings.txt")
    assert target.read_text(encoding="utf-8").splitlines() == lines


def test_start_imports_no_heavy_module(isolated_dirs):
    """The window starts (and sits idle) without torch, whisper, faster-whisper, modal or PyAV."""
    code = textwrap.dedent(f"""
        import json, sys, time
        import gui.app, gui.main_window
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        window = gui.main_window.MainWindow()
        window.show()
        QTimer.singleShot(1000, app.quit)  # a second of idle event loop
        app.exec()
        print(json.dumps({{"title": window.windowTitle(), "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
        window.close()
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"title": "Whisper Desk", "heavy": []}


def test_keyboard_drives_the_queue(qtbot, window, shared_audio):
    from PySide6.QtTest import QTest

    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=15000)
    ctrl = Qt.KeyboardModifier.ControlModifier
    QTest.keyClick(window, Qt.Key.Key_P, ctrl)
    assert window.controller.paused and window.totals_label.text().startswith("paused")

    names = ["jfk.flac", "hotwords.mp3", "stereo_diarization.wav"]
    with qtbot.waitSignal(window.controller.pathsAdded, timeout=10000) as added:  # searched in the background
        window.add_paths([shared_audio / n for n in names])
    records = added.args[0]
    assert [r.status for r in window.library.jobs.all()] == ["queued"] * 3  # paused: nothing started

    def order() -> list[str]:
        return [window.model.index(r, 0).data() for r in range(window.model.rowCount())]

    window.table.setFocus()
    window.select_jobs([records[2].id])
    QTest.keyClick(window.table, Qt.Key.Key_Up, ctrl)
    assert order() == ["jfk.flac", "stereo_diarization.wav", "hotwords.mp3"]
    assert [r.name for r in window.library.jobs.all()] == order()  # written to the library
    QTest.keyClick(window.table, Qt.Key.Key_Up, ctrl)
    QTest.keyClick(window.table, Qt.Key.Key_Down, ctrl)
    assert order() == ["jfk.flac", "stereo_diarization.wav", "hotwords.mp3"]

    window.select_jobs([records[0].id, records[1].id])  # multi-select
    QTest.keyClick(window.table, Qt.Key.Key_Escape)
    assert [window.library.jobs.get(r.id).status for r in records] == ["cancelled", "cancelled", "queued"]
    window.select_jobs([records[2].id])
    window.log_panel.view.setFocus()
    QTest.keyClick(window.log_panel.view, Qt.Key.Key_Escape)  # Esc outside the queue does not cancel
    assert window.library.jobs.get(records[2].id).status == "queued"
    QTest.keyClick(window.log_panel.view, Qt.Key.Key_Period, ctrl)  # Ctrl+. does, from anywhere
    assert window.library.jobs.get(records[2].id).status == "cancelled"
    window.table.setFocus()
    window.select_jobs([records[0].id, records[1].id, records[2].id])
    QTest.keyClick(window.table, Qt.Key.Key_R, ctrl)
    assert [window.library.jobs.get(r.id).status for r in records] == ["queued", "queued", "queued"]  # retried
    window.select_jobs([records[1].id])
    QTest.keyClick(window.table, Qt.Key.Key_Delete)
    assert order() == ["jfk.flac", "stereo_diarization.wav"]
    assert window.library.jobs.get(records[1].id) is None
    assert window.totals_label.text() == "paused · 2 queued"


def test_subtitles_imported_for_review_are_edited_played_and_exported(qtbot, window, library, jfk, tmp_path):
    """File > Import subtitles for review, then the embedded editor, player and export dialog on that job."""
    from PySide6.QtTest import QTest

    from gui.export_dialog import ExportDialog
    from worker.transcripts.formats import export_transcript
    from worker.transcripts.model import Segment, Transcript

    qtbot.waitUntil(lambda: window.transcript_pane.uses_editor, timeout=3000)  # the real editor, after first paint
    review = Transcript(segments=[
        Segment(0, 0.0, 3.0, "And so my fellow Americans,"),
        Segment(1, 3.0, 8.0, "ask not what your country can do for you,"),
        Segment(2, 8.0, 11.0, "ask what you can do for your country."),
    ])
    srt = export_transcript(review, tmp_path / "review.srt", "srt")
    importer = window.import_subtitles(srt, jfk)
    with qtbot.waitSignal(importer.done, timeout=10000) as imported:  # read and probed in the background
        pass
    job_id = imported.args[0]
    assert job_id is not None and window.selected_job_ids() == [job_id]
    assert library.jobs.get(job_id).status == "done"
    assert "ask not what your country can do for you" in window.transcript_text().lower()
    assert any("imported review.srt" in line for line in window.log_panel.lines())

    editor = window.transcript_pane.editor
    assert editor.edit_text(1, "ask not what your country can do for you, my friends,")
    qtbot.waitUntil(lambda: library.transcripts.is_edited(job_id), timeout=10000)  # saved as it happened (in the background)
    assert "my friends" in library.transcripts.get(job_id).text
    assert window.transcript_pane.title.text().endswith(" — edited")

    rect = editor.view.visualRect(editor.model.index(2, 2))
    QTest.mouseClick(editor.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    player = window.transcript_pane.player
    assert player is not None and player.isVisible()  # appears on the first click on a segment
    qtbot.waitUntil(lambda: player.position() >= 8.0, timeout=10000)  # plays from that segment
    player.stop()

    dialog = window.export_selected()
    assert isinstance(dialog, ExportDialog) and dialog.isVisible()
    assert [source for _transcript, source in dialog.items] == [str(jfk)]
    assert "my friends" in dialog.items[0][0].text  # what is exported is the edited text
    dialog.reject()


def test_the_optional_engine_is_offered_only_when_installed(qtbot, monkeypatch):
    import importlib.util

    dialog = SettingsDialog(Preferences())
    qtbot.addWidget(dialog)
    assert dialog.engine.model().item(1).isEnabled()  # the test install has openai-whisper

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "whisper" else real_find_spec(name, *a))
    bare = SettingsDialog(Preferences())
    qtbot.addWidget(bare)
    item = bare.engine.model().item(1)
    assert not item.isEnabled() and item.text() == "openai-whisper (not installed)"
    assert bare.preferences().local_engine == "faster"
