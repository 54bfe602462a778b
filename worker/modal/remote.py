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
from worker.modal.bounded import close_client, new_client
from worker.modal.credentials import scrub
from worker.modal.errors import explain_modal_error, is_auth_error, is_not_found, mro_names
from worker.modal.settings import (
    APP_NAME,
    CLASS_NAME,
    STARTUP_TAG,
    VOLUME_NAME,
    WEIGHTS_FOLDER,
    DeploySettings,
    checkpoint_file,
)

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


def stopped_on_modal(exc: BaseException) -> bool:
    """The call ended on Modal's side without an answer or an exception of its own: stopped from the dashboard
    or by `modal app stop` (GENERIC_STATUS_TERMINATED), or its container was evicted; modal's get() raises
    RemoteError for those. (Our own errors are answers; what the method raised comes back as itself.)"""
    return "RemoteError" in mro_names(exc)


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
        scaledown_s: int | None = None,
    ) -> None:
        self.app_name = app_name
        self.class_name = class_name
        self.connect_timeout_s = connect_timeout_s
        self.server_url = server_url
        # the job's own scale-down window (Cls.with_options): its containers stay warm this long, and no longer
        self.scaledown_s = scaledown_s
        self._client: Any = None
        self._method: Any = None
        self._calls: dict[str, Any] = {}  # call id -> modal.FunctionCall
        self._secrets: tuple[Any, ...] = ()
        self.environment: str | None = None  # the Modal environment of this job's look-ups
        # the deployed function's limits (timeout, start-up, retries, GPU, CPU, memory) once open
        self.deployed: DeploySettings | None = None

    async def open(self, model: str) -> None:
        from worker.modal.credentials import resolve_credentials, resolve_environment, resolve_server_url

        credentials = resolve_credentials()  # ModalSetupError for an unreadable config file
        if credentials is None:
            raise ModalSetupError(NOT_SET_UP)
        self._secrets = credentials.secrets()
        self.environment = resolve_environment()
        url = self.server_url or resolve_server_url()
        try:
            await asyncio.wait_for(self._connect(url, credentials, model), self.connect_timeout_s)
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
            raise ModalSetupError(explain(exc, *self._secrets)) from None

    async def _connect(self, url: str, credentials: Any, model: str) -> None:
        import modal

        client = new_client(url, credentials)
        self._client = client
        await client.__aenter__()
        await client.hello.aio()
        cls = modal.Cls.from_name(self.app_name, self.class_name, environment_name=self.environment, client=client)
        await cls.hydrate.aio(client)
        if self.scaledown_s:
            cls = cls.with_options(scaledown_window=int(self.scaledown_s))
        method = cls(model=model).transcribe  # a deployed app without the method fails here, at once
        await method.hydrate.aio(client)  # binds the model now: one FunctionBindParams per job, in the time limit
        # the limits as deployed (FunctionGet's definition; the start-up limit from the app's tag), never from
        # this computer's settings: a job started elsewhere, or after they changed, waits as long as Modal may
        deployed = DeploySettings().from_function_info(await method.info.aio())
        self.deployed = deployed.with_startup_tag(await self._startup_tag(client))
        self._method = method

    async def _startup_tag(self, client: Any) -> str | None:
        """The app's STARTUP_TAG (AppGetOrCreate, AppGetTags), or None when it has none or cannot be read."""
        import modal

        try:
            app = await modal.App.lookup.aio(self.app_name, environment_name=self.environment, client=client)
            return (await app.get_tags.aio(client=client)).get(STARTUP_TAG)
        except Exception as exc:  # an app deployed without it, or a hiccup: the default start-up limit serves
            if is_auth_error(exc):
                raise
            return None

    async def weights_cached(self, model: str) -> bool | None:
        """Whether the model Volume holds `model`'s weights (VolumeGetOrCreate, VolumeListFiles2): a first job on
        an uncached model sends one chunk first, so one container downloads them. None when it cannot tell."""
        import modal

        if self._client is None:
            return None
        wanted = checkpoint_file(model)
        try:
            volume = modal.Volume.from_name(VOLUME_NAME, environment_name=self.environment, client=self._client)
            entries = await asyncio.wait_for(volume.listdir.aio(f"/{WEIGHTS_FOLDER}"), self.connect_timeout_s)
        except (asyncio.TimeoutError, TimeoutError):
            return None
        except Exception as exc:
            if is_not_found(exc):  # no Volume (or folder) yet: nothing is cached
                return False
            return None
        return any(entry.path.rsplit("/", 1)[-1] == wanted for entry in entries)

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
