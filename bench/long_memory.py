"""Long files in bounded memory: `whisper-desk transcribe` on 30 minutes and 3 hours of speech, peak resident memory
of the engine process and of the whole process tree, speed and WER. Writes the "long-memory" block of
docs/benchmarks.md.

    .venv/bin/python -m bench.long_memory                          # 30 min and 3 h
    .venv/bin/python -m bench.long_memory --minutes 30 --baseline HEAD~3   # and the code as it was

The speech is made at run time and never kept: bench.local_speed's ~10 minute file (bench.synth_speech's text read
by espeak-ng in seven voices and speeds, jfk.flac after each reading) looped to the length, as 16 kHz mono FLAC.
Peak RSS: the largest single process as `/usr/bin/time -v` reports it (wait4's ru_maxrss: here the engine
process), and the sum over the process tree sampled every 50 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from bench.local_speed import ROOT, Variant, job_timings, make_long_speech, source_tree
from bench.measure import DEFAULT_AUDIO_DIR, MODEL, Measured, machine_info, run_measured, verdict, wer

BLOCK = "long-memory"
MEMORY_GOAL_MB = 500  # peak resident memory at any length (issue 18)
DEFAULT_MINUTES = (30, 180)


@dataclass
class LongRun:
    minutes: float
    variant: str
    measured: Measured
    wer: float
    timings: dict[str, object]
    load: float


def looped_speech(base: Path, reference: str, minutes: float, path: Path) -> tuple[Path, str]:
    """`base` looped to `minutes` (cut at the end), written to `path` as FLAC block by block; what it says."""
    import numpy as np
    import soundfile

    audio, rate = soundfile.read(str(base), dtype="int16")
    total = int(minutes * 60 * rate)
    with soundfile.SoundFile(str(path), "w", rate, 1, format="FLAC", subtype="PCM_16") as out:
        written = 0
        while written < total:
            piece = audio[: total - written]
            out.write(np.ascontiguousarray(piece))
            written += len(piece)
    whole, rest = divmod(total, len(audio))
    words = reference.split()
    said = " ".join([reference] * whole + ([" ".join(words[: round(len(words) * rest / len(audio))])] if rest else []))
    return path, said


def run_one(variant: Variant, path: Path, library: Path) -> tuple[Measured, dict[str, object]]:
    cmd = variant.command("transcribe", str(path), "--model", MODEL, "--format", "txt", "--library", str(library))
    measured = run_measured(cmd, cwd=variant.tree)
    if measured.returncode != 0:
        raise SystemExit(f"long_memory: {variant.label} failed on {path.name}, exit {measured.returncode}:\n"
                         f"{measured.stderr.strip()[-1500:]}")
    return measured, job_timings(library)


def render(runs: list[LongRun], took_s: float) -> str:
    lines: list[str] = []
    add = lines.append
    add("## Long files: memory")
    add("")
    add(f"Measured by `python -m bench.long_memory` on {dt.datetime.now().strftime('%Y-%m-%d %H:%M')} (took "
        f"{took_s / 60:.0f} min): `whisper-desk transcribe FILE --model {MODEL} --format txt --library NEW.sqlite`, "
        "one fresh process per run. The speech is made at run time, never kept: bench.local_speed's ~10 minute file "
        "(bench.synth_speech's text read by espeak-ng in seven voices and speeds, jfk.flac after each reading) "
        "looped to the length, 16 kHz mono FLAC. Peak RSS of the engine process is the largest single process, as "
        "`/usr/bin/time -v` reports it (wait4's ru_maxrss); the tree adds the command's own process and "
        "multiprocessing's resource tracker (sampled every 50 ms).")
    add("")
    add(f"| audio | code | wall s | CPU s | RTF (wall / audio) | peak RSS, engine process MB | peak RSS, tree MB | "
        f"WER | load (1 min) | goal (engine process ≤ {MEMORY_GOAL_MB} MB) |")
    add("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for run in runs:
        audio_s = run.minutes * 60
        add(f"| {run.minutes:g} min | {run.variant} | {run.measured.wall_s:.0f} | {run.measured.cpu_s:.0f} | "
            f"{run.measured.wall_s / audio_s:.3f} | {run.measured.max_rss_mb:.0f} | {run.measured.tree_rss_mb:.0f} | "
            f"{run.wer:.3f} | {run.load:.2f} | {verdict(run.measured.max_rss_mb <= MEMORY_GOAL_MB)} |")
    add("")
    for run in runs:
        seconds = {key: f"{float(value):.1f} s" if isinstance(value, (int, float)) else "-"
                   for key in ("wall_s", "inference_s", "vad_s", "second_pass_s", "decode_s")
                   for value in [run.timings.get(key)]}
        add(f"- {run.minutes:g} min, {run.variant}: engine job {seconds['wall_s']}, of which inference "
            f"{seconds['inference_s']} (VAD {seconds['vad_s']}, second pass {seconds['second_pass_s']}), decoding "
            f"audio {seconds['decode_s']}; blocks: {run.timings.get('blocks', '-')}; the log's timing lines: "
            f"{timing_line(run.measured.stderr)}")
    add("")
    add("How the engine process stays bounded: the file reaches the engine as a stream of blocks of about 2 minutes "
        "cut at silences; the engine's windows (up to 30 s of speech) run across the seams and are decoded 4 at a "
        "time as soon as they are complete, and a block is let go once the speech in it is decoded (sparse speech: "
        "what is there is decoded once 5 minutes wait). Each window is encoded and aligned on its own (a batch of 4 "
        "held ~330 MB of self-attention at once), the VAD runs on 1,000 frames at a time, and the C heap's free "
        "pages go back to the system after the VAD and each batch.")
    add("")
    machine = dict(machine_info())
    add(f"Machine: {machine['CPU']}, {machine['Cores (logical)']} logical CPUs, {machine['RAM']}, shared with other "
        "work (the load column); wall times carry that noise.")
    return "\n".join(lines)


def timing_line(stderr: str) -> str:
    """The job's timing lines, as the command printed them (without the file's name)."""
    found = [line.split(": ", 1)[-1] for line in stderr.splitlines() if " gpu=" in line]
    return "; ".join(f"`{line}`" for line in found) or "-"


def measure(workdir: Path, minutes: Sequence[float], baseline: str | None, audio_dir: Path,
            log: Callable[[str], None]) -> list[LongRun]:
    os.environ["XDG_DATA_HOME"] = str(workdir / "data")  # a fresh profile: default preferences
    os.environ["XDG_CONFIG_HOME"] = str(workdir / "config")
    log("synthesizing the ~10 minute speech with espeak-ng")
    base = workdir / "base.wav"
    reference = make_long_speech(base, audio_dir, workdir)
    variants = [Variant("ours", ROOT)]
    if baseline:
        variants.append(Variant(f"before ({baseline})", source_tree(baseline, workdir)))
    runs: list[LongRun] = []
    for length in minutes:
        path, said = looped_speech(base, reference, length, workdir / f"speech-{length:g}min.flac")
        for index, variant in enumerate(variants):
            if index and length != minutes[0]:
                continue  # the code as it was: on the first length only
            load = os.getloadavg()[0]
            log(f"{length:g} min, {variant.label} (load {load:.2f})")
            measured, timings = run_one(variant, path, workdir / f"library-{length:g}-{index}.sqlite")
            runs.append(LongRun(length, variant.label, measured, wer(said, measured.stdout), timings, load))
            log(f"  {measured.wall_s:.0f} s wall, {measured.cpu_s:.0f} s CPU, engine process {measured.max_rss_mb:.0f} MB, "
                f"tree {measured.tree_rss_mb:.0f} MB, WER {runs[-1].wer:.3f}")
        path.unlink()
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=list(DEFAULT_MINUTES), help="lengths (default 30 180)")
    parser.add_argument("--baseline", metavar="REV", default=None, help="also run the code of this git revision (first length)")
    parser.add_argument("--audio-dir", type=Path, default=DEFAULT_AUDIO_DIR, help="the shared real-speech folder")
    parser.add_argument("--no-write", action="store_true", help="print the block, leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="whisper-desk-long-memory-") as tmp:
        runs = measure(Path(tmp), args.minutes, args.baseline, args.audio_dir, log)
    body = render(runs, time.perf_counter() - started)
    print(body)
    if not args.no_write:
        from bench.report import REPORT, write_section

        write_section(BLOCK, body)
        log(f"updated {REPORT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
