"""Transcription on this computer, in a separate long-lived process.

The worker process (multiprocessing "spawn") decodes the file and runs the engine; the loaded model stays in it
between files. The file reaches the engine as a stream of blocks cut at silences (worker.media.chunking), so a
file of any length takes bounded memory. It talks to the caller over a Pipe: progress, segments and timings as they happen, then the
result or a one-line error (class name + message, never a traceback). Cancelling stops the process at once
(terminate, then kill after a short grace); the next job starts a fresh one. Nothing is written to disk by a
job, so a stopped process leaves nothing half-written.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, NoReturn

from worker.backends.events import Emit, Progress, SegmentsReady, Stage, TimingReport
from worker.core.cancel import CancelToken
from worker.core.errors import Cancelled, MediaError, TranscriptionError, one_line
from worker.core.options import TranscriptionOptions
from worker.transcripts.model import Segment, Transcript

if TYPE_CHECKING:
    from worker.media.chunking import Chunk

STOP_GRACE_S = 1.0  # after terminate(), before kill()
_POLL_S = 0.1


class LocalBackend:
    name = "local"

    def __init__(self, engine: str = "faster", threads: int | None = None, block_s: float | None = None) -> None:
        """`block_s`: the engine takes files in blocks of about this length (BLOCK_S)."""
        from worker.engines.base import ENGINE_NAMES

        if engine not in ENGINE_NAMES:
            raise ValueError(f"unknown local engine {engine!r}; choose one of {', '.join(ENGINE_NAMES)}")
        self.engine = engine
        self.threads = threads
        self.block_s = block_s or BLOCK_S
        self._job_lock = threading.Lock()  # one job at a time
        self._state_lock = threading.Lock()  # guards the process handles (cancel/close come from other threads)
        self._process: Any = None  # multiprocessing.context.SpawnProcess
        self._conn: Connection | None = None
        self._stopping = False  # set while cancel/close stop the process on purpose
        self._closed = False
        self._job_id = 0  # a late cancel of a finished job must not stop the next one

    @property
    def pid(self) -> int | None:
        """The worker process's id while one runs."""
        process = self._process
        return process.pid if process is not None and process.is_alive() else None

    def start(self) -> None:
        """Start the worker process now (it starts on the first job otherwise)."""
        with self._state_lock:
            self._ensure_process()

    def transcribe(
        self, path: Path, options: TranscriptionOptions, emit: Emit, cancel: CancelToken, ledger: object = None
    ) -> Transcript:
        """`ledger` (remote calls of a job) does not apply here: nothing is sent anywhere."""
        with self._job_lock:
            if self._closed:
                raise TranscriptionError("the local backend is closed")
            cancel.raise_if_cancelled()
            with self._state_lock:
                self._stopping = False
                self._job_id += 1
                job_id = self._job_id
                conn, process = self._ensure_process()
            cancel.on_cancel(lambda: self._stop_for_cancel(job_id))
            try:
                conn.send(("job", str(path), options.to_dict()))
            except (OSError, ValueError):
                error = self._crash_message(process)
                self._reap()
                cancel.raise_if_cancelled()
                raise TranscriptionError(error) from None
            try:
                transcript = self._follow(conn, process, emit, cancel)
            except _JobFailed as failed:  # the process finished the job with an error and stays usable
                raise failed.error from None
            except BaseException:  # cancelled, crashed, or the caller's emit raised: the job may still be
                self._reap()  # running there, and its late events must not reach the next job
                raise
            transcript.source = transcript.source or str(path)
            return transcript

    def close(self) -> None:
        """Stop the worker process (a running job ends with Cancelled)."""
        self._closed = True
        with self._state_lock:
            self._stopping = True
            conn, process = self._conn, self._process
        if process is None:
            return
        if self._job_lock.acquire(blocking=False):  # idle: ask it to leave, then make sure
            try:
                try:
                    conn.send(("stop",))  # type: ignore[union-attr]
                except (OSError, ValueError):
                    pass
                process.join(STOP_GRACE_S)
                self._kill()
            finally:
                self._job_lock.release()
            return
        # a job is running: stop its process; the job's thread notices, cleans up and raises Cancelled
        if process.is_alive():
            process.terminate()
        if self._job_lock.acquire(timeout=3 * STOP_GRACE_S):
            try:
                self._kill()
            finally:
                self._job_lock.release()

    # ------------------------------------------------------------ process handling

    def _ensure_process(self) -> tuple[Connection, Any]:
        if self._process is not None and self._process.is_alive() and self._conn is not None:
            return self._conn, self._process
        self._kill_locked()
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe(duplex=True)
        process = context.Process(
            target=serve, args=(child, self.engine, self.threads, self.block_s), name=f"whisper-desk-{self.engine}", daemon=True
        )
        process.start()
        child.close()
        self._process, self._conn = process, parent
        return parent, process

    def _stop_for_cancel(self, job_id: int) -> None:
        with self._state_lock:
            if job_id != self._job_id or not self._job_lock.locked():
                return  # that job is over
            self._stopping = True
            process = self._process
        if process is not None and process.is_alive():
            process.terminate()  # the job thread notices at once and finishes the stop

    def _kill(self) -> None:
        with self._state_lock:
            self._kill_locked()

    def _kill_locked(self) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is None:
            return
        if process.is_alive():
            process.terminate()
            process.join(STOP_GRACE_S)
            if process.is_alive():
                process.kill()
        process.join(STOP_GRACE_S)
        if process.exitcode is not None:
            process.close()

    def _reap(self) -> None:
        """The process is gone (or must go): clean up so the next job starts a fresh one."""
        self._kill()

    @staticmethod
    def _crash_message(process: Any) -> str:
        process.join(STOP_GRACE_S)
        code = process.exitcode
        return f"the engine process stopped unexpectedly (exit code {code if code is not None else 'unknown'})"

    # ------------------------------------------------------------ one job

    def _follow(self, conn: Connection, process: Any, emit: Emit, cancel: CancelToken) -> Transcript:
        sentinel = process.sentinel
        while True:
            if cancel.cancelled or self._stopping:
                self._reap()
                raise Cancelled("cancelled" if cancel.cancelled else "the local backend was closed")
            try:
                ready = wait([conn, sentinel], timeout=_POLL_S)
                if not ready:
                    continue
                message = conn.recv() if conn in ready or conn.poll() else None
            except (EOFError, OSError, ValueError):  # the pipe closed with the process
                message = None
            if message is None:  # the process ended without a result
                if cancel.cancelled or self._stopping:
                    continue  # the loop top turns this into Cancelled
                error = self._crash_message(process)
                self._reap()
                raise TranscriptionError(error)
            kind = message[0]
            if kind == "event":
                emit(message[1])
            elif kind == "result":
                return Transcript.from_dict(message[1])
            elif kind == "error":
                raise _JobFailed(_rebuild_error(message[1], message[2]))


class _JobFailed(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _rebuild_error(kind: str, payload: Any) -> Exception:
    if kind == "MediaError":
        path, reason = payload
        return MediaError(path, reason)
    return TranscriptionError(str(payload))


# ---------------------------------------------------------------- the worker process


def serve(conn: Connection, engine_kind: str, threads: int | None, block_s: float) -> None:
    """The worker process's loop: one job at a time until "stop" or the pipe closes."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it cancels or closes
    try:  # the engines' (disabled) progress bars would make tqdm create a multiprocessing lock, which a
        # terminated process leaks (a resource_tracker warning at exit); a thread lock serves one process
        from tqdm import tqdm

        tqdm.set_lock(threading.RLock())
    except ImportError:
        pass
    engines: dict[str, Any] = {}
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            _leave()
        if message[0] != "job":
            _leave()
        _, path, options_dict = message
        try:
            options = TranscriptionOptions.from_dict(options_dict)
            result = _run_job(conn, engines, engine_kind, threads, Path(path), options, block_s)
            conn.send(("result", result.to_dict()))
        except MediaError as exc:
            conn.send(("error", "MediaError", (exc.path, exc.reason)))
        except Exception as exc:  # noqa: BLE001 - every failure goes back as one line
            text = one_line(str(exc))
            if not isinstance(exc, TranscriptionError):
                text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
            conn.send(("error", "TranscriptionError", text))


def _leave() -> NoReturn:
    """End the worker process now: nothing is left to write, and tearing down the loaded model and libraries
    at interpreter exit took 0.1-0.8 s here (measured), which close() waits for."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _run_job(
    conn: Connection,
    engines: dict[str, Any],
    engine_kind: str,
    threads: int | None,
    path: Path,
    options: TranscriptionOptions,
    block_s: float,
) -> Transcript:
    from concurrent.futures import ThreadPoolExecutor

    from worker.engines.base import check_options

    started = time.perf_counter()

    def emit(event: Any) -> None:
        conn.send(("event", event))

    check_options(options.model, options)  # fail before decoding on what the model cannot do
    emit(Progress(Stage.DECODING, 0.0, message=f"decoding {path.name}"))
    with ThreadPoolExecutor(1, thread_name_prefix="decode") as pool:  # the file opens and decodes while the model loads
        opening = pool.submit(_Blocks.open, path, block_s)
        try:
            engine = _loaded_engine(emit, engines, engine_kind, threads, options.model)
        finally:
            blocks = opening.result()  # a MediaError wins over a load error: the file comes first
    duration = blocks.duration
    emit(Progress(Stage.TRANSCRIBING, 0.0))

    def on_segment(segment: Segment) -> None:
        emit(SegmentsReady([segment]))
        emit(Progress(Stage.TRANSCRIBING, min(1.0, segment.end / duration) if duration > 0 else 1.0))

    transcript = engine.transcribe_blocks(blocks, options, on_segment=on_segment)
    transcript.backend = "local"
    transcript.source = str(path)
    transcript.timings.update(decode_s=round(blocks.decode_s, 3), blocks=blocks.taken,
                              wall_s=round(time.perf_counter() - started, 3), worker_pid=os.getpid())
    emit(Progress(Stage.TRANSCRIBING, 1.0))
    emit(TimingReport(dict(transcript.timings), chunk_index=0))
    return transcript


# The engine takes a file in blocks of about BLOCK_S, cut at silences (worker.media.chunking), decoded as it
# needs them, and holds only the blocks whose speech it has yet to decode: memory stays bounded at any length (3
# hours of samples would be 0.7 GB). Its windows run across the seams, so the blocks' size costs no speed.
BLOCK_S = 120.0


class _Blocks:
    """A file's blocks, in order, as (start, samples): its length, how many blocks were taken, and the time
    spent decoding and cutting them."""

    def __init__(self, duration: float, chunks: Iterator[Chunk]) -> None:
        self.duration = duration
        self.taken = 0
        self.decode_s = 0.0
        self._chunks = chunks
        self._first: Chunk | None = None

    @classmethod
    def open(cls, path: Path, block_s: float) -> "_Blocks":
        """Probe the file and decode its first block (MediaError for a file that is not audio)."""
        from worker.media.audio import probe_duration
        from worker.media.chunking import iter_chunks

        started = time.perf_counter()
        blocks = cls(probe_duration(path), iter_chunks(path, target_s=block_s))
        blocks._first = next(blocks._chunks, None)
        blocks.decode_s = time.perf_counter() - started
        return blocks

    def __iter__(self) -> Iterator[tuple[float, Any]]:
        chunk, self._first = self._first, None
        while chunk is not None:
            self.taken += 1
            start_s, samples = chunk.start_s, chunk.samples
            del chunk  # the engine holds the samples as long as it needs them
            yield start_s, samples
            del samples
            started = time.perf_counter()
            chunk = next(self._chunks, None)
            self.decode_s += time.perf_counter() - started


def _loaded_engine(emit: Emit, engines: dict[str, Any], engine_kind: str, threads: int | None, model: str) -> Any:
    """The engine for `model`, loaded, on the thread that runs it (CTranslate2 set up on another thread ran
    4-6x slower on two threads here, measured)."""
    from worker.engines.factory import create_engine

    engine = engines.get(model)
    if engine is None:
        engines.clear()  # one model in memory at a time
        engine = create_engine(engine_kind, model, threads)
        engines[model] = engine
    if not engine.loaded:
        emit(Progress(Stage.LOADING_MODEL, 0.0, message=f"loading {model}"))
        engine.load()
    return engine
