"""One service, two ways to run it: `cssm serve` in the foreground, or the window's
switch in a thread. uvicorn on a socket bound here first (port 0 gives a free one), so
the address is known before any request; loopback only unless TLS is given."""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from ..config import data_dir
from ..durable import atomic_write_bytes
from ..engine import Engine
from ..errors import InputError
from .jobs import Jobs, Watch
from .middleware import allowed_hosts

log = logging.getLogger(__name__)
DEFAULT_ADDRESS = "127.0.0.1:8765"


def token_file() -> Path:
    return data_dir() / "api-token"


def read_token(path: Path | None = None, rotate: bool = False) -> str:
    """The token in its owner-only file, made (or replaced, `rotate`) when needed."""
    path = path or token_file()
    if not rotate:
        try:
            text = path.read_text(encoding="ascii").strip()
            if len(text) >= 32:
                return text
        except (OSError, UnicodeDecodeError):
            pass
    token = secrets.token_urlsafe(32)
    atomic_write_bytes(path, (token + "\n").encode())   # 0600, atomic
    return token


def parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise InputError(f"not an address: {text!r} (write it as 127.0.0.1:8765)")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiServer:
    def __init__(self, engine: Callable[[], Engine | None], address: str = DEFAULT_ADDRESS,
                 tls: tuple[str, str] | None = None, token_path: Path | None = None,
                 watch: Watch | None = None,
                 changed: Callable[[str], None] | None = None) -> None:
        self.address = address   # as asked (a port 0 becomes a real one in `port`)
        self.host, self.port = parse_address(address)
        if not is_loopback(self.host) and tls is None:
            raise InputError(f"{self.host} is not this computer's loopback: serving there "
                             "needs TLS (--tls-cert and --tls-key)")
        self.tls = tls
        self.token_path = token_path or token_file()
        self.token = read_token(self.token_path)
        self.engine = engine
        self.watch = watch   # told of every job (the window's Activity)
        self.changed = changed   # told what else requests changed (jobs.FILES, LOCK)
        self.jobs: Jobs | None = None
        self._server: object | None = None
        self._thread: threading.Thread | None = None
        self.sock: socket.socket | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def bind(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host if self.host != "localhost" else "127.0.0.1", self.port))
        except OSError as exc:
            sock.close()
            raise InputError(f"cannot listen on {self.host}:{self.port}: "
                             f"{exc.strerror or exc}") from exc
        sock.listen(128)
        self.port = sock.getsockname()[1]
        self.sock = sock

    def _uvicorn(self) -> object:
        import uvicorn

        from .app import create_app

        app = create_app(self.engine, lambda: self.token,
                         lambda: allowed_hosts(self.host, self.port), self.watch,
                         self.changed)
        self.jobs = app.state.jobs
        kwargs: dict[str, object] = {}
        if self.tls:
            kwargs.update(ssl_certfile=self.tls[0], ssl_keyfile=self.tls[1])
        config = uvicorn.Config(app, log_level="warning", access_log=False,
                                lifespan="off", timeout_keep_alive=5,
                                # A slow or stuck client cannot hold the server: headers
                                # must come within this, and idle connections close.
                                h11_max_incomplete_event_size=64 * 1024,
                                server_header=False, **kwargs)  # type: ignore[arg-type]
        return uvicorn.Server(config)

    def serve_forever(self) -> None:
        """In the foreground (cssm serve): until Ctrl+C."""
        if self.sock is None:
            self.bind()
        server = self._uvicorn()
        self._server = server
        server.run(sockets=[self.sock])  # type: ignore[attr-defined]

    def start(self) -> None:
        """In a thread (the window): returns once it accepts requests."""
        if self.sock is None:
            self.bind()
        server = self._uvicorn()
        self._server = server
        started = threading.Event()

        def run() -> None:
            import asyncio

            async def go() -> None:
                task = asyncio.ensure_future(server.serve(sockets=[self.sock]))  # type: ignore[attr-defined]
                while not server.started and not task.done():  # type: ignore[attr-defined]
                    await asyncio.sleep(0.01)
                started.set()
                await task

            asyncio.run(go())

        self._thread = threading.Thread(target=run, name="cssm-api", daemon=True)
        self._thread.start()
        started.wait(10)

    def stop(self) -> None:
        """Running work is cancelled first: a verify went on unseen after the switch was
        off, and an upload held the server's end for as long as its client sent."""
        if self.jobs is not None:
            for job in self.jobs.all():
                self.jobs.cancel(job)
        if self._server is not None:
            self._server.should_exit = True  # type: ignore[attr-defined]
        if self._thread is not None:
            self._thread.join(10)
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def rotate(self) -> str:
        self.token = read_token(self.token_path, rotate=True)
        return self.token


def owner_only(path: Path) -> bool:
    return os.name == "nt" or (path.stat().st_mode & 0o077) == 0
