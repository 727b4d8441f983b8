"""Check every part of a file on every store: present, the right size, every tag good."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from . import parallel
from .errors import CssmError, DamagedPart, ObjectNotFound, StoreError
from .get import BadBlock, OpenedFile, open_file, part_blocks
from .progress import CancelToken, Listener, ignore
from .vault import Vault

log = logging.getLogger(__name__)

OK = "ok"


@dataclass(frozen=True)
class StoreCheck:
    index: int
    store: str
    meta: str    # "ok" or what is wrong with this store's metadata object
    data: str    # "ok" or what is wrong with this store's data part
    # Stripes whose block of this part failed; None when no block of it can be used.
    bad_stripes: frozenset[int] | None = frozenset()

    @property
    def ok(self) -> bool:
        return self.meta == OK and self.data == OK

    @property
    def problem(self) -> str:
        if self.meta == self.data:
            return self.meta
        parts = [f"metadata {self.meta}" if self.meta != OK else "",
                 self.data if self.data != OK else ""]
        return "; ".join(p for p in parts if p) or OK


@dataclass(frozen=True)
class FileReport:
    opened: OpenedFile
    checks: tuple[StoreCheck, ...]

    @property
    def healthy(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def good(self) -> int:
        return sum(c.ok for c in self.checks)

    @property
    def damaged(self) -> list[str]:
        return [c.store for c in self.checks if not c.ok]

    @property
    def restorable(self) -> bool:
        """Every stripe has k good blocks (from whichever parts), and k shares fit."""
        k = self.opened.header.k
        if len(self.opened.shares) < k:
            return False
        usable = [c.bad_stripes for c in self.checks if c.bad_stripes is not None]
        if sum(1 for bad in usable if not bad) >= k:
            return True
        doubtful = set().union(*usable) if usable else set()
        if len(usable) < k:
            return False
        return all(sum(1 for bad in usable if stripe not in bad) >= k for stripe in doubtful)


def check_part(vault: Vault, opened: OpenedFile, index: int, cancel: CancelToken | None = None
               ) -> tuple[str, frozenset[int] | None]:
    """("ok" or one line saying what is wrong with the part on this store, bad stripes)."""
    if index not in vault.stores:
        return "store unreachable or not configured", None
    bad: list[int] = []
    seen = 0
    try:
        for stripe, item in part_blocks(vault, opened, index, to_end=True):
            if cancel is not None:
                cancel.check()
            seen = stripe + 1
            if isinstance(item, BadBlock):
                bad.append(stripe)
    except ObjectNotFound:
        return "part missing", None
    except DamagedPart as exc:
        if seen == 0:
            return exc.reason, None
        return exc.reason, frozenset(bad) | frozenset(range(seen, opened.stripes))
    except StoreError as exc:
        return f"unreadable: {exc.reason}", None
    if len(bad) == 1:
        return f"block {bad[0]} failed authentication", frozenset(bad)
    if bad:
        return (f"{len(bad)} of {opened.stripes} blocks failed authentication (first: block "
                f"{bad[0]})"), frozenset(bad)
    return OK, frozenset()


def verify_file(vault: Vault, file_id: bytes, listener: Listener = ignore,
                cancel: CancelToken | None = None) -> FileReport:
    """Reads every part in full (in parallel, one thread per store); writes nothing."""
    opened = open_file(vault, file_id, listener)
    parts = parallel.each(lambda i: check_part(vault, opened, i, cancel), range(vault.n))
    if cancel is not None:
        cancel.check()
    checks = []
    for index, res in enumerate(parts):
        name = vault.store_name(index)
        if isinstance(res, CssmError):
            data, bad = f"unreadable: {res}", None
        elif isinstance(res, BaseException):
            raise res
        else:
            data, bad = res
        if index not in vault.stores:  # one reason covers both objects
            data = vault.unavailable.get(name, "store unreachable or not configured")
        meta = OK if index in opened.meta_ok else opened.damaged.get(name, "missing")
        if index not in vault.stores:
            meta = data
        if meta.startswith("metadata "):
            meta = meta[len("metadata "):]
        check = StoreCheck(index, name, meta, data, bad)
        if not check.ok:
            log.warning("verify %s: store %s: %s", file_id.hex(), name, check.problem)
        checks.append(check)
    return FileReport(opened, tuple(checks))
