"""`whisper-desk live`: transcribe an audio input as it is heard (worker.live) until Ctrl-C; each final line goes to
stdout as it comes, everything else to stderr. Ctrl-C makes the rest final and saves the recording as a library
job; the command then makes its file transcript (worker.live.session) and exits 0. A second Ctrl-C leaves that job
queued for the window instead."""

from __future__ import annotations

import argparse
import queue
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from worker.core.options import DEFAULT_MODEL, MODEL_NAMES

if TYPE_CHECKING:
    from worker.live.streaming import LiveUpdate


def add_live_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    lv = sub.add_parser("live", help="transcribe an audio input as it is heard, a line at a time; Ctrl-C stops "
                        "and saves")
    lv.add_argument("--device", default=None, metavar="NAME",
                    help="the input (a name from --list-devices; default: the sound server's default input)")
    lv.add_argument("--list-devices", action="store_true", help="list the inputs, and what the computer plays "
                    "(monitor sources), then exit")
    lv.add_argument("--model", choices=MODEL_NAMES, default=DEFAULT_MODEL)
    lv.add_argument("--language", default=None, help="a language code (default: detect; English for .en models)")
    lv.add_argument("--library", type=Path, default=None, help="the library file (default: the app's)")
    lv.add_argument("--recordings", type=Path, default=None, metavar="DIR",
                    help="where the recording is saved (default: the app's recordings folder)")


def run_live(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.list_devices:
        return list_devices(out, err)
    return live_command(args.device, args.model, args.language, args.library, args.recordings, out, err)


def list_devices(out: TextIO, err: TextIO) -> int:
    from worker.cli.exit_codes import EXIT_FAILED, EXIT_OK
    from worker.live.pulse import CaptureError, pulse_sources

    try:
        sources = pulse_sources()
    except CaptureError as exc:
        print(f"whisper-desk live: {exc}", file=err, flush=True)
        return EXIT_FAILED
    for source in sources:
        print(f"{source.name}\t{source.label}", file=out)
    out.flush()
    return EXIT_OK


def live_command(device: str | None, model: str, language: str | None, library_path: Path | None,
                 recordings: Path | None, out: TextIO, err: TextIO) -> int:
    from worker.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
    from worker.core.interrupts import CtrlC
    from worker.jobs.events import JobFinished
    from worker.jobs.preferences import Preferences
    from worker.jobs.queue import JobQueue
    from worker.library.library import Library
    from worker.live.pulse import CaptureError, ParecCapture, find_source
    from worker.live.session import LiveSession, resume_unfinished

    def say(line: str) -> None:
        print(line, file=err, flush=True)

    on_ctrl_c = signal.getsignal(signal.SIGINT)  # SIG_IGN under nohup: then Ctrl-C stays ignored throughout

    try:
        source = find_source(device)
    except CaptureError as exc:
        say(f"whisper-desk live: {exc}")
        return EXIT_USAGE if device is not None else EXIT_FAILED
    library = Library(library_path)
    endings: "queue.Queue[JobFinished]" = queue.Queue()

    def listen(event: object) -> None:
        if isinstance(event, JobFinished):
            endings.put(event)

    jobs = JobQueue(library, Preferences.load(), listen, only_own_jobs=True)
    jobs.set_paused(True)  # no job takes the CPU from the live passes; they run once listening ends
    ended = threading.Event()
    lost: list[str] = []
    printing = threading.Lock()

    def show(update: "LiveUpdate") -> None:
        with printing:
            for line in update.lines:
                print(line.text, file=out, flush=True)

    def device_ended(line: str) -> None:
        lost.append(line)
        ended.set()

    session: LiveSession | None = None
    capture: ParecCapture | None = None
    try:
        for record in resume_unfinished(jobs, recordings):
            say(f"{record.name}: an unfinished recording from an earlier run, queued: transcribed after this one")
        try:
            session = LiveSession(source.label, show, model=model, language=language, folder=recordings,
                                  on_error=lambda line: say(f"whisper-desk live: {line}; recording only"))
        except ValueError as exc:  # a model and language that do not go together
            say(f"whisper-desk live: {exc}")
            return EXIT_USAGE
        capture = ParecCapture(source, session.feed, device_ended)
        capture.start()
        say(f"listening to {source.label} with {model}; Ctrl-C stops and saves ({session.path.name})")
        with CtrlC() as ctrl_c:
            while not ended.is_set():
                ctrl_c.wait(0.2)  # Ctrl-C ends this wait at once
        say(lost[0] if lost else "the input ended")
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not break the clean stop
    finally:
        if capture is not None:
            capture.stop()
        if session is not None:
            say("finishing…")
            session.stop()
            record = session.save(jobs)
            say(f"saved {session.path} ({session.seconds:.1f} s) as job {record.id}; making its file transcript "
                "(Ctrl-C leaves it queued for the window)")
            signal.signal(signal.SIGINT, on_ctrl_c)
            jobs.set_paused(False)
            try:
                with CtrlC() as ctrl_c:
                    ending = ctrl_c.get(endings)
                    while ending.job_id != record.id:  # an earlier run's unfinished recording, queued before it
                        say(f"job {ending.job_id}: {ending.status.value}")
                        ending = ctrl_c.get(endings)
                say(f"job {record.id}: {ending.status.value}" + (f" ({ending.error})" if ending.error else ""))
            except KeyboardInterrupt:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                say(f"job {record.id} left queued: the window makes its transcript")
        jobs.shutdown(requeue=True)
        library.close()
    return EXIT_FAILED if lost else EXIT_OK
