"""The command line's subcommands (`transcribe`, `check`, `deploy`, `search`, `watch`, `serve`, `live`). The `whisper-desk`
script (gui.launcher) passes subcommands here and starts the window otherwise; this module never imports gui."""

from __future__ import annotations

import argparse
import queue as queue_module
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence, TextIO

from worker import __version__
from worker.cli.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from worker.core.errors import WhisperDeskError
from worker.core.options import DEFAULT_MODEL, MODEL_NAMES, TranscriptionOptions
from worker.engines.base import ENGINE_NAMES
from worker.jobs.preferences import TASKS
from worker.modal.bounded import CHECK_TIMEOUT_CAP_S
from worker.modal.cost import PLANS
from worker.transcripts.formats import BINARY_FORMATS, EXPORT_FORMATS

if TYPE_CHECKING:
    from worker.jobs.preferences import Preferences
    from worker.jobs.events import QueueEvent
    from worker.jobs.queue import JobQueue
    from worker.library.jobs import JobRecord
    from worker.transcripts.formats import Exporter
    from worker.transcripts.model import Transcript
    from worker.transcripts.subtitles import SubtitleRules

SUBCOMMANDS = ("transcribe", "check", "deploy", "search", "watch", "serve", "live")
DEFAULT_OUTPUT_FORMATS = ("txt",)  # `transcribe` without --format


class FormatsAction(argparse.Action):
    """--format F[,F…], repeatable (and, for `watch`, several after one --format): the formats in the order
    given, each once; an unknown one is a usage error."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        chosen = list(getattr(namespace, self.dest) or [])
        for value in values if isinstance(values, list) else [values]:
            for fmt in (part.strip().lower().lstrip(".") for part in str(value).split(",")):
                if fmt not in EXPORT_FORMATS:
                    raise argparse.ArgumentError(self, f"unknown format {fmt!r}; choose from {', '.join(EXPORT_FORMATS)}")
                if fmt not in chosen:
                    chosen.append(fmt)
        setattr(namespace, self.dest, chosen)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; given the subcommand being run, `serve`'s options are left out unless it is that
    one (they import its server, and aiohttp with it: 0.2 s of every other command's start)."""
    parser = argparse.ArgumentParser(
        prog="whisper-desk",
        description="Transcribe audio and video with Whisper, on this computer or on Modal T4 GPUs. "
        "With no subcommand (or with file paths) `whisper-desk` starts the desktop app.",
    )
    parser.add_argument("--version", action="version", version=f"whisper-desk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{transcribe,check,deploy,search,watch,serve,live}")

    tr = sub.add_parser("transcribe", help="transcribe files and write transcripts")
    tr.add_argument("files", nargs="+", metavar="FILE")
    # defaults (None here): the preferences the window uses (worker.jobs.preferences)
    tr.add_argument("--backend", choices=("local", "modal"), default=None, help="default: the preferences' (local)")
    tr.add_argument("--engine", choices=ENGINE_NAMES, default=None, help="local engine (default: faster-whisper)")
    tr.add_argument("--model", choices=MODEL_NAMES, default=None, help=f"default: the preferences' ({DEFAULT_MODEL})")
    tr.add_argument("--language", default=None, help="language code (default: the preferences', else detect)")
    tr.add_argument("--task", choices=TASKS, default=None)
    tr.add_argument("--word-timestamps", action=argparse.BooleanOptionalAction, default=None)
    tr.add_argument("--initial-prompt", default=None)
    tr.add_argument("--speakers", default=None, metavar="auto|N",
                    help="label speakers: auto (count found), or how many (1-8); off: no labels (default: the preferences')")
    tr.add_argument("--beam-size", type=int, default=5)
    tr.add_argument("--threads", type=int, default=None, help="local: CPU threads for the engine (default: automatic)")
    where = tr.add_mutually_exclusive_group()
    where.add_argument("--library", type=Path, default=None, help="the library file (default: the app's)")
    where.add_argument("--no-library", action="store_true", help="keep nothing: no job or transcript in the library")
    tr.add_argument("--format", dest="formats", action=FormatsAction, metavar="F[,F…]",
                    help=f"output formats, repeated or comma-separated ({', '.join(EXPORT_FORMATS)}; "
                    f"default: {', '.join(DEFAULT_OUTPUT_FORMATS)}); stdout takes one text format")
    out = tr.add_mutually_exclusive_group()
    out.add_argument("--output-dir", type=Path, help="write DIR/<input stem>.<format> for each input and format")
    out.add_argument("-o", "--output", type=Path, help="output file (one input and one format only)")
    tr.add_argument("--overwrite", action="store_true", help="replace existing output files")
    tr.add_argument("--again", action="store_true",
                    help="transcribe even a recording the library already has a transcript of (the same bytes, "
                    "model and options, under any name); without it, that transcript is reused and said so")
    _add_subtitle_rule_options(tr)
    tr.add_argument("--chunk-seconds", type=float, default=None, help="Modal: target chunk length (default: 30)")
    tr.add_argument("--max-containers", type=int, default=None, help="Modal: GPU containers in parallel (default: 8)")
    tr.add_argument("--plan", choices=PLANS, default=None,
                    help="Modal: fan each file out for speed (fastest: a container per chunk) or for cost (cheapest: "
                    "fewer containers); both estimates are logged before a job starts (default: fastest)")

    ck = sub.add_parser("check", help="check Modal credentials and the deployed worker app")
    ck.add_argument("--timeout", type=float, default=CHECK_TIMEOUT_CAP_S,
                    help=f"seconds (at most {CHECK_TIMEOUT_CAP_S:g})")

    sub.add_parser("deploy", help="deploy the T4 worker app to Modal")

    from worker.jobs.watch import SETTLE_S
    from worker.jobs.watch_folders import DEFAULT_FORMATS, EXISTING_CHOICES, ExistingFiles
    from worker.library.search import DEFAULT_LIMIT

    se = sub.add_parser("search", help="search every transcript in the library; one line per hit: FILE, time, text")
    se.add_argument("query", metavar="QUERY", help='words (all must match), "a phrase", or a prefix* (any case or accent)')
    se.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help=f"at most this many hits (default: {DEFAULT_LIMIT})")
    se.add_argument("--library", type=Path, default=None, help="the library file (default: the app's)")

    wa = sub.add_parser("watch", help="transcribe each media file that lands in a folder, once; Ctrl-C stops")
    wa.add_argument("folder", type=Path, metavar="DIR")
    wa.add_argument("--output-dir", type=Path, default=None, help="write the outputs here (default: next to each file)")
    wa.add_argument("--format", dest="formats", nargs="+", action=FormatsAction, metavar="F",
                    help=f"output formats ({', '.join(EXPORT_FORMATS)}; default: {', '.join(DEFAULT_FORMATS)})")
    wa.add_argument("--backend", choices=("local", "modal"), default="local")
    wa.add_argument("--model", choices=MODEL_NAMES, default=TranscriptionOptions().model)
    wa.add_argument("--settle", type=float, default=SETTLE_S, metavar="SECONDS",
                    help=f"a file is queued once unchanged this long (default: {SETTLE_S:g})")
    wa.add_argument("--existing", choices=EXISTING_CHOICES, default=ExistingFiles.TRANSCRIBE.value,
                    help="the media files already in the folder the first time it is watched: transcribe them "
                    "(the default: a command that names a folder asks for its files, as it always did) or skip them "
                    "(remembered as seen and never queued; only files that arrive later are transcribed)")
    wa.add_argument("--library", type=Path, default=None, help="the library file (default: the app's)")

    if command in (None, "serve"):
        from worker.cli.serve import add_serve_parser

        add_serve_parser(sub)

    from worker.cli.live import add_live_parser

    add_live_parser(sub)
    return parser


def _add_subtitle_rule_options(parser: argparse.ArgumentParser) -> None:
    """SRT/VTT/ASS cues re-cut from word timestamps (turned on for these formats); TXT/JSON/TSV ignore them.
    Defaults (None here): the preferences' subtitle rules."""
    from worker.transcripts.subtitles import SubtitleRules

    rules = SubtitleRules()
    group = parser.add_argument_group("subtitle rules (srt, vtt, ass; defaults: the preferences')")
    group.add_argument("--max-line-chars", type=int, default=None, metavar="N",
                       help=f"characters per line ({rules.max_line_chars})")
    group.add_argument("--max-lines", type=int, default=None, metavar="L",
                       help=f"lines per cue ({rules.max_lines})")
    group.add_argument("--max-cps", type=float, default=None, metavar="C",
                       help=f"characters per second ({rules.max_cps:g})")
    group.add_argument("--min-duration-ms", type=int, default=None, metavar="MS",
                       help=f"shortest cue ({rules.min_duration_ms})")
    group.add_argument("--min-gap-ms", type=int, default=None, metavar="MS",
                       help=f"gap between cues ({rules.min_gap_ms})")
    group.add_argument("--karaoke", action="store_true", help="vtt/ass: each word's time (<00:00:01.000>, {\\k})")


def _subtitle_rules(args: argparse.Namespace, stored: "Preferences") -> "SubtitleRules":
    """The rules the options give, the preferences' for those not given (ValueError: a bad value)."""
    from dataclasses import replace

    given = {"max_line_chars": args.max_line_chars, "max_lines": args.max_lines, "max_cps": args.max_cps,
             "min_duration_ms": args.min_duration_ms, "min_gap_ms": args.min_gap_ms}
    return replace(stored.subtitle_rules(karaoke=args.karaoke), **{k: v for k, v in given.items() if v is not None})


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(next((arg for arg in args_list[:1] if arg in SUBCOMMANDS), None))
    args = parser.parse_args(args_list)
    if args.command == "transcribe":
        if args.output is not None and len(args.files) > 1:
            parser.error("-o/--output takes one input file; use --output-dir for several")
        return transcribe_command(args, parser)
    if args.command == "check":
        return check_command(args.timeout)
    if args.command == "search":
        from worker.cli.search import search_command

        return search_command(args.query, args.limit, args.library, sys.stdout, sys.stderr)
    if args.command == "watch":
        from worker.cli.watch import watch_command
        from worker.jobs.watch_folders import DEFAULT_FORMATS, ExistingFiles, WatchFolder

        entry = WatchFolder(str(args.folder), args.backend, args.model, tuple(args.formats or DEFAULT_FORMATS),
                            str(args.output_dir or ""), ExistingFiles(args.existing))
        return watch_command(entry, args.library, args.settle, sys.stderr)
    if args.command == "deploy":
        return deploy_command()
    if args.command == "serve":
        from worker.cli.serve import run_serve

        return run_serve(args, sys.stdout, sys.stderr)
    if args.command == "live":
        from worker.cli.live import run_live

        return run_live(args, sys.stdout, sys.stderr)
    parser.print_help(sys.stderr)
    return EXIT_USAGE


class ProgressPrinter:
    """What `transcribe` tells the terminal while the queue works: per file, a one-line progress bar on a
    terminal (one line per stage change otherwise), its timing and summary lines, and one line when it fails.
    Called from the queue's threads: it only writes lines, from what the queue's reports carry."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.is_tty = stream.isatty()
        self.names: dict[int, str] = {}
        self._labels: dict[int, str] = {}
        self._bar_open = False
        self._lock = threading.Lock()

    def __call__(self, event: "QueueEvent") -> None:
        from worker.jobs.events import FailureLine, JobFinished, JobProgress, LogLine, Note, SummaryLine

        with self._lock:
            if isinstance(event, JobProgress):
                self._progress(event.job_id, event.fraction, event.label)
            elif isinstance(event, SummaryLine) and event.job_id in self.names:  # says what ran
                self._line(f"{self.names[event.job_id]}: {event.model} on {event.backend}: {event.summary}")
            elif isinstance(event, FailureLine):
                pass  # said once, as the job's ending (JobFinished carries the same reason)
            elif isinstance(event, LogLine) and event.job_id in self.names:
                self._line(event.text)
            elif isinstance(event, JobFinished) and event.job_id in self.names:
                if event.error:
                    self._line(failure_line(self.names[event.job_id], event.error))
            elif isinstance(event, Note):
                self._line(event.text)

    def _progress(self, job_id: int, fraction: float, label: str) -> None:
        name = self.names.get(job_id, "?")
        if self.is_tty:
            filled = int(fraction * 24)
            bar = "#" * filled + "-" * (24 - filled)
            self.stream.write(f"\r{name} [{bar}] {fraction:4.0%} {label:<40}")
            self.stream.flush()
            self._bar_open = True
        elif label != self._labels.get(job_id):
            self.stream.write(f"{name}: {label}\n")
            self.stream.flush()
        self._labels[job_id] = label

    def _line(self, text: str) -> None:
        if self._bar_open:
            self.stream.write("\n")
            self._bar_open = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def line(self, text: str) -> None:
        with self._lock:
            self._line(text)


def failure_line(name: str, reason: str) -> str:
    """A job's one-line reason (worker.jobs.queue.describe_failure), naming the file once."""
    return reason if reason.startswith(name) else f"{name}: {reason}"


def media_arguments(paths: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Files as given (a bad one fails with its reason), folders searched as the window does."""
    from worker.media.audio import collect_media

    files: list[Path] = []
    notes: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found, skipped = collect_media([path])
            files += found
            notes += skipped
        else:
            files.append(path)
    return files, notes


def _speakers_choice(given: str | None, default: str) -> str | None:
    """--speakers: auto, a count, or off; not given: the preferences' default."""
    choice = (default if given is None else given).strip().lower()
    return None if choice in ("", "off", "none", "0") else choice


def transcribe_command(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    """Files through the one job queue (worker.jobs.queue), written to the library unless --no-library; outputs in
    the order given. Ctrl-C cancels every job through the queue, waits a bounded time, and exits 130."""
    from dataclasses import replace

    from worker.core.interrupts import CtrlC
    from worker.jobs.export import exporter
    from worker.jobs.preferences import Preferences
    from worker.jobs.events import JobFinished
    from worker.jobs.queue import JobQueue
    from worker.library.job_status import JobStatus
    from worker.library.library import Library
    from worker.transcripts.formats import word_timestamps_needed

    formats = list(args.formats or DEFAULT_OUTPUT_FORMATS)
    if (problem := _destination_problem(args, formats)) is not None:
        if parser is not None:
            parser.error(problem)
        print(f"whisper-desk: {problem}", file=sys.stderr)
        return EXIT_USAGE
    stored = Preferences.load()
    preferences = replace(
        stored,
        backend=args.backend or stored.backend,
        local_engine=args.engine or stored.local_engine,
        local_threads=stored.local_threads if args.threads is None else args.threads,
        chunk_s=stored.chunk_s if args.chunk_seconds is None else args.chunk_seconds,
        max_containers=stored.max_containers if args.max_containers is None else args.max_containers,
        modal_plan=args.plan or stored.modal_plan,
        auto_export_formats=(),  # the command line writes what its options say, nothing more
    )
    word_timestamps = stored.word_timestamps if args.word_timestamps is None else args.word_timestamps
    try:
        rules = _subtitle_rules(args, stored)
        options = TranscriptionOptions(
            model=args.model or stored.model,
            language=args.language or stored.language.strip() or None,
            task=args.task or stored.task,  # type: ignore[arg-type]
            word_timestamps=word_timestamps or word_timestamps_needed(formats),  # subtitles and JSON need words
            initial_prompt=args.initial_prompt,
            beam_size=args.beam_size,
            speakers=_speakers_choice(args.speakers, stored.speakers_default),
        )
    except ValueError as exc:
        print(f"whisper-desk: {exc}", file=sys.stderr)
        return EXIT_USAGE

    files, notes = media_arguments(args.files)
    if args.output is not None and len(files) != 1:
        message = "-o/--output takes one input file; use --output-dir for several"
        if parser is not None:
            parser.error(message)
        print(f"whisper-desk: {message}", file=sys.stderr)
        return EXIT_USAGE
    printer = ProgressPrinter(sys.stderr)
    for note in notes:
        printer.line(note)
    if not files:
        return EXIT_FAILED
    if args.output_dir is not None:
        args.output_dir.mkdir(parents=True, exist_ok=True)

    library = Library(":memory:" if args.no_library else args.library)
    finished: "queue_module.Queue[JobFinished]" = queue_module.Queue()

    def listen(event: "QueueEvent") -> None:
        printer(event)
        if isinstance(event, JobFinished):
            finished.put(event)

    jobs = JobQueue(library, preferences, listen, only_own_jobs=True)
    pipeline = exporter(rules)  # one for the run: the aligner's model, if needed, loads once
    failures = 0
    try:
        with CtrlC() as ctrl_c:
            records = jobs.add_files(files, preferences.backend, options, again=args.again)
            order = [record.id for record in records]
            printer.names.update({record.id: record.name for record in records})
            endings: dict[int, JobFinished] = {}
            written = 0
            while written < len(order):
                event = ctrl_c.get(finished)  # Ctrl-C ends this wait at once
                endings[event.job_id] = event
                while written < len(order) and order[written] in endings:  # outputs in the order given
                    ending = endings[order[written]]
                    if ending.status != JobStatus.DONE:
                        failures += 1
                    elif not _write_output(args, formats, pipeline, ending.transcript, records[written], printer):
                        failures += 1
                    written += 1
    except KeyboardInterrupt:
        return _interrupted(jobs, printer)
    except BaseException:
        jobs.shutdown(timeout_s=CANCEL_WAIT_S, requeue=False)
        library.close()
        raise
    jobs.shutdown(timeout_s=CANCEL_WAIT_S, requeue=False)  # closes the backends
    library.close()
    return EXIT_FAILED if failures else EXIT_OK


CANCEL_WAIT_S = 15.0  # after Ctrl-C: how long the backends get to stop (Modal: their calls cancelled)


def _interrupted(jobs: "JobQueue", printer: ProgressPrinter) -> int:
    """Ctrl-C: cancel every job through the queue, wait (bounded) for the backends to stop, exit 130. A second
    Ctrl-C during that wait is ignored: the wait ends on its own."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    running = jobs.running_ids()
    jobs.cancel(list(printer.names))
    jobs.shutdown(timeout_s=CANCEL_WAIT_S, requeue=False)
    for job_id in running:
        printer.line(f"{printer.names.get(job_id, job_id)}: cancelled")
    jobs.library.close()
    return EXIT_INTERRUPTED


def _destination_problem(args: argparse.Namespace, formats: list[str]) -> str | None:
    """Why the outputs cannot go where the options say (one line), or None."""
    if args.output is not None and len(formats) > 1:
        return "-o/--output takes one format; use --output-dir for several"
    if args.output is None and args.output_dir is None:
        if len(formats) > 1:
            return "several formats are written to files: use --output-dir"
        if formats[0] in BINARY_FORMATS:
            return f"{formats[0]} is written to a file: use -o or --output-dir"
    return None


def _write_output(args: argparse.Namespace, formats: list[str], pipeline: "Exporter", transcript: "Transcript | None",
                  record: "JobRecord", printer: ProgressPrinter) -> bool:
    """The finished job's transcript in each format, through the one export pipeline, where the options say (a
    file, a folder, or stdout); a subtitle report once per distinct line. False when any output failed."""
    # the transcript the job's ending carried (as saved): nothing is read back from the library
    name = record.name
    if transcript is None:
        printer.line(f"{name}: the transcript is missing from the library")
        return False
    reports: set[str] = set()
    notes_told = len(pipeline.notes)
    succeeded = True
    for fmt in formats:
        lines: list[str] = []
        try:
            if args.output_dir is not None or args.output is not None:
                target = args.output if args.output is not None else args.output_dir / f"{Path(record.path).stem}.{fmt}"
                exported = pipeline.write(transcript, target, fmt, overwrite=args.overwrite, audio=record.path)
                report, lines = exported.report, [f"{name}: wrote {target}"]
            else:
                rendered = pipeline.render(transcript, fmt, audio=record.path)
                text = rendered.data if isinstance(rendered.data, str) else rendered.data.decode("utf-8")
                sys.stdout.write(text if text.endswith("\n") else text + "\n")
                sys.stdout.flush()
                report = rendered.report
            if report and report not in reports:
                reports.add(report)
                lines.insert(0, f"{name}: subtitles: {report}")
        except WhisperDeskError as exc:
            lines, succeeded = [failure_line(name, str(exc))], False
        except OSError as exc:
            lines, succeeded = [f"{name}: could not write the output: {exc}"], False
        for line in pipeline.notes[notes_told:] + lines:  # word timestamps that could not be computed come first
            printer.line(line)
        notes_told = len(pipeline.notes)
    return succeeded

def check_command(timeout_s: float) -> int:
    from worker.modal.bounded import cap_timeout
    from worker.modal.checks import check_app, check_credentials

    timeout_s = cap_timeout(timeout_s)
    started = time.monotonic()
    creds = check_credentials(timeout_s=timeout_s)
    print(f"credentials: {creds.state} — {creds.detail}")
    if creds.state != "ok":
        print("worker app: unknown — credentials must work first")
        return EXIT_FAILED
    remaining = max(0.1, timeout_s - (time.monotonic() - started))
    app = check_app(timeout_s=remaining)
    print(f"worker app: {app.state} — {app.detail}")
    return EXIT_OK if app.state == "deployed" else EXIT_FAILED


def deploy_command() -> int:
    from worker.modal.deploy import deploy

    try:
        result = deploy(log=lambda line: print(line, file=sys.stderr), cancel=None)
    except WhisperDeskError as exc:
        print(f"deploy failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"deployed: {result}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
