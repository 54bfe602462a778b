"""The HTTP side of `whisper-desk serve` (aiohttp, which modal already brings: a small, well-kept server that streams
multipart uploads to disk, and cancels a request's handler when its client goes away, which cancels its job).

    POST /v1/audio/transcriptions, /v1/audio/translations   multipart: file, model, language, prompt,
                                                           response_format, timestamp_granularities[]
    GET  /v1/models, /v1/models/{id}

Every request carries `Authorization: Bearer KEY`; every error is OpenAI's shape (worker.serve.protocol.ApiError).
Uploads are written to their own folder as they arrive, bounded by MAX_UPLOAD_BYTES; each request is bounded in
time as a whole (upload, queue, transcription, rendering). ApiServer runs the server in a thread of its own."""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

from aiohttp import BodyPartReader, web

from worker.core.options import MODEL_NAMES, Task
from worker.jobs.export import exporter
from worker.library.job_status import JobStatus
from worker.serve.protocol import (
    OPENAI_MODEL,
    ApiError,
    SpeechRequest,
    check_request_options,
    model_entry,
    model_list,
    parse_speech_request,
    render_response,
)
from worker.serve.service import TranscriptionService

log = logging.getLogger("whisper_desk.serve")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MAX_UPLOAD_BYTES = 1024**3  # one file (1 GiB: hours of compressed audio); OpenAI's own limit is 25 MB
MAX_FIELD_BYTES = 64 * 1024  # a text field (a long prompt fits)
REQUEST_TIMEOUT_S = 3600.0  # a whole request: upload, waiting in the queue, transcription, rendering
READ_CHUNK_BYTES = 256 * 1024
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ServerSettings:
    api_key: str
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    request_timeout_s: float = REQUEST_TIMEOUT_S
    started: int = field(default_factory=lambda: int(time.time()))  # the models' "created"


SERVICE: web.AppKey[TranscriptionService] = web.AppKey("service")
SETTINGS: web.AppKey[ServerSettings] = web.AppKey("settings")
SAY: web.AppKey[Callable[[str], None]] = web.AppKey("say")  # a line for the terminal (never the key)


def error_response(error: ApiError) -> web.Response:
    # a failed job is not retried by OpenAI's clients (they retry 5xx): running it again would fail the same way
    headers = {"x-should-retry": "false"} if error.status >= 500 else None
    return web.json_response(error.body(), status=error.status, headers=headers)


@web.middleware
async def openai_errors(request: web.Request,
                        handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """The key is checked first; every error leaves in OpenAI's shape, an unexpected one logged in full."""
    settings = request.app[SETTINGS]
    try:
        given = request.headers.get("Authorization", "")
        scheme, _, key = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip().encode(), settings.api_key.encode()):
            what = "an incorrect API key" if given else "no API key"
            raise ApiError(401, f"the request has {what}: send the key `whisper-desk serve` printed, as "
                           "'Authorization: Bearer KEY'", code="invalid_api_key")
        return await handler(request)
    except ApiError as error:
        failure = error
    except web.HTTPException as exc:  # aiohttp's own: unknown path (404), wrong method (405)
        if exc.status < 400:
            raise
        failure = ApiError(exc.status, f"{request.method} {request.path}: {exc.reason}",
                           code="unknown_url" if exc.status == 404 else None)
    except Exception as exc:
        log.exception("%s %s failed", request.method, request.path)
        failure = ApiError(500, f"the server failed: {type(exc).__name__}: {exc}", kind="server_error")
    request.app[SAY](f"{request.method} {request.path}: {failure.status}: {failure.message}")
    return error_response(failure)


@dataclass
class Form:
    """A multipart request: its text fields (each name with its values, in order) and the uploaded file."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    path: Path | None = None  # the upload, named after the client's file name


async def read_form(request: web.Request, service: TranscriptionService, max_upload_bytes: int) -> Form:
    """The multipart form, the file streamed to its upload folder. ApiError: not multipart (400), a text field
    over MAX_FIELD_BYTES (400), a file over `max_upload_bytes` (413, naming it; its bytes are dropped)."""
    if not request.content_type.startswith("multipart/"):
        raise ApiError(400, f"send the audio as multipart/form-data, not {request.content_type or 'no content type'}")
    loop = asyncio.get_running_loop()
    form = Form()
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise ApiError(400, "nested multipart forms are not supported")
            name = part.name or ""
            if name == "file" and form.path is None:
                form.path = await loop.run_in_executor(None, service.new_upload, part.filename)
                await _save_part(part, form.path, max_upload_bytes, loop)
            else:
                form.fields.setdefault(name, []).append(await _field_text(part))
    except BaseException as exc:
        if form.path is not None:
            await loop.run_in_executor(None, service.discard_upload, form.path)
        if isinstance(exc, ValueError):  # aiohttp's word for a malformed form
            raise ApiError(400, f"the multipart form could not be read: {exc}") from None
        raise
    return form


async def _save_part(part: BodyPartReader, path: Path, limit: int, loop: asyncio.AbstractEventLoop) -> None:
    size = 0
    with open(path, "wb") as handle:  # each chunk is written in the executor
        while chunk := await part.read_chunk(READ_CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"{path.name} is larger than the {limit / 1024**2:g} MB this server accepts",
                               param="file", code="file_too_large")
            await loop.run_in_executor(None, handle.write, chunk)


async def _field_text(part: BodyPartReader) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(READ_CHUNK_BYTES):
        data += chunk
        if len(data) > MAX_FIELD_BYTES:
            raise ApiError(400, f"the field {part.name!r} is longer than {MAX_FIELD_BYTES // 1024} KB", param=part.name)
    return data.decode(part.get_charset(default="utf-8"), errors="replace")


async def transcriptions(request: web.Request) -> web.Response:
    return await speech(request, "transcribe")


async def translations(request: web.Request) -> web.Response:
    return await speech(request, "translate")


async def speech(request: web.Request, task: Task) -> web.Response:
    """Upload, check, queue, wait, render; bounded in time as a whole. A refused upload is deleted; one that
    became a job stays with it in the library."""
    service, settings = request.app[SERVICE], request.app[SETTINGS]
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    try:
        async with asyncio.timeout(settings.request_timeout_s):
            form = await read_form(request, service, settings.max_upload_bytes)
            try:
                preferences = await loop.run_in_executor(None, service.preferences)
                # named as its job is (worker.serve.service.upload_name), so every message names it the same way
                asked = parse_speech_request(form.fields, form.path.name if form.path else None, task, preferences.model)
                options = asked.options(preferences.options())
                check_request_options(options)
                assert form.path is not None, "parse_speech_request refuses a form without a file"
                await loop.run_in_executor(None, service.check_media, form.path)
            except BaseException:
                if form.path is not None:
                    await loop.run_in_executor(None, service.discard_upload, form.path)
                raise
            ending = await service.transcribe(form.path, options)
            if ending.status != JobStatus.DONE:
                raise _job_error(asked, ending.status, ending.error)
            transcript = ending.transcript or await loop.run_in_executor(None, service.library.transcripts.get, ending.job_id)
            if transcript is None:
                raise ApiError(500, f"{asked.file_name}: the transcript is missing from the library", kind="server_error")
            pipeline = exporter(preferences.subtitle_rules())  # one per request: an Exporter serves one thread
            answer = await loop.run_in_executor(None, render_response, transcript, asked, pipeline, str(form.path))
    except TimeoutError:
        raise ApiError(504, f"the request took longer than {settings.request_timeout_s:g} s and was cancelled "
                       "(whisper-desk serve --timeout sets the limit)", kind="server_error", code="timeout") from None
    request.app[SAY](f"{asked.file_name}: {asked.response_format} answered in {time.monotonic() - started:.1f} s")
    return web.Response(text=answer.body, content_type=answer.content_type, charset="utf-8")


def _job_error(asked: SpeechRequest, status: JobStatus, reason: str | None) -> ApiError:
    if status == JobStatus.CANCELLED:
        return ApiError(500, f"{asked.file_name}: the job was cancelled", kind="server_error", code="cancelled")
    line = reason or "the transcription failed"
    line = line if line.startswith(asked.file_name) else f"{asked.file_name}: {line}"
    return ApiError(500, line, kind="server_error", code="transcription_failed")


async def models(request: web.Request) -> web.Response:
    return web.json_response(model_list(request.app[SETTINGS].started))


async def model(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in (OPENAI_MODEL, *MODEL_NAMES):
        raise ApiError(404, f"no model {name!r}; GET /v1/models lists them", param="model", code="model_not_found")
    return web.json_response(model_entry(name, request.app[SETTINGS].started))


def build_app(service: TranscriptionService, settings: ServerSettings, say: Callable[[str], None]) -> web.Application:
    # the upload size is bounded while streaming (read_form), not by aiohttp's whole-body limit
    app = web.Application(middlewares=[openai_errors], client_max_size=MAX_FIELD_BYTES)
    app[SERVICE] = service
    app[SETTINGS] = settings
    app[SAY] = say
    app.router.add_post("/v1/audio/transcriptions", transcriptions)
    app.router.add_post("/v1/audio/translations", translations)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/v1/models/{name}", model)
    return app


class ApiServer:
    """The server in a thread with its own event loop: start() returns the base URL once it listens (OSError: the
    address is taken or cannot be used), stop() closes it; requests still open are cancelled, so are their jobs."""

    def __init__(self, service: TranscriptionService, settings: ServerSettings, host: str = DEFAULT_HOST,
                 port: int = DEFAULT_PORT, say: Callable[[str], None] = print) -> None:
        self.service = service
        self.settings = settings
        self.host = host
        self.port = port
        self.say = say
        self.base_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="whisper-desk-serve", daemon=True)

    def start(self) -> str:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise OSError(f"the server did not start listening on {self.host}:{self.port} in {START_TIMEOUT_S:g} s")
        if self._failure is not None:
            raise self._failure
        return self.base_url

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 10.0) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:  # the loop closed meanwhile: it has stopped already
                pass
        self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # start() raises it in the caller's thread
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        app = build_app(self.service, self.settings, self.say)
        # handler_cancellation: a client that goes away cancels its handler, which cancels its job
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
            host, port = runner.addresses[0][:2]
            self.base_url = f"http://{_url_host(host)}:{port}/v1"
            self._ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


__all__ = ["ApiServer", "DEFAULT_HOST", "DEFAULT_PORT", "MAX_UPLOAD_BYTES", "REQUEST_TIMEOUT_S", "ServerSettings",
           "build_app"]
