import os
import signal
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# The tests press Ctrl-C on the processes they start, as a terminal does to its foreground job. Started in the
# background by a non-interactive shell, pytest has SIGINT ignored, and every process it starts would inherit that
# and (rightly) ignore Ctrl-C too; a Python handler here is reset to the default in each child instead.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parent.parent
SHARED_AUDIO = ROOT.parent / "shared" / "audio"


@pytest.fixture(scope="session")
def shared_audio() -> Path:
    assert SHARED_AUDIO.is_dir(), f"test audio missing at {SHARED_AUDIO}"
    return SHARED_AUDIO


@pytest.fixture(scope="session")
def jfk(shared_audio: Path) -> Path:
    return shared_audio / "jfk.flac"


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Each test gets its own data, cache, config and Modal config: nothing touches the user's."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local/share"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(home / ".modal.toml"))
    monkeypatch.delenv("MODAL_TOKEN_ID", raising=False)
    monkeypatch.delenv("MODAL_TOKEN_SECRET", raising=False)
    # the shared model cache (real tiny.en conversions) stays shared between tests for speed
    monkeypatch.setenv("WHISPER_DESK_MODEL_CACHE", str(ROOT / ".pytest_cache" / "models"))
    yield home


@pytest.fixture
def library(tmp_path):
    """A fresh library (SQLite) for one test."""
    from worker.library.library import Library

    lib = Library(tmp_path / "library.sqlite3")
    yield lib
    lib.close()


@pytest.fixture(scope="module")
def local_backend():
    """One real LocalBackend (tiny.en loaded once) per test module."""
    from worker.backends.local import LocalBackend

    backend = LocalBackend()
    yield backend
    backend.close()



class _LentBackend:
    """A backend lent to a window: the window closes only this wrapper, never the shared backend."""

    name = "local"

    def __init__(self, backend) -> None:
        self.backend = backend

    def transcribe(self, path, options, emit, cancel, ledger=None):
        return self.backend.transcribe(path, options, emit, cancel, ledger=ledger)

    def close(self) -> None:
        pass


@pytest.fixture
def lent_backend(local_backend) -> _LentBackend:
    """The module's real LocalBackend, for `MainWindow(backend_factory=lambda name, prefs: lent_backend)`."""
    return _LentBackend(local_backend)


from modal_fixtures import cp, deployed_modal, medley, modal_plane  # noqa: E402,F401 - the loopback Modal control plane
