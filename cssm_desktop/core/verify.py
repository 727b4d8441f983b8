"""Check every part of a file on every store: present, the right size, every tag good."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import SLOW, CssmError, DamagedPart, ObjectNotFound, StoreError
from . import parallel
from .get import OpenedFile, open_file
from .progress import CancelToken, Listener, ignore
from .stages import BadBlock, part_blocks
from .status import PieceState, piece_state_of
from .vault import Vault

log = logging.getLogger(__name__)

OK = "ok"


@dataclass(frozen=True)
class StoreCheck:
    index: int
    store: str
    meta_state: PieceState    # this store's metadata object
    data_state: PieceState    # this store's data part
    meta: str = OK            # what is wrong with it, in words ("ok" when nothing)
    data: str = OK
    # Stripes whose block of this part failed; None when no block of it can be used.
    bad_stripes: frozenset[int] | None = frozenset()

    @property
    def ok(self) -> bool:
        return self.meta_state is PieceState.OK and self.data_state is PieceState.OK

    @property
    def problem(self) -> str:
        if self.meta == self.data:
            return self.meta
        parts = [f"metadata {self.meta}" if self.meta_state is not PieceState.OK else "",
                 self.data if self.data_state is not PieceState.OK else ""]
        return "; ".join(p for p in parts if p) or OK

    @property
    def state(self) -> PieceState:
        """The worse of the two, for a one-word summary (the data part's when both fail)."""
        return self.data_state if self.data_state is not PieceState.OK else self.meta_state


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
               ) -> tuple[PieceState, str, frozenset[int] | None]:
    """(state, what is wrong in words or "ok", bad stripes) of the part on this store."""
    if index not in vault.stores:
        return PieceState.UNREACHABLE, "store unreachable or not configured", None
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
        return PieceState.MISSING, "part missing", None
    except DamagedPart as exc:
        if seen == 0:
            return PieceState.DAMAGED, exc.reason, None
        return (PieceState.DAMAGED, exc.reason,
                frozenset(bad) | frozenset(range(seen, opened.stripes)))
    except StoreError as exc:
        return PieceState.UNREACHABLE, f"unreadable: {exc.reason}", None
    if len(bad) == 1:
        return PieceState.DAMAGED, f"block {bad[0]} failed authentication", frozenset(bad)
    if bad:
        return (PieceState.DAMAGED, f"{len(bad)} of {opened.stripes} blocks failed "
                f"authentication (first: block {bad[0]})", frozenset(bad))
    return PieceState.OK, OK, frozenset()


def verify_file(vault: Vault, file_id: bytes, listener: Listener = ignore,
                cancel: CancelToken | None = None) -> FileReport:
    """Reads every part in full (in parallel, one thread per store); writes nothing."""
    opened = open_file(vault, file_id, listener)
    # Every store is read in full; one far slower than the rest is left behind (reported
    # unreachable, too slow) rather than setting the pace of the whole check.
    in_use = dict(vault.stores)   # as asked (another job may leave one behind meanwhile)
    parts = parallel.each(lambda i: check_part(vault, opened, i, cancel), range(vault.n),
                          quorum=opened.header.k,
                          late=lambda i: parallel.left_behind(in_use[i])
                          if i in in_use else None)
    if cancel is not None:
        cancel.check()
    checks = []
    for index, res in enumerate(parts):
        name = vault.store_name(index)
        if isinstance(res, CssmError):
            if isinstance(res, StoreError) and res.code == SLOW:
                vault.leave_behind(name, res.reason)   # not waited for again this run
            res = (PieceState.UNREACHABLE, f"unreadable: {res}", None)
        elif isinstance(res, BaseException):
            raise res
        data_state, data, bad = res
        if index in vault.stores:
            meta_state, meta = opened.meta_problems.get(index, (PieceState.OK, OK))
        else:   # one reason covers both objects: the store is not in use
            status = vault.status.get(name)
            state = piece_state_of(status.state) if status else PieceState.UNREACHABLE
            reason = status.reason if status else "store unreachable or not configured"
            meta_state = data_state = state
            meta = data = reason
        check = StoreCheck(index, name, meta_state, data_state, meta, data, bad)
        if not check.ok:
            log.warning("verify %s: store %s: %s", file_id.hex(), name, check.problem)
        checks.append(check)
    return FileReport(opened, tuple(checks))
