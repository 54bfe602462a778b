"""Running a coroutine with cancel (worker.core.async_loops): abandoned connection attempts (a time limit gave up on
them) fail silently, other errors are still reported; cancel, time limits, helper threads and leftover tasks."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading

import pytest

from worker.core.async_loops import new_quiet_loop, run_cancellable
from worker.core.cancel import CancelToken
from worker.core.errors import Cancelled


async def _refused() -> None:
    raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)")


async def _broken() -> None:
    raise ValueError("a real bug")


@pytest.mark.parametrize(("failing", "reported"), [(_refused, False), (_broken, True)])
def test_only_abandoned_connection_errors_are_quiet(failing, reported, caplog) -> None:
    loop = new_quiet_loop()

    async def abandon() -> None:
        asyncio.ensure_future(failing())  # nobody awaits it, as when wait_for gave up on a connect
        await asyncio.sleep(0.01)

    with caplog.at_level(logging.DEBUG):
        loop.run_until_complete(abandon())
        loop.close()
        gc.collect()  # the orphaned task is reported when it is collected
    errors = [r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR]
    assert bool(errors) == reported
    if not reported:
        assert any("abandoned connection attempt" in r.getMessage() for r in caplog.records)


# --- run_cancellable: the one runner for the fan-out and the bounded Modal calls ---------------------------

def test_returns_the_value_and_raises_the_coroutines_error() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    async def fail() -> None:
        raise ValueError("bad input")

    assert run_cancellable(answer, None) == 42
    assert run_cancellable(answer, CancelToken(), in_thread=True) == 42
    with pytest.raises(ValueError, match="bad input"):
        run_cancellable(fail, None, in_thread=True)


def test_cancel_from_another_thread_stops_it_at_once_and_cancels_its_tasks() -> None:
    cancel = CancelToken()
    started, cleaned_up = threading.Event(), threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned_up.set()

    threading.Thread(target=lambda: started.wait(30) and cancel.cancel(), daemon=True).start()
    with pytest.raises(Cancelled):
        run_cancellable(forever, cancel, workers=2)
    assert cleaned_up.is_set()
    with pytest.raises(Cancelled):  # already cancelled: nothing runs
        run_cancellable(forever, cancel)


def test_time_limit_and_a_running_loop_get_a_helper_thread() -> None:
    ran_in: list[str] = []

    async def slow() -> None:
        ran_in.append(threading.current_thread().name)
        await asyncio.sleep(3600)

    with pytest.raises(TimeoutError):
        run_cancellable(slow, None, timeout_s=0.2)

    async def caller() -> None:  # a thread that already runs a loop (e.g. a notebook): not this thread's loop
        with pytest.raises(TimeoutError):
            run_cancellable(slow, None, timeout_s=0.2, thread_name="helper")

    asyncio.run(caller())
    assert ran_in == [threading.main_thread().name, "helper"]


def test_leftover_tasks_are_cancelled_not_destroyed_pending(caplog) -> None:
    leftover_cancelled = threading.Event()

    async def orphan() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            leftover_cancelled.set()
            raise

    async def leaves_a_task() -> str:
        asyncio.ensure_future(orphan())
        await asyncio.sleep(0.01)
        return "done"

    with caplog.at_level(logging.DEBUG):
        assert run_cancellable(leaves_a_task, None, in_thread=True) == "done"
        gc.collect()
    assert leftover_cancelled.is_set()
    assert not [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]
