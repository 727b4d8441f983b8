"""Run one blocking call per store at once; stores are slow, independent network peers."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# One pool for the process: a pool per call cost ~1.2 ms (five threads started and
# joined), paid several times per stored file. 32 workers: a store that hangs until its
# timeout holds one worker per call, and leaves the others to the rest of the work.
MAX_WORKERS = 32
_pool: _DaemonPool | None = None
_pool_lock = threading.Lock()
_worker = threading.local()


class _DaemonPool:
    """Threads that take store calls, started as needed up to MAX_WORKERS. Daemons, unlike
    ThreadPoolExecutor's (joined when the interpreter exits): a call left behind in a
    store that answers a byte at a time must not keep a finished command from exiting."""

    def __init__(self, workers: int) -> None:
        self._max = workers
        self._tasks: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] \
            = queue.SimpleQueue()
        self._idle = 0      # threads waiting for a task
        self._queued = 0    # tasks no thread has taken yet
        self._threads = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., R], *args: Any) -> Future[R]:
        future: Future[R] = Future()
        with self._lock:
            self._queued += 1
            start = self._queued > self._idle and self._threads < self._max
            if start:
                self._threads += 1
        if start:
            threading.Thread(target=self._work, name=f"cssm-store_{self._threads}",
                             daemon=True).start()
        self._tasks.put((future, fn, args))
        return future

    def _work(self) -> None:
        _worker.active = True
        while True:
            with self._lock:
                self._idle += 1
            future, fn, args = self._tasks.get()
            with self._lock:
                self._idle -= 1
                self._queued -= 1
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:
                    future.set_exception(exc)
            # Let go of the task now, not when the next one comes: its context may hold
            # the last reference to a job's Qt worker (the store watch's listener), which
            # must not be destroyed on this thread (ThreadPoolExecutor does the same).
            del future, fn, args


def _executor() -> _DaemonPool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = _DaemonPool(MAX_WORKERS)
        return _pool


# A store that answers after the others have is given this long, or as long again as the
# others took, whichever is more, before it is left behind (`each(quorum=...)`).
MIN_GRACE = 0.75


def each(fn: Callable[[T], R], items: Iterable[T], *, quorum: int | None = None,
         late: Callable[[T], BaseException | None] | None = None
         ) -> list[R | BaseException]:
    """fn over items in threads; a failure comes back as its exception, in order.

    With `quorum`: once that many calls have succeeded, the others get a grace of
    max(MIN_GRACE, the time taken so far); a call still running then is left behind and
    comes back as late(item), or waited for where late(item) is None. A store that
    trickles its answer stays under every read timeout, so waiting for all would let one
    store set the pace of every command.

    Called from a pool worker (a nested call) or with one item, it runs in the calling
    thread: a nested call waiting on the same pool could otherwise wait forever."""
    items = list(items)

    def guarded(item: T) -> R | BaseException:
        try:
            return fn(item)
        except Exception as exc:
            return exc

    if len(items) <= 1 or getattr(_worker, "active", False):
        return [guarded(item) for item in items]
    from ..stores.outage import carry

    pool = _executor()
    futures = [pool.submit(carry(guarded), item) for item in items]
    if quorum is None or late is None or quorum >= len(items):
        return [future.result() for future in futures]
    started = time.monotonic()
    pending = set(futures)
    succeeded = 0
    while pending and succeeded < quorum:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        succeeded += sum(not isinstance(f.result(), BaseException) for f in done)
    if pending:
        grace = max(MIN_GRACE, time.monotonic() - started)
        _done, pending = wait(pending, timeout=grace)
    out: list[R | BaseException] = []
    for item, future in zip(items, futures, strict=True):
        left = late(item) if future in pending else None
        if left is not None:
            _linger(future)
        out.append(future.result() if left is None else left)
    return out


_lingering = 0   # calls left behind that have not ended yet
_lingering_lock = threading.Lock()


def _linger(future: Future[Any]) -> None:
    global _lingering
    with _lingering_lock:
        _lingering += 1

    def ended(_f: Future[Any]) -> None:
        global _lingering
        with _lingering_lock:
            _lingering -= 1

    future.add_done_callback(ended)


def lingering() -> int:
    """How many store calls left behind are still running (each holds its job's context,
    which the GUI keeps alive on the UI thread until they end: gui/workers.py)."""
    return _lingering


def left_behind(store: Any) -> BaseException | None:
    """The `late` of a store call: a remote store far slower than the others is reported
    too slow; a local one is waited for."""
    from ..errors import too_slow

    return too_slow(store.name) if store.remote else None


def each_or_raise(fn: Callable[[T], R], items: Iterable[T], names: Iterable[str],
                  what: str) -> list[R]:
    """each(), then raise the first failure: our own errors as they are, an OSError as a
    StoreError naming the store (`names` go with `items`, one by one). Anything else is a
    bug and is raised as it is, never dressed up as a store's failure."""
    from ..errors import CssmError, StoreError

    items = list(items)
    results = each(fn, items)
    for name, res in zip(names, results, strict=True):
        if isinstance(res, BaseException):
            if isinstance(res, CssmError):
                raise res
            if isinstance(res, OSError):
                raise StoreError(name, f"{what} failed: {res.strerror or res}") from res
            raise res
    return results  # type: ignore[return-value]


def reasons(names: Iterable[str], results: Iterable[object]) -> dict[str, str]:
    """Store name -> reason for each result that is a store's failure. Any other exception
    is a bug: raised, not counted as a store that failed."""
    from ..errors import StoreError

    out = {}
    for name, res in zip(names, results, strict=True):
        if isinstance(res, StoreError):
            out[name] = res.reason
        elif isinstance(res, BaseException):
            raise res
    return out
