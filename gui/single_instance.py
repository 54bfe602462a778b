"""One window per library: a second launch hands its files to the window already open on the same library
(over a QLocalSocket whose name comes from the library's path) and exits; that window queues them as if
they had been dropped. A socket left by a crashed instance does not block a new start."""

from __future__ import annotations

import hashlib
import json
from enum import Enum
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

CONNECT_MS = 1000  # a live instance accepts at once; a stale socket refuses at once
ANSWER_MS = 5000  # the running window answers from its event loop: generous, for a busy machine
ACK = b"ok\n"


class Handover(Enum):
    NO_INSTANCE = "no instance"  # nobody listens: this launch becomes the instance
    HANDED = "handed"  # the running window took the files
    NO_ANSWER = "no answer"  # something listens but did not answer in time


def server_name(library_path: str | Path) -> str:
    """The local socket's name for a library: the same for every launch on it, different per library."""
    digest = hashlib.sha256(str(Path(library_path).expanduser().resolve()).encode()).hexdigest()[:16]
    return f"whisper-desk-{digest}"


def hand_over(library_path: str | Path, paths: list[str]) -> Handover:
    """Send `paths` (made absolute: the running window has another working folder) to the window open on
    this library, if there is one."""
    socket = QLocalSocket()
    socket.connectToServer(server_name(library_path))
    if not socket.waitForConnected(CONNECT_MS):
        return Handover.NO_INSTANCE
    message = json.dumps({"paths": [str(Path(p).absolute()) for p in paths]}).encode() + b"\n"
    socket.write(message)
    socket.waitForBytesWritten(ANSWER_MS)
    answer = b""
    while not answer.endswith(b"\n") and socket.waitForReadyRead(ANSWER_MS):
        answer += bytes(socket.readAll().data())
    socket.abort()
    return Handover.HANDED if answer == ACK else Handover.NO_ANSWER


class InstanceServer(QObject):
    """Listens for later launches on the same library; `filesReceived` carries each one's files (maybe none:
    then the window only comes to the front)."""

    filesReceived = Signal(list)

    def __init__(self, library_path: str | Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = server_name(library_path)
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._accept)
        self._buffers: dict[QLocalSocket, bytes] = {}

    def listen(self) -> bool:
        """Start listening; a stale socket file of a crashed instance is removed first. False if this
        cannot listen (the app then runs without taking later launches' files)."""
        if self._server.listen(self.name):
            return True
        QLocalServer.removeServer(self.name)  # nobody answered on it (hand_over said so): left by a crash
        return self._server.listen(self.name)

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while self._server.hasPendingConnections():
            connection = self._server.nextPendingConnection()
            self._buffers[connection] = b""
            connection.readyRead.connect(lambda c=connection: self._read(c))
            connection.disconnected.connect(lambda c=connection: self._drop(c))
            self._read(connection)

    def _read(self, connection: QLocalSocket) -> None:
        data = self._buffers.get(connection, b"") + bytes(connection.readAll().data())
        self._buffers[connection] = data
        if not data.endswith(b"\n"):
            return
        try:
            paths = [str(p) for p in json.loads(data)["paths"]]
        except (ValueError, KeyError, TypeError):
            connection.abort()
            return
        connection.write(ACK)
        connection.flush()
        connection.disconnectFromServer()
        self.filesReceived.emit(paths)

    def _drop(self, connection: QLocalSocket) -> None:
        self._buffers.pop(connection, None)
        connection.deleteLater()
