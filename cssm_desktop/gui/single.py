"""One running window per user and settings file: a second start brings the first to the
front and exits (two windows would upload the same drop twice and fight over the catalog).

QLockFile decides who is first (it notices a stale lock left by a crashed copy); a
QLocalServer lets the second copy ask the first to show itself.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import socket
import stat
import struct
import tempfile
from pathlib import Path

from PySide6.QtCore import QLockFile, QObject, QStandardPaths, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

WAKE = b"show\n"
# AF_UNIX paths are short (108 bytes on Linux, 104 on macOS): the socket's folder must be.
_MAX_SOCKET_PATH = 100


def _key(config_file: Path) -> str:
    try:
        user = getpass.getuser()
    except Exception:   # no user name from the system: the config path still separates
        user = "user"
    digest = hashlib.sha256(f"{user}\0{config_file.resolve()}".encode()).hexdigest()[:16]
    return f"cssm-desktop-{digest}"


def _own_folder(path: Path) -> bool:
    """A real folder (not a link) that is ours alone: no other user can put a socket or a
    lock file in it, nor read the one we put there."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and (not hasattr(os, "getuid") or (
        st.st_uid == os.getuid() and not st.st_mode & 0o077))


def private_runtime_dir() -> Path:
    """Where the lock and the socket live: the session's runtime folder when it is ours
    alone (XDG_RUNTIME_DIR is 0700), else a folder of our own in the temp folder, made
    0700 and checked (a squatter's folder of that name is not used: another is made)."""
    runtime = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.RuntimeLocation)
    if runtime and _own_folder(Path(runtime)) and len(runtime) < _MAX_SOCKET_PATH - 40:
        return Path(runtime)
    uid = os.getuid() if hasattr(os, "getuid") else 0
    base = Path(tempfile.gettempdir())
    for attempt in range(8):
        folder = base / (f"cssm-desktop-{uid}" + (f"-{attempt}" if attempt else ""))
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
        except OSError:
            continue
        if _own_folder(folder):
            return folder
    return Path(tempfile.mkdtemp(prefix="cssm-desktop-"))   # 0700, ours, never shared


def _peer_is_us(sock: QLocalSocket) -> bool:
    """The process at the other end runs as this user (Linux: SO_PEERCRED). Where the
    system cannot say, the owner-only folder is the guard."""
    if not hasattr(socket, "SO_PEERCRED") or not hasattr(os, "getuid"):
        return True
    fd = int(sock.socketDescriptor())
    if fd < 0:
        return False
    peer = socket.fromfd(fd, socket.AF_UNIX, socket.SOCK_STREAM)   # a dup: ours to close
    try:
        creds = peer.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return False
    finally:
        peer.close()
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()


class SingleInstance(QObject):
    """`acquire()` True: this is the first copy (`wake` fires when another starts)."""

    wake = Signal()

    def __init__(self, config_file: Path, parent: QObject | None = None,
                 folder: Path | None = None) -> None:
        super().__init__(parent)
        if os.name == "nt":   # a named pipe, in the session's own namespace
            folder = folder or Path(tempfile.gettempdir())
            self.name = _key(config_file)
            self.lock = QLockFile(str(folder / f"{self.name}.lock"))
        else:
            folder = folder or private_runtime_dir()
            self.name = str(folder / _key(config_file))   # a full path: not the shared /tmp
            self.lock = QLockFile(f"{self.name}.lock")
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
            if not _peer_is_us(sock):
                message = b""
            elif sock.bytesAvailable() or sock.waitForReadyRead(500):
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
