"""Ctrl-C reaches a waiting main thread at once, also when SIGINT lands on another thread.

Each case runs in its own Python process; a helper thread sends SIGINT to itself with pthread_kill (before
worker/core/interrupts.py, an asyncio loop sleeping 30 s in the main thread noticed it only after the 30 s)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SIGINT_TO_ANOTHER_THREAD = textwrap.dedent("""
    import signal, threading, time

    def ctrl_c_to_this_thread():
        time.sleep(0.5)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)
        while True:  # the thread lives on, busy
            sum(range(10000))

    threading.Thread(target=ctrl_c_to_this_thread, daemon=True).start()
    started = time.monotonic()
""")


def run_case(body: str) -> str:
    script = SIGINT_TO_ANOTHER_THREAD + textwrap.dedent(body)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def seconds(line: str) -> float:
    return float(line.rsplit(" ", 1)[1])


def test_a_queue_wait_ends_at_once():
    line = run_case("""
        import queue
        from worker.core.interrupts import CtrlC
        with CtrlC() as ctrl_c:
            try:
                ctrl_c.get(queue.Queue())
            except KeyboardInterrupt:
                print(f"interrupted after {time.monotonic() - started:.2f}")
    """)
    assert line.startswith("interrupted after") and seconds(line) < 5, line


def test_a_sleep_ends_at_once_and_the_old_handler_comes_back():
    line = run_case("""
        from worker.core.interrupts import CtrlC
        with CtrlC() as ctrl_c:
            try:
                ctrl_c.wait(30)
            except KeyboardInterrupt:
                waited = time.monotonic() - started
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.set_wakeup_fd(-1) == -1
        print(f"interrupted after {waited:.2f}")
    """)
    assert seconds(line) < 5, line


def test_a_coroutine_in_the_main_thread_is_cancelled_then_interrupted_at_once():
    line = run_case("""
        import asyncio
        from worker.core.async_loops import run_cancellable
        cancelled = []

        async def work():
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        try:
            run_cancellable(work, None)
        except KeyboardInterrupt:
            assert cancelled == [True]  # the work was cancelled before the interrupt went up
            print(f"interrupted after {time.monotonic() - started:.2f}")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    """)
    assert line.startswith("interrupted after") and seconds(line) < 5, line


def test_a_process_started_with_ctrl_c_ignored_keeps_ignoring_it():
    """nohup, or a background job of a script: Ctrl-C is not for it, as for any POSIX program."""
    line = run_case("""
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # as inherited from nohup
        from worker.core.interrupts import CtrlC
        with CtrlC() as ctrl_c:
            ctrl_c.wait(2)
            assert ctrl_c.fileno() == -1 and not ctrl_c.pressed()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        print(f"still running after {time.monotonic() - started:.2f}")
    """)
    assert line.startswith("still running after") and seconds(line) >= 2, line
