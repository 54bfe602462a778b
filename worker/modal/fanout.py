"""The Modal backend: a file is cut at silences into chunks, the chunks are fanned out over T4 containers
running the deployed worker (worker/modal/app.py), and the answers are stitched back in order.

    backend = ModalBackend(max_containers=8, chunk_s=30.0)
    transcript = backend.transcribe(path, options, emit, cancel)

Flow: decode (streamed) -> chunks cut at silences (worker.media.chunking.iter_chunks) -> compact audio bytes
(encode_chunk, <= 1 MB per audio minute) -> up to max_containers calls in flight -> each answer shifted to
absolute time -> SegmentsReady / TimingReport / Progress per chunk, in chunk order (answers that arrive early
wait for the ones before them) -> one Transcript. A short file is one chunk and one call.

Who answers is a RemoteTranscriber: worker.modal.remote.ModalRemote (the deployed app, through an explicit,
bounded client) or,
in tests and benchmarks, tests.modal_standin.StandInRemote (the same worker body, in-process).

Each chunk is one call: spawn -> call id (written to the job's ChunkLedger at once) -> collect. No chunk runs
twice on the GPU by our doing:
- a spawn that failed (no call exists) is sent again, up to max_retries times;
- a poll that failed (the network, not the call) polls the same call again, up to max_poll_retries times;
- a call that ended without an answer (Modal's InternalFailure, or its output expired) is sent again;
- the worker refusing a chunk (bad audio, bad options) fails the job at once, with one line naming the file
  and the chunk;
- cancel (or a call past its time) sends FunctionCallCancel for every call sent and not finished, including
  one whose spawn was still under way (its id is awaited, bounded), and raises Cancelled;
- detach (the app closes: CancelToken.detach) stops only this side: no more chunks are sent, polls end, and
  every call sent stays running on Modal and in the ledger (a spawn under way is awaited, bounded, and written
  down too); raises Cancelled.
A job that was interrupted (the app closed, killed or crashed) finds its calls in the ledger when it runs
again: it collects them instead of sending those chunks again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from worker.backends.base import ChunkLedger, SentChunk
from worker.backends.events import Emit, JobNote, Progress, SegmentsReady, Stage, TimingReport
from worker.core.async_loops import run_cancellable
from worker.core.cancel import CancelToken
from worker.core.errors import TranscriptionError, WhisperDeskError
from worker.core.options import TranscriptionOptions
from worker.modal.cost import (
    DEFAULT_T4_DOLLARS_PER_HOUR,
    PLANS,
    CostEstimate,
    Plan,
    estimate_modal_cost,
    plan_fan_out,
    remember_figures,
    summarize,
)
from worker.modal.remote import (
    CANCEL_GRACE_S,
    ModalRemote,
    ended_without_answer,
    explain,
    is_transient,
    stopped_on_modal,
)
from worker.modal.settings import APP_NAME, CLASS_NAME, WORKER_API_VERSION, DeploySettings
from worker.transcripts.model import Segment, Transcript
from worker.transcripts.stitching import ChunkStitcher

log = logging.getLogger(__name__)

RETRY_DELAY_S = 0.5  # before the first retry of a chunk; doubles each time
MAX_POLL_RETRIES = 5  # polls of one call that may fail (the network) before its job fails
CHUNK_MATCH_S = 0.05  # a chunk cut again after a restart is the one in the ledger when both ends lie this close


class RemoteTranscriber(Protocol):
    """What the fan-out calls: the deployed Transcriber class, or a stand-in. Methods run on the job's event
    loop. A call, once spawned, runs until it answers or is cancelled, whoever waits for it."""

    async def open(self, model: str) -> None:
        """Connect and bind the model (bounded); raise ModalSetupError when that is impossible."""
        ...

    async def spawn(self, audio: bytes, options: dict[str, Any], chunk_index: int = 0) -> str:
        """Start one chunk's call -> its id (see worker/modal/app.py for the arguments)."""
        ...

    async def collect(self, call_id: str) -> dict[str, Any]:
        """Wait for the answer of call `call_id` (spawned by this or an earlier run); cancelling the wait
        leaves the call running."""
        ...

    async def cancel(self, call_id: str) -> None:
        """Stop call `call_id` (FunctionCallCancel)."""
        ...

    async def aclose(self) -> None:
        ...


class RunLedger:
    """The calls of a job run without a library (a script, a benchmark): kept for as long as the run lasts."""

    def __init__(self) -> None:
        self._rows: dict[int, SentChunk] = {}

    def sent(self, index: int, start_s: float, end_s: float, call_id: str) -> None:
        self._rows[index] = SentChunk(index, start_s, end_s, call_id)

    def finished(self, index: int) -> None:
        row = self._rows.get(index)
        if row is not None:
            self._rows[index] = SentChunk(row.index, row.start_s, row.end_s, row.call_id, True)

    def forget(self, index: int) -> None:
        self._rows.pop(index, None)

    def entries(self) -> list[SentChunk]:
        return [self._rows[index] for index in sorted(self._rows)]

    def clear(self) -> None:
        self._rows.clear()


# ---------------------------------------------------------------- the fan-out


@dataclass
class _Piece:
    index: int
    start_s: float
    end_s: float
    data: bytes = field(repr=False)


@dataclass
class _Job:
    path: Path
    options: TranscriptionOptions
    emit: Emit
    duration_s: float
    estimate: int
    started: float
    ledger: ChunkLedger = field(default_factory=RunLedger)
    token: CancelToken = field(default_factory=CancelToken)
    sent: int = 0
    total: int | None = None  # known once the last chunk is cut
    upload_bytes: int = 0
    fraction: float = 0.0
    call_timeout_s: float = 0.0  # how long one call may take: from the deployed function's limits
    plan: Plan | None = None  # containers and scale-down window chosen for this file
    deployed: DeploySettings | None = None  # the deployed function's GPU, CPU and memory (what is billed)
    started_at: float = field(default_factory=time.time)  # wall clock, as the containers report theirs
    sent_at: dict[int, float] = field(default_factory=dict)  # chunk index -> when this run sent its call
    environment: str | None = None  # the Modal environment the job ran in (None: the workspace's default)
    download_lock: threading.Lock | None = None  # held while chunk 1 alone puts the model's weights in the Volume
    stitcher: ChunkStitcher = field(default_factory=ChunkStitcher)  # answers in any order, segments out in order

    @property
    def count(self) -> int:
        return self.total if self.total is not None else max(self.estimate, self.sent)

    def progress(self, stage: Stage, fraction: float, chunk_index: int | None = None, message: str = "") -> None:
        self.fraction = max(self.fraction, min(1.0, fraction))
        self.emit(Progress(stage, self.fraction, chunk_index, self.count, message))


class ModalBackend:
    """Transcribes files on the deployed Modal app, fanned out over up to `max_containers` calls per file."""

    name = "modal"

    def __init__(
        self,
        app_name: str = APP_NAME,
        class_name: str = CLASS_NAME,
        max_containers: int = 8,
        chunk_s: float = 30.0,
        call_timeout_s: float | None = None,
        connect_timeout_s: float = 10.0,
        max_retries: int = 2,
        max_poll_retries: int = MAX_POLL_RETRIES,
        remote: RemoteTranscriber | None = None,
        dollars_per_hour: float = DEFAULT_T4_DOLLARS_PER_HOUR,
        retry_delay_s: float = RETRY_DELAY_S,
        server_url: str | None = None,
        plan: str = "fastest",
        scaledown_s: int | None = None,
    ) -> None:
        if int(max_containers) < 1:
            raise ValueError(f"max_containers must be at least 1, not {max_containers}")
        if not (chunk_s > 0 and math.isfinite(chunk_s)):
            raise ValueError(f"chunk length must be a positive number of seconds, not {chunk_s!r}")
        if int(max_retries) < 0:
            raise ValueError(f"max_retries must not be negative, not {max_retries}")
        self.app_name = app_name
        self.class_name = class_name
        self.max_containers = int(max_containers)
        self.chunk_s = float(chunk_s)
        # longer than Modal's own limits for one call (cold start + runs), so the client never gives up first:
        # a job takes them from the deployed function when it connects; this is the figure until then
        self.call_timeout_s = float(call_timeout_s or DeploySettings.as_deployed().call_timeout_s)
        self._call_timeout_given = bool(call_timeout_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.max_retries = int(max_retries)
        self.max_poll_retries = int(max_poll_retries)
        self.remote = remote
        self.dollars_per_hour = float(dollars_per_hour)
        self.retry_delay_s = float(retry_delay_s)
        self.server_url = server_url
        if plan not in PLANS:
            raise ValueError(f"the fan-out plan is one of {', '.join(PLANS)}, not {plan!r}")
        self.plan = plan
        # how long a job's containers stay warm after their last chunk (Cls.with_options): None is
        # worker.modal.cost.LET_GO_S; longer keeps them warm for the next file of a queue (and bills that time)
        self.scaledown_s = scaledown_s

    def transcribe(
        self,
        path: Path,
        options: TranscriptionOptions,
        emit: Emit,
        cancel: CancelToken,
        ledger: ChunkLedger | None = None,
    ) -> Transcript:
        """Blocking; call from a worker thread (any thread: one with a running event loop gets a helper).
        `ledger` keeps the job's calls across an interruption (Library.chunk_ledger); cleared on success."""
        path = Path(path)
        cancel.raise_if_cancelled()
        book = ledger if ledger is not None else RunLedger()
        return run_cancellable(lambda: self._transcribe(path, options, emit, cancel, book), cancel,
                               workers=self.max_containers + 2, thread_name="modal-fanout")

    def close(self) -> None:
        """Nothing is held between files: each file opens (and closes) its own Modal client."""

    # ------------------------------------------------------------ one file

    async def _transcribe(
        self, path: Path, options: TranscriptionOptions, emit: Emit, cancel: CancelToken, ledger: ChunkLedger
    ) -> Transcript:
        from worker.media.audio import probe_duration

        loop = asyncio.get_running_loop()
        started = time.monotonic()
        emit(Progress(Stage.DECODING, 0.0, message=f"decoding {path.name}"))
        duration = await loop.run_in_executor(None, probe_duration, path)  # MediaError: one line naming the file
        plan = self._plan(duration, options.model, self.plan)
        remote = self.remote if self.remote is not None else self._modal_remote(plan.scaledown_s)
        if self.remote is None:
            emit(Progress(Stage.UPLOADING, 0.0, message="connecting to Modal"))
        await remote.open(options.model)
        from worker.media.chunking import estimate_chunk_count

        job_started: _Job | None = None
        try:
            job = job_started = _Job(path, options, emit, duration, estimate_chunk_count(duration, self.chunk_s),
                                     started, ledger, cancel)
            job.call_timeout_s = self._call_timeout(remote)
            job.plan, job.deployed = plan, getattr(remote, "deployed", None)
            job.environment = getattr(remote, "environment", None)
            emit(JobNote(f"{plan.line()} (the plan for this file; {self._other_plan(duration, options.model)})"))
            await self._first_download(job, remote, cancel)
            await self._fan_out(job, remote, cancel)
        except asyncio.CancelledError:
            if cancel.detached:
                running = sum(not entry.finished for entry in ledger.entries())
                where = f" (environment {job_started.environment})" if job_started and job_started.environment else ""
                emit(JobNote(f"stopped here with {running} chunk{'s' if running != 1 else ''} still running on "
                             f"Modal{where}: they are collected when the job runs again, and their cost is in its "
                             "summary then"))
            raise
        finally:
            if job_started is not None and job_started.download_lock is not None:
                job_started.download_lock.release()
                job_started.download_lock = None
            if self.remote is None:
                await remote.aclose()
        transcript = self._stitched(job)
        ledger.clear()
        remember_figures(options.model, transcript.timings["chunks"])  # the next estimate is made of these
        return transcript

    async def _first_download(self, job: _Job, remote: RemoteTranscriber, cancel: CancelToken) -> None:
        """A first job on a model whose weights are not in the Volume sends one chunk first, so one container
        downloads them (before any other container starts, and is billed, for nothing); a job of this app that
        starts meanwhile on the same model waits for that, then finds them there."""
        asked = getattr(remote, "weights_cached", None)
        if asked is None or await asked(job.options.model) is not False:
            return
        lock = _download_lock(f"{self.server_url}|{job.environment}|{job.options.model}")
        loop = asyncio.get_running_loop()
        waiting_said = False
        while not await loop.run_in_executor(None, lock.acquire, True, 0.25):
            cancel.raise_if_cancelled()
            if not waiting_said:
                job.progress(Stage.WAITING_GPU, 0.0, None,
                             f"waiting for the {job.options.model} weights another job is putting in the Modal Volume")
                waiting_said = True
        if await asked(job.options.model) is not False:  # another job put them there meanwhile
            lock.release()
            return
        job.download_lock = lock
        job.emit(JobNote(f"the {job.options.model} weights are not in the Modal Volume yet: chunk 1 goes first and "
                         "its container downloads them (once per model); the other chunks follow"))

    def _call_timeout(self, remote: RemoteTranscriber) -> float:
        """The client's limit for one call: as given, else from the limits the deployed function reports."""
        deployed = getattr(remote, "deployed", None)
        if self._call_timeout_given or not isinstance(deployed, DeploySettings):
            return self.call_timeout_s
        return deployed.call_timeout_s

    def _modal_remote(self, scaledown_s: int | None = None) -> ModalRemote:
        return ModalRemote(self.app_name, self.class_name, self.connect_timeout_s, self.server_url, scaledown_s)

    def _other_plan(self, duration_s: float, model: str) -> str:
        return self._plan(duration_s, model, "cheapest" if self.plan == "fastest" else "fastest").line()

    def _plan(self, duration_s: float, model: str, mode: str) -> Plan:
        return plan_fan_out(duration_s, model, self.dollars_per_hour, self.chunk_s, self.max_containers,
                            self.scaledown_s, mode)

    def estimate(self, duration_s: float, model: str) -> CostEstimate:
        """What a file of `duration_s` would cost with this backend's settings and plan, as Modal bills it: a
        range from every container already warm to every one starting cold (both plans ride along)."""
        return estimate_modal_cost(duration_s, model, self.dollars_per_hour, self.chunk_s, self.max_containers,
                                   self.scaledown_s, self.plan)

    async def _fan_out(self, job: _Job, remote: RemoteTranscriber, cancel: CancelToken) -> None:
        from worker.media.chunking import encode_chunk, iter_chunks

        loop = asyncio.get_running_loop()
        chunks = iter_chunks(job.path, target_s=self.chunk_s, cancel=cancel)

        def next_piece() -> _Piece | None:  # in a thread: decoding and encoding are CPU work
            chunk = next(chunks, None)
            if chunk is None:
                return None
            return _Piece(chunk.index, chunk.start_s, chunk.end_s, encode_chunk(chunk.samples))

        # calls an earlier run of this job sent (it was interrupted): collected, not sent again
        previous = {entry.index: entry for entry in job.ledger.entries()}
        if previous:
            count = len(previous)
            where = f" (environment {job.environment})" if job.environment else ""
            job.progress(Stage.WAITING_GPU, 0.0, None,
                         f"collecting {count} chunk{'s' if count != 1 else ''} already sent to Modal{where}")
        stale: list[SentChunk] = []  # calls for chunks that are cut differently now (another chunk length)

        in_flight = job.plan.containers if job.plan is not None else self.max_containers
        slots = asyncio.Semaphore(in_flight)  # calls in flight: one per container the plan pays for
        outcome: asyncio.Future[None] = loop.create_future()  # set when the last answer is in, or a chunk failed
        tasks: set[asyncio.Task] = set()
        options = job.options.to_dict()

        def finished(task: asyncio.Task) -> None:
            slots.release()
            tasks.discard(task)
            if task.cancelled():
                return
            error = task.exception()  # (retrieved even when the job is over: no "never retrieved" warning)
            if outcome.done():
                return
            if error is not None:
                outcome.set_exception(error)  # a chunk that failed for good fails the job
            elif not tasks and job.total is not None:
                outcome.set_result(None)

        # encoded chunks are small (<= 1 MB per audio minute): cut a few ahead, so a freed slot never waits
        ready: asyncio.Queue[_Piece | None] = asyncio.Queue(maxsize=2 * in_flight)

        async def read() -> None:
            while True:
                piece = await loop.run_in_executor(None, next_piece)
                await ready.put(piece)
                if piece is None:
                    return

        async def dispatch() -> None:
            while True:
                piece = await ready.get()
                if piece is None:
                    stale.extend(previous.values())
                    previous.clear()
                    for entry in stale:
                        await self._drop_stale(job, remote, entry)
                    job.total = job.sent
                    if not tasks and not outcome.done():
                        outcome.set_result(None)
                    return
                await slots.acquire()
                job.sent += 1
                earlier = previous.pop(piece.index, None)
                if earlier is not None and not _same_chunk(earlier, piece):
                    stale.append(earlier)
                    earlier = None
                if earlier is None and not job.stitcher.waiting and job.stitcher.next_index == 0:
                    job.progress(Stage.UPLOADING, 0.0, piece.index, f"uploading chunk {piece.index + 1} of {job.count}")
                    job.progress(Stage.WAITING_GPU, 0.0, None, f"waiting for a GPU ({job.sent} of {job.count} chunks sent)")
                task = loop.create_task(self._run_chunk(job, remote, piece, options, earlier))
                tasks.add(task)
                task.add_done_callback(finished)
                if job.download_lock is not None:  # the weights go into the Volume first: nothing else starts
                    job.progress(Stage.WAITING_GPU, 0.0, None,
                                 f"waiting for the {job.options.model} weights to download into the Modal Volume")
                    await asyncio.wait({task})
                    job.download_lock.release()
                    job.download_lock = None
                    if task.cancelled() or task.exception() is not None:
                        return

        reader, dispatcher = loop.create_task(read()), loop.create_task(dispatch())
        watched: set[asyncio.Future] = {reader, dispatcher, outcome}
        try:
            while not outcome.done():
                done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                for finished_task in done - {outcome}:
                    finished_task.result()  # a file that stops decoding half-way (MediaError) or Cancelled
                    watched.discard(finished_task)
            await outcome  # the last answer is in, or the first chunk that failed for good fails the job
        finally:
            pending = [t for t in (reader, dispatcher, *tasks) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:  # let cancelled calls stop: a spawn under way names its call, then it is cancelled
                await asyncio.wait(pending, timeout=2 * CANCEL_GRACE_S + 1.0)
            if not outcome.done():
                outcome.cancel()
            elif not outcome.cancelled():
                outcome.exception()  # marks it retrieved (no "never retrieved" warning)
            try:
                chunks.close()  # type: ignore[attr-defined]  # a generator: stops decoding the rest of the file
            except ValueError:  # its thread is still cutting a chunk: it stops at the cancel, then is dropped
                pass

    async def _run_chunk(
        self, job: _Job, remote: RemoteTranscriber, piece: _Piece, options: dict[str, Any], earlier: SentChunk | None
    ) -> None:
        """One chunk, from its call (sent now, or by an earlier run: `earlier`) to its answer."""
        where = f"{job.path.name}: chunk {piece.index + 1} of {job.count} ({_clock(piece.start_s)}–{_clock(piece.end_s)})"
        call_id = earlier.call_id if earlier is not None else None
        if call_id is None:
            job.upload_bytes += len(piece.data)
        runs = 0  # calls this run sent for the chunk
        poll_failures = 0
        try:
            while True:
                if call_id is None:
                    call_id = await self._send(job, remote, piece, options, where)
                    runs += 1
                try:
                    answer = await asyncio.wait_for(remote.collect(call_id), job.call_timeout_s)
                    break
                except TimeoutError:  # ours (asyncio.wait_for); modal's own timeouts are not builtin ones
                    await _stop(remote, call_id)
                    job.ledger.forget(piece.index)
                    raise TranscriptionError(
                        f"{where} got no answer within {job.call_timeout_s:g} s: use shorter chunks or a longer timeout"
                    ) from None
                except WhisperDeskError as exc:  # the worker refused the chunk (bad options, unreadable audio)
                    job.ledger.forget(piece.index)
                    raise TranscriptionError(f"{where} failed: {exc}") from None
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if stopped_on_modal(exc):  # stopped from the dashboard or `modal app stop`: the user's choice
                        job.ledger.forget(piece.index)  # a retry of the job sends this chunk again
                        raise TranscriptionError(
                            f"{where} was stopped on Modal before it answered (from Modal's dashboard, `modal app "
                            f"stop`, or its container was evicted): retry the job to send this chunk again"
                        ) from None
                    if ended_without_answer(exc):  # the call runs no more: sending the chunk again runs it once more
                        job.ledger.forget(piece.index)
                        call_id = None
                        if runs <= self.max_retries:
                            await self._pause(job, piece, runs, f"retrying chunk {piece.index + 1} of {job.count}", exc)
                            continue
                        tries = f" after {runs} tries" if runs > 1 else ""
                        raise TranscriptionError(f"{where} failed{tries}: {explain(exc)}") from None
                    if is_transient(exc) and poll_failures < self.max_poll_retries:  # the call runs on: ask again
                        poll_failures += 1
                        await self._pause(job, piece, poll_failures, f"asking again for chunk {piece.index + 1} of {job.count}", exc)
                        continue
                    await _stop(remote, call_id)
                    job.ledger.forget(piece.index)
                    raise TranscriptionError(f"{where} failed: {explain(exc)}") from None
        except asyncio.CancelledError:  # cancelled or detached (also while pausing to ask again), or another chunk failed
            if call_id is not None and not job.token.detached:  # detached: it runs on, collected at the next run
                await _stop(remote, call_id)
                job.ledger.forget(piece.index)
            raise
        try:
            self._check(job, piece, answer)
        except TranscriptionError:
            # an old deployment's answer, or a refusal: a later try of the job sends the chunk again (after a
            # deploy, or once the model loads) instead of collecting the same answer for days
            job.ledger.forget(piece.index)
            raise
        job.ledger.finished(piece.index)
        self._accept(job, piece, answer)

    async def _send(self, job: _Job, remote: RemoteTranscriber, piece: _Piece, options: dict[str, Any], where: str) -> str:
        """Spawn the chunk's call (a spawn that failed made no call: it is tried again) and write it down."""
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                call_id = await self._spawn_timed(job, remote, piece, options)
            except TimeoutError:
                raise TranscriptionError(
                    f"{where} could not be sent within {job.call_timeout_s:g} s: check the network connection"
                ) from None
            except WhisperDeskError as exc:
                raise TranscriptionError(f"{where} failed: {exc}") from None
            except Exception as exc:
                if is_transient(exc) and attempt < attempts:
                    await self._pause(job, piece, attempt, f"sending chunk {piece.index + 1} of {job.count} again", exc)
                    continue
                tries = f" after {attempt} tries" if attempt > 1 else ""
                raise TranscriptionError(f"{where} could not be sent{tries}: {explain(exc)}") from None
            job.ledger.sent(piece.index, piece.start_s, piece.end_s, call_id)
            return call_id
        raise AssertionError("unreachable")

    async def _spawn_timed(self, job: _Job, remote: RemoteTranscriber, piece: _Piece, options: dict[str, Any]) -> str:
        sent_at = time.time()
        call_id = await self._spawn(job, remote, piece, options)
        job.sent_at[piece.index] = sent_at  # a container started for this call is billed from about here
        return call_id

    async def _spawn(self, job: _Job, remote: RemoteTranscriber, piece: _Piece, options: dict[str, Any]) -> str:
        """remote.spawn, bounded; a cancel that comes while it is under way (uploading, FunctionMap) still stops
        the call it makes, a detach writes that call down."""
        spawning = asyncio.ensure_future(remote.spawn(piece.data, options, chunk_index=piece.index))
        try:
            done, _ = await asyncio.wait({spawning}, timeout=job.call_timeout_s)
        except asyncio.CancelledError:
            call_id = await _once_named(spawning)
            if call_id is not None and job.token.detached:
                job.ledger.sent(piece.index, piece.start_s, piece.end_s, call_id)
            elif call_id is not None:
                await _stop(remote, call_id)
            raise
        if not done:
            spawning.cancel()
            raise TimeoutError
        return spawning.result()

    async def _drop_stale(self, job: _Job, remote: RemoteTranscriber, entry: SentChunk) -> None:
        """A call from an earlier run for a chunk that no longer exists as it was: stop it, forget it."""
        if not entry.finished:
            await _stop(remote, entry.call_id)
        job.ledger.forget(entry.index)

    async def _pause(self, job: _Job, piece: _Piece, attempt: int, doing: str, exc: BaseException) -> None:
        stage = Stage.TRANSCRIBING if job.stitcher.next_index else Stage.WAITING_GPU
        reason = explain(exc).split(":")[0]
        job.progress(stage, job.fraction, None, f"{doing} ({reason})")
        await asyncio.sleep(self.retry_delay_s * 2 ** (attempt - 1))

    @staticmethod
    def _check(job: _Job, piece: _Piece, answer: Any) -> None:
        """TranscriptionError unless `answer` is a transcript from a worker that speaks this app's API."""
        version = str(answer.get("api_version", "?")) if isinstance(answer, dict) else "?"
        if version != WORKER_API_VERSION:
            raise TranscriptionError(
                f"{job.path.name}: the deployed Modal worker speaks API v{version}, this app needs "
                f"v{WORKER_API_VERSION}: run `whisper-desk deploy`"
            )
        if answer.get("error"):  # the worker's own refusal (bad audio, options, model): final, never retried
            raise TranscriptionError(f"{job.path.name}: chunk {piece.index + 1} of {job.count}: {answer['error']}")

    def _accept(self, job: _Job, piece: _Piece, answer: dict[str, Any]) -> None:
        """Store one checked chunk's answer, then emit every answer that is now next in order."""
        timings = dict(answer.get("timings") or {})
        timings.update(chunk_index=piece.index, chunk_start_s=round(piece.start_s, 3), upload_bytes=len(piece.data))
        timings.update(self._billing(job, piece))
        segments = [Segment.from_dict(s) for s in answer.get("segments") or []]
        for chunk in job.stitcher.add(piece.index, piece.start_s, piece.end_s, segments, timings,
                                      answer.get("language"), str(answer.get("model") or "")):
            chunk.timings["chunk_count"] = job.count
            if chunk.segments:
                job.emit(SegmentsReady(chunk.segments, chunk_index=chunk.index))
            job.emit(TimingReport(chunk.timings, chunk_index=chunk.index))
            job.progress(Stage.TRANSCRIBING, chunk.end_s / job.duration_s if job.duration_s > 0 else 1.0, chunk.index)

    @staticmethod
    def _billing(job: _Job, piece: _Piece) -> dict[str, Any]:
        """What the chunk's bill is read off (worker.modal.cost.job_bill): when its call went out, when the job
        started, and what its container runs under."""
        deployed = job.deployed
        if deployed is None or job.plan is None:  # not a Modal deployment (a stand-in): nothing is billed
            return {}
        billing: dict[str, Any] = {"job_started_at": round(job.started_at, 3), "gpu_type": deployed.gpu,
                                   "cpu": deployed.cpu, "memory_mib": deployed.memory_mib,
                                   "scaledown_s": job.plan.scaledown_s}
        if piece.index in job.sent_at:
            billing["sent_at"] = round(job.sent_at[piece.index], 3)
        return billing

    def _stitched(self, job: _Job) -> Transcript:
        wall_s = time.monotonic() - job.started
        stitcher = job.stitcher
        chunks = stitcher.chunk_timings
        summary = summarize(chunks, wall_s, self.dollars_per_hour)
        minutes = stitcher.end_s / 60.0
        timings: dict[str, Any] = {
            **stitcher.totals(),
            "wall_s": round(wall_s, 3),
            "gpu_seconds": round(summary.compute_s, 3),
            "cost_usd": summary.cost_usd,  # as Modal bills it (worker.modal.cost.job_bill); unrounded, as the log line shows it
            "billed_container_s": round(summary.billed_s, 3),
            "idle_s": round(summary.idle_s, 3),
            "starting_s": round(summary.starting_s, 3),
            "call_timeout_s": job.call_timeout_s,
            "plan": job.plan.name if job.plan is not None else None,
            "scaledown_s": job.plan.scaledown_s if job.plan is not None else None,
            "environment": job.environment,
            "speed_x": round(summary.speed_x, 2),
            "chunk_count": len(chunks),
            "max_containers": self.max_containers,
            "containers": len({t.get("container_id") for t in chunks if t.get("container_id")}),
            "upload_bytes": job.upload_bytes,
            "upload_bytes_per_min": round(job.upload_bytes / minutes) if minutes > 0 else 0,
            "chunks": chunks,
        }
        model = stitcher.models[0] if stitcher.models else job.options.model
        transcript = Transcript(
            segments=stitcher.segments,
            language=stitcher.language(job.options.language),
            duration=round(stitcher.end_s, 3),
            model=model,
            backend="modal",
            timings=timings,
            source=str(job.path),
        )
        return transcript.renumbered()


_DOWNLOAD_LOCKS: dict[str, threading.Lock] = {}
_DOWNLOAD_LOCKS_GUARD = threading.Lock()


def _download_lock(key: str) -> threading.Lock:
    """One lock per (server, environment, model) in this process: one job at a time puts weights in a Volume."""
    with _DOWNLOAD_LOCKS_GUARD:
        return _DOWNLOAD_LOCKS.setdefault(key, threading.Lock())


def _same_chunk(entry: SentChunk, piece: _Piece) -> bool:
    return abs(entry.start_s - piece.start_s) <= CHUNK_MATCH_S and abs(entry.end_s - piece.end_s) <= CHUNK_MATCH_S


async def _stop(remote: RemoteTranscriber, call_id: str) -> None:
    """FunctionCallCancel for one call, bounded; a failure to stop it fails nothing else."""
    try:
        await asyncio.wait_for(remote.cancel(call_id), CANCEL_GRACE_S)
    except Exception as exc:  # the call ends on Modal's own limits all the same
        log.warning("could not stop Modal call %s: %s", call_id, type(exc).__name__)


async def _once_named(spawning: asyncio.Future) -> str | None:
    """A spawn was under way when its chunk was cancelled: wait (bounded) for the call it makes -> its id."""
    try:
        done, _ = await asyncio.wait({spawning}, timeout=CANCEL_GRACE_S)
    except asyncio.CancelledError:
        done = set()
    if not done:
        spawning.cancel()
        return None
    if spawning.cancelled() or spawning.exception() is not None:
        return None  # no call came of it
    return spawning.result()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, seconds), 60.0)
    return f"{int(minutes)}:{secs:04.1f}"
