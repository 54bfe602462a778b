"""Running a coroutine with cancel: the one way, used by the Modal fan-out and by every bounded Modal call.

run_cancellable(make, cancel, timeout_s=None, workers=None, in_thread=False) runs make() on a private event loop
and returns its value. `cancel` cancels it at once from any thread (Cancelled); `timeout_s` bounds it
(TimeoutError). It runs in this thread, or in a helper thread when this one already runs a loop or `in_thread`
is set; `join_timeout_s` bounds the wait for that thread (a cleanup that hangs past it is left behind, daemon).
In the main thread, Ctrl-C cancels like `cancel` does and then raises KeyboardInterrupt; a second Ctrl-C stops
waiting. The loops are quiet about connection attempts a time limit abandoned: modal's own connection tasks
must not print "Task exception was never retrieved" tracebacks on the user's terminal later."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Coroutine, TypeVar

from worker.core.cancel import CancelToken
from worker.core.errors import Cancelled

log = logging.getLogger("whisper_desk.modal")

T = TypeVar("T")


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


async def await_cancellable(make: Callable[[], Coroutine[Any, Any, T]], cancel: CancelToken | None,
                            timeout_s: float | None = None) -> T:
    """Await make() in the running loop; `cancel` (from any thread) cancels it at once and raises Cancelled."""
    task = asyncio.ensure_future(make())
    loop = asyncio.get_running_loop()

    def stop() -> None:
        try:
            loop.call_soon_threadsafe(task.cancel)
        except RuntimeError:  # the loop is closed: the work is over already
            pass

    if cancel is not None:
        cancel.on_cancel(stop)
    try:
        return await (task if timeout_s is None else asyncio.wait_for(task, timeout_s))
    except asyncio.CancelledError:
        if cancel is not None and cancel.cancelled:
            raise Cancelled() from None
        raise


def run_cancellable(make: Callable[[], Coroutine[Any, Any, T]], cancel: CancelToken | None, *,
                    timeout_s: float | None = None, workers: int | None = None, in_thread: bool = False,
                    join_timeout_s: float | None = None, thread_name: str = "async-call") -> T:
    """Run make() on a private event loop (see the module's docstring)."""
    if cancel is not None and cancel.cancelled:
        raise Cancelled()
    if not in_thread:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return _run_here(make, cancel, timeout_s, workers)
    outcome: dict[str, Any] = {}

    def runner() -> None:
        try:
            outcome["value"] = _run_here(make, cancel, timeout_s, workers)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=runner, name=thread_name, daemon=True)
    thread.start()
    thread.join(join_timeout_s)
    if thread.is_alive():
        if cancel is not None and cancel.cancelled:
            raise Cancelled()
        raise TimeoutError()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _run_here(make: Callable[[], Coroutine[Any, Any, T]], cancel: CancelToken | None, timeout_s: float | None,
              workers: int | None) -> T:
    """Run the loop in this thread; threads still busy after it ends (a decode step) finish in the background."""
    loop = new_quiet_loop()
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="async-call") if workers else None
    if executor is not None:
        loop.set_default_executor(executor)
    interrupted = False
    token = cancel if cancel is not None else CancelToken()

    def on_interrupt() -> None:
        nonlocal interrupted
        if interrupted:
            raise KeyboardInterrupt
        interrupted = True
        token.cancel()

    # the loop's own signal handling: it reads the signal from its wakeup pipe, so a SIGINT the OS handed to
    # another thread is seen at once (see worker/core/interrupts.py)
    handles_ctrl_c = (threading.current_thread() is threading.main_thread()
                      and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    if handles_ctrl_c:
        previous_fd = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(previous_fd)
        loop.add_signal_handler(signal.SIGINT, on_interrupt)
    try:
        return loop.run_until_complete(await_cancellable(make, token, timeout_s))
    except Cancelled:
        if interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        if handles_ctrl_c:
            loop.remove_signal_handler(signal.SIGINT)  # restores the default handler
            signal.set_wakeup_fd(previous_fd)
        try:
            _cancel_leftover_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)


def _cancel_leftover_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Tasks the work left running (modal's connection attempts a time limit gave up on) are cancelled and
    awaited, so none is destroyed pending."""
    leftover = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in leftover:
        task.cancel()
    if leftover:
        loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))


__all__ = ["await_cancellable", "new_quiet_loop", "run_cancellable"]
