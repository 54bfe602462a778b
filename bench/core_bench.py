"""Core benchmarks, measured side by side in one run; writes docs/benchmarks.md.

    .venv/bin/python -m bench.core_bench            # full run (3 repetitions, median)
    .venv/bin/python -m bench.core_bench --quick    # 1 repetition, fewer configurations

1. Local engine (`whisper-desk transcribe`) vs openai-whisper's own CLI, same file, same tiny.en
   weights: wall time, CPU time, peak RSS, WER (measured and written by bench.local_speed).
2. Modal fan-out efficiency against the stand-in remote: 64 chunks over 8 containers at a fixed
   latency, wall time vs the ideal 64 / 8 x latency.
3. Bytes uploaded per audio minute for real speech chunks.

Each transcription runs as its own subprocess; wall time, CPU time (user + system of the whole
process tree) and memory (peak RSS of the largest process from wait4, and the peak of the summed
RSS of the process tree sampled every 50 ms) are measured from outside.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from bench.measure import (
    DEFAULT_AUDIO_DIR,
    MB,
    ROOT,
    SpeechFile,
    audio_seconds,
    jfk_reference,
    machine_info,
    verdict,
)
from bench.report import keep_marked_blocks

DEFAULT_OUT = ROOT / "docs" / "benchmarks.md"

FANOUT_GOAL = 1.1
UPLOAD_GOAL_BYTES_PER_MIN = 1 * MB
# (chunk seconds, stand-in latency seconds): the brief's stress case first, then longer calls, then a
# realistic one (30 s chunks; a T4 call on 30 s of audio takes a couple of seconds)
FANOUT_CASES = [(10.0, 0.25), (10.0, 1.0), (30.0, 2.0)]


# --------------------------------------------------------------------------- measuring processes




# --------------------------------------------------------------------------- text and WER



# --------------------------------------------------------------------------- 1. local vs openai-whisper


# --------------------------------------------------------------------------- 2. fan-out


@dataclass
class FanoutResult:
    latency_s: float
    chunk_s: float
    audio_s: float
    chunks_planned: int  # iter_chunks on the file
    chunks_sent: int  # chunks the backend reports it transcribed
    containers: int
    walls: list[float]
    peak_in_flight: int
    production_s: float  # decode + cut + FLAC-encode all chunks, one after another, no remote
    prepared_walls: list[float]  # the same with every chunk decoded, cut and encoded beforehand

    @property
    def ideal_s(self) -> float:
        return -(-self.chunks_sent // self.containers) * self.latency_s

    @property
    def wall_s(self) -> float:
        return statistics.median(self.walls)

    @property
    def prepared_wall_s(self) -> float:
        return statistics.median(self.prepared_walls)


def make_fanout_audio(path: Path, chunk_count: int, chunk_s: float, sample_rate: int = 16000) -> Path:
    """chunk_count segments of chunk_s each: quiet noise bursts with 0.4 s of silence at every boundary,
    so a silence-cutting splitter finds one cut per boundary."""
    import numpy as np
    import soundfile

    rng = np.random.default_rng(0)
    per_chunk = int(chunk_s * sample_rate)
    gap = int(0.4 * sample_rate)
    pieces = []
    for index in range(chunk_count):
        piece = np.zeros(per_chunk, dtype=np.float32)
        body = per_chunk - gap
        start = gap // 2
        t = np.arange(body) / sample_rate
        tone = 0.2 * np.sin(2 * np.pi * (180 + 10 * index) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
        piece[start : start + body] = (tone + 0.005 * rng.standard_normal(body)).astype(np.float32)
        pieces.append(piece)
    soundfile.write(str(path), np.concatenate(pieces), sample_rate, subtype="PCM_16")
    return path


def run_fanout(workdir: Path, latency_s: float, repeats: int, chunk_s: float, chunk_count: int = 64,
               containers: int = 8) -> FanoutResult:
    from tests.modal_standin import StandInRemote
    from worker.core.cancel import CancelToken
    from worker.core.options import TranscriptionOptions
    from worker.media.chunking import encode_chunk, iter_chunks
    from worker.modal.fanout import ModalBackend

    audio = workdir / f"fanout-{chunk_count}x{chunk_s:g}s.wav"
    if not audio.exists():
        make_fanout_audio(audio, chunk_count, chunk_s)
    started = time.perf_counter()
    prepared = [(chunk, encode_chunk(chunk.samples)) for chunk in iter_chunks(audio, target_s=chunk_s)]
    production_s = time.perf_counter() - started

    def transcribe_once() -> tuple[float, int, int]:
        remote = StandInRemote(latency_s=latency_s, run_model=False)
        backend = ModalBackend(remote=remote, max_containers=containers, chunk_s=chunk_s)
        try:
            started = time.perf_counter()
            transcript = backend.transcribe(audio, TranscriptionOptions(), lambda _event: None, CancelToken())
            wall = time.perf_counter() - started
        finally:
            backend.close()
        sent = int(transcript.timings.get("chunk_count") or len(transcript.timings.get("chunks") or []))
        return wall, sent, remote.peak_in_flight

    walls, prepared_walls, peak, sent = [], [], 0, 0
    for _ in range(repeats):
        wall, sent, calls = transcribe_once()
        walls.append(wall)
        peak = max(peak, calls)
    # The same again with decoding, cutting and encoding done beforehand (the backend's own chunking
    # functions swapped for look-ups), to separate dispatch overhead from chunk preparation.
    encoded = {id(chunk.samples): data for chunk, data in prepared}
    with _patched(chunking_module(), iter_chunks=lambda *_a, **_k: (chunk for chunk, _ in prepared),
                  encode_chunk=lambda samples: encoded[id(samples)]):
        for _ in range(repeats):
            prepared_walls.append(transcribe_once()[0])
    return FanoutResult(latency_s, chunk_s, audio_seconds(audio), len(prepared), sent, containers, walls, peak,
                        production_s, prepared_walls)


def chunking_module():
    import worker.media.chunking

    return worker.media.chunking


class _patched:
    """Temporarily replace attributes of a module."""

    def __init__(self, module: object, **replacements: object) -> None:
        self.module = module
        self.replacements = replacements
        self.saved: dict[str, object] = {}

    def __enter__(self) -> None:
        for name, value in self.replacements.items():
            self.saved[name] = getattr(self.module, name)
            setattr(self.module, name, value)

    def __exit__(self, *_exc: object) -> None:
        for name, value in self.saved.items():
            setattr(self.module, name, value)


# --------------------------------------------------------------------------- 3. upload size


@dataclass
class UploadRow:
    name: str
    audio_s: float
    chunks: int
    encoded_bytes: int
    original_bytes: int
    encode_s: float

    @property
    def per_min(self) -> float:
        return self.encoded_bytes / (self.audio_s / 60)

    @property
    def raw_pcm_per_min(self) -> float:
        return 16000 * 2 * 60

    @property
    def original_per_min(self) -> float:
        return self.original_bytes / (self.audio_s / 60)


def measure_upload(path: Path, name: str, chunk_s: float = 30.0) -> UploadRow:
    from worker.media.chunking import encode_chunk, iter_chunks

    total_bytes, seconds, chunks, encode_s = 0, 0.0, 0, 0.0
    for chunk in iter_chunks(path, target_s=chunk_s):
        started = time.perf_counter()
        data = encode_chunk(chunk.samples)
        encode_s += time.perf_counter() - started
        total_bytes += len(data)
        seconds += len(chunk.samples) / 16000
        chunks += 1
    return UploadRow(name, seconds, chunks, total_bytes, path.stat().st_size, encode_s)


# --------------------------------------------------------------------------- report



def fmt_ratio(value: float) -> str:
    return f"{value:.2f}x"



def render_report(ctx: dict) -> str:
    lines: list[str] = []
    add = lines.append
    add("# Benchmarks")
    add("")
    add(f"Generated by `{ctx['command']}` on {ctx['date']} ({ctx['mode']}; took {ctx['elapsed_s']:.0f} s). "
        "Everything below was measured in that one run, side by side. "
        "Window start-up and event-loop stalls are measured separately: see [bench-gui.md](bench-gui.md).")
    add("")
    add("## Machine")
    add("")
    add("| | |")
    add("| --- | --- |")
    for key, value in ctx["machine"]:
        add(f"| {key} | {value} |")
    add(f"| Load average (1 min) at start / end | {ctx['load_start']:.2f} / {ctx['load_end']:.2f} |")
    add("")
    add("This machine is shared: other processes may run during the benchmark, which adds noise to wall times "
        "(CPU time is less sensitive). Each number is the median of the repetitions shown.")
    add("")
    add("## How to run")
    add("")
    add("```sh")
    add("apt-get install -y espeak-ng          # synthetic speech; needed for the benchmarks only")
    add(".venv/bin/python -m bench.core_bench   # full run; --quick for one repetition")
    add("```")
    add("")

    engine_section = ctx.get("engine")
    if engine_section:  # written by bench.local_speed
        add(engine_section.rstrip())
        add("")

    fanout: list[FanoutResult] | None = ctx.get("fanout")
    if fanout:
        first = fanout[0]
        add("## 2. Fan-out efficiency (stand-in remote)")
        add("")
        add(f"`ModalBackend(remote=StandInRemote(latency_s=L, run_model=False), max_containers={first.containers}, "
            "chunk_s=C).transcribe(...)` on a synthetic file built to cut into 64 chunks of C seconds (tones with "
            "0.4 s silences at the chunk boundaries). The stand-in answers each call after L seconds without "
            "running a model, so the wall time is the orchestration alone: probing, decoding, cutting, "
            "FLAC-encoding, dispatching, stitching. Ideal = ceil(chunks / containers) × L. "
            "\"Serial prep\" is the time to decode, cut and encode all 64 chunks one after another with no "
            "remote at all (`iter_chunks` + `encode_chunk`): the part that must overlap with the calls. "
            "\"Wall, prepared\" repeats the run with the chunks decoded, cut and encoded beforehand (the backend's "
            "`iter_chunks`/`encode_chunk` swapped for look-ups), which leaves dispatch, stand-in calls and stitching.")
        add("")
        add("| chunk C | latency L | audio s | chunks (planned / sent) | containers | peak calls in flight | serial prep s | wall s (median) | ideal s | wall / ideal | goal (≤ 1.1x) | wall, prepared s | prepared / ideal |")
        add("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
        for result in fanout:
            ratio = result.wall_s / result.ideal_s
            add(f"| {result.chunk_s:g} s | {result.latency_s:g} s | {result.audio_s:.0f} | {result.chunks_planned} / "
                f"{result.chunks_sent} | {result.containers} | {result.peak_in_flight} | {result.production_s:.2f} | "
                f"{result.wall_s:.3f} | {result.ideal_s:.3f} | {fmt_ratio(ratio)} | {verdict(ratio <= FANOUT_GOAL)} | "
                f"{result.prepared_wall_s:.3f} | {fmt_ratio(result.prepared_wall_s / result.ideal_s)} |")
        add("")
        walls = "; ".join(f"C={r.chunk_s:g} s, L={r.latency_s:g} s: " + ", ".join(f"{w:.3f}" for w in r.walls) for r in fanout)
        add(f"All runs (s): {walls}.")
        add("")

    uploads: list[UploadRow] | None = ctx.get("uploads")
    if uploads:
        add("## 3. Bytes uploaded per audio minute")
        add("")
        add("Every chunk that would go to Modal: `worker.media.chunking.iter_chunks(path, target_s=30)` then "
            "`encode_chunk(chunk.samples)` (FLAC, 16 kHz mono). Raw PCM is 16-bit 16 kHz mono "
            f"({16000 * 2 * 60 / MB:.2f} MB/min). 1 MB = 10^6 bytes.")
        add("")
        add("| file | audio s | chunks | uploaded bytes | MB / audio min | vs raw 16 kHz PCM | original file MB / min | vs original file | goal (≤ 1 MB/min) |")
        add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for row in uploads:
            add(f"| {row.name} | {row.audio_s:.1f} | {row.chunks} | {row.encoded_bytes:,} | {row.per_min / MB:.3f} | "
                f"{fmt_ratio(row.per_min / row.raw_pcm_per_min)} | {row.original_per_min / MB:.3f} | "
                f"{fmt_ratio(row.per_min / row.original_per_min)} | {verdict(row.per_min <= UPLOAD_GOAL_BYTES_PER_MIN)} |")
        add("")
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one repetition, beam-5 configuration only")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per cell (default 3, --quick 1)")
    parser.add_argument("--audio-dir", type=Path, default=DEFAULT_AUDIO_DIR, help="the shared real-speech folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report path (default docs/benchmarks.md)")
    parser.add_argument("--only", choices=("engine", "fanout", "upload"), action="append",
                        help="run only these benchmarks (repeatable); the report then holds only them")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    only = set(args.only or ("engine", "fanout", "upload"))
    sys.path.insert(0, str(ROOT))

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    from bench.synth_speech import REFERENCE_TEXT, synthesize

    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    ctx: dict = {
        "command": "python -m bench.core_bench" + (" --quick" if args.quick else ""),
        "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "mode": f"{'quick' if args.quick else 'full'}, {repeats} repetition(s)",
        "machine": machine_info(),
        "load_start": load_start,
    }
    with tempfile.TemporaryDirectory(prefix="whisper-desk-bench-") as tmp:
        workdir = Path(tmp)
        log("synthesizing speech with espeak-ng")
        synth_path = synthesize(workdir / "synthetic_speech.wav")
        jfk = SpeechFile("jfk.flac", args.audio_dir / "jfk.flac", jfk_reference(args.audio_dir))
        synth = SpeechFile("synthetic_speech.wav (espeak-ng)", synth_path, REFERENCE_TEXT)
        for file in (jfk, synth):
            file.seconds = audio_seconds(file.path)

        if "engine" in only:
            from bench.local_speed import measure

            ctx["engine"] = measure(args.audio_dir, workdir, repeats, log, short_only=args.quick)

        if "fanout" in only:
            results = []
            for chunk_s, latency in FANOUT_CASES[:1] if args.quick else FANOUT_CASES:
                log(f"fan-out: 64 chunks of {chunk_s:g} s over 8 containers at {latency:g} s latency")
                results.append(run_fanout(workdir, latency, repeats, chunk_s))
            ctx["fanout"] = results

        if "upload" in only:
            log("upload sizes")
            multilingual = args.audio_dir / "multilingual.mp3"
            ctx["uploads"] = [
                measure_upload(jfk.path, "jfk.flac"),
                measure_upload(synth.path, "synthetic_speech.wav (espeak-ng)"),
                measure_upload(multilingual, "multilingual.mp3"),
            ]

    ctx["elapsed_s"] = time.perf_counter() - started
    ctx["load_end"] = os.getloadavg()[0]
    report = keep_marked_blocks(render_report(ctx), args.out)  # the sections other benchmarks wrote stay
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    log(f"wrote {args.out}")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
