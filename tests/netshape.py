"""A TCP proxy on 127.0.0.1 that behaves like a home connection to one cloud store.

Every byte is delayed by half the round trip in each direction, and each direction of the
link is limited to `rate` bytes per second, shared by all connections to it (one proxy is
one store's link). down() cuts every connection (RST) and refuses new ones until up(),
like a store that goes away; the proxy counts the bytes it forwarded each way, so a test
can tell what was sent again after an interruption.

Used by the tests (tests/test_network.py) and by bench/shaped.py. Written here rather
than taken from a library: tc/netem needs root and a network namespace, and toxiproxy is
a Go service we would have to fetch; a hundred lines of sockets and threads does what the
tests need, on loopback, as any user.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections import deque

CHUNK = 16 * 1024   # at 4 MB/s one chunk is 4 ms on the wire: smooth enough pacing


class Link:
    """One direction of a store's link: bandwidth shared by every connection on it."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.bytes = 0
        self._free_at = 0.0
        self._lock = threading.Lock()

    def send_time(self, size: int) -> float:
        """When `size` bytes queued now have left the link (monotonic clock)."""
        with self._lock:
            self.bytes += size
            now = time.monotonic()
            if not self.rate:
                return now
            # One chunk of credit: a sender that woke a little late (sleep overshoot)
            # catches up instead of leaving the link idle for that moment.
            start = max(now - CHUNK / self.rate, self._free_at)
            self._free_at = start + size / self.rate
            return self._free_at


class ShapedProxy:
    def __init__(self, target_port: int, *, rtt: float = 0.0, rate: float | None = None,
                 down_rate: float | None = None) -> None:
        self.target_port = target_port
        self.delay = rtt / 2
        self.upload = Link(rate)
        self.download = Link(down_rate if down_rate is not None else rate)
        self._stop = threading.Event()
        self._down = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> ShapedProxy:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self.down()
        self._thread.join(timeout=5)
        self._listener.close()

    @property
    def sent(self) -> int:
        """Bytes forwarded from clients to the store so far (uploads, with HTTP framing)."""
        return self.upload.bytes

    def down(self) -> None:
        """The store goes away: every open connection is reset, new ones are refused."""
        self._down.set()
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            _reset(sock)

    def up(self) -> None:
        self._down.clear()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._down.is_set():
                _reset(conn)
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            _reset(client)
            return
        upstream.settimeout(None)
        with self._lock:
            if self._down.is_set():
                _reset(client)
                upstream.close()
                return
            self._sockets |= {client, upstream}
        threads = [threading.Thread(target=self._direction, args=(a, b, link), daemon=True)
                   for a, b, link in ((client, upstream, self.upload),
                                      (upstream, client, self.download))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with self._lock:
            self._sockets -= {client, upstream}
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.close()

    def _direction(self, src: socket.socket, dst: socket.socket, link: Link) -> None:
        """Read from src as the link's bandwidth allows; deliver each chunk `delay` after
        it left the link (a second thread), so the pipe holds one round trip of data."""
        queue: deque[tuple[float, bytes]] = deque()
        ready = threading.Condition()
        finished = threading.Event()

        def deliver() -> None:
            while True:
                with ready:
                    while not queue:
                        if finished.is_set():
                            with contextlib.suppress(OSError):
                                dst.shutdown(socket.SHUT_WR)
                            return
                        ready.wait(0.5)
                    due, data = queue.popleft()
                    ready.notify_all()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)   # the link's own delay, not waiting for work
                try:
                    dst.sendall(data)
                except OSError:
                    _reset(src)
                    return

        sender = threading.Thread(target=deliver, daemon=True)
        sender.start()
        try:
            while not self._stop.is_set():
                try:
                    data = src.recv(CHUNK)
                except OSError:
                    break
                if not data:
                    break
                left = link.send_time(len(data))
                wait = left - time.monotonic()
                if wait > 0:
                    time.sleep(wait)   # pacing: the bytes are on the wire until then
                with ready:
                    # Bounded: a receiver that stops reading holds back the sender.
                    while len(queue) > 4096 and not self._stop.is_set():
                        ready.wait(0.5)
                    queue.append((left + self.delay, data))
                    ready.notify_all()
        finally:
            finished.set()
            with ready:
                ready.notify_all()
            sender.join()


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN, like a crashed peer or a middlebox. SHUT_RD first:
    a close() alone does not wake a thread blocked reading the socket (Linux), and the
    connection would stay open, half dead, on both sides."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.close()
