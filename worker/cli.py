"""`whisper-desk`: the desktop app with no subcommand, or `transcribe`, `check`, `deploy` for scripts."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence, TextIO

from worker import __version__
from worker.errors import Cancelled, WhisperDeskError
from worker.events import CancelToken, Event, Progress, SegmentsReady, TimingReport
from worker.options import MODEL_NAMES, TranscriptionOptions

if TYPE_CHECKING:
    from worker.subtitles import SubtitleRules

SUBCOMMANDS = ("transcribe", "check", "deploy", "search", "watch")
CLI_FORMATS = ("txt", "srt", "vtt", "json", "tsv", "ass")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
CHECK_TIMEOUT_CAP_S = 10.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whisper-desk",
        description="Transcribe audio and video with Whisper, on this computer or on Modal T4 GPUs. "
        "With no subcommand (or with file paths) the desktop app starts.",
    )
    parser.add_argument("--version", action="version", version=f"whisper-desk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{transcribe,check,deploy,search,watch}")

    tr = sub.add_parser("transcribe", help="transcribe files and write transcripts")
    tr.add_argument("files", nargs="+", metavar="FILE")
    tr.add_argument("--backend", choices=("local", "modal"), default="local")
    tr.add_argument("--engine", choices=("faster", "openai"), default="faster", help="local engine (default: faster-whisper)")
    tr.add_argument("--model", choices=MODEL_NAMES, default=TranscriptionOptions().model)
    tr.add_argument("--language", default=None, help="language code (default: detect)")
    tr.add_argument("--task", choices=("transcribe", "translate"), default="transcribe")
    tr.add_argument("--word-timestamps", action="store_true")
    tr.add_argument("--initial-prompt", default=None)
    tr.add_argument("--beam-size", type=int, default=5)
    tr.add_argument("--threads", type=int, default=None, help="local: CPU threads for the engine (default: automatic)")
    tr.add_argument("--format", choices=CLI_FORMATS, default="txt")
    out = tr.add_mutually_exclusive_group()
    out.add_argument("--output-dir", type=Path, help="write DIR/<input stem>.<format> for each input")
    out.add_argument("-o", "--output", type=Path, help="output file (one input only)")
    tr.add_argument("--overwrite", action="store_true", help="replace existing output files")
    _add_subtitle_rule_options(tr)
    tr.add_argument("--chunk-seconds", type=float, default=30.0, help="Modal: target chunk length")
    tr.add_argument("--max-containers", type=int, default=8, help="Modal: GPU containers in parallel")

    ck = sub.add_parser("check", help="check Modal credentials and the deployed worker app")
    ck.add_argument("--timeout", type=float, default=CHECK_TIMEOUT_CAP_S, help="seconds (at most 10)")

    sub.add_parser("deploy", help="deploy the T4 worker app to Modal")

    from worker.search import DEFAULT_LIMIT
    from worker.watch import DEFAULT_FORMATS, SETTLE_S

    se = sub.add_parser("search", help="search every transcript in the library; one line per hit: FILE, time, text")
    se.add_argument("query", metavar="QUERY", help='words (all must match), "a phrase", or a prefix* (any case or accent)')
    se.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help=f"at most this many hits (default: {DEFAULT_LIMIT})")
    se.add_argument("--library", type=Path, default=None, help="the library file (default: the app's)")

    wa = sub.add_parser("watch", help="transcribe each media file that lands in a folder, once; Ctrl-C stops")
    wa.add_argument("folder", type=Path, metavar="DIR")
    wa.add_argument("--output-dir", type=Path, default=None, help="write the outputs here (default: next to each file)")
    wa.add_argument("--format", dest="formats", nargs="+", action="extend", choices=CLI_FORMATS, metavar="F",
                    help=f"output formats ({', '.join(CLI_FORMATS)}; default: {', '.join(DEFAULT_FORMATS)})")
    wa.add_argument("--backend", choices=("local", "modal"), default="local")
    wa.add_argument("--model", choices=MODEL_NAMES, default=TranscriptionOptions().model)
    wa.add_argument("--settle", type=float, default=SETTLE_S, metavar="SECONDS",
                    help=f"a file is queued once unchanged this long (default: {SETTLE_S:g})")
    wa.add_argument("--library", type=Path, default=None, help="the library file (default: the app's)")
    return parser


def _add_subtitle_rule_options(parser: argparse.ArgumentParser) -> None:
    """SRT/VTT/ASS cues re-cut from word timestamps (turned on for these formats); TXT/JSON/TSV ignore them."""
    from worker import subtitles

    group = parser.add_argument_group("subtitle rules (srt, vtt, ass)")
    group.add_argument("--max-line-chars", type=int, default=subtitles.DEFAULT_MAX_LINE_CHARS, metavar="N")
    group.add_argument("--max-lines", type=int, default=subtitles.DEFAULT_MAX_LINES, metavar="L", help="lines per cue")
    group.add_argument("--max-cps", type=float, default=subtitles.DEFAULT_MAX_CPS, metavar="C",
                       help="characters per second")
    group.add_argument("--min-duration-ms", type=int, default=subtitles.DEFAULT_MIN_DURATION_MS, metavar="MS")
    group.add_argument("--min-gap-ms", type=int, default=subtitles.DEFAULT_MIN_GAP_MS, metavar="MS")
    group.add_argument("--karaoke", action="store_true", help="vtt/ass: each word's time (<00:00:01.000>, {\\k})")


def _subtitle_rules(args: argparse.Namespace) -> "SubtitleRules":
    from worker.subtitles import SubtitleRules

    return SubtitleRules(max_line_chars=args.max_line_chars, max_lines=args.max_lines, max_cps=args.max_cps,
                         min_duration_ms=args.min_duration_ms, min_gap_ms=args.min_gap_ms, karaoke=args.karaoke)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0] not in SUBCOMMANDS and not args_list[0].startswith("-")):
        return _start_gui(args_list)
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command == "transcribe":
        if args.output is not None and len(args.files) > 1:
            parser.error("-o/--output takes one input file; use --output-dir for several")
        return transcribe_command(args)
    if args.command == "check":
        return check_command(args.timeout)
    if args.command == "search":
        from worker.search import search_command

        return search_command(args.query, args.limit, args.library, sys.stdout, sys.stderr)
    if args.command == "watch":
        from worker.watch import DEFAULT_FORMATS, WatchFolder, watch_command

        entry = WatchFolder(str(args.folder), args.backend, args.model, tuple(args.formats or DEFAULT_FORMATS),
                            str(args.output_dir or ""))
        return watch_command(entry, args.library, args.settle, sys.stderr)
    if args.command == "deploy":
        return deploy_command()
    return _start_gui([])


def _no_display() -> bool:
    """On Linux/BSD with no X11 or Wayland display and no Qt platform chosen, a window cannot open."""
    if not sys.platform.startswith(("linux", "freebsd", "openbsd")):
        return False
    return not any(os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def _start_gui(paths: list[str]) -> int:
    if _no_display():
        print("whisper-desk: no display to open the window on; to transcribe from a terminal, run "
              "`whisper-desk transcribe FILE...` (see `whisper-desk --help`)", file=sys.stderr)
        return EXIT_FAILED
    try:
        from gui.app import main as gui_main
    except ImportError as exc:  # pragma: no cover - only without the GUI package
        print(f"whisper-desk: the desktop app is not available ({exc})", file=sys.stderr)
        return EXIT_FAILED
    return gui_main(paths)


class ProgressPrinter:
    """A one-line progress bar on a terminal, one line per stage change otherwise."""

    def __init__(self, name: str, stream: TextIO) -> None:
        self.name = name
        self.stream = stream
        self.is_tty = stream.isatty()
        self._last_label = ""

    def __call__(self, event: Event) -> None:
        if isinstance(event, Progress):
            label = event.label()
            if self.is_tty:
                filled = int(event.fraction * 24)
                bar = "#" * filled + "-" * (24 - filled)
                self.stream.write(f"\r{self.name} [{bar}] {event.fraction:4.0%} {label:<40}")
                self.stream.flush()
            elif label != self._last_label:
                self.stream.write(f"{self.name}: {label}\n")
            self._last_label = label
        elif isinstance(event, TimingReport) and event.chunk_index is not None:
            from worker.timing import timing_line

            self.end_line()
            self.stream.write(f"{self.name}: {timing_line(event.timings, event.chunk_index, event.timings.get('chunk_count'))}\n")
        elif isinstance(event, SegmentsReady):
            pass

    def end_line(self) -> None:
        if self.is_tty and self._last_label:
            self.stream.write("\n")
            self._last_label = ""


def transcribe_command(args: argparse.Namespace) -> int:
    from worker.backends.base import create_backend
    from worker.formats import export_transcript, render
    from worker.subtitles import RULE_FORMATS, cut_cues
    from worker.timing import summarize

    try:
        rules = _subtitle_rules(args)
        options = TranscriptionOptions(
            model=args.model,
            language=args.language,
            task=args.task,
            word_timestamps=args.word_timestamps or args.format in RULE_FORMATS,  # cues are cut at words
            initial_prompt=args.initial_prompt,
            beam_size=args.beam_size,
        )
    except ValueError as exc:
        print(f"whisper-desk: {exc}", file=sys.stderr)
        return EXIT_USAGE

    settings: dict[str, object]
    if args.backend == "local":
        settings = {"engine": args.engine, "threads": args.threads}
    else:
        settings = {"chunk_s": args.chunk_seconds, "max_containers": args.max_containers}
    if args.output_dir is not None:
        args.output_dir.mkdir(parents=True, exist_ok=True)

    cancel = CancelToken()
    backend = create_backend(args.backend, **settings)
    failures = 0
    try:
        for file_name in args.files:
            path = Path(file_name)
            printer = ProgressPrinter(path.name, sys.stderr)
            started = time.monotonic()
            try:
                transcript = backend.transcribe(path, options, printer, cancel)
                printer.end_line()
                summary = summarize(transcript.timings.get("chunks") or [transcript.timings], time.monotonic() - started)
                print(f"{path.name}: {transcript.model} on {transcript.backend}: {summary.line()}", file=sys.stderr)
                if args.format in RULE_FORMATS and (report := cut_cues(transcript, rules).report_line()):
                    print(f"{path.name}: subtitles: {report}", file=sys.stderr)
                if args.output_dir is not None:
                    target = args.output_dir / f"{path.stem}.{args.format}"
                    export_transcript(transcript, target, args.format, overwrite=args.overwrite, rules=rules)
                    print(f"{path.name}: wrote {target}", file=sys.stderr)
                elif args.output is not None:
                    export_transcript(transcript, args.output, args.format, overwrite=args.overwrite, rules=rules)
                    print(f"{path.name}: wrote {args.output}", file=sys.stderr)
                else:
                    rendered = render(transcript, args.format, rules=rules)
                    sys.stdout.write(rendered if isinstance(rendered, str) else rendered.decode("utf-8"))
                    if not str(rendered).endswith("\n"):
                        sys.stdout.write("\n")
                    sys.stdout.flush()
            except KeyboardInterrupt:
                cancel.cancel()
                printer.end_line()
                print(f"{path.name}: cancelled", file=sys.stderr)
                return 130
            except Cancelled:
                printer.end_line()
                print(f"{path.name}: cancelled", file=sys.stderr)
                failures += 1
            except WhisperDeskError as exc:
                printer.end_line()
                message = str(exc)
                print(message if message.startswith(path.name) else f"{path.name}: {message}", file=sys.stderr)
                failures += 1
            except Exception as exc:  # one line per file, never a traceback
                printer.end_line()
                print(f"{path.name}: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
                failures += 1
    finally:
        backend.close()
    return EXIT_FAILED if failures else EXIT_OK


def check_command(timeout_s: float) -> int:
    from worker.modal.checks import check_app, check_credentials

    timeout_s = max(0.1, min(float(timeout_s), CHECK_TIMEOUT_CAP_S))
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
