"""Run one blocking call per store at once; stores are slow, independent network peers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

# One pool for the process: a pool per call cost ~1.2 ms (five threads started and
# joined), paid several times per stored file. 32 workers: a store that hangs until its
# timeout holds one worker per call, and leaves the others to the rest of the work.
MAX_WORKERS = 32
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_worker = threading.local()


def _mark_worker() -> None:
    _worker.active = True


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="cssm-store",
                                       initializer=_mark_worker)
        return _pool


def each(fn: Callable[[T], R], items: Iterable[T]) -> list[R | BaseException]:
    """fn over items in threads; a failure comes back as its exception, in order.

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
    from ..stores.outage import submit

    futures = [submit(_executor(), guarded, item) for item in items]
    return [future.result() for future in futures]


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
