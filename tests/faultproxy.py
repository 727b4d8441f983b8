"""A TCP proxy on 127.0.0.1 that misbehaves on purpose, between a client and an S3 server.

Connection number i is handled as plan(i) says: "ok" forwards both ways; "drop" closes
at once; "stall" accepts and never answers (the client's read timeout must fire);
"cut" forwards the request and a little of the answer, then resets the connection;
"trickle" forwards the request and then the answer one byte every TRICKLE_SECONDS (a
store that stays under every read timeout while answering nothing useful).
Every thread it starts ends by itself (stalls are bounded) or when the proxy stops.
"""

from __future__ import annotations

import select
import socket
import threading
from collections import Counter
from collections.abc import Callable

from .netshape import _reset  # RST that also wakes a blocked reader

STALL_SECONDS = 2.0
CUT_AFTER = 600  # bytes of the answer forwarded before a "cut"
TRICKLE_SECONDS = 5.0


class FaultProxy:
    def __init__(self, target_port: int, plan: Callable[[int], str]) -> None:
        self.target_port = target_port
        self.plan = plan
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._seen = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._seen += 1
                mode = self.plan(self._seen)
                self.counts[mode] += 1
            threading.Thread(target=self._serve, args=(conn, mode), daemon=True).start()

    def _serve(self, client: socket.socket, mode: str) -> None:
        with client:
            if mode == "drop":
                _reset(client)
                return
            if mode == "stall":
                self._stop.wait(STALL_SECONDS)
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                return
            with upstream:
                self._pump(client, upstream, cut=mode == "cut", trickle=mode == "trickle")

    def _pump(self, client: socket.socket, upstream: socket.socket, cut: bool,
              trickle: bool = False) -> None:
        answered = 0
        while not self._stop.is_set():
            ready, _, _ = select.select([client, upstream], [], [], 0.2)
            for sock in ready:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                other = upstream if sock is client else client
                if sock is upstream and cut:
                    room = CUT_AFTER - answered
                    if room <= 0:
                        _reset(client)
                        return
                    data = data[:room]
                    answered += len(data)
                try:
                    if sock is upstream and trickle:
                        for i in range(len(data)):
                            if self._stop.wait(TRICKLE_SECONDS):
                                return
                            other.sendall(data[i:i + 1])
                    else:
                        other.sendall(data)
                except OSError:
                    return
