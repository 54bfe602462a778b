"""The local default engine vs openai-whisper's CLI on speech of about 10 s, 1 min and 10 min; updates section 1
of docs/benchmarks.md.

    .venv/bin/python -m bench.local_speed              # 3 repetitions per cell, medians; writes the section
    .venv/bin/python -m bench.local_speed --repeats 1 --no-write

Same tiny.en weights on both sides, each run a fresh process (start-up and model loading included), measured
from outside by bench.measure.run_measured: wall time, CPU time of the process tree, peak RSS, WER.

Speech: jfk.flac (real, 11 s); espeak-ng reading bench.synth_speech's text (77 s); and about 10 min made of that
text read in several espeak-ng voices and speeds with jfk.flac between the readings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

from bench.measure import (
    CONFIGS,
    DEFAULT_AUDIO_DIR,
    MODEL,
    WER_SLACK,
    EngineBench,
    EngineRow,
    SpeechFile,
    audio_seconds,
    jfk_reference,
    machine_info,
    verdict,
)

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "docs" / "benchmarks.md"
SECTION_HEADING = "## 1. Local engine vs openai-whisper's CLI"
SPEED_GOAL = 0.25  # ours / openai-whisper wall time (issue 12)
# (voice, words per minute) of each reading in the ~10 min file
LONG_READINGS = [("en-us", 165), ("en-gb", 155), ("en-gb-x-rp", 175), ("en-us+f3", 160), ("en-029", 150),
                 ("en-gb-scotland", 170), ("en-us+m3", 160)]
GAP_S = 0.6  # silence between the pieces of the long file


def make_long_speech(path: Path, audio_dir: Path, workdir: Path) -> str:
    """Write the ~10 min file (16 kHz mono WAV) and return what is said in it."""
    import numpy as np
    import soundfile

    from bench.synth_speech import REFERENCE_TEXT, synthesize
    from worker.media.audio import decode_audio

    jfk = decode_audio(audio_dir / "jfk.flac")
    gap = np.zeros(int(GAP_S * 16000), np.float32)
    pieces, texts = [], []
    for index, (voice, speed) in enumerate(LONG_READINGS):
        reading = synthesize(workdir / f"reading-{index}.wav", voice=voice, words_per_minute=speed)
        pieces += [decode_audio(reading), gap, jfk, gap]
        texts += [REFERENCE_TEXT, jfk_reference(audio_dir)]
    soundfile.write(str(path), np.concatenate(pieces), 16000, subtype="PCM_16")
    return " ".join(" ".join(texts).split())


def speech_files(audio_dir: Path, workdir: Path, log: Callable[[str], None]) -> list[SpeechFile]:
    from bench.synth_speech import REFERENCE_TEXT, synthesize

    log("synthesizing speech with espeak-ng")
    files = [
        SpeechFile("jfk.flac", audio_dir / "jfk.flac", jfk_reference(audio_dir)),
        SpeechFile("espeak-ng, 1 reading", synthesize(workdir / "synthetic_speech.wav"), REFERENCE_TEXT),
    ]
    long_path = workdir / "long_speech.wav"
    files.append(SpeechFile(f"espeak-ng, {len(LONG_READINGS)} voices + jfk.flac", long_path,
                            make_long_speech(long_path, audio_dir, workdir)))
    for file in files:
        file.seconds = audio_seconds(file.path)
    return files


def inference_seconds(stderr: str) -> float | None:
    """The engine's own inference time from our CLI's timing line, if it printed one."""
    found = re.findall(r"inference=([0-9.]+)s", stderr)
    return float(found[-1]) if found else None


def render_section(rows: list[EngineRow], files: list[SpeechFile], bench: EngineBench, loads: list[float],
                   took_s: float) -> str:
    lines: list[str] = []
    add = lines.append
    add(SECTION_HEADING)
    add("")
    add(f"Measured by `python -m bench.local_speed` on {dt.datetime.now().strftime('%Y-%m-%d %H:%M')} "
        f"({', '.join(f'{ours.file.name}: {len(ours.runs)}' for ours in rows[0::2])} timed run(s) per engine after "
        f"one untimed warm-up of each, alternating which engine runs first; took {took_s:.0f} s). Load average (1 min) before each timed run: median "
        f"{statistics.median(loads):.2f}, range {min(loads):.2f}-{max(loads):.2f}, on {os.cpu_count()} CPUs "
        "shared with other work, so wall times carry noise; CPU time is steadier. Each number is the median.")
    add("")
    add("Same weights: tiny.en from the bundled CTranslate2 model (faster-whisper, int8 on CPU) and the openai-whisper "
        "checkpoint converted from it by `worker.engines.weights.openai_checkpoint(\"tiny.en\")` (fp32 on CPU). Every run is a "
        "fresh process, so start-up and model loading count. Ours runs as a user runs it (library written, default "
        "preferences in a fresh profile):")
    add("")
    add("```sh")
    add(f".venv/bin/whisper-desk transcribe FILE --model {MODEL} --format txt")
    add(".venv/bin/whisper FILE --model CKPT --language en --beam_size 5 --best_of 5 --fp16 False "
        "--output_format txt --output_dir OUT")
    add("```")
    add("")
    add("Both decode with beam 5. Ours: faster-whisper's `BatchedInferencePipeline` (Silero VAD from the package, "
        "windows of up to 30 s of speech, 4 windows per batch, text-only decoding, words aligned to cut sentence "
        "segments; then a second pass: speech of 1 s or more that no aligned word covers, where the batched decoder "
        "ended a window early, is decoded again clip by clip by the sequential decoder), CTranslate2 on every CPU "
        "(2 here). openai-whisper's CLI: window by window, its own defaults.")
    if bench.shim is not None:
        shim = ", ".join(f"{name} {secs:.2f} s" for name, secs in bench.shim_seconds.items())
        add("")
        add("No system `ffmpeg` binary is installed here, but openai-whisper's `load_audio` runs one: the openai-whisper "
            "runs get a stand-in `ffmpeg` on their PATH (PyAV, the same FFmpeg libraries, to 16 kHz s16le on stdout), "
            f"counted in their time: {shim}.")
    add("")
    add("WER: jiwer word error rate after lowercasing and removing punctuation, against the reference text. The "
        "espeak-ng text is `bench/synth_speech.py`'s (245 words).")
    add("")
    add("| speech | audio s | engine | wall s | CPU s | peak RSS, tree MB | RTF (wall / audio) | WER |")
    add("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        add(f"| {row.file.name} | {row.file.seconds:.1f} | {row.engine} | {row.median('wall_s'):.2f} | "
            f"{row.median('cpu_s'):.2f} | {row.median('tree_rss_mb'):.0f} | {row.median('wall_s') / row.file.seconds:.3f} | "
            f"{row.wer:.3f} |")
    add("")
    add(f"| speech | wall ours / openai | CPU ours / openai | peak RSS ours / openai | WER ours − openai | "
        f"ours: engine inference s | goal (≤ {SPEED_GOAL}x wall, WER ≤ +{WER_SLACK}) |")
    add("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for ours, theirs in zip(rows[0::2], rows[1::2]):
        wall = ours.median("wall_s") / theirs.median("wall_s")
        cpu = ours.median("cpu_s") / theirs.median("cpu_s")
        rss = ours.median("tree_rss_mb") / theirs.median("tree_rss_mb")
        delta = ours.wer - theirs.wer
        inference = [s for s in (inference_seconds(run.stderr) for run in ours.runs) if s is not None]
        engine_s = f"{statistics.median(inference):.2f}" if inference else "-"
        add(f"| {ours.file.name} | {wall:.2f}x | {cpu:.2f}x | {rss:.2f}x | {delta:+.3f} | {engine_s} | "
            f"{verdict(wall <= SPEED_GOAL and delta <= WER_SLACK)} |")
    add("")
    walls = "; ".join(f"{row.file.name}, {row.engine}: " + ", ".join(f"{run.wall_s:.2f}" for run in row.runs)
                      for row in rows)
    add(f"All wall times (s): {walls}.")
    add("")
    add("<details><summary>Transcripts (last run)</summary>")
    add("")
    for row in rows:
        text = " ".join(row.text.split())
        add(f"- {row.file.name}, {row.engine}: {text if len(text) < 1600 else text[:1600] + ' ...'}")
    add("")
    add("</details>")
    add("")
    machine = dict(machine_info())
    add(f"Machine: {machine['CPU']}, {machine['Cores (logical)']} logical CPUs, {machine['RAM']}; {machine['Packages']}.")
    return "\n".join(lines).rstrip() + "\n"


def replace_section(report: Path, section: str) -> None:
    """Put `section` in place of the report's section 1 (up to the next `## ` heading), or append it."""
    text = report.read_text(encoding="utf-8") if report.exists() else "# Benchmarks\n"
    start = text.find(SECTION_HEADING)
    if start < 0:
        text = text.rstrip() + "\n\n" + section
    else:
        following = text.find("\n## ", start + len(SECTION_HEADING))
        end = following + 1 if following >= 0 else len(text)
        text = text[:start] + section + ("\n" if following >= 0 else "") + text[end:]
    report.write_text(text, encoding="utf-8")


class LoadTrackingBench(EngineBench):
    """EngineBench that notes the load average before each timed run."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.loads: list[float] = []

    warmed = False

    def warm_up(self, file: SpeechFile) -> None:
        if not self.warmed:
            super().warm_up(file)
            self.warmed = True
            self.loads.clear()  # the timed runs' only

    def run_once(self, file, config, engine):  # type: ignore[no-untyped-def]
        self.loads.append(os.getloadavg()[0])
        return super().run_once(file, config, engine)


def measure(audio_dir: Path, workdir: Path, repeats: int, log: Callable[[str], None], short_only: bool = False,
            long_repeats: int | None = None) -> str:
    """Run the comparison in `workdir` and return the report's section 1 (`long_repeats`: timed runs on the
    ~10 min file, default `repeats`)."""
    started = time.perf_counter()
    saved = {name: os.environ.get(name) for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME")}
    for name in saved:  # a fresh profile for ours: default preferences, empty library
        os.environ[name] = str(workdir / name.lower())
    try:
        files = speech_files(audio_dir, workdir, log)
        if short_only:
            files = files[:2]
        bench = LoadTrackingBench(workdir, repeats, log)
        rows = bench.run(files[:2], CONFIGS[:1])
        if files[2:]:
            bench.repeats = long_repeats or repeats
            rows += bench.run(files[2:], CONFIGS[:1])
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return render_section(rows, files, bench, bench.loads, time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell (default 3)")
    parser.add_argument("--audio-dir", type=Path, default=DEFAULT_AUDIO_DIR, help="the shared real-speech folder")
    parser.add_argument("--long-repeats", type=int, default=None, help="timed runs on the ~10 min file (default: --repeats)")
    parser.add_argument("--short-only", action="store_true", help="skip the ~10 min file")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="whisper-desk-local-speed-") as tmp:
        section = measure(args.audio_dir, Path(tmp), args.repeats, log, args.short_only, args.long_repeats)
    print(section)
    if not args.no_write:
        replace_section(REPORT, section)
        log(f"updated {REPORT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
