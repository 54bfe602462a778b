"""Event loops for the bounded Modal calls: modal's own connection tasks that our time limit abandoned must
not print "Task exception was never retrieved" tracebacks on the user's terminal later."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("whisper_desk.modal")


def _quiet_orphaned_connection_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exception = context.get("exception")
    if isinstance(exception, OSError) and "never retrieved" in str(context.get("message", "")):
        log.debug("an abandoned connection attempt failed: %s", exception)  # already reported as unreachable
        return
    loop.default_exception_handler(context)


def new_quiet_loop() -> asyncio.AbstractEventLoop:
    """A new event loop whose abandoned connection attempts fail silently (everything else is reported)."""
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(_quiet_orphaned_connection_errors)
    return loop
