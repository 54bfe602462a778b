"""A fresh user profile for a bench or screenshot run: its own data, config and cache folders and Modal config,
in a temporary folder that goes when the process ends."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path


def fresh_user_home(prefix: str) -> Path:
    """Point this process's XDG folders and MODAL_CONFIG_PATH into a new temporary folder, removed at exit."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, home, True)
    for name, sub in (("XDG_DATA_HOME", "data"), ("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache")):
        os.environ[name] = str(home / sub)
    os.environ["MODAL_CONFIG_PATH"] = str(home / ".modal.toml")
    return home
