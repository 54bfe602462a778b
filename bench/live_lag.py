"""Live passes at beam 1 against beam 5, side by side in one run: recordings are fed to worker.live.streaming in
real time (0.1 s blocks, as a capture hands them in), and each run gives how far the text fell behind what was
heard (the largest and the median lag over the updates), how long stop took to make every word final, and the
WER of the final text against what is said and against the file transcript of the same engine.

    python -m bench.live_lag [--beams 1 5] [--runs 3] [--out docs/live-lag.md]

Run it with the load the numbers should hold under (e.g. `stress-ng --cpu 2` beside it)."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.measure import DEFAULT_AUDIO_DIR, jfk_reference, machine_info, wer

BLOCK_S = 0.1


def feed_live(samples, beam_size: int) -> dict[str, float | str]:
    """One live run over `samples` fed in real time: lags, stop time and the final text."""
    from worker.core.constants import SAMPLE_RATE
    from worker.live.streaming import LiveStream, LiveUpdate

    updates: list[LiveUpdate] = []
    stream = LiveStream("tiny.en", updates.append, language="en", beam_size=beam_size)
    while stream.transcriber is None and stream.error is None:  # the model loads before the speaker starts
        time.sleep(0.05)
    block = int(BLOCK_S * SAMPLE_RATE)
    start = time.monotonic()
    for index, at in enumerate(range(0, len(samples), block)):
        stream.add_audio(samples[at:at + block])
        time.sleep(max(0.0, start + (index + 1) * BLOCK_S - time.monotonic()))
    stopping = time.monotonic()
    stream.stop()
    stop_s = time.monotonic() - stopping
    lags = [update.lag_s for update in updates if not update.finished]
    return {"max_lag_s": max(lags, default=0.0), "median_lag_s": statistics.median(lags) if lags else 0.0,
            "stop_s": stop_s, "text": " ".join(segment.text.strip() for segment in stream.segments())}


def file_text(samples) -> str:
    from worker.core.options import TranscriptionOptions
    from worker.engines.factory import create_engine

    engine = create_engine("faster", "tiny.en")
    try:
        return engine.transcribe(samples, TranscriptionOptions(language="en")).text
    finally:
        engine.close()


def recordings(audio_dir: Path, workdir: Path) -> list[tuple[str, object, str]]:
    """(name, 16 kHz samples, what is said): jfk, and two espeak-ng readings (about 132 s) of a known text."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from readings import two_readings

    from worker.media.audio import decode_audio

    path, said = two_readings(workdir)
    return [("jfk.flac", decode_audio(audio_dir / "jfk.flac"), jfk_reference(audio_dir)),
            ("two readings (espeak-ng, 132 s)", decode_audio(path), said)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--runs", type=int, default=3, help="runs of jfk per beam (the long reading runs once)")
    parser.add_argument("--audio-dir", type=Path, default=DEFAULT_AUDIO_DIR)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as workdir:
        for name, samples, said in recordings(args.audio_dir, Path(workdir)):
            file_wer = wer(said, file_text(samples))
            for beam in args.beams:
                for run in range(args.runs if name == "jfk.flac" else 1):
                    got = feed_live(samples, beam)
                    row = (f"| {name} | {beam} | {run + 1} | {got['max_lag_s']:.1f} | {got['median_lag_s']:.1f} | "
                           f"{got['stop_s']:.1f} | {wer(said, str(got['text'])):.3f} | {file_wer:.3f} |")
                    print(row, flush=True)
                    rows.append(row)
    header = ["| recording | beam | run | largest lag, s | median lag, s | stop, s | live WER | file WER |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    report = "\n".join(header + rows)
    if args.out:
        machine = "\n".join(f"- {key}: {value}" for key, value in machine_info())
        args.out.write_text(f"{report}\n\n{machine}\n")
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
