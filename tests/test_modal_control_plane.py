"""The loopback control plane's own behaviour, through the real `modal` client: what B2's fan-out tests and the
demo rely on (long polls, outputs kept per call id, blobs both ways, cancel, each injected fault)."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from worker.modal.settings import APP_NAME, CLASS_NAME

WAIT_S = 120.0


def silence(seconds: float = 1.0) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(int(16000 * seconds), dtype=np.float32), 16000, format="FLAC")
    return buffer.getvalue()


def silence_wav(seconds: float = 1.0) -> bytes:
    """Silence as WAV: it does not compress, so the chunk is over modal's 8 KiB and goes up as a blob."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(int(16000 * seconds), dtype=np.float32), 16000, format="WAV")
    return buffer.getvalue()


def run(plane, work):
    """Run `work(method, client)` with the bound `transcribe` of the deployed class, through the real client."""
    import modal
    from modal_proto import api_pb2

    async def go():
        async with modal.Client(plane.url, api_pb2.CLIENT_TYPE_CLIENT, (plane.token_id, plane.token_secret)) as client:
            cls = modal.Cls.from_name(APP_NAME, CLASS_NAME, client=client)
            return await work(cls(model="tiny.en").transcribe, client)

    return asyncio.run(asyncio.wait_for(go(), WAIT_S))


def test_spawn_then_get_by_id_later_and_the_rpcs_on_the_way(deployed_modal):
    import modal

    async def work(method, client):
        call = await method.spawn.aio(silence_wav(), {"language": "en"})
        first = await call.get.aio(timeout=WAIT_S)
        again = await modal.FunctionCall.from_id(call.object_id, client=client).get.aio(timeout=5)
        return call.object_id, first, again

    call_id, first, again = run(deployed_modal, work)
    assert first == again and first["segments"] == [] and first["duration"] == 1.0
    assert deployed_modal.rpcs[:6] == ["ClassGet", "FunctionGet", "FunctionBindParams", "BlobCreate", "HTTP PUT",
                                       "FunctionMap"]
    assert deployed_modal.count("FunctionGetOutputs") == 2
    assert [e.call_id for e in deployed_modal.executions] == [call_id]
    assert deployed_modal.requests_of("FunctionBindParams")[0].serialized_params  # model="tiny.en", bound once
    assert deployed_modal.blob_bytes_in > 8 * 1024


def test_a_running_call_polls_as_unfinished_then_answers(deployed_modal):
    deployed_modal.slow(0, 5.0)  # far longer than the first get waits, even on a loaded machine

    async def work(method, client):
        call = await method.spawn.aio(silence(), {})
        with pytest.raises(TimeoutError):
            await call.get.aio(timeout=0.3)  # num_unfinished_inputs > 0: modal raises TimeoutError
        return await call.get.aio(timeout=WAIT_S)

    assert run(deployed_modal, work)["segments"] == []


def test_cancel_stops_a_call_before_it_runs(deployed_modal):
    deployed_modal.slow(0, 30)

    async def work(method, client):
        call = await method.spawn.aio(silence(), {})
        await call.cancel.aio()
        return call.object_id

    call_id = run(deployed_modal, work)
    assert deployed_modal.wait_idle(10)
    assert deployed_modal.cancelled_calls == [call_id]
    assert deployed_modal.executions == []


def test_an_expired_output_raises_output_expired(deployed_modal):
    from modal.exception import OutputExpiredError

    deployed_modal.expire_when_done(0)

    async def work(method, client):
        call = await method.spawn.aio(silence(), {})
        with pytest.raises(OutputExpiredError):  # modal's get raises it once its own timeout runs out
            await call.get.aio(timeout=3)

    run(deployed_modal, work)
    assert len(deployed_modal.executions) == 1


def test_injected_failures_reach_the_client_as_modal_raises_them(deployed_modal):
    from modal.exception import InternalFailure

    deployed_modal.fail_once(0, how="internal")
    deployed_modal.fail_always(1, how="raise")

    async def work(method, client):
        first = await method.spawn.aio(silence(), {})
        with pytest.raises(InternalFailure):
            await first.get.aio(timeout=WAIT_S)
        second = await method.spawn.aio(silence(0.5), {})
        with pytest.raises(ConnectionError, match="injected"):
            await second.get.aio(timeout=WAIT_S)

    run(deployed_modal, work)
    attempts = sorted((e.ordinal, e.attempt) for e in deployed_modal.executions)
    assert attempts == [(0, 0), (1, 0), (1, 1), (1, 2)]  # the deployed Retries(2) re-ran the one that raised


def test_a_call_past_its_timeout_raises_function_timeout(deployed_modal):
    from modal.exception import FunctionTimeoutError

    deployed_modal.fail_always(0, how="timeout")

    async def work(method, client):
        call = await method.spawn.aio(silence(), {})
        with pytest.raises(FunctionTimeoutError):
            await call.get.aio(timeout=WAIT_S)

    run(deployed_modal, work)
    assert len(deployed_modal.executions) == 1


def test_a_dropped_connection_during_a_poll_is_retried_by_modal_then_reaches_the_caller(deployed_modal):
    deployed_modal.drop_polls(1)

    async def work(method, client):
        call = await method.spawn.aio(silence(), {})
        return await call.get.aio(timeout=WAIT_S)  # modal retries one dropped poll itself

    assert run(deployed_modal, work)["segments"] == []
    assert deployed_modal.dropped_polls == 1

    deployed_modal.drop_polls(20)

    async def keeps_dropping(method, client):
        call = await method.spawn.aio(silence(), {})
        with pytest.raises(Exception) as caught:
            await call.get.aio(timeout=WAIT_S)
        return caught.value

    error = run(deployed_modal, keeps_dropping)
    assert deployed_modal.dropped_polls > 2
    assert "Stream" in type(error).__name__ or "Connection" in type(error).__name__, repr(error)


def test_large_answers_come_back_through_a_blob(deployed_modal):
    deployed_modal.inline_output_limit = 10  # every answer is "large"

    async def work(method, client):
        call = await method.spawn.aio(silence(), {})
        return await call.get.aio(timeout=WAIT_S)

    assert run(deployed_modal, work)["segments"] == []
    assert "BlobGet" in deployed_modal.rpcs and "HTTP GET" in deployed_modal.rpcs


def test_runs_by_hand_and_prints_what_to_export():
    process = subprocess.Popen([sys.executable, "-m", "tests.modal_control_plane"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = threading.Timer(60, process.kill)  # a server that never prints ends the reads (EOF)
    deadline.start()
    try:
        lines = [process.stdout.readline() for _ in range(5)]
    finally:
        deadline.cancel()
        process.terminate()
        process.wait(10)
    exports = [line for line in lines if line.startswith("export ")]
    assert [line.split("=")[0] for line in exports] == [
        "export MODAL_SERVER_URL", "export MODAL_TOKEN_ID", "export MODAL_TOKEN_SECRET", "export MODAL_CONFIG_PATH"]
    assert "http://127.0.0.1:" in exports[0]
    assert not Path(exports[3].split("=", 1)[1].strip()).parent.exists()  # its temporary home went with it


def test_a_delayed_rpc_is_answered_late_while_the_others_go_on(deployed_modal):
    deployed_modal.delay_rpc("FunctionBindParams", 1.0)

    async def work(method, client):
        started = time.monotonic()
        hello = asyncio.ensure_future(client.hello.aio())
        call = await method.spawn.aio(silence(), {})  # binds first: one second late
        await hello
        return time.monotonic() - started, await call.get.aio(timeout=WAIT_S)

    waited, answer = run(deployed_modal, work)
    assert waited >= 1.0 and answer["segments"] == []
    assert deployed_modal.rpcs.index("ClientHello") < deployed_modal.rpcs.index("FunctionMap")
