"""`whisper-desk serve`: the OpenAI-compatible speech-to-text API (worker.serve) until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path
from typing import TextIO

API_KEY_ENV = "WHISPER_DESK_API_KEY"  # the key, when --api-key is not given (a command line shows in `ps`)
API_KEY_BYTES = 24  # a random key's entropy


def add_serve_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from worker.serve.server import DEFAULT_HOST, DEFAULT_PORT, MAX_UPLOAD_BYTES, REQUEST_TIMEOUT_S

    sv = sub.add_parser("serve", help="serve an OpenAI-compatible speech-to-text API (/v1/audio/transcriptions); "
                        "Ctrl-C stops")
    sv.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default: {DEFAULT_HOST}, this computer only)")
    sv.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default: {DEFAULT_PORT}; 0 picks a free one")
    sv.add_argument("--api-key", default=os.environ.get(API_KEY_ENV) or None,
                    help=f"the key clients must send (default: ${API_KEY_ENV}, else a new random key, printed)")
    sv.add_argument("--backend", choices=("local", "modal"), default=None, help="default: the preferences'")
    sv.add_argument("--library", type=Path, default=None, help="the library file (default: the app's)")
    sv.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_BYTES / 1024**2,
                    help=f"largest file accepted (default: {MAX_UPLOAD_BYTES / 1024**2:g})")
    sv.add_argument("--timeout", type=float, default=REQUEST_TIMEOUT_S, metavar="SECONDS",
                    help="a request's time limit, upload to answer; past it, its job is cancelled "
                    f"(default: {REQUEST_TIMEOUT_S:g})")


def run_serve(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """serve_command with the parsed arguments."""
    return serve_command(args.host, args.port, args.api_key, args.backend, args.library, args.max_upload_mb,
                         args.timeout, out, err)


def serve_command(host: str, port: int, api_key: str | None, backend: str | None, library_path: Path | None,
                  max_upload_mb: float, timeout_s: float, out: TextIO, err: TextIO) -> int:
    """Serve until Ctrl-C (exit 130; requests still open are answered with an error, their jobs cancelled).
    Prints the base URL and the key to `out`, once: they go nowhere else."""
    import signal

    from worker.cli.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
    from worker.core.interrupts import CtrlC
    from worker.jobs.preferences import Preferences
    from worker.library.library import Library
    from worker.serve.server import ApiServer, ServerSettings
    from worker.serve.service import TranscriptionService

    def say(line: str) -> None:
        print(line, file=err, flush=True)

    if max_upload_mb <= 0 or timeout_s <= 0:
        say("whisper-desk serve: --max-upload-mb and --timeout must be more than 0")
        return EXIT_USAGE
    key = api_key or secrets.token_urlsafe(API_KEY_BYTES)
    library = Library(library_path)
    service = TranscriptionService(library, Preferences.load(), say, backend=backend)
    settings = ServerSettings(key, max_upload_bytes=int(max_upload_mb * 1024**2), request_timeout_s=timeout_s)
    server = ApiServer(service, settings, host, port, say)
    try:
        try:
            base_url = server.start()
        except OSError as exc:
            say(f"whisper-desk serve: cannot listen on {host}:{port}: {exc.strerror or exc}")
            return EXIT_FAILED
        print(f"base URL: {base_url}", file=out)
        print(f"API key: {key}", file=out, flush=True)
        say(f"serving {library.path} on {service.backend or service.queue.preferences.backend}; Ctrl-C stops")
        with CtrlC() as ctrl_c:
            while server.running:
                ctrl_c.wait(0.5)  # Ctrl-C ends this wait at once
        say("whisper-desk serve: the server stopped")
        return EXIT_FAILED
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not break the clean stop
        say("stopping: open requests are cancelled")
        return EXIT_INTERRUPTED
    finally:
        server.stop()
        service.close()
        library.close()
