"""A small thread pipeline: stages joined by bounded queues that every stage can tear down.

The heavy kernels (file I/O, SHA-256, erasure coding, AES-GCM) release the GIL, so stages on
separate threads use both cores; bounded queues keep memory independent of file size.

A stage waiting on a full or empty channel sleeps until the channel changes, a stage
fails, or the job is cancelled: each of those wakes it (no polling).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from ..errors import Cancelled
from ..stores.outage import carry
from .progress import CancelToken


class Aborted(Exception):
    """Raised inside a stage when another stage failed; never leaves the pipeline."""


class Pipeline:
    def __init__(self, cancel: CancelToken | None = None) -> None:
        self.cancel = cancel or CancelToken()
        self.abort = threading.Event()
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        self._channels: list[Channel] = []
        self._lock = threading.Lock()
        self._forget_cancel = self.cancel.on_cancel(self._wake)

    def channel(self, depth: int = 2) -> Channel:
        channel = Channel(self, depth)
        with self._lock:
            self._channels.append(channel)
        return channel

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            if not isinstance(exc, Aborted):
                self.errors.append(exc)
        self.abort.set()
        self._wake()

    def _wake(self) -> None:
        """Every stage waiting on a channel looks again (after a failure or a cancel)."""
        with self._lock:
            channels = list(self._channels)
        for channel in channels:
            channel.wake()

    def check(self) -> None:
        if self.abort.is_set():
            raise Aborted()
        if self.cancel.cancelled:
            self.fail(Cancelled(self.cancel.keep))
            raise Aborted()

    def spawn(self, target: Callable[..., None], *args: Any, name: str = "cssm-stage") -> None:
        def run() -> None:
            try:
                target(*args)
            except BaseException as exc:
                self.fail(exc)

        # carry: the stage sees the job's context (the stores' outage watch).
        thread = threading.Thread(target=carry(run), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def join(self) -> None:
        """Wait for every stage; re-raise the first real failure."""
        try:
            for thread in self._threads:
                thread.join()
        finally:
            self._threads.clear()
            self._forget_cancel()
        if self.errors:
            raise self.errors[0]

    def first_error(self) -> BaseException | None:
        return self.errors[0] if self.errors else None

    def cause(self, exc: BaseException) -> BaseException:
        """What really ended a job that raised `exc`: a stage's Aborted stands for the
        error that aborted the pipeline (or a cancel)."""
        if isinstance(exc, Aborted):
            return self.first_error() or Cancelled(self.cancel.keep)
        return exc


class Channel:
    """A bounded FIFO between two stages. queue.Queue would do, but a waiter there can only
    be woken by the queue itself; here a failure or cancel elsewhere wakes it too."""

    def __init__(self, pipeline: Pipeline, depth: int) -> None:
        self._pipeline = pipeline
        self._depth = depth
        self._items: deque[Any] = deque()
        # Re-entrant: a stage that finds the job cancelled inside put/get fails the
        # pipeline, which wakes every channel, this one included.
        self._lock = threading.RLock()
        self._not_full = threading.Condition(self._lock)
        self._not_empty = threading.Condition(self._lock)

    def put(self, item: Any) -> None:
        with self._lock:
            while True:
                self._pipeline.check()
                if len(self._items) < self._depth:
                    break
                self._not_full.wait()
            self._items.append(item)
            self._not_empty.notify()

    def get(self) -> Any:
        with self._lock:
            while True:
                self._pipeline.check()
                if self._items:
                    break
                self._not_empty.wait()
            item = self._items.popleft()
            self._not_full.notify()
            return item

    def wake(self) -> None:
        with self._lock:
            self._not_full.notify_all()
            self._not_empty.notify_all()
