"""The whole `whisper-desk transcribe` process against openai-whisper's CLI, same tiny.en weights, on the kinds of
file the goal is set on (issue 18): 11 s of real speech (jfk.flac), the 71 s kind of read speech, and the ~10 min
file; where the time goes (start-up, engine process, model load, VAD, second pass). Updates section 1 of
docs/benchmarks.md.

Issue 18's 71.5 s recording is not in the repository, so the 71 s kind is a set of readings made at run time, each
70-72 s long: espeak-ng voices and accents reading bench.synth_speech's texts (the lighthouse story and sentences
from the Harvard lists), the words per minute fitted per reading to land in that range, some of them with a
condition applied (noise at 15 dB SNR, a telephone band at 8 kHz, a lower level, reverberation). The set has a
development part (DEVELOPMENT) and a held-out part (HELD_OUT: its own voices, conditions and text, fixed when the
set was built and never tuned on), reported in their own rows and aggregates: the median ratio over the readings
and the total-word WER of each engine (all errors / all reference words).

    .venv/bin/python -m bench.local_speed                       # jfk 3 pairs, each reading 1 pair; writes the section
    .venv/bin/python -m bench.local_speed --short-only --baseline HEAD~3   # and the code as it was, side by side
    .venv/bin/python -m bench.local_speed --short-only --set-repeats 3     # 3 pairs per reading too

Each run is a fresh process (start-up and model loading included), measured from outside by
bench.measure.run_measured: wall time, CPU time of the process tree, peak RSS, WER. The engines take turns within
each repetition (who goes first alternates from run to run), so both see the same load. Ours runs as a user runs it,
each run with a new library (a library that has the recording would reuse its transcript), default preferences in
a fresh profile; the parts of its time come from that library's job timings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from bench.conditions import Condition, Gain, Noise, Reverb, Telephone, write_conditioned
from bench.measure import (
    CONFIGS,
    DEFAULT_AUDIO_DIR,
    MODEL,
    VENV_BIN,
    WER_SLACK,
    EngineBench,
    Measured,
    SpeechFile,
    audio_seconds,
    jfk_reference,
    machine_info,
    run_measured,
    verdict,
    wer,
)

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "docs" / "benchmarks.md"
SECTION_HEADING = "## 1. Local engine vs openai-whisper's CLI"
SPEED_GOAL = 0.25  # ours / openai-whisper wall time, whole process (issue 18)
SET_SECONDS = (70.0, 72.0)  # each reading of the 71 s set lasts this long (issue 18's file: 71.5 s)
# (voice, words per minute) of each reading in the ~10 min file
LONG_READINGS = [("en-us", 165), ("en-gb", 155), ("en-gb-x-rp", 175), ("en-us+f3", 160), ("en-029", 150),
                 ("en-gb-scotland", 170), ("en-us+m3", 160)]
GAP_S = 0.6  # silence between the pieces of the long file
OPENAI = "openai-whisper"
LAUNCH = "import sys; from gui.launcher import main; sys.exit(main())"  # what the whisper-desk script runs
DEVELOPMENT_PART, HELD_OUT_PART = "development", "held-out"




@dataclass(frozen=True)
class Reading:
    """One reading of the 71 s set: a voice reading one of bench.synth_speech.TEXTS, with conditions applied in
    order; `wpm` is the first words-per-minute tried (the rate is fitted so the reading lasts SET_SECONDS)."""

    voice: str
    text: str
    conditions: tuple[Condition, ...] = ()
    wpm: int = 165

    def describe(self, wpm: int) -> str:
        conditions = ", ".join(c.describe() for c in self.conditions) or "clean"
        return f"{self.voice}, {self.text}, {wpm} wpm, {conditions}"


DEVELOPMENT = (
    Reading("en-us", "lighthouse", wpm=175),
    Reading("en-gb-x-rp", "lighthouse", wpm=170),
    Reading("en-us+f3", "Harvard A", wpm=160),
    Reading("en-029", "Harvard A", wpm=160),
    Reading("en-gb-scotland", "Harvard B", (Noise(15, "white"),), wpm=180),
    Reading("en-us+m7", "lighthouse", (Telephone(),), wpm=175),
    Reading("en-gb+f2", "Harvard B", (Gain(-20),), wpm=180),
    Reading("en-us-nyc", "lighthouse", (Reverb(0.6),), wpm=175),
)
# Fixed with the development part, before anything was measured, and never tuned on: voices, conditions and a
# text (Harvard C) that the development part does not have.
HELD_OUT = (
    Reading("en-gb-x-gbclan", "Harvard C"),
    Reading("en-us+f4", "Harvard C", (Noise(15, "pink"),)),
    Reading("en-gb-x-gbcwmd+m2", "Harvard C", (Reverb(0.4), Telephone())),
)


@dataclass
class SetFile(SpeechFile):
    """A reading of the 71 s set, as made for this run."""

    part: str = DEVELOPMENT_PART
    wpm: int = 0
    reading: Reading | None = None
    key: str = ""  # D1, D2 ... for the development part, H1 ... held out


def short_name(file: SpeechFile) -> str:
    return file.key if isinstance(file, SetFile) else file.name


def fit_rate(path: Path, text: str, voice: str, first_wpm: int) -> tuple[int, float]:
    """Synthesize `text` at the words-per-minute (integer, as espeak-ng takes it) that makes it last SET_SECONDS;
    returns the rate and the length."""
    import soundfile

    from bench.synth_speech import synthesize

    low, high = SET_SECONDS
    wpm, tried = first_wpm, {}
    for _ in range(10):
        synthesize(path, text, voice=voice, words_per_minute=wpm)
        seconds = tried[wpm] = soundfile.info(str(path)).duration
        if low <= seconds <= high:
            return wpm, seconds
        guess = round(wpm * seconds / ((low + high) / 2))
        wpm = guess if guess != wpm else wpm + (1 if seconds > high else -1)
        if wpm in tried:
            break
    raise SystemExit(f"local_speed: no rate makes {voice} read {text[:30]!r}... in {low:g}-{high:g} s: {tried}")


def make_reading(reading: Reading, part: str, key: str, path: Path) -> SetFile:
    """Write `reading` to `path` (WAV: 16-bit PCM, or mu-law at 8 kHz for a telephone line)."""
    import zlib

    import numpy as np
    import soundfile

    from bench.synth_speech import TEXTS

    text = TEXTS[reading.text]
    raw = path.with_name(path.stem + "-espeak.wav")
    wpm, _ = fit_rate(raw, text, reading.voice, reading.wpm)
    samples, rate = soundfile.read(str(raw), dtype="float64")
    raw.unlink()
    rng = np.random.default_rng(zlib.crc32(f"{reading.voice} {reading.text}".encode()))  # the same audio each run
    write_conditioned(path, samples, rate, reading.conditions, rng)
    return SetFile(f"{key}: {reading.describe(wpm)}", path, text, part=part, wpm=wpm, reading=reading, key=key)


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


def speech_files(audio_dir: Path, workdir: Path, log: Callable[[str], None], with_long: bool,
                 development: Sequence[Reading] = DEVELOPMENT, held_out: Sequence[Reading] = HELD_OUT,
                 ) -> list[SpeechFile]:
    log(f"synthesizing the 71 s set with espeak-ng: {len(development)} development readings, "
        f"{len(held_out)} held out")
    files = [SpeechFile("jfk.flac", audio_dir / "jfk.flac", jfk_reference(audio_dir))]
    parts = [(DEVELOPMENT_PART, f"D{i + 1}", r) for i, r in enumerate(development)]
    parts += [(HELD_OUT_PART, f"H{i + 1}", r) for i, r in enumerate(held_out)]
    for part, key, reading in parts:
        files.append(make_reading(reading, part, key, workdir / f"set-{key}.wav"))
    if with_long:
        long_path = workdir / "long_speech.wav"
        files.append(SpeechFile(f"espeak-ng, {len(LONG_READINGS)} voices + jfk.flac", long_path,
                                make_long_speech(long_path, audio_dir, workdir)))
    for file in files:
        file.seconds = audio_seconds(file.path)
    return files


@dataclass
class Variant:
    """One of the programs compared: ours (this tree, or an older one for "before"), or openai-whisper."""

    label: str
    tree: Path | None = None  # ours: the source tree it runs from

    @property
    def ours(self) -> bool:
        return self.tree is not None

    def command(self, *args: str) -> list[str]:
        if self.tree == ROOT:
            return [str(VENV_BIN / "whisper-desk"), *args]
        return [sys.executable, "-c", LAUNCH, *args]  # from `tree` (cwd): its worker and gui packages


@dataclass
class Run:
    measured: Measured
    text: str
    timings: dict[str, Any] = field(default_factory=dict)  # ours: the job's, from its library


@dataclass
class Row:
    file: SpeechFile
    variant: Variant
    runs: list[Run] = field(default_factory=list)
    startup_s: list[float] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(run.measured, attr) for run in self.runs)

    def timing(self, key: str) -> float | None:
        values = [float(run.timings[key]) for run in self.runs if key in run.timings]
        return statistics.median(values) if values else None

    @property
    def wer(self) -> float:
        return statistics.median(wer(self.file.reference, run.text) for run in self.runs)


class SpeedBench:
    def __init__(self, workdir: Path, repeats: int, log: Callable[[str], None], variants: list[Variant]) -> None:
        self.workdir = workdir
        self.repeats = repeats
        self.log = log
        self.variants = variants
        self.openai = EngineBench(workdir, repeats, log)  # the converted checkpoint and the ffmpeg stand-in
        self.loads: list[float] = []
        self._runs = 0
        self._turns = 0  # who goes first: rotates from one repetition to the next, across files too

    def run_once(self, file: SpeechFile, variant: Variant) -> Run:
        if not variant.ours:
            measured, text = self.openai.run_once(file, CONFIGS[0], "openai-whisper")
            return Run(measured, text)
        self._runs += 1
        library = self.workdir / f"library-{self._runs}.sqlite"  # new: nothing to reuse
        cmd = variant.command("transcribe", str(file.path), "--model", MODEL, "--format", "txt", "--library", str(library))
        measured = run_measured(cmd, cwd=variant.tree)
        if measured.returncode != 0:
            raise SystemExit(f"local_speed: {variant.label} failed on {file.name}, exit {measured.returncode}:\n"
                             f"{measured.stderr.strip()[-1500:]}")
        return Run(measured, measured.stdout, job_timings(library))

    def startup(self, variant: Variant) -> float:
        """Wall time of `whisper-desk transcribe --help`: the interpreter, the command line's imports, its parser."""
        return run_measured(variant.command("transcribe", "--help"), cwd=variant.tree).wall_s

    def warm_up(self, file: SpeechFile) -> None:
        for variant in self.variants:  # warm disk caches and bytecode, untimed
            self.log(f"warm-up: {variant.label}")
            self.run_once(file, variant)

    def run(self, files: Sequence[SpeechFile]) -> list[Row]:
        rows: list[Row] = []
        for file in files:
            self.openai.repeats = self.repeats
            self.openai.measure_shim(file)
            pair = [Row(file, variant) for variant in self.variants]
            for rep in range(self.repeats):
                first = self._turns % len(pair)
                self._turns += 1
                turn = pair[first:] + pair[:first]  # who goes first rotates
                for row in turn:
                    self.loads.append(os.getloadavg()[0])
                    run = self.run_once(file, row.variant)
                    row.runs.append(run)
                    if row.variant.ours:
                        row.startup_s.append(self.startup(row.variant))
                    self.log(f"{file.name} {row.variant.label} #{rep + 1}: {run.measured.wall_s:.2f} s wall, "
                             f"{run.measured.cpu_s:.2f} s cpu, {run.measured.tree_rss_mb:.0f} MB")
            rows.extend(pair)
        return rows


def job_timings(library_path: Path) -> dict[str, Any]:
    """The timings of the one job in a library file (what the engine process measured)."""
    from worker.library.library import Library

    library = Library(library_path)
    try:
        jobs = library.jobs.all()
        transcript = library.transcripts.get(jobs[0].id) if jobs else None
        return dict(transcript.timings) if transcript is not None else {}
    finally:
        library.close()


def ratios(ours: Row, theirs: Row) -> list[float]:
    """Wall time ours / theirs, pair by pair (the runs of one repetition)."""
    return [a.measured.wall_s / b.measured.wall_s for a, b in zip(ours.runs, theirs.runs)]


def errors(row: Row) -> tuple[int, int]:
    """(word errors, reference words) of a row's median WER."""
    from bench.measure import normalize

    words = len(normalize(row.file.reference).split())
    return round(row.wer * words), words


def part_of(file: SpeechFile) -> str:
    return file.part if isinstance(file, SetFile) else ""


def breakdown_median(rows: list[Row]) -> list[tuple[str, float | None]]:
    """breakdown_rows of each row, part by part the median over the rows (of those that have the part)."""
    tables = [breakdown_rows(row) for row in rows]
    merged: list[tuple[str, float | None]] = []
    for index, (part, _) in enumerate(tables[0]):
        values = [v for table in tables if (v := table[index][1]) is not None]
        merged.append((part, statistics.median(values) if values else None))
    return merged


def breakdown_rows(row: Row) -> list[tuple[str, float | None]]:
    """Where an ours run's wall time goes (medians of the runs)."""
    wall = row.median("wall_s")
    startup = statistics.median(row.startup_s) if row.startup_s else None
    job = row.timing("wall_s")
    inference = row.timing("inference_s")
    vad, second = row.timing("vad_s"), row.timing("second_pass_s")
    rest = wall - startup - job if startup is not None and job is not None else None
    batched = inference - (vad or 0.0) - (second or 0.0) if inference is not None else None
    return [
        ("whole process, wall", wall),
        ("start-up: interpreter, imports, arguments (`transcribe --help`)", startup),
        ("queue, library, reading the file, engine process start, writing, exit", rest),
        ("engine process: the job, from its arrival to its result", job),
        ("— loading the model (the first audio decodes meanwhile)", row.timing("model_load_s")),
        ("— decoding audio (waited for; first block: while the model loads)", row.timing("decode_s")),
        ("— inference (VAD, batched decoding, second pass)", inference),
        ("—— VAD", vad),
        ("—— batched decoding and word alignment", batched),
        ("—— second pass", second),
        ("CPU time of the process tree", row.median("cpu_s")),
        ("peak RSS of the process tree, MB", row.median("tree_rss_mb")),
    ]


def render_section(rows: list[Row], bench: SpeedBench, took_s: float) -> str:
    lines: list[str] = []
    add = lines.append
    loads = bench.loads
    files = list(dict.fromkeys(row.file.name for row in rows))
    by = {(row.file.name, row.variant.label): row for row in rows}
    ours_variants = [v for v in bench.variants if v.ours]
    current = ours_variants[0]
    openai_rows = [row for row in rows if not row.variant.ours]
    set_rows = {part: [row for row in openai_rows if part_of(row.file) == part] for part in (DEVELOPMENT_PART, HELD_OUT_PART)}
    readings = [row.file for part_rows in set_rows.values() for row in part_rows]
    other_rows = [row for row in openai_rows if not part_of(row.file)]
    repeats = "; ".join(f"{row.file.name}: {len(row.runs)}" for row in other_rows)
    set_repeats = sorted({len(row.runs) for part_rows in set_rows.values() for row in part_rows})
    if readings:
        repeats += f"; each reading of the 71 s set: {', '.join(map(str, set_repeats))}"
    add(SECTION_HEADING)
    add("")
    add(f"Measured by `python -m bench.local_speed` on {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}, everything "
        f"below in that one run. Pairs of runs (one per program) per file, after one untimed warm-up of each program: "
        f"{repeats}. In each pair the programs take turns, and which goes first alternates from pair to pair; took "
        f"{took_s:.0f} s. Load average (1 min) before each run: median {statistics.median(loads):.2f}, range "
        f"{min(loads):.2f}-{max(loads):.2f}, on {os.cpu_count()} CPUs shared with other work, so wall times carry "
        "noise; CPU time is steadier. A file's number is the median of its runs.")
    add("")
    add("Same weights: tiny.en from the bundled CTranslate2 model (faster-whisper, int8 on CPU) and the openai-whisper "
        "checkpoint converted from it by `worker.engines.weights.openai_checkpoint(\"tiny.en\")` (fp32 on CPU). Every "
        "run is a fresh process, so start-up and model loading count. Ours runs as a user runs it, each run with a "
        "new library file (a library that has the recording reuses its transcript) and default preferences in a "
        "fresh profile:")
    add("")
    add("```sh")
    add(f".venv/bin/whisper-desk transcribe FILE --model {MODEL} --format txt --library NEW.sqlite")
    add(".venv/bin/whisper FILE --model CKPT --language en --beam_size 5 --best_of 5 --fp16 False "
        "--output_format txt --output_dir OUT")
    add("```")
    add("")
    if len(ours_variants) > 1:
        add("\"Before\" is the same command run from an older source tree (`git archive` of the commit named), "
            "with the same packages, in the same repetitions.")
        add("")
    add("Both decode with beam 5. Ours: faster-whisper's `BatchedInferencePipeline` over Silero VAD speech regions "
        "joined into windows of up to 30 s of speech, 4 windows per batch (each window encoded and aligned on its own, "
        "the beam search batched), text-only decoding, words aligned to cut sentence segments; then a second pass "
        "decodes again, clip by clip, speech of 1 s or more that no aligned word covers. The file reaches the engine "
        "as a stream of blocks of about 2 minutes cut at silences (one block up to 144 s), in an engine process "
        "beside the command's; CTranslate2 on every CPU (2 here). openai-whisper's CLI: window by window, its own "
        "defaults.")
    add("")
    add("The speech: jfk.flac (real, 11 s), and the 71 s kind of read speech as a set of readings: issue 18's 71.5 s "
        "recording is not in the repository, so espeak-ng reads, in several voices and accents, bench.synth_speech's "
        "texts (the lighthouse story, 245 words, and three sets of sentences from the IEEE Harvard lists, A, B and C, "
        "sharing none), each reading made at run time at the words per minute that makes it last "
        f"{SET_SECONDS[0]:g}-{SET_SECONDS[1]:g} s (fitted per reading; the rate is in its name). Some readings have a "
        "condition applied (numpy and scipy, seeded, so the same audio each run): Gaussian noise, white or pink, at 15 "
        "dB below the speech's active level (its 20 ms frames within 40 dB of the loudest); a telephone line "
        "(300-3400 Hz 4th-order Butterworth band-pass, resampled to 8 kHz, written as mu-law WAV); the whole reading "
        "20 dB quieter; reverberation (the direct sound plus an exponentially decaying noise tail of the RT60 named, "
        "as strong as the direct sound). The set has two parts. The development part ("
        f"{len(set_rows[DEVELOPMENT_PART])} readings) is what the engine's figures are discussed on; the held-out part "
        f"({len(set_rows[HELD_OUT_PART])} readings: voices, conditions and a text, Harvard C, that the development "
        "part does not have) was fixed together with it before any of the set was measured and is never tuned on. "
        "Each part is reported on its own: the median of the readings' ratios, and the total-word WER of each engine "
        "(all word errors over all reference words of the part). WER: jiwer word error rate after lowercasing and "
        "removing punctuation, against the text read.")
    if bench.openai.shim is not None:
        shims = bench.openai.shim_seconds
        shim = ", ".join(f"{name} {secs:.2f} s" for name, secs in shims.items() if name not in {f.name for f in readings})
        set_shims = [shims[f.name] for f in readings if f.name in shims]
        if set_shims:
            shim += (f"{', ' if shim else ''}the 71 s readings median {statistics.median(set_shims):.2f} s "
                     f"({min(set_shims):.2f}-{max(set_shims):.2f})")
        add("")
        add("No system `ffmpeg` binary is installed here, but openai-whisper's `load_audio` runs one: its runs get a "
            "stand-in `ffmpeg` on their PATH (PyAV, the same FFmpeg libraries, to 16 kHz s16le on stdout), counted "
            f"in their time: {shim}.")
    add("")
    if readings:
        add(f"**The 71 s set, by part** (goal: ours ≤ {SPEED_GOAL}x openai-whisper's wall time, the median over the "
            "readings, with a total WER no worse than openai-whisper's):")
        add("")
        add("| part | program | readings | audio s, total | ours / openai, median of the readings | range | "
            "Σ ours wall / Σ openai wall | reference words | word errors openai-whisper | word errors ours | "
            "WER openai-whisper | WER ours | goal |")
        add("| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for part, part_rows in set_rows.items():
            if not part_rows:
                continue
            theirs_errors = [errors(row) for row in part_rows]
            words = sum(w for _, w in theirs_errors)
            theirs_wer = sum(e for e, _ in theirs_errors) / words
            for variant in ours_variants:
                ours_rows = [by[(row.file.name, variant.label)] for row in part_rows]
                medians = [statistics.median(ratios(ours, theirs)) for ours, theirs in zip(ours_rows, part_rows)]
                pooled = sum(r.median("wall_s") for r in ours_rows) / sum(r.median("wall_s") for r in part_rows)
                ours_errors = sum(errors(row)[0] for row in ours_rows)
                ours_wer = ours_errors / words
                met = statistics.median(medians) <= SPEED_GOAL and ours_errors <= sum(e for e, _ in theirs_errors)
                add(f"| {part} | {variant.label} | {len(part_rows)} | {sum(r.file.seconds for r in part_rows):.0f} | "
                    f"**{statistics.median(medians):.2f}x** | {min(medians):.2f}-{max(medians):.2f} | {pooled:.2f}x | "
                    f"{words} | {sum(e for e, _ in theirs_errors)} | {ours_errors} | {theirs_wer:.3f} | "
                    f"{ours_wer:.3f} | {verdict(met)} |")
        add("")
    add("Per file (the set's rows: one reading each; the goal column judges each file on its own):")
    add("")
    head = "| part | speech | audio s | openai-whisper wall s | " + " | ".join(
        f"{v.label} wall s | {v.label} / openai (pairs) | {v.label} / openai" for v in ours_variants)
    add(head + f" | WER {OPENAI} | " + " | ".join(f"WER {v.label}" for v in ours_variants)
        + f" | goal (≤ {SPEED_GOAL}x, WER ≤ openai's) |")
    add("| --- | --- | ---: | ---: | " + " | ".join("---: | --- | ---:" for _ in ours_variants) + " | ---: | "
        + " | ".join("---:" for _ in ours_variants) + " | --- |")
    for name in files:
        theirs = by[(name, OPENAI)]
        cells = [part_of(theirs.file) or "-", name, f"{theirs.file.seconds:.1f}", f"{theirs.median('wall_s'):.2f}"]
        for variant in ours_variants:
            ours = by[(name, variant.label)]
            pairs = ratios(ours, theirs)
            cells += [f"{ours.median('wall_s'):.2f}", ", ".join(f"{r:.2f}" for r in pairs),
                      f"**{statistics.median(pairs):.2f}x**"]
        cells.append(f"{theirs.wer:.3f}")
        cells += [f"{by[(name, v.label)].wer:.3f}" for v in ours_variants]
        ours = by[(name, current.label)]
        met = statistics.median(ratios(ours, theirs)) <= SPEED_GOAL and ours.wer <= theirs.wer + 1e-9
        cells.append(verdict(met))
        add("| " + " | ".join(cells) + " |")
    add("")
    add("Where ours spends its time (seconds; the engine process's parts are its own timings, read from the job in "
        "the library; a file's figure is the median of its runs, a part of the set's the median over its readings):")
    add("")
    single = [name for name in files if not part_of(by[(name, OPENAI)].file)]  # jfk.flac first, the long file last
    groups = [(name, [name]) for name in single[:1]]
    groups += [(f"71 s set, {part}", [row.file.name for row in part_rows]) for part, part_rows in set_rows.items()
               if part_rows]
    groups += [(name, [name]) for name in single[1:]]
    columns = [(label, names, v) for label, names in groups for v in ours_variants]
    add("| part | " + " | ".join(f"{label}, {v.label}" for label, _, v in columns) + " |")
    add("| --- | " + " | ".join("---:" for _ in columns) + " |")
    tables = [breakdown_median([by[(name, v.label)] for name in names]) for _, names, v in columns]
    for index, (part, _) in enumerate(tables[0]):
        values = [table[index][1] for table in tables]
        add(f"| {part} | " + " | ".join("-" if value is None else f"{value:.2f}" if value < 100 else f"{value:.0f}"
                                        for value in values) + " |")
    add("")
    walls = "; ".join(f"{short_name(row.file)}, {row.variant.label}: " + ", ".join(f"{run.measured.wall_s:.2f}" for run in row.runs)
                      for row in rows)
    add(f"All wall times (s), in repetition order: {walls}.")
    add("")
    add("<details><summary>Transcripts (last run)</summary>")
    add("")
    for row in rows:
        text = " ".join(row.runs[-1].text.split())
        add(f"- {short_name(row.file)}, {row.variant.label}: {text if len(text) < 1600 else text[:1600] + ' ...'}")
    add("")
    add("</details>")
    add("")
    machine = dict(machine_info())
    add(f"Machine: {machine['CPU']}, {machine['Cores (logical)']} logical CPUs, {machine['RAM']}; {machine['Packages']}; "
        f"{machine['Speech synthesis']}.")
    add("")
    add(f"WER slack allowed elsewhere in these benchmarks: +{WER_SLACK}; this goal asks for no worse than openai-whisper.")
    return "\n".join(lines).rstrip() + "\n"


def replace_section(report: Path, section: str) -> None:
    """Put `section` in place of the report's section 1 (up to the next `## ` heading or marked block), or append it."""
    text = report.read_text(encoding="utf-8") if report.exists() else "# Benchmarks\n"
    start = text.find(SECTION_HEADING)
    if start < 0:
        text = text.rstrip() + "\n\n" + section
    else:
        ends = [i for i in (text.find("\n## ", start + len(SECTION_HEADING)), text.find("\n<!-- ", start)) if i >= 0]
        end = min(ends) + 1 if ends else len(text)
        text = text[:start] + section + ("\n" if ends else "") + text[end:]
    report.write_text(text, encoding="utf-8")


def source_tree(revision: str, workdir: Path) -> Path:
    """The repository at `revision`, unpacked into `workdir` (git archive)."""
    tree = workdir / f"tree-{revision.replace('/', '_').replace('~', '-')}"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def measure(audio_dir: Path, workdir: Path, repeats: int, log: Callable[[str], None], short_only: bool = False,
            long_repeats: int | None = None, baseline: str | None = None, set_repeats: int = 1,
            development: Sequence[Reading] = DEVELOPMENT, held_out: Sequence[Reading] = HELD_OUT) -> str:
    """Run the comparison in `workdir` and return the report's section 1 (`repeats`: pairs on jfk.flac;
    `set_repeats`: pairs on each reading of the 71 s set; `long_repeats`: on the ~10 min file, default `repeats`;
    `baseline`: a git revision to measure as "before" too)."""
    started = time.perf_counter()
    saved = {name: os.environ.get(name) for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME")}
    for name in saved:  # a fresh profile for ours: default preferences
        os.environ[name] = str(workdir / name.lower())
    try:
        variants = [Variant("ours", ROOT)]
        if baseline:
            variants.append(Variant(f"before ({baseline})", source_tree(baseline, workdir)))
        variants.append(Variant(OPENAI))
        files = speech_files(audio_dir, workdir, log, not short_only, development, held_out)
        readings = [file for file in files if isinstance(file, SetFile)]
        others = [file for file in files if not isinstance(file, SetFile)]
        bench = SpeedBench(workdir, repeats, log, variants)
        bench.warm_up(others[0])
        rows = bench.run(others[:1])
        bench.repeats = set_repeats
        rows += bench.run(readings)
        if others[1:]:
            bench.repeats = long_repeats or repeats
            rows += bench.run(others[1:])
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return render_section(rows, bench, time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="pairs of runs on jfk.flac (default 3)")
    parser.add_argument("--set-repeats", type=int, default=1, help="pairs of runs on each reading of the 71 s set (default 1)")
    parser.add_argument("--audio-dir", type=Path, default=DEFAULT_AUDIO_DIR, help="the shared real-speech folder")
    parser.add_argument("--long-repeats", type=int, default=None, help="pairs on the ~10 min file (default: --repeats)")
    parser.add_argument("--short-only", action="store_true", help="skip the ~10 min file")
    parser.add_argument("--baseline", metavar="REV", default=None, help="also run ours from this git revision (\"before\")")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="whisper-desk-local-speed-") as tmp:
        section = measure(args.audio_dir, Path(tmp), args.repeats, log, args.short_only, args.long_repeats, args.baseline,
                          args.set_repeats)
    print(section)
    if not args.no_write:
        replace_section(REPORT, section)
        log(f"updated {REPORT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
