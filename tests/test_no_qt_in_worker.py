"""worker/ is the Qt-free core: no module there imports Qt or the window (gui), in its source or when imported."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "worker"
QT_PACKAGES = ("PySide6", "PySide2", "PyQt5", "PyQt6", "qtpy", "superqt", "shiboken6")
FORBIDDEN = QT_PACKAGES + ("gui",)  # the core never reaches into the window either


def worker_modules() -> list[str]:
    names = []
    for path in sorted(WORKER.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__main__":  # runs the command line when imported
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def imported_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__"):
            names.update(arg.value for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str))
    return names


def test_worker_sources_do_not_import_qt():
    offenders = []
    for path in sorted(WORKER.rglob("*.py")):
        for name in imported_names(path):
            if name.split(".")[0] in FORBIDDEN:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert len(list(WORKER.rglob("*.py"))) >= 8  # the scan really looked at the core
    assert offenders == []


def test_importing_every_worker_module_loads_no_qt():
    modules = worker_modules()
    assert "worker.library" in modules and "worker.backends.base" in modules
    code = (
        "import importlib, json, sys\n"
        f"modules = {modules!r}\n"
        "failed = {}\n"
        "for name in modules:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed[name] = f'{type(exc).__name__}: {exc}'\n"
        f"qt = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(json.dumps({'failed': failed, 'qt': qt, 'loaded': sorted(m for m in modules if m in sys.modules)}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["failed"] == {}, report["failed"]
    assert report["loaded"] == sorted(modules)
    assert report["qt"] == []
