"""Check every part of a file on every store: present, the right size, every tag good."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from . import parallel
from .errors import DamagedPart, ObjectNotFound, StoreError
from .get import OpenedFile, open_file, part_blocks
from .progress import Listener, ignore
from .vault import Vault

log = logging.getLogger(__name__)

OK = "ok"


@dataclass(frozen=True)
class StoreCheck:
    index: int
    store: str
    meta: str    # "ok" or what is wrong with this store's metadata object
    data: str    # "ok" or what is wrong with this store's data part

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


def check_part(vault: Vault, opened: OpenedFile, index: int) -> str:
    """"ok", or one line saying what is wrong with the part on this store."""
    if index not in vault.stores:
        return "store unreachable or not configured"
    try:
        for _ in part_blocks(vault, opened, index, to_end=True):
            pass
    except ObjectNotFound:
        return "part missing"
    except DamagedPart as exc:
        return exc.reason
    except StoreError as exc:
        return f"unreadable: {exc.reason}"
    return OK


def verify_file(vault: Vault, file_id: bytes, listener: Listener = ignore) -> FileReport:
    """Reads every part in full (in parallel, one thread per store); writes nothing."""
    opened = open_file(vault, file_id, listener)
    parts = parallel.each(lambda i: check_part(vault, opened, i), range(vault.n))
    checks = []
    for index, data in enumerate(parts):
        name = vault.store_name(index)
        if isinstance(data, BaseException):
            data = f"unreadable: {data}"
        if index not in vault.stores:  # one reason covers both objects
            data = vault.unavailable.get(name, "store unreachable or not configured")
            if data == "holds no vault":
                data = "holds no vault (an empty replacement? `cssm repair` adopts it)"
        meta = OK if index in opened.meta_ok else opened.damaged.get(name, "missing")
        if index not in vault.stores:
            meta = data
        if meta.startswith("metadata "):
            meta = meta[len("metadata "):]
        check = StoreCheck(index, name, meta, data)
        if not check.ok:
            log.warning("verify %s: store %s: %s", file_id.hex(), name, check.problem)
        checks.append(check)
    return FileReport(opened, tuple(checks))
