"""What sending one chunk to Modal costs: round trips, bytes and latency per chunk, measured with the real
`modal` client (1.6.x) against the loopback control plane (tests/modal_control_plane.py).

    .venv/bin/python -m bench.modal_send_bench          # prints a Markdown section for docs/benchmarks.md

Each chunk is real speech (../shared/audio) cut and encoded as the fan-out does (worker.media.chunking.encode_chunk).
The plane holds every input (nothing executes: only the sending is measured) and the calls are cancelled after.
Latency is measured twice: on plain loopback (the client's own work: pickling, hashing, the RPCs) and with a
simulated network round trip added to every gRPC answer and every blob PUT (RTT_S), which is what a real link
adds per round trip. Paths compared:
- spawn, input over 8 KiB (every real chunk): BlobCreate, HTTP PUT of the input, FunctionMap;
- spawn, input under 8 KiB (inline in FunctionMap): only what fits, ~0.2 s of FLAC speech;
- a synchronous-type call (what `.remote()` sends; inline up to 2 MiB): FunctionMap alone, through modal's
  private _Invocation (for the figures only: its answer is not kept for later collection).
"""

from __future__ import annotations

import asyncio
import http.server
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AUDIO = ROOT.parent / "shared" / "audio"
RTT_S = 0.05  # a simulated network round trip (50 ms: a good link to Modal's region)
REPEATS = 8
CHUNK_SECONDS = (0.2, 5.0, 10.0, 30.0)


def speech(seconds: float) -> Any:
    import numpy as np

    from worker.media.audio import decode_audio

    pieces = [decode_audio(AUDIO / "multilingual.mp3"), decode_audio(AUDIO / "jfk.flac")]
    audio = np.concatenate(pieces)
    return audio[: int(16000 * seconds)]


def add_round_trip(plane: Any, seconds: float) -> None:
    """Every gRPC answer and blob PUT of the plane waits `seconds` first (a network round trip)."""
    for key, handler in list(plane._server._mapping.items()):
        async def later(stream: Any, _func: Any = handler.func) -> None:
            await asyncio.sleep(seconds)
            await _func(stream)

        plane._server._mapping[key] = handler._replace(func=later)
    import modal_control_plane

    original = modal_control_plane._BlobHandler.do_PUT

    def slow_put(self: http.server.BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        original(self)

    modal_control_plane._BlobHandler.do_PUT = slow_put  # type: ignore[method-assign]


async def measure(plane: Any, remote: Any, data: bytes, sync_type: bool) -> tuple[list[float], list[str], int]:
    """Spawn `data` REPEATS times: (latencies, the RPCs of one send, bytes on the wire for one send)."""
    from modal._functions import _Invocation
    from modal._utils.async_utils import synchronizer
    from modal_proto import api_pb2

    latencies: list[float] = []
    rpcs: list[str] = []
    wire = 0
    for _ in range(REPEATS):
        before = len(plane.rpcs)
        blob_before = plane.blob_bytes_in
        started = time.perf_counter()
        if sync_type:
            method = synchronizer._translate_in(remote._method)
            create = _Invocation.create(method, (data, {}), {}, client=method.client,
                                        function_call_invocation_type=api_pb2.FUNCTION_CALL_INVOCATION_TYPE_SYNC)
            # modal's channels live on its own loop (synchronicity's thread): run the private call there
            future = asyncio.run_coroutine_threadsafe(create, synchronizer._get_loop(start=True))
            call_id = (await asyncio.wrap_future(future)).function_call_id
        else:
            call_id = await remote.spawn(data, {})
        latencies.append(time.perf_counter() - started)
        rpcs = plane.rpcs[before:]
        wire = plane.blob_bytes_in - blob_before + sum(
            request.ByteSize() for name, request in plane.requests[before:] if hasattr(request, "ByteSize")
        )
        await remote.cancel(call_id)
    return latencies, [name for name in rpcs if name != "FunctionCallCancel"], wire


def run() -> str:
    sys.path.insert(0, str(ROOT / "tests"))
    import os

    from modal_control_plane import ControlPlane, DeployedApp

    from worker.media.chunking import encode_chunk
    from worker.modal.remote import ModalRemote

    chunks = {seconds: encode_chunk(speech(seconds)) for seconds in CHUNK_SECONDS}
    rows: list[str] = []
    for rtt in (0.0, RTT_S):
        with ControlPlane(apps={"whisper-desk": DeployedApp()}) as plane:
            os.environ.update(plane.env())
            plane.slow(None, 3600.0)  # nothing executes: only sending is measured
            if rtt:
                add_round_trip(plane, rtt)

            async def go(rtt: float = rtt) -> None:
                remote = ModalRemote()
                await remote.open("tiny.en")
                try:
                    for seconds, data in chunks.items():
                        for sync_type in (False, True) if seconds == 30.0 else (False,):
                            latencies, rpcs, wire = await measure(plane, remote, data, sync_type)
                            path = "sync-type call (inline, private API)" if sync_type else (
                                "spawn, inline" if len(data) <= 8 * 1024 else "spawn, blob")
                            rows.append(
                                f"| {seconds:g} s | {len(data) / 1024:.1f} | {path} | {', '.join(rpcs)} | "
                                f"{len(rpcs)} | {wire / 1024:.1f} | {rtt * 1000:.0f} | "
                                f"{statistics.median(latencies) * 1000:.0f} |"
                            )
                finally:
                    await remote.aclose()

            asyncio.run(go())
    header = (
        "| chunk | input KiB | path | round trips (in order) | count | KiB on the wire | added RTT ms | "
        "send latency ms (median) |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    return header + "\n" + "\n".join(rows)


if __name__ == "__main__":
    print(run())
