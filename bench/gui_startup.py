"""Time to a window on screen, and idle memory: `whisper-desk` vs a bare PySide6 QMainWindow.

    .venv/bin/python -m bench.gui_startup              # 7 runs each, offscreen and (if installed) Xvfb
    .venv/bin/python -m bench.gui_startup --runs 3 --write docs/bench-gui.md

Each start is its own process with empty data/config/cache dirs (a new user). The clock starts just before
the process is spawned and stops when the process reports its window exposed and painted (a QWindow Expose
event, then one turn of the event loop): the app via WHISPER_DESK_REPORT_SHOWN, the bare window through the
same probe. Idle memory is the process's resident set (VmRSS) 2 s after the window is shown.
Goal (issue 3): the app's window in at most 2x the bare window's time, idle memory under 200 MB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IDLE_WAIT_S = 2.0

BARE_WINDOW = r"""
import sys, time
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMainWindow

class Probe(QObject):
    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Expose and watched.isExposed() and not getattr(self, "done", False):
            self.done = True
            QTimer.singleShot(0, lambda: print(f"bare shown {time.time():.6f}", flush=True))
        return False

app = QApplication(sys.argv[:1])
window = QMainWindow()
window.setWindowTitle("bare")
window.resize(1100, 720)
window.winId()
probe = Probe()
window.windowHandle().installEventFilter(probe)
window.show()
sys.exit(app.exec())
"""


@dataclass
class Start:
    seconds: float
    rss_mb: float


def app_command() -> list[str]:
    script = Path(sys.executable).parent / "whisper-desk"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "gui.launcher"]  # what the console script runs


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def start_once(command: list[str], env: dict[str, str], timeout_s: float = 60.0) -> Start:
    home = Path(tempfile.mkdtemp(prefix="wd-bench-"))
    env = dict(env)
    env.update({
        "HOME": str(home), "XDG_DATA_HOME": str(home / "data"), "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"), "MODAL_CONFIG_PATH": str(home / ".modal.toml"),
        "WHISPER_DESK_REPORT_SHOWN": "1",
    })
    env.pop("MODAL_TOKEN_ID", None)
    env.pop("MODAL_TOKEN_SECRET", None)
    started = time.time()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + timeout_s
        shown_at = None
        while time.monotonic() < deadline:
            line = process.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            if " shown " in line:
                shown_at = float(line.split()[-1])
                break
        if shown_at is None:
            raise RuntimeError(f"{command} did not report its window (exit code {process.poll()})")
        time.sleep(IDLE_WAIT_S)
        memory = rss_mb(process.pid)
        return Start(shown_at - started, memory)
    finally:
        process.send_signal(signal.SIGINT)  # the app closes its window on Ctrl+C
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(home, ignore_errors=True)


def measure(label: str, command: list[str], env: dict[str, str], runs: int) -> list[Start]:
    start_once(command, env)  # warm the OS file cache; not counted
    results = [start_once(command, env) for _ in range(runs)]
    times = ", ".join(f"{r.seconds * 1000:.0f}" for r in results)
    print(f"{label}: {times} ms; idle RSS {statistics.median(r.rss_mb for r in results):.0f} MB", flush=True)
    return results


class Xvfb:
    def __init__(self, display: str = ":93") -> None:
        self.display = display
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Xvfb":
        self.process = subprocess.Popen(["Xvfb", self.display, "-screen", "0", "1400x900x24", "-nolisten", "tcp"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(5)


def platforms() -> list[str]:
    return ["offscreen", "xcb (Xvfb)"] if shutil.which("Xvfb") else ["offscreen"]


def run(runs: int) -> list[tuple[str, list[Start], list[Start]]]:
    rows = []
    for platform in platforms():
        base_env = dict(os.environ)
        xvfb = None
        if platform == "offscreen":
            base_env["QT_QPA_PLATFORM"] = "offscreen"
        else:
            xvfb = Xvfb().__enter__()
            base_env["QT_QPA_PLATFORM"] = "xcb"
            base_env["DISPLAY"] = xvfb.display
        try:
            print(f"-- {platform}", flush=True)
            bare = measure("bare QMainWindow", [sys.executable, "-c", BARE_WINDOW], base_env, runs)
            app = measure("whisper-desk", app_command(), base_env, runs)
            rows.append((platform, bare, app))
        finally:
            if xvfb is not None:
                xvfb.__exit__()
    return rows


def report(rows: list[tuple[str, list[Start], list[Start]]], runs: int) -> str:
    lines = [
        "## Startup: time to window shown, idle memory",
        "",
        f"`python -m bench.gui_startup --runs {runs}`: {runs} starts each (after one warm-up start), each a new process",
        "with empty data/config dirs. Time from spawning the process to its window exposed and painted; idle",
        f"memory is VmRSS {IDLE_WAIT_S:.0f} s after that. `whisper-desk` = `{' '.join(Path(c).name for c in app_command())}`.",
        "",
        "| platform | bare PySide6 window (median) | whisper-desk (median) | ratio (goal ≤ 2x) | bare idle RSS | whisper-desk idle RSS (goal < 200 MB) |",
        "|---|---|---|---|---|---|",
    ]
    for platform, bare, app in rows:
        bare_s = statistics.median(r.seconds for r in bare)
        app_s = statistics.median(r.seconds for r in app)
        lines.append(
            f"| {platform} | {bare_s * 1000:.0f} ms | {app_s * 1000:.0f} ms (min {min(r.seconds for r in app) * 1000:.0f}, "
            f"max {max(r.seconds for r in app) * 1000:.0f}) | {app_s / bare_s:.2f}x | "
            f"{statistics.median(r.rss_mb for r in bare):.0f} MB | {statistics.median(r.rss_mb for r in app):.0f} MB |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--write", type=Path, help="write the markdown table to this file (replacing its startup section)")
    args = parser.parse_args(argv)
    rows = run(args.runs)
    text = report(rows, args.runs)
    print(text)
    if args.write:
        from bench.event_loop_stall import replace_section

        replace_section(args.write, "## Startup", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
