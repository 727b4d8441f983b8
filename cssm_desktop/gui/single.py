"""One running window per user and settings file: a second start brings the first to the
front and exits (two windows would upload the same drop twice and fight over the catalog).

QLockFile decides who is first (it notices a stale lock left by a crashed copy); a
QLocalServer lets the second copy ask the first to show itself.
"""

from __future__ import annotations

import getpass
import hashlib
from pathlib import Path

from PySide6.QtCore import QDir, QLockFile, QObject, QStandardPaths, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

WAKE = b"show\n"


def _key(config_file: Path) -> str:
    try:
        user = getpass.getuser()
    except Exception:   # no user name from the system: the config path still separates
        user = "user"
    digest = hashlib.sha256(f"{user}\0{config_file.resolve()}".encode()).hexdigest()[:16]
    return f"cssm-desktop-{digest}"


class SingleInstance(QObject):
    """`acquire()` True: this is the first copy (`wake` fires when another starts)."""

    wake = Signal()

    def __init__(self, config_file: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = _key(config_file)
        folder = QStandardPaths.writableLocation(
            QStandardPaths.StandardLocation.RuntimeLocation) or QDir.tempPath()
        self.lock = QLockFile(str(Path(folder) / f"{self.name}.lock"))
        self.lock.setStaleLockTime(0)   # stale only if its process is gone
        self.server: QLocalServer | None = None

    def acquire(self) -> bool:
        if not self.lock.tryLock(100):
            self._ask_first_to_show()
            return False
        QLocalServer.removeServer(self.name)   # a socket file left by a crash
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self.server.newConnection.connect(self._connected)
        self.server.listen(self.name)
        return True

    def _connected(self) -> None:
        """The second copy writes its one line right after connecting: read it here and
        let go of the socket (no per-socket slots that could outlive it)."""
        assert self.server is not None
        while (sock := self.server.nextPendingConnection()) is not None:
            if sock.bytesAvailable() or sock.waitForReadyRead(500):
                message = bytes(sock.readAll().data())
            else:
                message = b""
            sock.abort()
            sock.deleteLater()
            if message.startswith(WAKE.strip()):
                self.wake.emit()

    def _ask_first_to_show(self) -> None:
        sock = QLocalSocket()
        sock.connectToServer(self.name)
        if sock.waitForConnected(1000):
            sock.write(WAKE)
            sock.waitForBytesWritten(1000)
            sock.disconnectFromServer()

    def release(self) -> None:
        if self.server is not None:
            self.server.close()
        self.lock.unlock()
