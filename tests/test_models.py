"""Model resolution: the app's cache, the bundled tiny.en offline, and clear errors for models that would need
the (unreachable here) model hub."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from worker.core.errors import TranscriptionError
from worker.engines import weights as models


def test_cache_dir_honours_the_override_and_defaults_to_the_platform_cache(monkeypatch, tmp_path: Path, isolated_dirs: Path) -> None:
    monkeypatch.setenv("WHISPER_DESK_MODEL_CACHE", str(tmp_path / "mine"))
    assert models.model_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("WHISPER_DESK_MODEL_CACHE")
    default = models.model_cache_dir()
    assert default.name == "models" and "whisper-desk" in default.parts
    assert default.is_relative_to(isolated_dirs)  # platformdirs' cache dir under XDG_CACHE_HOME


def test_bundled_tiny_en_is_a_complete_ctranslate2_model() -> None:
    folder = models.bundled_tiny_en_dir()
    for name in ("model.bin", "config.json", "tokenizer.json"):
        assert (folder / name).is_file()


def test_tiny_en_resolves_to_the_bundled_copy_offline(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WHISPER_DESK_MODEL_CACHE", str(tmp_path / "empty-cache"))
    path, label = models.resolve_faster_whisper_model("tiny.en")
    assert Path(path) == models.bundled_tiny_en_dir()
    assert label == "tiny.en (bundled, offline)"


def test_a_model_in_the_app_cache_is_used(monkeypatch, tmp_path: Path) -> None:
    """A model downloaded earlier (huggingface_hub's cache layout in the app's cache) wins over the bundled one."""
    monkeypatch.setenv("WHISPER_DESK_MODEL_CACHE", str(tmp_path / "cache"))
    repo = models.faster_whisper_cache_dir() / "models--Systran--faster-whisper-tiny.en"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    for file in models.bundled_tiny_en_dir().iterdir():
        (snapshot / file.name).symlink_to(file)

    path, label = models.resolve_faster_whisper_model("tiny.en")
    assert Path(path) == snapshot and label == "tiny.en (cached)"

    from worker.engines.faster import FasterWhisperEngine

    engine = FasterWhisperEngine("tiny.en")
    engine.load()
    assert engine.label == "tiny.en (cached)"


@pytest.mark.parametrize("name", ["small", "base.en"])
def test_a_model_that_is_not_downloaded_fails_clearly_and_quickly_offline(monkeypatch, tmp_path: Path, name: str) -> None:
    monkeypatch.setenv("WHISPER_DESK_MODEL_CACHE", str(tmp_path / "cache"))
    started = time.monotonic()
    with pytest.raises(TranscriptionError) as faster:
        models.resolve_faster_whisper_model(name)
    with pytest.raises(TranscriptionError) as openai:
        models.openai_checkpoint(name)
    assert time.monotonic() - started < 12  # bounded: no hanging on an unreachable hub
    for error in (faster.value, openai.value):
        message = str(error)
        assert f"model '{name}' is not downloaded" in message and "tiny.en (bundled)" in message
        assert "\n" not in message


def test_openai_checkpoint_for_tiny_en_is_converted_once_and_cached() -> None:
    first = models.openai_checkpoint("tiny.en")
    assert isinstance(first, Path) and first.is_file()
    assert first.parent == models.model_cache_dir()
    stamp = first.stat().st_mtime_ns
    assert models.openai_checkpoint("tiny.en") == first
    assert first.stat().st_mtime_ns == stamp  # not rebuilt
    assert not list(first.parent.glob("*.tmp"))  # nothing half-written left behind


def test_concurrent_conversions_leave_one_complete_file_and_clear_leftovers(monkeypatch, tmp_path: Path) -> None:
    import torch

    monkeypatch.setenv("WHISPER_DESK_MODEL_CACHE", str(tmp_path / "cache"))
    # what a conversion killed half-way (a cancelled job) left two hours ago
    stale = models.converted_checkpoint_path().with_name(models.converted_checkpoint_path().name + ".x1y2.tmp")
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a checkpoint")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(models.openai_checkpoint("tiny.en"))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 2 and results[0] == results[1]
    files = list((tmp_path / "cache").iterdir())
    assert files == [results[0]]
    saved = torch.load(files[0], map_location="cpu", weights_only=True)
    assert saved["dims"]["n_text_layer"] == 4 and saved["alignment_heads"]


def test_a_new_conversion_replaces_the_one_made_from_an_earlier_install(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WHISPER_DESK_MODEL_CACHE", str(tmp_path / "cache"))
    cache = tmp_path / "cache"
    cache.mkdir()
    # converted before the model package was reinstalled (its model.bin then had another size and time)
    earlier = cache / "tiny.en-bundled-v1-4809c5e-6b000000.pt"
    earlier.write_bytes(b"an earlier conversion")
    other_model = cache / "base-bundled-v1-8a7d7fc-6b000000.pt"
    other_model.write_bytes(b"base, converted earlier")
    current = models.openai_checkpoint("tiny.en")
    assert sorted(cache.iterdir()) == sorted([current, other_model])


def test_load_openai_model_sets_alignment_heads_of_the_bundled_model() -> None:
    model, label = models.load_openai_model("tiny.en", device="cpu")
    assert label == "tiny.en (bundled, offline)"
    heads = sorted(map(list, model.alignment_heads.to_dense().nonzero().tolist()))
    assert heads == [[1, 0], [2, 0], [2, 5], [3, 0], [3, 1], [3, 2], [3, 3], [3, 4]]
