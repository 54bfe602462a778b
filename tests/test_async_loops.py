"""Abandoned connection attempts (a time limit gave up on them) fail silently; other errors are still reported."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from worker.async_loops import new_quiet_loop


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
