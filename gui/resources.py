"""Where resources/ (icons, the wizard's sample) is: the source tree's folder, or the installed
data package `whisper_desk_resources` it becomes in a wheel (see pyproject.toml)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _find_resources() -> Path:
    source_tree = Path(__file__).resolve().parent.parent / "resources"
    if source_tree.is_dir():
        return source_tree
    spec = importlib.util.find_spec("whisper_desk_resources")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("Whisper Desk is installed without its resources (whisper_desk_resources)")
    return Path(next(iter(spec.submodule_search_locations)))


RESOURCES = _find_resources()
