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


class Closed(Exception):
    """Raised in a stage putting into a channel its reader closed (a part left behind)."""


class Arrivals:
    """Counts puts into a set of channels, so one reader can wait for the next item from
    any of them (or a timeout); a failure or cancel wakes it like a channel."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        self._cond = threading.Condition()
        self.count = 0
        pipeline.watch(self)

    def arrived(self) -> None:
        with self._cond:
            self.count += 1
            self._cond.notify_all()

    def wait(self, since: int, timeout: float | None) -> None:
        """Until an arrival after `since` (a count read before looking), or `timeout`."""
        with self._cond:
            if self.count == since and not self._pipeline.abort.is_set() \
                    and not self._pipeline.cancel.cancelled:
                self._cond.wait(timeout)
        self._pipeline.check()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


class Pipeline:
    def __init__(self, cancel: CancelToken | None = None) -> None:
        self.cancel = cancel or CancelToken()
        self.abort = threading.Event()
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        self._channels: list[Channel | Arrivals] = []
        self._released: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._forget_cancel = self.cancel.on_cancel(self._wake)

    def channel(self, depth: int = 2, arrivals: Arrivals | None = None) -> Channel:
        channel = Channel(self, depth, arrivals)
        self.watch(channel)
        return channel

    def watch(self, waiter: Channel | Arrivals) -> None:
        """`waiter.wake()` is called on a failure or cancel."""
        with self._lock:
            self._channels.append(waiter)

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

    def spawn(self, target: Callable[..., None], *args: Any,
              name: str = "cssm-stage") -> threading.Thread:
        def run() -> None:
            try:
                target(*args)
            except BaseException as exc:
                self.fail(exc)

        # carry: the stage sees the job's context (the stores' outage watch).
        thread = threading.Thread(target=carry(run), name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()
        return thread

    def release(self, thread: threading.Thread) -> None:
        """The job no longer waits for this stage (a part left behind, blocked in a store
        that answers a byte at a time); it ends by itself, its output unread."""
        with self._lock:
            self._released.add(thread)

    def join(self) -> None:
        """Wait for every stage not released; re-raise the first real failure."""
        try:
            while True:
                with self._lock:
                    waiting = [t for t in self._threads
                               if t.is_alive() and t not in self._released]
                if not waiting:
                    break
                waiting[0].join(0.5)   # a stage may be released while it is waited for
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

    def __init__(self, pipeline: Pipeline, depth: int, arrivals: Arrivals | None = None
                 ) -> None:
        self._pipeline = pipeline
        self._depth = depth
        self._arrivals = arrivals
        self._closed = False
        self._items: deque[Any] = deque()
        # Re-entrant: a stage that finds the job cancelled inside put/get fails the
        # pipeline, which wakes every channel, this one included.
        self._lock = threading.RLock()
        self._not_full = threading.Condition(self._lock)
        self._not_empty = threading.Condition(self._lock)

    def put(self, item: Any) -> None:
        with self._lock:
            while True:
                if self._closed:
                    raise Closed()
                self._pipeline.check()
                if len(self._items) < self._depth:
                    break
                self._not_full.wait()
            self._items.append(item)
            self._not_empty.notify()
        if self._arrivals is not None:
            self._arrivals.arrived()

    def ready(self) -> bool:
        """An item waits: get() would not block."""
        with self._lock:
            return bool(self._items)

    def close(self) -> None:
        """The reader is gone: puts from now on raise Closed."""
        with self._lock:
            self._closed = True
            self._items.clear()
            self._not_full.notify_all()

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
