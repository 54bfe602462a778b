"""A stand-in for the deployed Modal worker, for tests and benchmarks (Modal itself is out of reach there).

    backend = ModalBackend(remote=StandInRemote(latency_s=0.2, fail_chunks={3: 1}))

It runs the very same worker body as the T4 class (worker.modal.app.TranscriberBody) in-process, behind the
same RemoteTranscriber interface the real ModalRemote has, with:
- latency_s: a fixed delay per call (upload + queue + network), during which the call counts as in flight;
  chunk_latency_s: chunk index -> a different delay for that chunk (to make answers arrive out of order);
- fail_chunks: chunk index -> how many times that chunk's call fails (ends with Modal's InternalFailure)
  before it succeeds; always_fail: chunk indexes whose calls always fail;
- drop_polls: chunk index -> how many times asking for that chunk's answer fails (the connection drops,
  modal.exception.ConnectionError) while its call runs on;
- run_model=False: no model at all, a synthetic segment per chunk (for the fan-out efficiency benchmark).

Calls are spawned (spawn -> an id), collected by id (collect) and cancelled by id (cancel), as on Modal; an
answer stays collectable after its call ended (forget_outputs() makes them expire: OutputExpiredError).
It counts executions (calls, calls_by_chunk), the calls in flight now (in_flight) and at most (peak_in_flight),
the calls cancelled by the client (cancelled; cancel_requests: the ids it was asked to stop) and the audio
bytes received (bytes_received). One instance may serve several jobs and threads at once.
The model runs one call at a time (as one container would); calls wait for it while in flight.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections import Counter
from typing import Any

from worker.core.cancel import CancelToken


def transient_error(message: str) -> Exception:
    """What Modal raises for a hiccup worth retrying (modal.exception.InternalFailure)."""
    from modal.exception import InternalFailure

    return InternalFailure(message)


class StandInRemote:
    def __init__(
        self,
        latency_s: float = 0.0,
        fail_chunks: dict[int, int] | None = None,
        always_fail: set[int] | frozenset[int] | None = None,
        model: str = "tiny.en",
        run_model: bool = True,
        chunk_latency_s: dict[int, float] | None = None,
        drop_polls: dict[int, int] | None = None,
    ) -> None:
        self.latency_s = float(latency_s)
        self.chunk_latency_s = dict(chunk_latency_s or {})
        self.fail_chunks = dict(fail_chunks or {})
        self.always_fail = set(always_fail or ())
        self.drop_polls = dict(drop_polls or {})
        self.polls_dropped = 0
        self.cancel_requests: list[str] = []
        self._calls: dict[str, tuple[int, asyncio.Task]] = {}  # call id -> (chunk index, its run)
        self._outputs: dict[str, tuple[bool, Any]] = {}  # call id -> (succeeded, answer or error)
        self._expired: set[str] = set()  # call ids whose answers forget_outputs dropped
        self.model = model
        self.run_model = run_model
        self.calls = 0
        self.calls_by_chunk: Counter[int] = Counter()
        self.bytes_received = 0
        self.failures = 0
        self.cancelled = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.running = 0  # model runs still computing (a cancelled one stops at its next 30 s window)
        self.opened: list[str] = []
        self._lock = threading.Lock()
        self._bodies: dict[str, Any] = {}
        self._synthetic_calls = 0

    @property
    def max_concurrent(self) -> int:
        return self.peak_in_flight

    # ------------------------------------------------------------ RemoteTranscriber

    async def open(self, model: str) -> None:
        with self._lock:
            self.opened.append(model)

    async def aclose(self) -> None:
        pass

    async def spawn(self, audio: bytes, options: dict[str, Any], chunk_index: int = 0) -> str:
        with self._lock:
            call_id = f"fc-standin-{len(self._calls) + 1}"
            run = asyncio.ensure_future(self.transcribe(audio, options, chunk_index))
            self._calls[call_id] = (chunk_index, run)
        run.add_done_callback(lambda task: self._ended(call_id, task))
        return call_id

    def _ended(self, call_id: str, run: asyncio.Task) -> None:
        if not run.cancelled():
            error = run.exception()
            self._outputs[call_id] = (error is None, error if error is not None else run.result())

    async def collect(self, call_id: str) -> dict[str, Any]:
        from modal.exception import ConnectionError as ModalConnectionError
        from modal.exception import OutputExpiredError

        chunk_index, run = self._calls.get(call_id, (None, None))
        with self._lock:
            if chunk_index is not None and self.drop_polls.get(chunk_index, 0) > 0:
                self.drop_polls[chunk_index] -= 1
                self.polls_dropped += 1
                raise ModalConnectionError("stand-in: the connection dropped while asking for an answer")
        if run is not None and not run.done() and run.get_loop() is asyncio.get_running_loop():
            await asyncio.wait({run})  # cancelling this wait leaves the call running
        if run is not None and run.done() and call_id not in self._outputs and call_id not in self._expired:
            self._ended(call_id, run)  # done, but its done-callback has not run yet (a busy loop)
        if call_id not in self._outputs:
            raise OutputExpiredError()
        succeeded, outcome = self._outputs[call_id]
        if not succeeded:
            raise outcome
        return outcome

    async def cancel(self, call_id: str) -> None:
        with self._lock:
            self.cancel_requests.append(call_id)
        _, run = self._calls.get(call_id, (None, None))
        if run is not None and not run.done() and run.get_loop() is asyncio.get_running_loop():
            run.cancel()
            await asyncio.wait({run})

    def forget_outputs(self) -> None:
        """Every answer expires (Modal keeps them 7 days)."""
        self._expired.update(self._outputs)
        self._outputs.clear()

    async def transcribe(self, audio: bytes, options: dict[str, Any], chunk_index: int = 0) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            self.calls_by_chunk[chunk_index] += 1
            self.bytes_received += len(audio)
            attempt = self.calls_by_chunk[chunk_index]
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            latency = self.chunk_latency_s.get(chunk_index, self.latency_s)
            if latency > 0:
                await asyncio.sleep(latency)
            if chunk_index in self.always_fail or attempt <= self.fail_chunks.get(chunk_index, 0):
                with self._lock:
                    self.failures += 1
                raise transient_error(f"stand-in: injected failure of chunk {chunk_index + 1} (call {attempt})")
            if not self.run_model:
                return self._synthetic(audio, chunk_index, latency)
            return await self._run_body(audio, options)
        except asyncio.CancelledError:
            with self._lock:
                self.cancelled += 1
            raise
        finally:
            with self._lock:
                self.in_flight -= 1

    # ------------------------------------------------------------ the worker body

    def body(self, model: str | None = None) -> Any:
        """The TranscriberBody for `model` (created once; loads its model on first use)."""
        from worker.modal.app import TranscriberBody

        name = model or self.model
        with self._lock:
            if name not in self._bodies:
                self._bodies[name] = TranscriberBody(name)
            return self._bodies[name]

    async def _run_body(self, audio: bytes, options: dict[str, Any]) -> dict[str, Any]:
        body = self.body(options.get("model") or self.model)
        stop = CancelToken()

        def work() -> dict[str, Any]:
            with self._lock:
                self.running += 1
            try:
                answer = body.transcribe(audio, options, cancel=stop)
            finally:
                with self._lock:
                    self.running -= 1
            answer["timings"]["container_id"] = "stand-in"
            return answer

        try:
            return await asyncio.get_running_loop().run_in_executor(None, work)
        except asyncio.CancelledError:
            stop.cancel()  # the body stops before its next window; nobody waits for the answer
            raise

    def _synthetic(self, audio: bytes, chunk_index: int, latency: float) -> dict[str, Any]:
        """A worker-shaped answer without a model: one segment covering the chunk's audio."""
        import soundfile as sf

        from worker.modal.app import WORKER_API_VERSION

        info = sf.info(io.BytesIO(audio))
        seconds = info.frames / info.samplerate if info.samplerate else 0.0
        with self._lock:
            self._synthetic_calls += 1
            cold = self._synthetic_calls == 1
        segments: list[dict[str, Any]] = []
        if seconds > 0:
            segments.append({"id": 0, "start": 0.0, "end": round(seconds, 3), "text": f"stand-in chunk {chunk_index + 1}", "words": []})
        return {
            "api_version": WORKER_API_VERSION,
            "segments": segments,
            "language": "en",
            "duration": round(seconds, 3),
            "model": f"{self.model} (stand-in, no model)",
            "timings": {
                "gpu": "cpu",
                "cold_start": cold,
                "model_load_s": 0.0,
                "inference_s": round(latency, 3),
                "audio_s": round(seconds, 3),
                "rtf": round(latency / seconds, 4) if seconds > 0 else 0.0,
                "cuda_mem_mb": 0.0,
                "container_id": "stand-in",
            },
        }
