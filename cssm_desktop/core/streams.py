"""A small thread pipeline: stages joined by bounded queues that every stage can tear down.

The heavy kernels (file I/O, SHA-256, erasure coding, AES-GCM) release the GIL, so stages on
separate threads use both cores; bounded queues keep memory independent of file size.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from ..errors import Cancelled
from .progress import CancelToken

_POLL = 0.05  # seconds between looks at the abort flag while a queue is full or empty


class Aborted(Exception):
    """Raised inside a stage when another stage failed; never leaves the pipeline."""


class Pipeline:
    def __init__(self, cancel: CancelToken | None = None) -> None:
        self.cancel = cancel or CancelToken()
        self.abort = threading.Event()
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def channel(self, depth: int = 2) -> Channel:
        return Channel(self, depth)

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            if not isinstance(exc, Aborted):
                self.errors.append(exc)
        self.abort.set()

    def check(self) -> None:
        if self.abort.is_set():
            raise Aborted()
        if self.cancel.cancelled:
            self.fail(Cancelled())
            raise Aborted()

    def spawn(self, target: Callable[..., None], *args: Any, name: str = "cssm-stage") -> None:
        def run() -> None:
            try:
                target(*args)
            except BaseException as exc:
                self.fail(exc)

        thread = threading.Thread(target=run, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def join(self) -> None:
        """Wait for every stage; re-raise the first real failure."""
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        if self.errors:
            raise self.errors[0]

    def first_error(self) -> BaseException | None:
        return self.errors[0] if self.errors else None


class Channel:
    def __init__(self, pipeline: Pipeline, depth: int) -> None:
        self._pipeline = pipeline
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)

    def put(self, item: Any) -> None:
        while True:
            self._pipeline.check()
            try:
                self._queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def get(self) -> Any:
        while True:
            self._pipeline.check()
            try:
                return self._queue.get(timeout=_POLL)
            except queue.Empty:
                continue
