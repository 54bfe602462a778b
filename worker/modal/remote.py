"""The deployed Transcriber class as the fan-out's RemoteTranscriber (worker/modal/fanout.py): an
explicit modal Client (never modal's cached global one) opened from the credentials Whisper Desk resolves,
every network step bounded.

    remote = ModalRemote()
    await remote.open("tiny.en")          # ClientHello, ClassGet, FunctionGet, FunctionBindParams (once)
    call_id = await remote.spawn(audio, options)   # BlobCreate + HTTP PUT (inputs over 8 KiB), FunctionMap
    answer = await remote.collect(call_id)          # FunctionGetOutputs (long polls); any earlier run's call too
    await remote.cancel(call_id)                    # FunctionCallCancel

`modal` is imported only when a job connects.
"""

from __future__ import annotations

import asyncio
from typing import Any

from worker.core.errors import ModalSetupError, WhisperDeskError
from worker.modal.bounded import close_client
from worker.modal.credentials import scrub
from worker.modal.errors import explain_modal_error, mro_names
from worker.modal.settings import APP_NAME, CLASS_NAME

NOT_SET_UP = "Modal is not set up: run the setup wizard or `modal token new`"
POLL_S = 25.0  # one long poll for a call's answer; an expired answer shows when a poll ends empty
CANCEL_GRACE_S = 4.0  # how long a spawn under way may take to name its call, or a cancel request to go out

# Modal exceptions (by class name) worth another try: the network or Modal hiccuped, the chunk is fine
_TRANSIENT = frozenset(
    {"ConnectionError", "InternalFailure", "InternalError", "ServiceError", "ResourceExhaustedError",
     "OutputExpiredError", "ClientClosed", "StreamTerminatedError"}
)
# ... of which these end the call without an answer (it runs no more): only then is a chunk sent again
_CALL_OVER = frozenset({"InternalFailure", "OutputExpiredError"})


def is_transient(exc: BaseException) -> bool:
    """A failure that another try may not have: a network or service hiccup (not our data, not a timeout)."""
    if isinstance(exc, WhisperDeskError):
        return False
    names = set(mro_names(exc))
    if names:
        return bool(names & _TRANSIENT)
    return isinstance(exc, (ConnectionError, OSError)) and not isinstance(exc, TimeoutError)


def ended_without_answer(exc: BaseException) -> bool:
    """The call is over and gave no answer (Modal's internal failure, an expired output): polling it again
    gives nothing, and sending the chunk again runs it only once more."""
    return bool(set(mro_names(exc)) & _CALL_OVER)


def explain(exc: BaseException, *secrets: Any) -> str:
    """One line for the user, with no secret in it."""
    return scrub(explain_modal_error(exc), *secrets)


class ModalRemote:
    """The deployed worker app, through an explicit modal Client (never modal's cached global one) opened
    from the credentials Whisper Desk resolves, with every network step bounded."""

    def __init__(
        self,
        app_name: str = APP_NAME,
        class_name: str = CLASS_NAME,
        connect_timeout_s: float = 10.0,
        server_url: str | None = None,
    ) -> None:
        self.app_name = app_name
        self.class_name = class_name
        self.connect_timeout_s = connect_timeout_s
        self.server_url = server_url
        self._client: Any = None
        self._method: Any = None
        self._calls: dict[str, Any] = {}  # call id -> modal.FunctionCall
        self._secret: str | None = None

    async def open(self, model: str) -> None:
        from worker.modal.credentials import resolve_credentials, resolve_server_url

        credentials = resolve_credentials()  # ModalSetupError for an unreadable config file
        if credentials is None:
            raise ModalSetupError(NOT_SET_UP)
        self._secret = credentials.token_secret.reveal()
        url = self.server_url or resolve_server_url()
        try:
            await asyncio.wait_for(self._connect(url, credentials.token_id, model), self.connect_timeout_s)
        except asyncio.CancelledError:
            await self.aclose()
            raise
        except (asyncio.TimeoutError, TimeoutError):
            await self.aclose()
            raise ModalSetupError(
                f"Modal did not answer within {self.connect_timeout_s:g} s: check the network connection "
                "(`whisper-desk check` tells more)"
            ) from None
        except WhisperDeskError:
            await self.aclose()
            raise
        except Exception as exc:
            await self.aclose()
            raise ModalSetupError(explain(exc, self._secret)) from None

    async def _connect(self, url: str, token_id: str, model: str) -> None:
        import modal
        from modal_proto import api_pb2

        client = modal.Client(url, api_pb2.CLIENT_TYPE_CLIENT, (token_id, self._secret or ""))
        self._client = client
        await client.__aenter__()
        await client.hello.aio()
        cls = modal.Cls.from_name(self.app_name, self.class_name, client=client)
        await cls.hydrate.aio(client)
        method = cls(model=model).transcribe  # a deployed app without the method fails here, at once
        await method.hydrate.aio(client)  # binds the model now: one FunctionBindParams per job, in the time limit
        self._method = method

    async def spawn(self, audio: bytes, options: dict[str, Any], chunk_index: int = 0) -> str:
        if self._method is None:
            raise ModalSetupError(NOT_SET_UP)
        call = await self._method.spawn.aio(audio, options)
        self._calls[call.object_id] = call
        return call.object_id

    def _call(self, call_id: str) -> Any:
        call = self._calls.get(call_id)
        if call is None:  # spawned by an earlier run of the job
            import modal

            if self._client is None:
                raise ModalSetupError(NOT_SET_UP)
            call = self._calls[call_id] = modal.FunctionCall.from_id(call_id, client=self._client)
        return call

    async def collect(self, call_id: str) -> dict[str, Any]:
        call = self._call(call_id)
        while True:  # get() without a time limit never notices an expired output: it long-polls forever
            try:
                return await call.get.aio(timeout=POLL_S)
            except TimeoutError:  # the builtin one: still running (modal's OutputExpiredError is its own class)
                continue

    async def cancel(self, call_id: str) -> None:
        await self._call(call_id).cancel.aio()
        self._calls.pop(call_id, None)

    async def aclose(self) -> None:
        client, self._client, self._method = self._client, None, None
        self._calls.clear()
        if client is not None:
            await close_client(client)
