"""The `whisper-desk` command: subcommands (`transcribe`, `check`, …) and options go to the Qt-free command line
(worker.cli); anything else (nothing, or files and folders to queue) starts the desktop app."""

from __future__ import annotations

import os
import sys
from typing import Sequence

EXIT_FAILED = 1


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    from worker.cli.main import SUBCOMMANDS

    if args and (args[0] in SUBCOMMANDS or args[0].startswith("-")):
        from worker.cli.main import main as cli_main

        return cli_main(args)
    return start_app(args)


def no_display() -> bool:
    """On Linux/BSD with no X11 or Wayland display and no Qt platform chosen, a window cannot open."""
    if not sys.platform.startswith(("linux", "freebsd", "openbsd")):
        return False
    return not any(os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def start_app(paths: list[str]) -> int:
    if no_display():
        print("whisper-desk: no display to open the window on; to transcribe from a terminal, run "
              "`whisper-desk transcribe FILE...` (see `whisper-desk --help`)", file=sys.stderr)
        return EXIT_FAILED
    from gui.app import main as app_main

    return app_main(paths)


if __name__ == "__main__":  # not when a worker process (multiprocessing "spawn") re-imports the main module
    sys.exit(main())
