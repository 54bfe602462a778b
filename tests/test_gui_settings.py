"""The window's settings: preferences an older version kept in QSettings are carried over once into the shared
preferences file; window state stays in QSettings."""

from __future__ import annotations

from gui.settings import load_preferences, settings_store
from worker.jobs.preferences import Preferences, preferences_path


def test_preferences_from_an_older_version_are_carried_over_once(qtbot, isolated_dirs):
    store = settings_store()
    store.setValue("model", "base.en")
    store.setValue("auto_export_formats", "srt,txt")
    store.setValue("modal_parallel", "5")
    store.setValue("window/geometry", b"kept for the window")
    store.sync()

    carried = load_preferences()
    assert (carried.model, carried.auto_export_formats, carried.modal_parallel) == ("base.en", ("srt", "txt"), 5)
    assert preferences_path().is_file() and Preferences.load() == carried

    Preferences(model="small.en").save()  # from now on the shared file is what counts
    assert load_preferences().model == "small.en"


def test_no_preferences_anywhere_gives_the_defaults(qtbot, isolated_dirs):
    assert load_preferences() == Preferences()
    assert not preferences_path().exists()
