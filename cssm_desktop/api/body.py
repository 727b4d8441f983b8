"""A request body handed from the event loop to the engine's reading thread: the loop
appends what arrives, the engine reads whole stripes; past a few MiB held the loop waits
(so memory stays flat however large the upload), and a client gone ends the read with an
error (nothing is stored)."""

from __future__ import annotations

import asyncio
import threading
from collections import deque

from ..errors import InputError

HIGH_WATER = 8 * 1024 * 1024


class BodyPipe:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._chunks: deque[bytes] = deque()
        self._held = 0
        self._ended = False
        self._failed: str | None = None
        self._abandoned = False
        self._cond = threading.Condition()
        self._room = asyncio.Event()
        self._room.set()

    # -- the event loop's side
    async def feed(self, chunk: bytes) -> None:
        if not chunk or self._abandoned:
            return
        await self._room.wait()
        if self._abandoned:
            return
        with self._cond:
            self._chunks.append(chunk)
            self._held += len(chunk)
            if self._held >= HIGH_WATER:
                self._room.clear()
            self._cond.notify()

    def end(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify()

    def abandon(self) -> None:
        """The reader stopped (stored, failed or cancelled): what still comes is dropped,
        and a feed waiting for room goes on (else it waited for ever)."""
        self._abandoned = True
        self._room.set()

    def fail(self, why: str) -> None:
        with self._cond:
            self._failed = why
            self._cond.notify()

    # -- the engine's side (a file object's read)
    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        got = 0
        with self._cond:
            while size < 0 or got < size:
                while not self._chunks and not self._ended and self._failed is None:
                    self._cond.wait()
                if self._failed is not None:
                    raise InputError(self._failed)
                if not self._chunks:
                    break   # the end: short if the body was
                chunk = self._chunks.popleft()
                want = len(chunk) if size < 0 else size - got
                if len(chunk) > want:
                    self._chunks.appendleft(chunk[want:])
                    chunk = chunk[:want]
                parts.append(chunk)
                got += len(chunk)
                self._held -= len(chunk)
            if self._held < HIGH_WATER // 2:
                self._loop.call_soon_threadsafe(self._room.set)
        # One copy: a stripe's read is joined once (a bytearray grown chunk by chunk and
        # copied out again cost two).
        return parts[0] if len(parts) == 1 else b"".join(parts)
