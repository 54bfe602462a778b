"""Preferences shared by the window and the command line: stored as JSON under the platform's config folder,
validated (a damaged file or value falls back to defaults), mapped to a job's options and a backend's settings."""

from __future__ import annotations

import json
from pathlib import Path

from worker.core.options import TranscriptionOptions
from worker.jobs.preferences import Preferences, preferences_path


def test_preferences_persist_by_platform_convention_and_map_to_jobs(isolated_dirs: Path):
    prefs = Preferences(backend="modal", model="base.en", language="de", task="translate", word_timestamps=True,
                        modal_parallel=4, max_containers=12, chunk_s=45.0, dollars_per_gpu_hour=0.75,
                        auto_export_formats=("srt", "txt"), auto_export_folder="/tmp/exports")
    prefs.save()
    stored = isolated_dirs / ".config" / "whisper-desk" / "preferences.json"
    assert preferences_path() == stored and stored.is_file()  # XDG config dir on Linux
    assert Preferences.load() == prefs
    assert prefs.options() == TranscriptionOptions(model="base.en", language="de", task="translate", word_timestamps=True)
    assert prefs.backend_settings("modal") == {"max_containers": 12, "chunk_s": 45.0, "dollars_per_hour": 0.75,
                                               "plan": "fastest"}
    assert prefs.backend_settings("local") == {"engine": "faster"}
    assert Preferences(local_threads=2).backend_settings("local") == {"engine": "faster", "threads": 2}
    assert (prefs.parallel("modal"), prefs.parallel("local")) == (4, 1)


def test_a_damaged_file_or_value_falls_back_to_defaults(isolated_dirs: Path):
    path = preferences_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00\xffnot json")
    assert Preferences.load() == Preferences()

    path.write_text(json.dumps({"model": "enormous", "backend": "cloud", "local_parallel": "many", "chunk_s": -3,
                                "task": "summarise", "language": "fr", "auto_export_formats": "srt, vtt",
                                "check_modal_on_start": "false", "unknown": 1}), encoding="utf-8")
    loaded = Preferences.load()
    assert (loaded.model, loaded.backend, loaded.local_parallel, loaded.chunk_s, loaded.task) == \
        ("tiny.en", "local", 1, 30.0, "transcribe")
    assert loaded.language == "fr" and loaded.auto_export_formats == ("srt", "vtt")
    assert loaded.check_modal_on_start is False

    path.write_text("[1, 2]", encoding="utf-8")
    assert Preferences.load() == Preferences()


def test_saving_replaces_the_file_whole(isolated_dirs: Path):
    Preferences(model="base").save()
    Preferences(model="small").save()
    folder = preferences_path().parent
    assert [p.name for p in folder.iterdir()] == ["preferences.json"]  # no temporary file left behind
    assert Preferences.load().model == "small"
