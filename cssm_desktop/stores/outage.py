"""Riding out a store that stops answering for a while (a router restarting, Wi-Fi
changing networks, a cloud's bad minutes): the job waits for it, says so, and goes on.

Two halves. Each store keeps its own `Outage`: since when it has not answered, shared by
every job that uses it, so that a store already waited out is not waited for again by
the next file (it fails at once, as before, until it answers). A job that is willing to
wait (a put) lends the stores a `Watch` for as long as it runs: where to report the wait
and how to sleep so that its cancel ends the wait. Calls made outside a job's watch
(listing, a health look, a restore with other stores to read from) never wait.

The watch travels in a ContextVar rather than through every call's arguments: the calls
that need it are deep down (a multipart part sent on a pool thread, a commit, a metadata
object), and the engine's threads carry the context along (streams.Pipeline.spawn,
parallel.each, the S3 part pool).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import UNREACHABLE, StoreError

T = TypeVar("T")

# How long a put waits for a store that stopped answering, unless the settings say
# otherwise (config `outage_wait`): long enough for a router to restart or a laptop to
# find its Wi-Fi again, short enough that a store that is really gone does not hold
# every upload behind it for long (after it, the store is left: the file is stored at
# risk and repaired when the store is back).
DEFAULT_WAIT = 300.0
# Between two tries: doubling from 1 s, at most this (a person watching sees the wait
# counted up at least this often, and a store back is found within it).
MAX_PAUSE = 5.0


@dataclass(frozen=True)
class Watch:
    """What a job lends the stores while it runs."""

    waiting: Callable[[str, float, float], None]   # store, seconds silent, seconds we wait
    back: Callable[[str, float], None]      # store, seconds it was gone
    pause: Callable[[float], bool]          # sleep up to that long; True: the job ended


_watch: contextvars.ContextVar[Watch | None] = contextvars.ContextVar("cssm_store_watch",
                                                                     default=None)


@contextlib.contextmanager
def watching(watch: Watch) -> Iterator[None]:
    """Calls to stores inside (and on threads started with `carry`) wait out outages."""
    token = _watch.set(watch)
    try:
        yield
    finally:
        _watch.reset(token)


def carry(fn: Callable[..., T]) -> Callable[..., T]:
    """`fn` bound to the caller's context: a thread or pool task that runs it sees the
    same watch (new threads start with an empty context otherwise)."""
    ctx = contextvars.copy_context()

    def run(*args: Any, **kw: Any) -> T:
        return ctx.run(fn, *args, **kw)
    return run


def submit(pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> Future[T]:
    return pool.submit(carry(fn), *args)


class Outage:
    """One store's silence: when it began, and how long a job may wait it out."""

    def __init__(self, store: str, wait: float = DEFAULT_WAIT) -> None:
        self.store = store
        self.wait = wait
        self.since: float | None = None     # time.monotonic() of the first failure
        self._lock = threading.Lock()

    def failed(self) -> float:
        """A call found the store unreachable: seconds since it stopped answering."""
        now = time.monotonic()
        with self._lock:
            if self.since is None:
                self.since = now
            return now - self.since

    def answered(self) -> float | None:
        """A call got through: the seconds it was gone, or None when it never was."""
        with self._lock:
            since, self.since = self.since, None
        return None if since is None else time.monotonic() - since

    def note(self) -> None:
        """botocore is about to retry: say at once that the store does not answer (a
        retried request may take many seconds to give up)."""
        watch = _watch.get()
        if watch is not None:
            gone = self.failed()
            if gone < self.wait:
                watch.waiting(self.store, gone, self.wait)

    def ride(self, call: Callable[[], T]) -> T:
        """`call()`, again and again while it finds the store unreachable (StoreError code
        UNREACHABLE), for as long as the job's watch lets it and the outage is younger
        than `wait`."""
        pause = 1.0
        while True:
            try:
                result = call()
            except StoreError as exc:
                watch = _watch.get()
                if exc.code != UNREACHABLE:
                    raise
                gone = self.failed()
                if watch is None or gone >= self.wait:
                    raise
                watch.waiting(self.store, gone, self.wait)
                if watch.pause(min(pause, MAX_PAUSE, self.wait - gone)):
                    raise
                pause *= 2
                continue
            if self.since is not None:
                gone = self.answered()
                watch = _watch.get()
                if gone is not None and watch is not None:
                    watch.back(self.store, gone)
            return result
