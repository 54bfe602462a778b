"""A loopback Modal control plane: the real `modal` client (1.6.x) deploys to it, looks the app up, binds the
class parameter, spawns calls, polls their outputs and cancels them, all on 127.0.0.1.

Built from `modal_proto.api_grpc.ModalClientBase` (shipped in the modal wheel), served by grpclib on a
random free port in a background thread, with a loopback HTTP endpoint for blobs (PUT/GET; the ETag is the
quoted md5 hex, as S3 answers). Point the client at it with `plane.env()` (MODAL_SERVER_URL and a token).

What it does, RPC by RPC (see docs/modal.md for the flow as the tests see it):
- deploy (`modal deploy`): records the definition sent (FunctionCreate: image, gpu, volumes, timeouts,
  retries, autoscaling, CPU and memory; ClassCreate; AppPublish with the App's tags) into the environment it
  names. Images are built at once, or (build_images) take time, stream their log (ImageJoinStreaming) and can
  fail; a built image is reused. Tokens and OAuth clients are accepted (oauth_env);
- lookups (ClassGet, FunctionGet, AppGetOrCreate, AppGetTags ...) answer from what was deployed, or from
  apps seeded with `DeployedApp` (tests that need an app without running a deploy);
- calls: FunctionBindParams records the bound `model`; FunctionMap takes the pipelined input (args inline or
  through a blob) and EXECUTES it for real: a pool of "containers" (threads) each import the deployed
  class (worker.modal.app.Transcriber), set the bound parameter, run its @modal.enter methods once and then
  the method, exactly as a Modal container would. Several inputs run at once, so the fan-out is real.
  Failures follow the deployed retry policy (modal.Retries) like Modal's server; a crash in @enter is a
  crash loop (the container restarts with backoff, the input waits) like a deployed app;
- FunctionGetOutputs is a long poll (num_unfinished_inputs > 0 while the call runs, 0 and no output once an
  output expired); outputs are kept per call id, so `modal.FunctionCall.from_id(id).get()` works later;
  large outputs go through BlobGet + HTTP GET;
- FunctionCallCancel stops pending inputs and discards a running one's answer; terminate() and stop_app() stop
  calls the way Modal's dashboard and `modal app stop` do (TERMINATED);
- billing: a ledger per container (GPU, start, boot, inputs, idle until its scale-down window ran out, CPU and
  memory reservation), billed at Modal's prices (bill(since)); idle containers stop when their window runs out;
- the containers run the class body as in a Modal container: modal.is_local() is False, the model Volume is
  each container's own mount (commit, reload, batch_upload, remove_file, background commits), and weights are
  downloaded from a loopback host that counts them.

Faults (see `Faults` and the methods of ControlPlane): an input that fails once (transient), one that
always fails, a container whose @enter fails (its Volume holds checkpoints that do not load), a slow input,
an expired output, the connection dropped during polls, an RPC answered late, and a cancel (the client's own
FunctionCallCancel).

Every RPC is recorded by name (`plane.rpcs`, `plane.count(name)`), with its request (`plane.requests`), and
every execution of an input (`plane.executions`).

By hand, for a demo: `python -m tests.modal_control_plane` prints the variables to export, then serves
until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import http.server
import itertools
import os
import random
import shutil
import socket
import string
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import grpclib
import grpclib.server
from google.protobuf import empty_pb2
from grpclib.const import Status
from modal_proto import api_grpc, api_pb2

from worker.core.options import DEFAULT_MODEL

TOKEN_ID = "ak-" + "wd" + "0" * 20  # the shape Modal gives: ak-/as- and 22 letters or digits
TOKEN_SECRET = "as-" + "wdsecret" + "0" * 14
WORKSPACE = "ada-lovelace"
DEPLOYED_MODULE = "worker.modal.app"  # the deploy target whose class the containers run
POLL_STEP_S = 0.02
INLINE_OUTPUT_LIMIT = 2 * 1024 * 1024  # larger answers go through a blob, like Modal's MAX_OBJECT_SIZE_BYTES
MAX_CRASH_BACKOFF_S = 4.0
DEFAULT_ENVIRONMENT = "main"  # what a workspace's first environment is called, and where unnamed look-ups go
OAUTH = ("rt-" + "wd" + "0" * 20, "wd-oauth-client", "cs-" + "wdclient" + "0" * 14)  # refresh token, client id, secret
BOOT_S = 0.2  # a container's start before its @enter runs (Modal: the image boots; billed)
_IMAGE_METADATA = api_pb2.ImageMetadata(python_version_info="3.11.0", workdir="/root")


def _new_id(prefix: str) -> str:
    return prefix + "-" + "".join(random.choices(string.ascii_letters + string.digits, k=22))


def free_port() -> int:
    """A port nobody listens on (bound and released at once): connections to it are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- what is deployed


@dataclass
class DeployedClass:
    name: str
    methods: tuple[str, ...] = ("transcribe",)  # for a seeded app (a deploy sends its own)
    class_id: str = field(default_factory=lambda: _new_id("cs"))
    function_id: str = field(default_factory=lambda: _new_id("fu"))  # the class service function
    definition: api_pb2.FunctionData | None = None  # what FunctionCreate sent (None for a seeded app)


@dataclass
class DeployedApp:
    """An app on the control plane: seeded by a test, or what `modal deploy` published."""

    classes: tuple[str, ...] = ("Transcriber",)
    tags: dict[str, str] = field(default_factory=dict)
    app_id: str = field(default_factory=lambda: _new_id("ap"))
    class_objects: dict[str, DeployedClass] = field(default_factory=dict)
    methods: tuple[str, ...] = ("transcribe",)  # () seeds an old or foreign deploy without our method

    def __post_init__(self) -> None:
        for name in self.classes:
            self.class_objects.setdefault(name, DeployedClass(name, self.methods))


@dataclass
class Deployment:
    """What one `modal deploy` sent, in order: the records a deploy test checks."""

    app_name: str
    app_id: str
    functions: list[api_pb2.FunctionData] = field(default_factory=list)  # FunctionCreate definitions
    classes: list[api_pb2.ClassCreateRequest] = field(default_factory=list)
    images: list[api_pb2.Image] = field(default_factory=list)  # ImageGetOrCreate images (each layer)
    volumes: list[str] = field(default_factory=list)  # VolumeGetOrCreate names
    mounts: list[str] = field(default_factory=list)  # files put through MountPutFile (sha256)
    tags: dict[str, str] = field(default_factory=dict)
    published: bool = False
    environment: str = DEFAULT_ENVIRONMENT

    def function(self, name: str) -> api_pb2.Function:
        """The deployed settings (image, gpu, volumes, timeouts, retries ...) of function `name`."""
        for definition in self.functions:
            if definition.function_name == name:
                return definition.ranked_functions[0].function
        raise KeyError(f"no function {name!r} was deployed (have {[f.function_name for f in self.functions]})")

    def image_commands(self) -> list[str]:
        """Every Dockerfile command of every image layer the deploy asked for."""
        return [command for image in self.images for command in image.dockerfile_commands]


@dataclass
class _Build:
    """One image: built at once (already cached), or building (its log grows, then a result)."""

    image_id: str
    lines: list[str] = field(default_factory=list)
    result: api_pb2.GenericResult | None = None


# ---------------------------------------------------------------- calls and their inputs


@dataclass
class Execution:
    """One run of one input in a container (a retry is another Execution of the same input)."""

    call_id: str
    input_id: str
    ordinal: int  # the input's place among all inputs the plane received (0, 1, ...)
    attempt: int  # 0 for the first run
    model: str
    container: str
    audio_sha256: str
    started: float
    finished: float | None = None
    outcome: str = "running"  # running | success | failure | internal_failure | cancelled


@dataclass
class InputRecord:
    """What a fault matches on: the input's ordinal, its call, its decoded arguments and bound parameters."""

    ordinal: int
    call_id: str
    input_id: str
    method: str
    args: tuple
    kwargs: dict
    params: dict

    @property
    def audio(self) -> bytes:
        value = self.args[0] if self.args else self.kwargs.get("audio", b"")
        return value if isinstance(value, (bytes, bytearray)) else b""


Match = Callable[[InputRecord], bool]


def _as_match(match: "int | Match | None") -> Match:
    if match is None:
        return lambda record: True
    if isinstance(match, int):
        return lambda record: record.ordinal == match
    return match


@dataclass
class Faults:
    """What goes wrong, set by a test (usually through the ControlPlane methods that fill it)."""

    fail_once: list[tuple[Match, str]] = field(default_factory=list)  # (match, "internal" | "raise")
    fail_always: list[tuple[Match, str]] = field(default_factory=list)
    slow: list[tuple[Match, float]] = field(default_factory=list)  # run after this many seconds
    slow_released: threading.Event = field(default_factory=threading.Event)  # set: slowed inputs run now
    expire: list[Match] = field(default_factory=list)  # the output expires as soon as it is done
    drop_polls: int = 0  # the next N FunctionGetOutputs lose their connection
    delays: dict[str, float] = field(default_factory=dict)  # RPC name -> seconds before it is answered
    retry_delay_scale: float = 0.05  # the deployed Retries' delays, scaled (1.0 = as deployed)


class _Call:
    def __init__(self, call_id: str, function_id: str, invocation_type: int) -> None:
        self.call_id = call_id
        self.function_id = function_id
        self.invocation_type = invocation_type
        self.input_id = ""
        self.record: InputRecord | None = None
        self.output: api_pb2.FunctionGetOutputsItem | None = None
        self.done = threading.Event()
        self.cancelled = threading.Event()
        self.expired = False
        self.cleared = False
        self.retries = 0
        self.terminated = False  # stopped from the dashboard or `modal app stop`, not by the client


# ---------------------------------------------------------------- billing


@dataclass
class ContainerBill:
    """One container as Modal bills it: from its start (before the image boots) until it stops, i.e. until
    its scale-down window has run out after its last input, at the GPU's rate plus its CPU and memory
    reservation (Modal bills max(reservation, use); the worker reserves what it uses)."""

    container_id: str
    gpu: str
    cpu_cores: float
    memory_gib: float
    window_s: float  # the scale-down window it runs under
    started: float  # wall clock (time.time()), as the client's and the worker's clocks are
    booted: float | None = None  # @enter done: the image booted and the model loaded
    inputs: list[tuple[str, float, float]] = field(default_factory=list)  # (call id, start, end)
    stopped: float | None = None  # set once it scaled down (or crashed, or the plane stopped)
    busy_since: float | None = None  # an input is running since then

    def end(self, now: float | None = None) -> float:
        """When billing stops: at its stop, else (idle) when its window runs out, else (busy) now."""
        if self.stopped is not None:
            return self.stopped
        now = time.time() if now is None else now
        if self.busy_since is not None:
            return now
        last = max([end for _call, _start, end in self.inputs], default=self.booted or self.started)
        return last + self.window_s

    def seconds(self, since: float | None = None, now: float | None = None) -> float:
        return max(0.0, self.end(now) - max(self.started, since or self.started))

    def usd(self, since: float | None = None, now: float | None = None) -> float:
        from worker.modal.cost import PRICES

        return self.seconds(since, now) * PRICES.container_usd_per_s(self.gpu, self.cpu_cores, self.memory_gib)


@dataclass
class Bill:
    """What a stretch of the plane's time costs: one line per container."""

    lines: list[tuple[ContainerBill, float, float]]  # (container, billed seconds, dollars)

    @property
    def usd(self) -> float:
        return sum(usd for _bill, _seconds, usd in self.lines)

    @property
    def container_seconds(self) -> float:
        return sum(seconds for _bill, seconds, _usd in self.lines)

    def __str__(self) -> str:
        return f"${self.usd:.5f} for {len(self.lines)} containers, {self.container_seconds:.1f} container-s"


# ---------------------------------------------------------------- containers and their Volume


class _Runtime(threading.local):
    """Which in-process container (and plane) the current thread runs code for (None: the client's side)."""

    container: "_Container | None" = None
    plane: "ControlPlane | None" = None


_RUNTIME = _Runtime()


@dataclass
class VolumeCommit:
    """One commit into a Volume: who committed, how (explicit, background, upload) and the files it wrote."""

    container_id: str
    how: str  # "commit" | "background" | "reload" | "upload"
    files: dict[str, int]  # path in the Volume -> size committed
    at: float


class VolumeStore:
    """A Modal Volume as containers see it: a committed state, and a private view per container that holds
    the committed state as of its start (or its last reload) plus its own uncommitted writes. commit()
    publishes a container's changes (last writer wins, per file); reload() commits, then shows the latest
    committed state; a background commit publishes whatever the view holds at that moment, as Modal's do."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.committed = root / "committed"
        self.committed.mkdir(parents=True, exist_ok=True)
        self.commits: list[VolumeCommit] = []
        self._lock = threading.RLock()
        self._synced: dict[str, dict[str, tuple[int, float]]] = {}  # container id -> files at its last sync

    @staticmethod
    def _files(folder: Path) -> dict[str, tuple[int, float]]:
        found = {}
        for path in folder.rglob("*"):
            if path.is_file():
                stat = path.stat()
                found[str(path.relative_to(folder))] = (stat.st_size, stat.st_mtime_ns)
        return found

    def mount(self, container_id: str) -> Path:
        """The container's view (created at its start from the committed state)."""
        view = self.root / "views" / container_id
        if not view.exists():
            view.mkdir(parents=True)
            self._mirror(container_id, view)
        return view

    def _mirror(self, container_id: str, view: Path) -> None:
        with self._lock:
            committed = self._files(self.committed)
            for name in self._files(view):
                if name not in committed:
                    (view / name).unlink()
            for name in committed:
                target = view / name
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists():
                    target.unlink()
                os.link(self.committed / name, target)  # files are replaced, never written in place
            self._synced[container_id] = self._files(view)

    def commit(self, container_id: str, how: str = "commit") -> None:
        view = self.root / "views" / container_id
        with self._lock:
            if not view.exists():
                return
            now, before = self._files(view), self._synced.get(container_id, {})
            changed = {name: info for name, info in now.items() if before.get(name) != info}
            for name in changed:
                target = self.committed / name
                target.parent.mkdir(parents=True, exist_ok=True)
                staging = target.with_name(f".{target.name}.{container_id}.commit")
                shutil.copyfile(view / name, staging)
                os.replace(staging, target)
            for name in set(before) - set(now):
                (self.committed / name).unlink(missing_ok=True)
            self._synced[container_id] = now
            if changed:
                self.commits.append(VolumeCommit(container_id, how, {n: i[0] for n, i in changed.items()}, time.time()))

    def reload(self, container_id: str) -> None:
        view = self.root / "views" / container_id
        with self._lock:
            self.commit(container_id, "reload")
            self._mirror(container_id, view)

    def upload(self, container_id: str, files: dict[str, Path]) -> None:
        """batch_upload: the files appear in the committed state whole, in one step (not in the view until a
        reload, as on Modal)."""
        with self._lock:
            sizes = {}
            for name, local in files.items():
                name = name.lstrip("/")
                if (self.committed / name).exists():
                    raise FileExistsError(f"{name} already exists in the Volume")
                target = self.committed / name
                target.parent.mkdir(parents=True, exist_ok=True)
                staging = target.with_name(f".{target.name}.{container_id}.upload")
                shutil.copyfile(local, staging)
                os.replace(staging, target)
                sizes[name] = target.stat().st_size
            self.commits.append(VolumeCommit(container_id, "upload", sizes, time.time()))

    def remove(self, container_id: str, path: str) -> None:
        """remove_file: gone from the committed state at once (from a view at its next reload)."""
        with self._lock:
            target = self.committed / path.lstrip("/")
            if not target.exists():
                raise FileNotFoundError(f"{path} is not in the Volume")
            target.unlink()
            self.commits.append(VolumeCommit(container_id, "remove", {path.lstrip("/"): 0}, time.time()))

    def listing(self, path: str) -> list[tuple[str, int]]:
        """(path, size) of the committed files under `path`."""
        prefix = path.strip("/")
        with self._lock:
            return [(name, info[0]) for name, info in sorted(self._files(self.committed).items())
                    if not prefix or name == prefix or name.startswith(prefix + "/")]

    def clear(self) -> None:
        with self._lock:
            shutil.rmtree(self.root, ignore_errors=True)
            self.committed.mkdir(parents=True, exist_ok=True)
            self._synced.clear()
            self.commits.clear()


class _MountedVolume:
    """What `worker.modal.app.volume` is inside the plane's containers: the calling container's mount of the
    Volume (reload, commit, batch_upload), as Modal's container runtime provides it. Outside a container it
    is the real modal.Volume the module defines."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        container = _RUNTIME.container
        if container is None:
            return getattr(self.real, name)
        plane = _RUNTIME.plane
        record = plane._record if plane is not None else (lambda name, request: None)
        if name == "reload":
            return lambda: (record("VolumeReload", container.id), container.volume.reload(container.id))[-1]
        if name == "commit":
            return lambda: (record("VolumeCommit", container.id), container.volume.commit(container.id))[-1]
        if name == "batch_upload":
            return lambda force=False: _Upload(record, container)
        if name == "remove_file":
            return lambda path, recursive=False: (record("VolumeRemoveFile2", container.id),
                                                  container.volume.remove(container.id, path))[-1]
        return getattr(self.real, name)


class _Upload:
    def __init__(self, record: Callable[[str, Any], None], container: "_Container") -> None:
        self.record, self.container, self.files = record, container, {}

    def put_file(self, local: "str | Path", remote: str) -> None:
        self.files[remote] = Path(local)

    def __enter__(self) -> "_Upload":
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            self.record("VolumePutFiles2", self.container.id)
            self.container.volume.upload(self.container.id, self.files)


_PATCHES: list[tuple[Any, str, Any]] = []  # (object, attribute, original) while any plane serves
_PATCH_USERS = 0
_PATCH_LOCK = threading.Lock()


def _install_runtime() -> None:
    """Inside the plane's containers (threads of this process) the deployed module sees what a Modal container
    sees: modal.is_local() is False, the Volume is the container's mount, the container id is its own."""
    global _PATCH_USERS
    with _PATCH_LOCK:
        _PATCH_USERS += 1
        if _PATCH_USERS > 1:
            return
        import modal

        import worker.modal.app as deployed

        original_is_local, original_models_dir, original_container_id = (
            modal.is_local, deployed.models_dir, deployed.container_id)

        def is_local() -> bool:
            return False if _RUNTIME.container is not None else original_is_local()

        def models_dir() -> "Path | None":
            container = _RUNTIME.container
            if container is not None:
                return container.mount
            return original_models_dir()

        def container_id() -> str:
            return _RUNTIME.container.id if _RUNTIME.container is not None else original_container_id()

        for target, name, value in ((modal, "is_local", is_local), (deployed, "models_dir", models_dir),
                                    (deployed, "container_id", container_id),
                                    (deployed, "volume", _MountedVolume(deployed.volume))):
            _PATCHES.append((target, name, getattr(target, name)))
            setattr(target, name, value)
        _WEIGHTS.install()


def _uninstall_runtime() -> None:
    global _PATCH_USERS
    with _PATCH_LOCK:
        _PATCH_USERS -= 1
        if _PATCH_USERS > 0:
            return
        while _PATCHES:
            target, name, value = _PATCHES.pop()
            setattr(target, name, value)
        _WEIGHTS.uninstall()


class _WeightsServer:
    """The weights' download host for the plane's containers (openaipublic.azureedge.net on Modal): serves
    tiny.en (the bundled weights, converted to openai-whisper's format) at a URL that carries its SHA-256,
    as whisper._MODELS' do, and counts each download. Optionally slow (bytes per second)."""

    MODEL = "tiny.en"

    def __init__(self) -> None:
        self.downloads: list[tuple[str, float]] = []  # (model, when)
        self.bytes_per_s: float | None = None
        self._server: http.server.ThreadingHTTPServer | None = None
        self._saved_url: str | None = None
        self._path: Path | None = None

    def install(self) -> None:
        import whisper

        from worker.engines.weights import openai_checkpoint, openai_download_root

        checkpoint = openai_checkpoint(self.MODEL)
        path = checkpoint if isinstance(checkpoint, Path) else openai_download_root() / f"{self.MODEL}.pt"
        self._path = path
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        weights = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                assert weights._path is not None
                data = weights._path.read_bytes()
                weights.downloads.append((weights.MODEL, time.time()))
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                step = 1 << 20
                for offset in range(0, len(data), step):
                    self.wfile.write(data[offset:offset + step])
                    if weights.bytes_per_s:
                        time.sleep(step / weights.bytes_per_s)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="loopback-weights", daemon=True).start()
        self._saved_url = whisper._MODELS[self.MODEL]  # noqa: SLF001
        port = self._server.server_address[1]
        whisper._MODELS[self.MODEL] = f"http://127.0.0.1:{port}/{sha}/{os.path.basename(self._saved_url)}"  # noqa: SLF001

    def uninstall(self) -> None:
        import whisper

        if self._saved_url is not None:
            whisper._MODELS[self.MODEL] = self._saved_url  # noqa: SLF001
            self._saved_url = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


_WEIGHTS = _WeightsServer()


class _Container:
    """One in-process container: the deployed class, its parameter set, @enter run once, its own mount of
    the model Volume, and its bill."""

    def __init__(self, plane: "ControlPlane", model: str, spec: "_Spec") -> None:
        from modal._partial_function import _find_callables_for_obj, _PartialFunctionFlags

        self.id = _new_id("ta")
        self.model = model
        self.spec = spec
        self.volume = plane.volume
        self.bill = ContainerBill(self.id, spec.gpu, spec.cpu_cores, spec.memory_gib, spec.window_s, time.time())
        plane._container_starts.append((self.id, model))
        plane._bills.append(self.bill)
        plane._live.append(self)
        self.mount = plane.volume.mount(self.id)
        if plane.boot_s:
            time.sleep(plane.boot_s)  # the image boots (billed)
        user_cls = plane.user_class()
        self.instance = user_cls.__new__(user_cls)
        self.instance.model = model
        flags = _PartialFunctionFlags.ENTER_PRE_SNAPSHOT | _PartialFunctionFlags.ENTER_POST_SNAPSHOT
        with plane.running_in(self):
            try:
                for enter in _find_callables_for_obj(self.instance, flags).values():
                    enter()
            except BaseException:
                self.bill.stopped = time.time()  # a crash ends it (and its bill)
                raise
        self.bill.booted = time.time()
        self.methods = _find_callables_for_obj(self.instance, _PartialFunctionFlags.CALLABLE_INTERFACE)

    def idle_until(self) -> float:
        return self.bill.end()


@dataclass(frozen=True)
class _Spec:
    """What a container runs under: the function's resources and its scale-down window."""

    gpu: str = "T4"
    cpu_cores: float = 0.125  # Modal's default reservation
    memory_gib: float = 0.125
    window_s: float = 60.0  # Modal's default scale-down window


class _ContainerCrash(Exception):
    pass


# ---------------------------------------------------------------- the gRPC servicer


def _function_data(request: api_pb2.FunctionCreateRequest) -> api_pb2.FunctionData:
    """The definition FunctionCreate sent, as FunctionData (modal 1.6 sends function_data; older, function)."""
    if request.HasField("function_data"):
        return request.function_data
    return _wrap(request.function)


def _wrap(function: api_pb2.Function) -> api_pb2.FunctionData:
    return api_pb2.FunctionData(
        module_name=function.module_name,
        function_name=function.function_name,
        function_type=function.function_type,
        is_class=function.is_class,
        method_definitions=function.method_definitions,
        class_parameter_info=function.class_parameter_info,
        supported_input_formats=function.supported_input_formats,
        supported_output_formats=function.supported_output_formats,
        timeout_secs=function.timeout_secs,
        ranked_functions=[api_pb2.FunctionData.RankedFunction(rank=0, function=function)],
    )


def _retry_policy(definition: "api_pb2.FunctionData | None") -> api_pb2.FunctionRetryPolicy:
    if definition is None or not definition.ranked_functions:
        return api_pb2.FunctionRetryPolicy()
    return definition.ranked_functions[0].function.retry_policy


def _unimplemented(name: str):
    async def handler(self, stream: grpclib.server.Stream) -> None:
        await stream.recv_message()
        self.plane._record(name, None)
        raise grpclib.GRPCError(Status.UNIMPLEMENTED, f"{name} is not part of the loopback control plane")

    handler.__name__ = name
    return handler


class _Servicer(api_grpc.ModalClientBase):
    def __init__(self, plane: "ControlPlane") -> None:
        self.plane = plane

    async def _start(self, name: str, stream: grpclib.server.Stream, auth: bool = True) -> Any:
        request = await stream.recv_message()
        self.plane._record(name, request)
        delay = self.plane.faults.delays.get(name)
        if delay:
            await asyncio.sleep(delay)  # the plane's other RPCs go on meanwhile
        if auth and not self.plane._authorized(stream.metadata or {}):
            raise grpclib.GRPCError(Status.UNAUTHENTICATED, "Token is invalid or expired.")
        return request

    # --- hello, workspace, sign-in ----------------------------------------------------------------------

    async def ClientHello(self, stream) -> None:
        await stream.recv_message()
        self.plane._record("ClientHello", None)
        if self.plane.hello_delay_s:
            await asyncio.sleep(self.plane.hello_delay_s)
        if not self.plane._authorized(stream.metadata or {}):
            raise grpclib.GRPCError(Status.UNAUTHENTICATED, "Token is invalid or expired.")
        await stream.send_message(api_pb2.ClientHelloResponse())

    async def WorkspaceNameLookup(self, stream) -> None:
        await self._start("WorkspaceNameLookup", stream)
        await stream.send_message(
            api_pb2.WorkspaceNameLookupResponse(workspace_name=self.plane.workspace, username=self.plane.workspace)
        )

    async def TokenFlowCreate(self, stream) -> None:
        await self._start("TokenFlowCreate", stream, auth=False)
        await stream.send_message(
            api_pb2.TokenFlowCreateResponse(
                token_flow_id="tf-fake", web_url="https://modal.invalid/token-flow/tf-fake",
                code="FAKE-CODE", wait_secret="wait-secret",
            )
        )

    async def TokenFlowWait(self, stream) -> None:
        request = await self._start("TokenFlowWait", stream, auth=False)
        if self.plane.token_flow_never_finishes:
            await asyncio.sleep(request.timeout)
            await stream.send_message(api_pb2.TokenFlowWaitResponse(timeout=True))
            return
        await stream.send_message(
            api_pb2.TokenFlowWaitResponse(
                token_id=self.plane.token_id, token_secret=self.plane.token_secret,
                workspace_username=self.plane.workspace,
            )
        )

    # --- deploy -------------------------------------------------------------------------------------------

    async def EnvironmentGetOrCreate(self, stream) -> None:
        request = await self._start("EnvironmentGetOrCreate", stream)
        name = request.deployment_name or DEFAULT_ENVIRONMENT
        self.plane.environments.setdefault(name, {})
        await stream.send_message(
            api_pb2.EnvironmentGetOrCreateResponse(
                environment_id=f"en-{name}",
                metadata=api_pb2.EnvironmentMetadata(
                    name=name,
                    settings=api_pb2.EnvironmentSettings(image_builder_version="2025.06", webhook_suffix="loopback"),
                ),
            )
        )

    async def AppGetByDeploymentName(self, stream) -> None:
        request = await self._start("AppGetByDeploymentName", stream)
        app = self.plane.apps_in(request.environment_name).get(request.name)
        await stream.send_message(api_pb2.AppGetByDeploymentNameResponse(app_id=app.app_id if app else ""))

    async def AppCreate(self, stream) -> None:
        request = await self._start("AppCreate", stream)
        app_id = _new_id("ap")
        self.plane._pending_apps[app_id] = Deployment(app_name=request.description, app_id=app_id,
                                                      environment=request.environment_name or DEFAULT_ENVIRONMENT)
        await stream.send_message(
            api_pb2.AppCreateResponse(app_id=app_id, app_page_url=f"https://modal.invalid/apps/{app_id}")
        )

    async def AppGetLayout(self, stream) -> None:
        """A redeploy of an app that exists: its objects are created anew (an empty layout), in its environment."""
        request = await self._start("AppGetLayout", stream)
        for environment, apps in self.plane.environments.items():
            for name, app in apps.items():
                if app.app_id == request.app_id:
                    self.plane._pending_apps[request.app_id] = Deployment(app_name=name, app_id=request.app_id,
                                                                          environment=environment)
        await stream.send_message(api_pb2.AppGetLayoutResponse(app_layout=api_pb2.AppLayout()))

    async def AppHeartbeat(self, stream) -> None:
        await self._start("AppHeartbeat", stream)
        await stream.send_message(empty_pb2.Empty())

    async def AppClientDisconnect(self, stream) -> None:
        await self._start("AppClientDisconnect", stream)
        await stream.send_message(empty_pb2.Empty())

    async def FunctionPrecreate(self, stream) -> None:
        request = await self._start("FunctionPrecreate", stream)
        function_id = _new_id("fu")
        await stream.send_message(
            api_pb2.FunctionPrecreateResponse(
                function_id=function_id,
                handle_metadata=api_pb2.FunctionHandleMetadata(function_name=request.function_name),
            )
        )

    async def MountGetOrCreate(self, stream) -> None:
        request = await self._start("MountGetOrCreate", stream)
        for item in request.files:
            self.plane._deployment_for(request.app_id).mounts.append(item.filename)
        await stream.send_message(
            api_pb2.MountGetOrCreateResponse(
                mount_id=_new_id("mo"), handle_metadata=api_pb2.MountHandleMetadata(content_checksum_sha256_hex="0")
            )
        )

    async def MountBatchedCheckExistence(self, stream) -> None:
        request = await self._start("MountBatchedCheckExistence", stream)
        missing = [sha for sha in request.sha256_hex_hashes if sha not in self.plane._mount_files]
        await stream.send_message(api_pb2.MountBatchedCheckExistenceResponse(missing_sha256_hex_hashes=missing))

    async def MountPutFile(self, stream) -> None:
        request = await self._start("MountPutFile", stream)
        self.plane._mount_files.add(request.sha256_hex)
        await stream.send_message(api_pb2.MountPutFileResponse(exists=True))

    async def VolumeGetOrCreate(self, stream) -> None:
        request = await self._start("VolumeGetOrCreate", stream)
        volume_id = self.plane._volumes.setdefault(request.deployment_name, _new_id("vo"))
        if request.deployment_name == self.plane.model_volume_name:
            self.plane._model_volume_ids.add(volume_id)
        for deployment in self.plane._pending_apps.values():
            if not deployment.published and request.deployment_name not in deployment.volumes:
                deployment.volumes.append(request.deployment_name)
        await stream.send_message(
            api_pb2.VolumeGetOrCreateResponse(
                volume_id=volume_id, version=api_pb2.VOLUME_FS_VERSION_V2,
                metadata=api_pb2.VolumeMetadata(name=request.deployment_name, version=api_pb2.VOLUME_FS_VERSION_V2),
            )
        )

    async def VolumeListFiles2(self, stream) -> None:
        request = await self._start("VolumeListFiles2", stream)
        entries = []
        if request.volume_id in self.plane._model_volume_ids:
            entries = [api_pb2.FileEntry(path=name, type=api_pb2.FileEntry.FileType.FILE, size=size)
                       for name, size in self.plane.volume.listing(request.path)]
        await stream.send_message(api_pb2.VolumeListFiles2Response(entries=entries))

    async def VolumeReload(self, stream) -> None:
        await self._start("VolumeReload", stream)
        await stream.send_message(empty_pb2.Empty())

    async def VolumeCommit(self, stream) -> None:
        await self._start("VolumeCommit", stream)
        await stream.send_message(api_pb2.VolumeCommitResponse(skip_reload=False))

    async def ImageGetOrCreate(self, stream) -> None:
        request = await self._start("ImageGetOrCreate", stream)
        self.plane._deployment_for(request.app_id).images.append(request.image)
        build = self.plane._image_build(request.image, request.force_build)
        await stream.send_message(
            api_pb2.ImageGetOrCreateResponse(
                image_id=build.image_id,
                result=build.result if build.result is not None else api_pb2.GenericResult(),
                metadata=_IMAGE_METADATA,
            )
        )

    async def ImageJoinStreaming(self, stream) -> None:
        """A build's log as it is written, then its result (modal prints the log while `modal deploy` runs)."""
        request = await self._start("ImageJoinStreaming", stream)
        build = self.plane._builds.get(request.image_id)
        if build is None:
            raise grpclib.GRPCError(Status.NOT_FOUND, f"no image {request.image_id}")
        sent = int(request.last_entry_id or 0)
        deadline = time.monotonic() + (request.timeout or 55)
        while time.monotonic() < deadline:
            while sent < len(build.lines):
                line = build.lines[sent]
                sent += 1
                await stream.send_message(api_pb2.ImageJoinStreamingResponse(
                    entry_id=str(sent),
                    task_logs=[api_pb2.TaskLogs(data=line + "\n", file_descriptor=api_pb2.FILE_DESCRIPTOR_STDOUT)],
                ))
            if build.result is not None:
                await stream.send_message(api_pb2.ImageJoinStreamingResponse(
                    result=build.result, entry_id=str(sent), eof=True, metadata=_IMAGE_METADATA,
                ))
                return
            await asyncio.sleep(POLL_STEP_S)

    async def FunctionCreate(self, stream) -> None:
        request = await self._start("FunctionCreate", stream)
        definition = _function_data(request)
        self.plane._deployment_for(request.app_id).functions.append(definition)
        function_id = request.existing_function_id or _new_id("fu")
        self.plane._definitions[function_id] = definition
        await stream.send_message(
            api_pb2.FunctionCreateResponse(
                function_id=function_id,
                function_data=definition,
                handle_metadata=self.plane._handle_metadata(definition),
            )
        )

    async def ClassCreate(self, stream) -> None:
        request = await self._start("ClassCreate", stream)
        self.plane._deployment_for(request.app_id).classes.append(request)
        await stream.send_message(
            api_pb2.ClassCreateResponse(class_id=_new_id("cs"), handle_metadata=api_pb2.ClassHandleMetadata())
        )

    async def AppPublish(self, stream) -> None:
        request = await self._start("AppPublish", stream)
        self.plane._publish(request)
        await stream.send_message(
            api_pb2.AppPublishResponse(url=f"https://modal.invalid/apps/{request.app_id}", deployed_at=time.time())
        )

    async def AppSetObjects(self, stream) -> None:
        await self._start("AppSetObjects", stream)
        await stream.send_message(empty_pb2.Empty())

    # --- lookups ------------------------------------------------------------------------------------------

    async def AppGetOrCreate(self, stream) -> None:
        request = await self._start("AppGetOrCreate", stream)
        app = self.plane.apps_in(request.environment_name).get(request.app_name)
        if app is None:
            raise grpclib.GRPCError(Status.NOT_FOUND, f"App '{request.app_name}' not found")
        await stream.send_message(api_pb2.AppGetOrCreateResponse(app_id=app.app_id))

    async def AppGetTags(self, stream) -> None:
        request = await self._start("AppGetTags", stream)
        app = self.plane._app_by_id(request.app_id)
        await stream.send_message(api_pb2.AppGetTagsResponse(tags=app.tags))

    async def AppSetTags(self, stream) -> None:
        request = await self._start("AppSetTags", stream)
        app = self.plane._app_by_id(request.app_id)
        app.tags = dict(request.tags)
        await stream.send_message(empty_pb2.Empty())

    async def ClassGet(self, stream) -> None:
        request = await self._start("ClassGet", stream)
        deployed = self.plane._class(request.app_name, request.object_tag, request.environment_name)
        if deployed is None:
            raise grpclib.GRPCError(
                Status.NOT_FOUND, f"Lookup failed for Cls '{request.object_tag}' from the '{request.app_name}' app"
            )
        await stream.send_message(
            api_pb2.ClassGetResponse(class_id=deployed.class_id, handle_metadata=api_pb2.ClassHandleMetadata())
        )

    async def FunctionGet(self, stream) -> None:
        request = await self._start("FunctionGet", stream)
        class_name = request.object_tag.split(".")[0]
        deployed = (self.plane._class(request.app_name, class_name, request.environment_name)
                    if request.object_tag.endswith(".*") else None)
        if deployed is None:
            raise grpclib.GRPCError(
                Status.NOT_FOUND, f"Lookup failed for Function '{request.object_tag}' from the '{request.app_name}' app"
            )
        definition = self.plane._definition(deployed)
        self.plane._definitions[deployed.function_id] = definition
        await stream.send_message(
            api_pb2.FunctionGetResponse(
                function_id=deployed.function_id,
                handle_metadata=self.plane._handle_metadata(definition),
                function=definition,
            )
        )

    # --- calls --------------------------------------------------------------------------------------------

    async def FunctionBindParams(self, stream) -> None:
        request = await self._start("FunctionBindParams", stream)
        from modal._serialization import deserialize_proto_params

        definition = self.plane._definitions.get(request.function_id)
        if definition is None:
            raise grpclib.GRPCError(Status.NOT_FOUND, f"no function {request.function_id}")
        params = deserialize_proto_params(request.serialized_params)
        bound_id = _new_id("fu")
        self.plane._bound[bound_id] = (request.function_id, params)
        if request.HasField("function_options"):  # Cls.with_options(...): its own pool of containers
            self.plane._bound_options[bound_id] = request.function_options
        self.plane._definitions[bound_id] = definition
        metadata = self.plane._handle_metadata(definition)
        await stream.send_message(api_pb2.FunctionBindParamsResponse(bound_function_id=bound_id, handle_metadata=metadata))

    async def BlobCreate(self, stream) -> None:
        request = await self._start("BlobCreate", stream)
        blob_id = _new_id("bl")
        url = f"{self.plane.blob_url}/blob/{blob_id}"
        self.plane._blob_md5[blob_id] = request.content_md5  # the upload must match it, as S3's signed URL does
        await stream.send_message(
            api_pb2.BlobCreateResponse(blob_ids=[blob_id], upload_urls=api_pb2.UploadUrlList(items=[url]))
        )

    async def BlobGet(self, stream) -> None:
        request = await self._start("BlobGet", stream)
        if request.blob_id not in self.plane.blobs:
            raise grpclib.GRPCError(Status.NOT_FOUND, f"no blob {request.blob_id}")
        await stream.send_message(api_pb2.BlobGetResponse(download_url=f"{self.plane.blob_url}/blob/{request.blob_id}"))

    async def FunctionMap(self, stream) -> None:
        request = await self._start("FunctionMap", stream)
        response = await asyncio.get_running_loop().run_in_executor(None, self.plane._map, request)
        await stream.send_message(response)

    async def FunctionPutInputs(self, stream) -> None:
        await self._start("FunctionPutInputs", stream)
        raise grpclib.GRPCError(Status.UNIMPLEMENTED, "inputs are pipelined in FunctionMap")

    async def FunctionGetOutputs(self, stream) -> None:
        request = await self._start("FunctionGetOutputs", stream)
        plane = self.plane
        if plane.faults.drop_polls > 0:
            plane.faults.drop_polls -= 1
            plane._dropped_polls += 1
            await asyncio.sleep(0.05)
            stream._stream.connection._transport.abort()  # the connection dies mid-poll
            return
        call = plane.calls.get(request.function_call_id)
        if call is None:
            raise grpclib.GRPCError(Status.NOT_FOUND, f"Function call {request.function_call_id} not found")
        deadline = time.monotonic() + max(0.0, min(request.timeout, plane.poll_cap_s))
        while time.monotonic() < deadline and not (call.done.is_set() and not (call.expired or call.cleared)):
            await asyncio.sleep(POLL_STEP_S)
        if call.expired or call.cleared or (call.done.is_set() and call.output is None):
            # nothing will come: after the poll's wait, no output and nothing unfinished (modal's get then raises
            # OutputExpiredError, once its own timeout has run out)
            await stream.send_message(api_pb2.FunctionGetOutputsResponse(num_unfinished_inputs=0))
            return
        if not call.done.is_set():
            await stream.send_message(api_pb2.FunctionGetOutputsResponse(num_unfinished_inputs=1))
            return
        output = call.output
        if request.clear_on_success and output.result.status == api_pb2.GenericResult.GENERIC_STATUS_SUCCESS:
            call.cleared = True
        await stream.send_message(
            api_pb2.FunctionGetOutputsResponse(outputs=[output], idxs=[0], num_unfinished_inputs=0, last_entry_id="1-0")
        )

    async def FunctionCallCancel(self, stream) -> None:
        request = await self._start("FunctionCallCancel", stream)
        plane = self.plane
        call = plane.calls.get(request.function_call_id)
        if call is not None and not call.terminated:  # a cancel of a call Modal already stopped changes nothing
            plane.cancelled_calls.append(call.call_id)
            call.cancelled.set()
        await stream.send_message(empty_pb2.Empty())

    async def FunctionCallFromId(self, stream) -> None:
        request = await self._start("FunctionCallFromId", stream)
        call = self.plane.calls.get(request.function_call_id)
        if call is None:
            raise grpclib.GRPCError(Status.NOT_FOUND, f"Function call {request.function_call_id} not found")
        await stream.send_message(
            api_pb2.FunctionCallFromIdResponse(function_call_id=call.call_id, num_inputs=1)
        )


_implemented = {name for name in vars(_Servicer) if not name.startswith("_")}
_Servicer = type(
    "LoopbackServicer",
    (_Servicer,),
    {name: _unimplemented(name) for name in api_grpc.ModalClientBase.__abstractmethods__ if name not in _implemented},
)


# ---------------------------------------------------------------- blobs over HTTP


class _BlobHandler(http.server.BaseHTTPRequestHandler):
    plane: "ControlPlane"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _blob_id(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def do_PUT(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length)
        blob_id = self._blob_id()
        self.plane._record("HTTP PUT", blob_id)
        expected = self.plane._blob_md5.get(blob_id)
        if expected and base64.b64encode(hashlib.md5(data).digest()).decode() != expected:
            self.send_response(400)  # S3: BadDigest
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.plane.blobs[blob_id] = data
        self.plane.blob_bytes_in += len(data)
        self.send_response(200)
        self.send_header("ETag", f'"{hashlib.md5(data).hexdigest()}"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        blob_id = self._blob_id()
        self.plane._record("HTTP GET", blob_id)
        data = self.plane.blobs.get(blob_id)
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# ---------------------------------------------------------------- the plane


class ControlPlane:
    """`with ControlPlane() as plane:` serves on 127.0.0.1; `plane.env()` is what the client needs."""

    def __init__(
        self,
        token_id: str = TOKEN_ID,
        token_secret: str = TOKEN_SECRET,
        workspace: str = WORKSPACE,
        apps: dict[str, DeployedApp] | None = None,
        containers: int = 4,
        hello_delay_s: float = 0.0,
        token_flow_never_finishes: bool = False,
        poll_cap_s: float = 55.0,
        warm_containers: "dict[Any, list] | None" = None,
        volume_root: Path | None = None,
        oauth: tuple[str, str, str] | None = OAUTH,
        boot_s: float = BOOT_S,
    ) -> None:
        self.token_id = token_id
        self.token_secret = token_secret
        self.oauth = oauth  # (refresh token, client id, client secret) the plane accepts besides the token
        self.workspace = workspace
        self.apps: dict[str, DeployedApp] = dict(apps or {})
        # environment -> its apps; "main" is the workspace's default (where look-ups without one go)
        self.environments: dict[str, dict[str, DeployedApp]] = {DEFAULT_ENVIRONMENT: self.apps}
        self.boot_s = boot_s
        # image builds: how long each image that is not built yet takes, and its log (see build_images)
        self.build_s = 0.0
        self.build_log: list[str] = []
        self._build_failure: str | None = None
        self._builds: dict[str, _Build] = {}
        self._built: dict[bytes, _Build] = {}
        # the model Volume, as containers mount it (a session may share one root between planes)
        self.model_volume_name = "whisper-desk-models"
        self._own_volume_root = volume_root is None
        self.volume = VolumeStore(Path(volume_root) if volume_root else Path(tempfile.mkdtemp(prefix="loopback-volume-")))
        self._model_volume_ids: set[str] = set()
        self.background_commit_s: float | None = None  # Modal commits a container's Volume every few seconds
        self.containers = containers
        self.hello_delay_s = hello_delay_s
        self.token_flow_never_finishes = token_flow_never_finishes
        self.poll_cap_s = poll_cap_s
        self.faults = Faults()
        self.inline_output_limit = INLINE_OUTPUT_LIMIT
        # records
        self.rpcs: list[str] = []
        self.requests: list[tuple[str, Any]] = []
        self.deployments: list[Deployment] = []
        self.calls: dict[str, _Call] = {}
        self.executions: list[Execution] = []
        self.cancelled_calls: list[str] = []
        self.blobs: dict[str, bytes] = {}
        self.blob_bytes_in = 0
        self.container_crashes = 0
        self._container_starts: list[tuple[str, str]] = []
        self._dropped_polls = 0
        # state
        self._lock = threading.RLock()
        self._ordinals = itertools.count()
        self._pending_apps: dict[str, Deployment] = {}
        self._definitions: dict[str, api_pb2.FunctionData] = {}
        self._bound: dict[str, tuple[str, dict]] = {}
        self._bound_options: dict[str, api_pb2.FunctionOptions] = {}
        self._bills: list[ContainerBill] = []
        self._live: list[_Container] = []
        self._blob_md5: dict[str, str] = {}
        self._mount_files: set[str] = set()
        self._volumes: dict[str, str] = {}
        # idle containers per (model, what they run under); a shared dict keeps them warm from one plane to the
        # next, as Modal keeps them warm between calls, until their scale-down window runs out
        self._idle: dict[Any, list[_Container]] = (
            warm_containers if warm_containers is not None else collections.defaultdict(list)
        )
        self._user_cls: type | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: grpclib.server.Server | None = None
        self._http: http.server.ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self.port = 0
        self.blob_port = 0

    # --- addresses and environment ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def blob_url(self) -> str:
        return f"http://127.0.0.1:{self.blob_port}"

    def env(self) -> dict[str, str]:
        """The variables that point the real client (and `modal` CLI) at this plane."""
        return {
            "MODAL_SERVER_URL": self.url,
            "MODAL_TOKEN_ID": self.token_id,
            "MODAL_TOKEN_SECRET": self.token_secret,
        }

    def oauth_env(self) -> dict[str, str]:
        """MODAL_OAUTH_* variables for the plane's OAuth client (instead of the token variables)."""
        assert self.oauth is not None
        refresh, client_id, secret = self.oauth
        return {"MODAL_SERVER_URL": self.url, "MODAL_OAUTH_REFRESH_TOKEN": refresh,
                "MODAL_OAUTH_CLIENT_ID": client_id, "MODAL_OAUTH_CLIENT_SECRET": secret}

    def _authorized(self, metadata: Any) -> bool:
        if (metadata.get("x-modal-token-id"), metadata.get("x-modal-token-secret")) == (self.token_id, self.token_secret):
            return True
        oauth = (metadata.get("x-modal-refresh-token"), metadata.get("x-modal-oauth-client-id"),
                 metadata.get("x-modal-oauth-client-secret"))
        return self.oauth is not None and oauth == self.oauth

    # --- environments -----------------------------------------------------------------------------------

    def apps_in(self, environment: str | None) -> dict[str, DeployedApp]:
        """The apps of an environment ("" or None: the default one); an unknown environment is NOT_FOUND."""
        name = environment or DEFAULT_ENVIRONMENT
        if name not in self.environments:
            raise grpclib.GRPCError(Status.NOT_FOUND, f"Environment '{name}' not found")
        return self.environments[name]

    def environment_of(self, app_name: str) -> list[str]:
        """The environments where an app of this name is deployed."""
        return sorted(env for env, apps in self.environments.items() if app_name in apps)

    # --- billing ----------------------------------------------------------------------------------------

    def scale_down(self, now: float | None = None) -> None:
        """Stop every idle container whose scale-down window has run out (Modal does this continuously)."""
        now = time.time() if now is None else now
        with self._lock:
            for key, idle in list(self._idle.items()):
                keep = []
                for container in idle:
                    until = container.idle_until()
                    if until <= now:
                        container.bill.stopped = until
                    else:
                        keep.append(container)
                self._idle[key] = keep

    def bill(self, since: float | None = None, now: float | None = None) -> Bill:
        """What Modal charges for this plane's containers from `since` (wall clock; default: their starts)
        until each stops, counting the containers that ran an input at or after `since`. An idle container is
        billed until its scale-down window runs out, a running one until now."""
        now = time.time() if now is None else now
        self.scale_down(now)
        lines = []
        for bill in list(self._bills):
            if since is not None and not any(end >= since for _call, _start, end in bill.inputs) and not (
                bill.busy_since is not None and bill.busy_since >= since
            ):
                continue
            if not bill.inputs and bill.busy_since is None and since is not None:
                continue
            lines.append((bill, bill.seconds(since, now), bill.usd(since, now)))
        return Bill(lines)

    def wait_scaled_down(self, timeout_s: float = 120.0) -> bool:
        """Wait until every container has stopped (its window ran out): the bill is then final."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.scale_down()
            if all(bill.stopped is not None for bill in list(self._bills)):
                return True
            time.sleep(0.1)
        return False

    # --- stopping calls and apps as the dashboard does --------------------------------------------------

    def terminate(self, call_ids: "list[str] | str") -> None:
        """Stop calls the way Modal's dashboard does: each ends TERMINATED (modal's get raises RemoteError), and
        the client sent no FunctionCallCancel."""
        for call_id in [call_ids] if isinstance(call_ids, str) else call_ids:
            call = self.calls[call_id]
            call.terminated = True
            call.cancelled.set()

    def stop_app(self, app_name: str, environment: str | None = None) -> None:
        """`modal app stop`: the app is gone (look-ups are NOT_FOUND) and every call still running ends
        TERMINATED."""
        apps = self.apps_in(environment)
        app = apps.pop(app_name)
        functions = {deployed.function_id for deployed in app.class_objects.values()}
        bound = {bound_id for bound_id, (function_id, _params) in self._bound.items() if function_id in functions}
        for call in list(self.calls.values()):
            if call.function_id in functions | bound and not call.done.is_set():
                call.terminated = True
                call.cancelled.set()

    # --- image builds -----------------------------------------------------------------------------------

    def build_images(self, seconds: float, log: list[str] | None = None, fail: str | None = None) -> None:
        """Images that are not built yet now take `seconds` each to build, streaming `log` (pip's lines, by
        default) as they go; with `fail`, a build fails after its log with that last line (as pip's error)."""
        self.build_s = seconds
        self.build_log = list(log) if log is not None else [
            "Collecting torch==2.13.0", "  Downloading torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl (887.1 MB)",
            "Collecting nvidia-cudnn-cu13", "  Downloading nvidia_cudnn_cu13-9.13.0.50-py3-none-manylinux_2_27_x86_64.whl (725.3 MB)",
            "Installing collected packages: nvidia-nccl-cu13, nvidia-cudnn-cu13, torch, openai-whisper",
            "Successfully installed openai-whisper-20250625 torch-2.13.0",
        ]
        self._build_failure = fail
        self._built.clear()

    def _image_build(self, image: api_pb2.Image, force: bool) -> _Build:
        """The image's build: cached when this definition was built before, else a build that takes build_s."""
        key = image.SerializeToString(deterministic=True)
        with self._lock:
            build = self._built.get(key)
            if build is not None and not force and build.result is not None and build.result.status == 1:
                return build
            build = _Build(_new_id("im"))
            self._builds[build.image_id] = build
            self._built[key] = build
        if not self.build_s and self._build_failure is None:
            build.result = api_pb2.GenericResult(status=api_pb2.GenericResult.GENERIC_STATUS_SUCCESS)
            return build
        lines, seconds, failure = list(self.build_log), self.build_s, self._build_failure
        if failure:
            lines.append(failure)

        def run() -> None:
            step = seconds / max(1, len(lines))
            for line in lines:
                time.sleep(step)
                build.lines.append(line)
            status = api_pb2.GenericResult.GENERIC_STATUS_FAILURE if failure else api_pb2.GenericResult.GENERIC_STATUS_SUCCESS
            build.result = api_pb2.GenericResult(status=status)

        threading.Thread(target=run, name="loopback-image-build", daemon=True).start()
        return build

    # --- records --------------------------------------------------------------------------------------

    def _record(self, name: str, request: Any) -> None:
        with self._lock:
            self.rpcs.append(name)
            self.requests.append((name, request))

    def count(self, name: str) -> int:
        return self.rpcs.count(name)

    def requests_of(self, name: str) -> list[Any]:
        return [request for rpc, request in list(self.requests) if rpc == name]

    @property
    def calls_sent(self) -> list[str]:
        """Function call ids in the order FunctionMap created them."""
        return list(self.calls)

    def executions_per_audio(self) -> collections.Counter:
        """How many times each distinct chunk (by its audio's SHA-256) ran: 1 each when nothing ran twice."""
        return collections.Counter(execution.audio_sha256 for execution in self.executions)

    @property
    def container_starts(self) -> int:
        return len(self._container_starts)

    @property
    def dropped_polls(self) -> int:
        return self._dropped_polls

    @property
    def deployment(self) -> Deployment:
        """The last published deployment."""
        published = [d for d in self.deployments if d.published]
        if not published:
            raise AssertionError(f"nothing was deployed; RPCs: {self.rpcs}")
        return published[-1]

    def reset_records(self) -> None:
        with self._lock:
            self.rpcs.clear()
            self.requests.clear()
            self.executions.clear()
            self.cancelled_calls.clear()

    # --- faults ---------------------------------------------------------------------------------------

    def fail_once(self, match: "int | Match | None" = None, how: str = "internal") -> None:
        """The matching input's first run fails: "internal" (the container was lost: INTERNAL_FAILURE, the
        client's transient error) or "raise" (the method raised a ConnectionError: retried by the deployed
        Retries)."""
        self.faults.fail_once.append((_as_match(match), how))

    def fail_always(self, match: "int | Match | None" = None, how: str = "raise") -> None:
        """Every run of the matching input fails: "raise" (retried by the deployed Retries, then the client gets
        the ConnectionError), "internal" (InternalFailure) or "timeout" (past the function's timeout: the client
        raises FunctionTimeoutError)."""
        self.faults.fail_always.append((_as_match(match), how))

    def slow(self, match: "int | Match | None", seconds: float) -> None:
        """The matching input waits `seconds` before it runs (a cancel or release_slow() ends the wait)."""
        self.faults.slow.append((_as_match(match), seconds))

    def release_slow(self) -> None:
        """Every input that slow() holds runs now (a test has seen what it waited for)."""
        self.faults.slow_released.set()

    def expire_when_done(self, match: "int | Match | None" = None) -> None:
        """The matching input's output expires as soon as it is ready (get raises OutputExpiredError)."""
        self.faults.expire.append(_as_match(match))

    def expire(self, call_ids: "list[str] | None" = None) -> None:
        """Outputs of these calls (all, by default) expire now."""
        for call_id in call_ids if call_ids is not None else list(self.calls):
            self.calls[call_id].expired = True

    def cold_containers(self) -> None:
        """Forget the warm containers (they stop now): the next inputs start new ones (and run @modal.enter)."""
        now = time.time()
        with self._lock:
            for idle in self._idle.values():
                for container in idle:
                    container.bill.stopped = min(now, container.idle_until())
            self._idle = collections.defaultdict(list)

    def empty_volume(self) -> None:
        """A Volume that holds no weights yet (a first job on an uncached model), and no warm containers."""
        self.cold_containers()
        self.volume.clear()

    def fail_enter(self) -> None:
        """Every container that starts from now fails in @modal.enter (until heal_enter): the model Volume
        holds checkpoints that do not load (as after a broken download), so the deployed class's own loading
        raises inside @enter."""
        import whisper

        if self._broken_volume is not None:
            return
        self.cold_containers()
        folder = self.volume.committed / "openai-whisper"
        backup = Path(tempfile.mkdtemp(prefix="loopback-volume-backup-"))
        if folder.exists():
            shutil.move(str(folder), str(backup / "openai-whisper"))
        folder.mkdir(parents=True)
        for url in whisper._MODELS.values():  # noqa: SLF001 - the file names the Volume holds
            (folder / os.path.basename(url)).write_bytes(b"not a checkpoint: the download broke")
        self._broken_volume = backup  # on the plane, not in faults: a faults reset must not keep it broken

    def heal_enter(self) -> None:
        """The Volume's good state is back (the containers that failed stay warm: their next input reloads it)."""
        backup = self._broken_volume
        if backup is None:
            return
        folder = self.volume.committed / "openai-whisper"
        shutil.rmtree(folder, ignore_errors=True)
        if (backup / "openai-whisper").exists():
            shutil.move(str(backup / "openai-whisper"), str(folder))
        shutil.rmtree(backup, ignore_errors=True)
        self._broken_volume = None

    def cache_weights(self) -> None:
        """The Volume holds tiny.en's weights already (an earlier job downloaded them), as on a deployment that
        has run a job before."""
        from worker.engines.weights import openai_checkpoint

        checkpoint = openai_checkpoint(_WeightsServer.MODEL)
        assert isinstance(checkpoint, Path)
        folder = self.volume.committed / "openai-whisper"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{_WeightsServer.MODEL}.pt"
        if not target.exists():
            staging = folder / f".{target.name}.seed"
            shutil.copyfile(checkpoint, staging)
            os.replace(staging, target)

    @property
    def downloads(self) -> list[tuple[str, float]]:
        """Every download of model weights the plane's containers made (model, when)."""
        return list(_WEIGHTS.downloads)

    def slow_downloads(self, bytes_per_s: float | None) -> None:
        """The weights' host sends at most this many bytes per second (None: as fast as it can)."""
        _WEIGHTS.bytes_per_s = bytes_per_s

    def delay_rpc(self, name: str, seconds: float) -> None:
        """RPC `name` (e.g. "FunctionBindParams", "FunctionMap", "BlobCreate") is answered `seconds` late."""
        self.faults.delays[name] = seconds

    def drop_polls(self, count: int = 1) -> None:
        """The next `count` FunctionGetOutputs lose their connection (modal itself retries a few)."""
        self.faults.drop_polls += count

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Wait until no input is pending or running (executions recorded are then final)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(call.done.is_set() or call.cancelled.is_set() for call in list(self.calls.values())) and all(
                e.outcome != "running" for e in list(self.executions)
            ):
                return True
            time.sleep(0.05)
        return False

    # --- deployed apps ----------------------------------------------------------------------------------

    def _deployment_for(self, app_id: str) -> Deployment:
        deployment = self._pending_apps.get(app_id)
        if deployment is None:
            deployment = self._pending_apps[app_id] = Deployment(app_name="?", app_id=app_id)
        return deployment

    def _publish(self, request: api_pb2.AppPublishRequest) -> None:
        deployment = self._deployment_for(request.app_id)
        deployment.app_name = request.name
        deployment.tags = dict(request.tags)
        deployment.published = True
        self.deployments.append(deployment)
        apps = self.environments.setdefault(deployment.environment, {})
        previous = apps.get(request.name)
        app = DeployedApp(classes=(), tags=dict(request.tags), app_id=previous.app_id if previous else request.app_id)
        for class_name, function_id in request.class_ids.items():
            definition = next(
                (f for f in deployment.functions if f.function_name == f"{class_name}.*"), None
            )
            service_id = request.function_ids.get(f"{class_name}.*", _new_id("fu"))
            app.class_objects[class_name] = DeployedClass(
                class_name, tuple(definition.method_definitions) if definition else (), function_id, service_id, definition
            )
        app.classes = tuple(app.class_objects)
        apps[request.name] = app

    def _app_by_id(self, app_id: str) -> DeployedApp:
        for apps in self.environments.values():
            for app in apps.values():
                if app.app_id == app_id:
                    return app
        if app_id in self._pending_apps:
            pending = DeployedApp(classes=(), app_id=app_id)
            self.apps.setdefault(f"(pending {app_id})", pending)
            return pending
        raise grpclib.GRPCError(Status.NOT_FOUND, "App not found")

    def _class(self, app_name: str, class_name: str, environment: str | None = None) -> DeployedClass | None:
        app = self.apps_in(environment).get(app_name)
        if app is None:
            return None
        return app.class_objects.get(class_name)

    def _definition(self, deployed: DeployedClass) -> api_pb2.FunctionData:
        if deployed.definition is not None:
            return deployed.definition
        # a seeded app: the definition worker/modal/app.py would deploy (method `transcribe`, parameter `model`)
        return _wrap(api_pb2.Function(
            function_name=f"{deployed.name}.*",
            module_name=DEPLOYED_MODULE,
            is_class=True,
            method_definitions={
                method: api_pb2.MethodDefinition(function_name=f"{deployed.name}.{method}",
                                                 function_type=api_pb2.Function.FUNCTION_TYPE_FUNCTION)
                for method in deployed.methods
            },
            class_parameter_info=api_pb2.ClassParameterInfo(
                format=api_pb2.ClassParameterInfo.PARAM_SERIALIZATION_FORMAT_PROTO,
                schema=[api_pb2.ClassParameterSpec(name="model", type=api_pb2.PARAM_TYPE_STRING, has_default=True,
                                                   string_default=DEFAULT_MODEL)],
            ),
            supported_input_formats=[api_pb2.DATA_FORMAT_PICKLE],
            supported_output_formats=[api_pb2.DATA_FORMAT_PICKLE],
            resources=api_pb2.Resources(gpu_config=api_pb2.GPUConfig(gpu_type="T4", count=1)),
            retry_policy=api_pb2.FunctionRetryPolicy(retries=2, backoff_coefficient=2.0, initial_delay_ms=1000),
        ))

    def _handle_metadata(self, definition: api_pb2.FunctionData) -> api_pb2.FunctionHandleMetadata:
        methods = {
            name: api_pb2.FunctionHandleMetadata(
                function_name=method.function_name or f"{definition.function_name[:-2]}.{name}",
                function_type=method.function_type or api_pb2.Function.FUNCTION_TYPE_FUNCTION,
                is_method=True,
                use_method_name=name,
                supported_input_formats=list(method.supported_input_formats) or [api_pb2.DATA_FORMAT_PICKLE],
                supported_output_formats=list(method.supported_output_formats) or [api_pb2.DATA_FORMAT_PICKLE],
            )
            for name, method in definition.method_definitions.items()
        }
        return api_pb2.FunctionHandleMetadata(
            function_name=definition.function_name,
            function_type=api_pb2.Function.FUNCTION_TYPE_FUNCTION,
            is_method=False,
            class_parameter_info=definition.class_parameter_info,
            method_handle_metadata=methods,
            supported_input_formats=list(definition.supported_input_formats) or [api_pb2.DATA_FORMAT_PICKLE],
            supported_output_formats=list(definition.supported_output_formats) or [api_pb2.DATA_FORMAT_PICKLE],
        )

    def user_class(self) -> type:
        """The deployed class's own Python class (what a container instantiates)."""
        if self._user_cls is None:
            import importlib

            from modal._utils.async_utils import synchronizer

            module = importlib.import_module(DEPLOYED_MODULE)
            self._user_cls = synchronizer._translate_in(module.Transcriber)._user_cls
        return self._user_cls

    # --- running inputs ---------------------------------------------------------------------------------

    def _map(self, request: api_pb2.FunctionMapRequest) -> api_pb2.FunctionMapResponse:
        """FunctionMap: one call per request, its pipelined input queued for a container."""
        from modal._serialization import deserialize

        call_id = _new_id("fc")
        call = _Call(call_id, request.function_id, request.function_call_invocation_type)
        _service_id, params = self._bound.get(request.function_id, ("", {}))
        items = []
        for item in request.pipelined_inputs:
            fn_input = item.input
            data = self.blobs[fn_input.args_blob_id] if fn_input.args_blob_id else fn_input.args
            args, kwargs = deserialize(data, None)
            call.input_id = _new_id("in")
            call.record = InputRecord(
                next(self._ordinals), call_id, call.input_id, fn_input.method_name, tuple(args), dict(kwargs), params
            )
            items.append(api_pb2.FunctionPutInputsResponseItem(idx=item.idx, input_id=call.input_id, input_jwt="jwt"))
        with self._lock:
            self.calls[call_id] = call
        self._executor().submit(self._run_input, call, 0)
        return api_pb2.FunctionMapResponse(
            function_call_id=call_id, pipelined_inputs=items, function_call_jwt="jwt",
            retry_policy=_retry_policy(self._definitions.get(request.function_id)),
            sync_client_retries_enabled=False,  # Modal's server retries (as for every .spawn)
        )

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.containers, thread_name_prefix="loopback-container")
            return self._pool

    def _spec(self, function_id: str) -> _Spec:
        """What the containers of a (bound) function run under: its GPU, CPU and memory reservation, and its
        scale-down window (a with_options window wins over the deployed one)."""
        service_id, _params = self._bound.get(function_id, (function_id, {}))
        definition = self._definitions.get(function_id) or self._definitions.get(service_id)
        spec = _Spec()
        if definition is not None and definition.ranked_functions:
            function = definition.ranked_functions[0].function
            resources = function.resources
            window = function.autoscaler_settings.scaledown_window or function.task_idle_timeout_secs
            spec = _Spec(
                gpu=resources.gpu_config.gpu_type or "",
                cpu_cores=(resources.milli_cpu or 125) / 1000,
                memory_gib=(resources.memory_mb or 128) / 1024,
                window_s=float(window or spec.window_s),
            )
        options = self._bound_options.get(function_id)
        if options is not None and options.task_idle_timeout_secs:
            spec = _Spec(spec.gpu, spec.cpu_cores, spec.memory_gib, float(options.task_idle_timeout_secs))
        return spec

    def _take_container(self, model: str, spec: _Spec) -> _Container:
        self._ensure_runtime()
        self.scale_down()
        with self._lock:
            idle = self._idle.setdefault((model, spec), [])
            if idle:
                container = idle.pop()
                if container.bill not in self._bills:  # warm from an earlier plane of the session
                    self._bills.append(container.bill)
                return container
        try:
            return _Container(self, model, spec)
        except Exception as exc:
            with self._lock:
                self.container_crashes += 1
            raise _ContainerCrash(f"{type(exc).__name__}: {exc}") from exc

    def running_in(self, container: _Container) -> "contextlib.AbstractContextManager[None]":
        """Code run inside runs as in `container`: modal.is_local() is False, the Volume is its mount."""
        plane = self

        @contextlib.contextmanager
        def inside():
            previous = (_RUNTIME.container, _RUNTIME.plane)
            _RUNTIME.container, _RUNTIME.plane = container, plane
            try:
                yield
            finally:
                _RUNTIME.container, _RUNTIME.plane = previous

        return inside()

    def _run_input(self, call: _Call, attempt: int) -> None:
        record = call.record
        assert record is not None
        faults = self.faults
        for match, seconds in faults.slow:
            if match(record):
                until = time.monotonic() + seconds
                while not (call.cancelled.is_set() or faults.slow_released.is_set()) and time.monotonic() < until:
                    call.cancelled.wait(min(0.1, max(0.0, until - time.monotonic())))
                if call.cancelled.is_set():
                    break
        if call.cancelled.is_set():
            self._finish(call, None, "cancelled")
            return
        model = str(record.params.get("model", DEFAULT_MODEL))
        spec = self._spec(call.function_id)
        crashes = 0
        while True:  # a container that crashes in @enter restarts with backoff; the input waits (a crash loop)
            if call.cancelled.is_set() or self._stopping:
                self._finish(call, None, "cancelled")
                return
            try:
                container = self._take_container(model, spec)
                break
            except _ContainerCrash:
                crashes += 1
                call.cancelled.wait(min(MAX_CRASH_BACKOFF_S, 0.25 * 2**crashes))
        execution = Execution(
            call.call_id, call.input_id, record.ordinal, attempt, model, container.id,
            hashlib.sha256(bytes(record.audio)).hexdigest(), time.time(),
        )
        with self._lock:
            self.executions.append(execution)
        container.bill.busy_since = execution.started
        status, value = self._execute(container, record, attempt)
        execution.finished = time.time()
        container.bill.inputs.append((call.call_id, execution.started, execution.finished))
        container.bill.busy_since = None
        with self._lock:
            self._idle.setdefault((model, spec), []).append(container)
        if call.cancelled.is_set():
            execution.outcome = "cancelled"
            self._finish(call, None, "cancelled")
            return
        if status == "failure":
            policy = _retry_policy(self._definitions.get(call.function_id))
            if attempt < policy.retries:  # the deployed modal.Retries: Modal runs the input again
                execution.outcome = "failure"
                delay = policy.initial_delay_ms / 1000 * (policy.backoff_coefficient or 1.0) ** attempt
                call.retries += 1
                if not call.cancelled.wait(delay * self.faults.retry_delay_scale):
                    self._executor().submit(self._run_input, call, attempt + 1)
                    return
                self._finish(call, None, "cancelled")
                return
        execution.outcome = status
        self._finish(call, self._result(status, value), status)

    def _execute(self, container: _Container, record: InputRecord, attempt: int) -> tuple[str, Any]:
        for match, how in self.faults.fail_always:
            if match(record):
                return self._injected(how)
        if attempt == 0:
            for match, how in self.faults.fail_once:
                if match(record):
                    return self._injected(how)
        try:
            with self.running_in(container):
                return "success", container.methods[record.method](*record.args, **record.kwargs)
        except Exception as exc:
            return "failure", exc

    @staticmethod
    def _injected(how: str) -> tuple[str, Any]:
        if how == "internal":
            return "internal_failure", "the container was preempted (injected)"
        if how == "timeout":
            return "timeout", "the call ran past the function's timeout (injected)"
        return "failure", ConnectionError("lost the connection to the GPU worker (injected)")

    def _result(self, status: str, value: Any) -> api_pb2.GenericResult:
        from modal._serialization import serialize

        if status == "success":
            data = serialize(value)
            if len(data) > self.inline_output_limit:
                blob_id = _new_id("bl")
                self.blobs[blob_id] = data
                return api_pb2.GenericResult(status=api_pb2.GenericResult.GENERIC_STATUS_SUCCESS, data_blob_id=blob_id)
            return api_pb2.GenericResult(status=api_pb2.GenericResult.GENERIC_STATUS_SUCCESS, data=data)
        if status == "internal_failure":
            return api_pb2.GenericResult(status=api_pb2.GenericResult.GENERIC_STATUS_INTERNAL_FAILURE, exception=str(value))
        if status == "timeout":
            return api_pb2.GenericResult(status=api_pb2.GenericResult.GENERIC_STATUS_TIMEOUT, exception=str(value))
        exc = value
        try:
            data = serialize(exc)
        except Exception:
            data = serialize(RuntimeError(f"{type(exc).__name__}: {exc}"))
        return api_pb2.GenericResult(
            status=api_pb2.GenericResult.GENERIC_STATUS_FAILURE,
            exception=f"{type(exc).__name__}: {exc}",
            traceback="".join(traceback.format_exception(exc)),
            data=data,
        )

    def _finish(self, call: _Call, result: api_pb2.GenericResult | None, status: str) -> None:
        record = call.record
        if result is not None:
            call.output = api_pb2.FunctionGetOutputsItem(
                result=result, idx=0, input_id=call.input_id, data_format=api_pb2.DATA_FORMAT_PICKLE,
                retry_count=call.retries,
            )
            if record is not None and any(match(record) for match in self.faults.expire):
                call.expired = True
        elif status == "cancelled":
            reason = "the input was terminated (stopped from the dashboard)" if call.terminated else "the call was cancelled"
            call.output = api_pb2.FunctionGetOutputsItem(
                result=api_pb2.GenericResult(status=api_pb2.GenericResult.GENERIC_STATUS_TERMINATED, exception=reason),
                idx=0, input_id=call.input_id, data_format=api_pb2.DATA_FORMAT_PICKLE,
            )
        call.done.set()

    # --- serving ----------------------------------------------------------------------------------------

    _stopping = False
    _broken_volume: Path | None = None  # fail_enter's backup of the good Volume, while its checkpoints are broken

    def start(self) -> "ControlPlane":
        ready = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._server = grpclib.server.Server([_Servicer(self)])
                loop.run_until_complete(self._server.start("127.0.0.1", 0))
                self.port = self._server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        handler = type("BlobHandler", (_BlobHandler,), {"plane": self})
        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._http.daemon_threads = True
        self.blob_port = self._http.server_address[1]
        http_thread = threading.Thread(target=self._http.serve_forever, name="loopback-blobs", daemon=True)
        grpc_thread = threading.Thread(target=serve, name="loopback-modal", daemon=True)
        self._threads = [http_thread, grpc_thread]
        http_thread.start()
        grpc_thread.start()
        if not ready.wait(10) or errors:
            raise RuntimeError(f"the loopback control plane did not start: {errors}")
        return self

    _runtime_installed = False

    def _ensure_runtime(self) -> None:
        """The container runtime (is_local, the mounted Volume, the weights' host) from the first container on."""
        with self._lock:
            if self._runtime_installed:
                return
            _install_runtime()
            self._runtime_installed = True
        if self.background_commit_s:
            threading.Thread(target=self._commit_in_background, name="loopback-background-commits", daemon=True).start()

    def commit_in_background(self, every_s: float) -> None:
        """Commit every running container's Volume every `every_s` seconds, whatever it holds (as Modal does)."""
        starting = not self.background_commit_s
        self.background_commit_s = every_s
        if starting and self._runtime_installed:
            threading.Thread(target=self._commit_in_background, name="loopback-background-commits", daemon=True).start()

    def _commit_in_background(self) -> None:
        """Modal commits each running container's Volume every few seconds, whatever it holds at that moment."""
        while not self._stopping and self.background_commit_s:
            time.sleep(self.background_commit_s)
            for container in list(self._live):
                if container.bill.stopped is None:
                    container.volume.commit(container.id, "background")

    def stop(self) -> None:
        self._stopping = True
        self.heal_enter()
        for call in list(self.calls.values()):
            call.cancelled.set()
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        for thread in self._threads:
            thread.join(10)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._runtime_installed:
            _uninstall_runtime()
            self._runtime_installed = False
        if self._own_volume_root:
            shutil.rmtree(self.volume.root, ignore_errors=True)

    def __enter__(self) -> "ControlPlane":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def modal_reads(config: Path) -> dict:
    """What the real modal package reads from the config file `config`: its profiles, the active one, and the
    token id it would use. Modal reads the file at import, so this asks a fresh Python process."""
    import json
    import subprocess
    import sys

    code = (
        "import json, modal.config as c; "
        "print(json.dumps({'profiles': sorted(c.config_profiles()), 'active': c._config_active_profile(), "
        "'token_id': c.config.get('token_id'), 'secret_set': bool(c.config.get('token_secret'))}))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODAL_")}
    env["MODAL_CONFIG_PATH"] = str(config)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise AssertionError(f"modal could not read {config}: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout)


def main() -> None:
    """Serve until Ctrl-C, printing what to export (a demo: `whisper-desk deploy`, then a Modal job)."""
    import signal
    import tempfile

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # a terminate stops it as Ctrl-C does, and it cleans up after itself
    with ControlPlane() as plane, tempfile.TemporaryDirectory(prefix="whisper-desk-loopback-") as home:
        print("# the loopback Modal control plane is serving; in another shell:")
        for name, value in {**plane.env(), "MODAL_CONFIG_PATH": str(Path(home) / ".modal.toml")}.items():
            print(f"export {name}={value}")
        print("# then: whisper-desk deploy && whisper-desk transcribe --backend modal FILE   (Ctrl-C here stops it)")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            print(f"\n{len(plane.rpcs)} RPCs: {collections.Counter(plane.rpcs).most_common()}")


if __name__ == "__main__":
    main()
