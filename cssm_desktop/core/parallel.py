"""Run one blocking call per store at once; stores are slow, independent network peers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def each(fn: Callable[[T], R], items: Iterable[T]) -> list[R | BaseException]:
    """fn over items in threads; a failure comes back as its exception, in order."""
    items = list(items)
    if not items:
        return []

    def guarded(item: T) -> R | BaseException:
        try:
            return fn(item)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=min(16, len(items))) as pool:
        return list(pool.map(guarded, items))


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
