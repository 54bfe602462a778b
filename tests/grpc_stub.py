"""A loopback fake of Modal's control-plane gRPC API, for tests.

Built from `modal_proto.api_grpc.ModalClientBase` (shipped in the modal wheel) and served by grpclib on
127.0.0.1 on a random port, in a background thread. It implements just what the credential check, the
app check and `modal token new` use:

- ClientHello: accepts one token id/secret pair and answers UNAUTHENTICATED for any other (modal turns
  that into `modal.exception.AuthError`, as the real server does for a revoked or mistyped token);
- WorkspaceNameLookup: the workspace and user name the token belongs to;
- TokenFlowCreate / TokenFlowWait: the browser sign-in flow of `modal token new`, which here completes at
  once and hands out the accepted token;
- AppGetOrCreate / AppGetTags / ClassGet: the deployed-app lookups, for apps listed in `apps`.

Every other RPC answers UNIMPLEMENTED. Point modal at it with `MODAL_SERVER_URL=server.url` or by passing
`server_url=server.url` to our functions.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpclib
import grpclib.server
from google.protobuf import empty_pb2
from grpclib.const import Status
from modal_proto import api_grpc, api_pb2


@dataclass
class FakeApp:
    """A deployed app: its classes and the tags set on it."""

    classes: tuple[str, ...] = ("Transcriber",)
    tags: dict[str, str] = field(default_factory=dict)
    app_id: str = "ap-fake0000000000000000000"


def _unimplemented(name: str):
    async def handler(self, stream: grpclib.server.Stream) -> None:
        self.calls.append(name)
        raise grpclib.GRPCError(Status.UNIMPLEMENTED, f"{name} is not part of the fake server")

    handler.__name__ = name
    return handler


class _Servicer(api_grpc.ModalClientBase):
    """The implemented RPCs. The abstract rest is filled with UNIMPLEMENTED handlers below."""

    def __init__(self, fake: "FakeModalServer") -> None:
        self.fake = fake
        self.calls: list[str] = fake.calls

    def _authorized(self, stream: grpclib.server.Stream) -> bool:
        metadata = stream.metadata or {}
        return (
            metadata.get("x-modal-token-id") == self.fake.token_id
            and metadata.get("x-modal-token-secret") == self.fake.token_secret
        )

    async def _require_auth(self, stream: grpclib.server.Stream) -> None:
        if not self._authorized(stream):
            raise grpclib.GRPCError(Status.UNAUTHENTICATED, "Token is invalid or expired.")

    async def ClientHello(self, stream: grpclib.server.Stream) -> None:
        self.calls.append("ClientHello")
        await stream.recv_message()
        if self.fake.hello_delay_s:
            await asyncio.sleep(self.fake.hello_delay_s)
        await self._require_auth(stream)
        await stream.send_message(api_pb2.ClientHelloResponse())

    async def WorkspaceNameLookup(self, stream: grpclib.server.Stream) -> None:
        self.calls.append("WorkspaceNameLookup")
        await stream.recv_message()
        await self._require_auth(stream)
        await stream.send_message(
            api_pb2.WorkspaceNameLookupResponse(workspace_name=self.fake.workspace, username=self.fake.workspace)
        )

    async def TokenFlowCreate(self, stream: grpclib.server.Stream) -> None:
        self.calls.append("TokenFlowCreate")
        await stream.recv_message()
        await stream.send_message(
            api_pb2.TokenFlowCreateResponse(
                token_flow_id="tf-fake", web_url="https://modal.invalid/token-flow/tf-fake", code="FAKE-CODE",
                wait_secret="wait-secret",
            )
        )

    async def TokenFlowWait(self, stream: grpclib.server.Stream) -> None:
        self.calls.append("TokenFlowWait")
        request = await stream.recv_message()
        if self.fake.token_flow_never_finishes:
            await asyncio.sleep(request.timeout)
            await stream.send_message(api_pb2.TokenFlowWaitResponse(timeout=True))
            return
        await stream.send_message(
            api_pb2.TokenFlowWaitResponse(
                token_id=self.fake.token_id, token_secret=self.fake.token_secret,
                workspace_username=self.fake.workspace,
            )
        )

    async def AppGetOrCreate(self, stream: grpclib.server.Stream) -> None:
        self.calls.append("AppGetOrCreate")
        request = await stream.recv_message()
        await self._require_auth(stream)
        app = self.fake.apps.get(request.app_name)
        if app is None:
            raise grpclib.GRPCError(Status.NOT_FOUND, f"App '{request.app_name}' not found")
        await stream.send_message(api_pb2.AppGetOrCreateResponse(app_id=app.app_id))

    async def AppGetTags(self, stream: grpclib.server.Stream) -> None:
        self.calls.append("AppGetTags")
        request = await stream.recv_message()
        await self._require_auth(stream)
        for app in self.fake.apps.values():
            if app.app_id == request.app_id:
                await stream.send_message(api_pb2.AppGetTagsResponse(tags=app.tags))
                return
        raise grpclib.GRPCError(Status.NOT_FOUND, "App not found")

    async def AppSetTags(self, stream: grpclib.server.Stream) -> None:
        self.calls.append("AppSetTags")
        request = await stream.recv_message()
        await self._require_auth(stream)
        for app in self.fake.apps.values():
            if app.app_id == request.app_id:
                app.tags = dict(request.tags)
                await stream.send_message(empty_pb2.Empty())
                return
        raise grpclib.GRPCError(Status.NOT_FOUND, "App not found")

    async def ClassGet(self, stream: grpclib.server.Stream) -> None:
        self.calls.append("ClassGet")
        request = await stream.recv_message()
        await self._require_auth(stream)
        app = self.fake.apps.get(request.app_name)
        if app is None or request.object_tag not in app.classes:
            raise grpclib.GRPCError(
                Status.NOT_FOUND, f"Lookup failed for Cls '{request.object_tag}' from the '{request.app_name}' app"
            )
        await stream.send_message(api_pb2.ClassGetResponse(class_id="cs-fake0000000000000000000"))

    async def FunctionGet(self, stream: grpclib.server.Stream) -> None:
        """A class's service function ("Transcriber.*"): what modal looks up to hydrate a Cls."""
        self.calls.append("FunctionGet")
        request = await stream.recv_message()
        await self._require_auth(stream)
        app = self.fake.apps.get(request.app_name)
        class_name = request.object_tag.split(".")[0]
        if app is None or class_name not in app.classes:
            raise grpclib.GRPCError(
                Status.NOT_FOUND, f"Lookup failed for Function '{request.object_tag}' from the '{request.app_name}' app"
            )
        await stream.send_message(
            api_pb2.FunctionGetResponse(
                function_id="fu-fake0000000000000000000",
                handle_metadata=api_pb2.FunctionHandleMetadata(
                    function_name=request.object_tag, is_method=False,
                ),
                function=api_pb2.FunctionData(
                    function_name=request.object_tag,
                    is_class=True,
                    ranked_functions=[
                        api_pb2.FunctionData.RankedFunction(
                            rank=0,
                            function=api_pb2.Function(
                                function_name=request.object_tag,
                                resources=api_pb2.Resources(gpu_config=api_pb2.GPUConfig(gpu_type="T4", count=1)),
                            ),
                        )
                    ],
                ),
            )
        )


_implemented = {name for name in vars(_Servicer) if not name.startswith("_")}
_missing = {
    name: _unimplemented(name)
    for name in api_grpc.ModalClientBase.__abstractmethods__
    if name not in _implemented
}
FakeServicer: Any = type("FakeServicer", (_Servicer,), _missing)


def free_port() -> int:
    """A port nobody listens on (bound and released at once): connections to it are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeModalServer:
    """Start with `with FakeModalServer(...) as server:`; `server.url` is the MODAL_SERVER_URL to use."""

    def __init__(
        self,
        token_id: str = "ak-goodtoken0000000000",
        token_secret: str = "as-goodsecret000000000",
        workspace: str = "ada-lovelace",
        apps: dict[str, FakeApp] | None = None,
        hello_delay_s: float = 0.0,
        token_flow_never_finishes: bool = False,
    ) -> None:
        self.token_id = token_id
        self.token_secret = token_secret
        self.workspace = workspace
        self.apps: dict[str, FakeApp] = dict(apps or {})
        self.hello_delay_s = hello_delay_s
        self.token_flow_never_finishes = token_flow_never_finishes
        self.calls: list[str] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: grpclib.server.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeModalServer":
        self._thread = threading.Thread(target=self._run, name="fake-modal-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake Modal server did not start")
        if self._error is not None:
            raise RuntimeError(f"fake Modal server failed: {self._error}")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._server = grpclib.server.Server([FakeServicer(self)])
            loop.run_until_complete(self._server.start("127.0.0.1", 0))
            self.port = self._server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        loop.run_forever()
        self._server.close()
        loop.run_until_complete(self._server.wait_closed())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> "FakeModalServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def modal_reads(config: Path) -> dict:
    """What the real modal package reads from the config file `config`: its profiles, the active one, and the
    token id it would use. Modal reads the file at import, so this asks a fresh Python process."""
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
