"""Search benchmark: how long `worker.library.search.search` takes over a library of 10,000 segments (and more).

    .venv/bin/python -m bench.search_bench                 # 10,000 and 100,000 segments; updates docs/benchmarks.md
    .venv/bin/python -m bench.search_bench --segments 10000 --no-write

A fresh library on disk gets transcripts of 50 segments each (saved with Library.save_transcript, so the FTS
index is built by the library's own triggers), made of deterministic pseudo-English sentences with a few
accented words. Each query runs once cold (first after opening the library) and then REPEAT times; the table
gives the median and the slowest warm run against the 100 ms goal, with the limit the window and CLI use.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from bench.report import write_section
from worker.core.options import TranscriptionOptions
from worker.library.job_status import JobStatus
from worker.library.library import Library
from worker.library.search import DEFAULT_LIMIT, search
from worker.transcripts.model import Segment, Transcript

SECTION = "search-bench"  # its block in docs/benchmarks.md (bench.report)
GOAL_MS = 100.0
REPEAT = 20
SEGMENTS_PER_JOB = 50
SEED = 12
WORDS = (
    "the and of to a in that it is was for on are as with his they at be this from have or by one had not but what "
    "all were when we there can an your which their said if do will each about how up out them then she many some "
    "so these would other into has more her two like him see time could no make than first been its who now people "
    "my made over did down only way find use may water long little very after words called just where most know "
    "country fellow americans ask harbor lighthouse keeper storm evening village morning museum letters sister "
    "weather season rhythm steady window transcript recording interview meeting budget quarterly revenue product "
    "customer support engineer release schedule deadline question answer research science history music garden"
).split()
RARE = ("café", "naïve", "Zürich", "Montréal", "façade", "résumé", "Ångström", "piñata")
QUERIES = (
    ("a very common word", "the"),
    ("a word", "lighthouse"),
    ("two words", "storm keeper"),
    ('"a phrase"', '"the country"'),
    ("a prefix", "reven*"),
    ("accents ignored", "zurich"),
    ("no hit", "xylophone"),
)


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 20))]
    if rng.random() < 0.05:
        words.insert(rng.randrange(len(words)), rng.choice(RARE))
    return " ".join(words).capitalize() + "."


def build_library(path: Path, segments: int) -> tuple[Library, float]:
    """A library with `segments` segments in jobs of SEGMENTS_PER_JOB; the seconds it took to save them."""
    rng = random.Random(SEED)
    library = Library(path)
    jobs = library.jobs.add_many([f"/recordings/talk {n:05d}.flac" for n in range(segments // SEGMENTS_PER_JOB)],
                            TranscriptionOptions(), "local")
    started = time.perf_counter()
    for job in jobs:
        library.transcripts.save(job.id, Transcript(
            segments=[Segment(i, i * 4.0, i * 4.0 + 3.5, _sentence(rng)) for i in range(SEGMENTS_PER_JOB)],
            language="en", duration=SEGMENTS_PER_JOB * 4.0, model="tiny.en", backend="local"))
        library.jobs.mark_ended(job.id, JobStatus.DONE, finished=time.time())
    return library, time.perf_counter() - started


def measure(path: Path) -> list[tuple[str, str, int, float, float, float]]:
    """Per query: label, query, hits, cold ms, median warm ms, slowest warm ms (a freshly opened library)."""
    library = Library(path)
    rows = []
    try:
        for label, query in QUERIES:
            started = time.perf_counter()
            hits = search(library, query, DEFAULT_LIMIT)
            cold = (time.perf_counter() - started) * 1000
            warm = []
            for _ in range(REPEAT):
                started = time.perf_counter()
                search(library, query, DEFAULT_LIMIT)
                warm.append((time.perf_counter() - started) * 1000)
            rows.append((label, query, len(hits), cold, statistics.median(warm), max(warm)))
    finally:
        library.close()
    return rows


def report(results: dict[int, tuple[float, list[tuple[str, str, int, float, float, float]]]],
           load: tuple[float, float]) -> str:
    lines = [
        "## 4. Search across every transcript",
        "",
        f"`python -m bench.search_bench`: `worker.library.search.search(library, query, limit={DEFAULT_LIMIT})` on a library "
        f"file of transcripts of {SEGMENTS_PER_JOB} segments each (pseudo-English, a few accented words), indexed by "
        f"the library's FTS5 triggers as `save_transcript` writes them. Cold: the first query after opening the "
        f"library; warm: {REPEAT} more runs. Goal: under {GOAL_MS:.0f} ms for 10,000 segments. Load average "
        f"(1 min) at start / end: {load[0]:.2f} / {load[1]:.2f} (2 cores).",
        "",
        "| segments | query | hits | cold ms | warm ms (median) | warm ms (slowest) | slowest / goal | goal |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for segments, (_build_s, rows) in results.items():
        for label, query, hits, cold, median, slowest in rows:
            worst = max(cold, slowest)
            lines.append(f"| {segments:,} | {label}: `{query}` | {hits} | {cold:.1f} | {median:.1f} | {slowest:.1f} | "
                         f"{worst / GOAL_MS:.2f}x | {'met' if worst < GOAL_MS else '**not met**'} |")
    lines.append("")
    lines.append("Indexing while saving: " + "; ".join(
        f"{segments:,} segments in {build_s:.1f} s ({segments / build_s:,.0f} segments/s)"
        for segments, (build_s, _rows) in results.items()) + ".")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    results = {}
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        for segments in args.segments:
            path = Path(folder) / f"library-{segments}.sqlite3"
            library, build_s = build_library(path, segments)
            library.close()
            results[segments] = (build_s, measure(path))
    section = report(results, (load_at_start, os.getloadavg()[0]))
    print(section)
    if not args.no_write:
        write_section(SECTION, section)


if __name__ == "__main__":
    main()
