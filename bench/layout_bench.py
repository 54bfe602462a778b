"""The package move of issue 16, before and after, side by side in one run: the command line's start-up (imports
only, `--version`), and a whole `transcribe` of jfk.flac (start-up, model load, decode, writing), each a fresh
process, alternating trees so that load on the machine falls on both alike. Writes the `layout-bench` block of
docs/benchmarks.md.

    .venv/bin/python -m bench.layout_bench --before 0a22938       # the commit before the move
    .venv/bin/python -m bench.layout_bench --before 0a22938 --repeats 5 --no-write

The earlier tree is checked out with `git worktree` into a temporary folder and run with the same venv, its
folder first on PYTHONPATH (the editable install's finder comes after the path, so the old code is what runs).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.measure import DEFAULT_AUDIO_DIR, ROOT, Measured, machine_info, run_measured
from bench.report import write_section

BLOCK = "layout-bench"
OUTPUT = "{output}"  # replaced by a new file per run (the CLI never overwrites)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def measure(tree: Path, args: list[str], workdir: Path) -> Measured:
    runs = len(list(workdir.glob("run-*")))
    args = [str(workdir / f"run-{runs}.txt") if arg == OUTPUT else arg for arg in args]
    (workdir / f"run-{runs}").touch()
    env = {**os.environ, "PYTHONPATH": str(tree), "XDG_DATA_HOME": str(workdir / "data"),
           "XDG_CONFIG_HOME": str(workdir / "config")}
    result = run_measured([sys.executable, "-m", "worker.cli", *args], env=env, cwd=tree)
    if result.returncode != 0:
        raise SystemExit(f"layout_bench: {' '.join(args)} failed in {tree}: {result.stderr.strip()[-800:]}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the commit to compare with (e.g. the one before the move)")
    parser.add_argument("--repeats", type=int, default=5, help="pairs of runs per measurement (default 5)")
    parser.add_argument("--audio-dir", type=Path, default=DEFAULT_AUDIO_DIR)
    parser.add_argument("--no-write", action="store_true", help="print the block, leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    jfk = args.audio_dir / "jfk.flac"
    before_commit, after_commit = git("rev-parse", "--short", args.before), git("rev-parse", "--short", "HEAD")
    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--", "worker", "gui") else ""
    with tempfile.TemporaryDirectory(prefix="whisper-desk-layout-") as tmp:
        work = Path(tmp)
        before_tree = work / "before"
        git("worktree", "add", "--detach", str(before_tree), args.before)
        try:
            trees = {"before": before_tree, "after": ROOT}
            cases = {
                "start-up (`--version`)": ["--version"],
                "transcribe jfk.flac (11 s)": ["transcribe", str(jfk), "--no-library", "--format", "txt", "-o", OUTPUT],
            }
            results: dict[tuple[str, str], list[Measured]] = {}
            for case, case_args in cases.items():
                for side in trees:  # one warm-up each: file caches, the model's pages
                    measure(trees[side], case_args, work)
                for repeat in range(args.repeats):
                    order = ("before", "after") if repeat % 2 == 0 else ("after", "before")
                    for side in order:
                        results.setdefault((case, side), []).append(measure(trees[side], case_args, work))
        finally:
            git("worktree", "remove", "--force", str(before_tree))
    lines = [
        "## The package move (issue 16): before and after",
        "",
        f"Measured by `python -m bench.layout_bench --before {args.before}` on {dt.datetime.now():%Y-%m-%d %H:%M}: "
        f"{before_commit} (flat worker/) against {after_commit}{dirty} (a package per concern), {args.repeats} "
        "alternating pairs of fresh processes per row after one warm-up each; medians. Machine: "
        + "; ".join(f"{name} {value}" for name, value in machine_info()) + ".",
        "",
        "| run | before wall s | after wall s | after / before | before CPU s | after CPU s | before peak RSS MB | after peak RSS MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in cases:
        before, after = results[(case, "before")], results[(case, "after")]

        def median(runs: list[Measured], field: str) -> float:
            return statistics.median(getattr(run, field) for run in runs)

        lines.append(
            f"| {case} | {median(before, 'wall_s'):.3f} | {median(after, 'wall_s'):.3f} | "
            f"{median(after, 'wall_s') / median(before, 'wall_s'):.2f} | {median(before, 'cpu_s'):.2f} | "
            f"{median(after, 'cpu_s'):.2f} | {median(before, 'tree_rss_mb'):.0f} | {median(after, 'tree_rss_mb'):.0f} |")
    lines += ["", "A ratio near 1.00 is the goal: the move changes where code lives, not what it does."]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section(BLOCK, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
