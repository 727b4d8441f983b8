"""Find every file of a vault from the stores alone (the catalog is only a cache of this)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import CssmError, ForeignFile, NotEnoughStores, StoreError
from . import parallel
from .format import part_size
from .get import OpenedFile, open_file
from .layout import data_prefix, id_from_key, meta_prefix
from .progress import CancelToken, Listener, Step, ignore
from .vault import Vault

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScannedFile:
    opened: OpenedFile
    damaged: tuple[str, ...]       # stores whose metadata or data part is missing or wrong


@dataclass(frozen=True)
class ScanResult:
    files: list[ScannedFile]
    unreadable: dict[str, str]     # file id -> why it could not be opened ("foreign: ...")


def _listing(vault: Vault, prefix: str) -> dict[int, dict[bytes, int]]:
    """Per vault index: file id -> object size."""

    def list_one(index: int) -> dict[bytes, int]:
        found = {}
        for info in vault.stores[index].list(prefix):
            fid = id_from_key(info.key, prefix)
            if fid is not None:
                found[fid] = info.size
        return found

    indexes = sorted(vault.stores)
    out: dict[int, dict[bytes, int]] = {}
    for index, res in zip(indexes, parallel.each(list_one, indexes), strict=True):
        if isinstance(res, StoreError):
            log.warning("cannot list store %s: %s", vault.store_name(index), res.reason)
            continue
        if isinstance(res, BaseException):
            raise res   # a bug, not a store that failed
        out[index] = res
    return out


def scan(vault: Vault, listener: Listener = ignore,
         cancel: CancelToken | None = None) -> ScanResult:
    """Open every file whose metadata any store holds (a job: Step events, cancel)."""
    metas = _listing(vault, meta_prefix(vault.vault_id))
    datas = _listing(vault, data_prefix(vault.vault_id))
    ids = sorted({fid for found in metas.values() for fid in found})
    files: list[ScannedFile] = []
    unreadable: dict[str, str] = {}
    for done, fid in enumerate(ids):
        if cancel:
            cancel.check()
        listener(Step("read file list", done, len(ids)))
        try:
            opened = open_file(vault, fid)
        except ForeignFile as exc:
            unreadable[fid.hex()] = f"foreign: {exc.held}; not listed"
            continue
        except (NotEnoughStores, CssmError) as exc:
            unreadable[fid.hex()] = str(exc)
            continue
        want = part_size(opened.box.data_len, opened.header.k, opened.header.block_size)
        damaged = []
        for index in range(vault.n):
            ok = (index in opened.meta_ok and datas.get(index, {}).get(fid) == want)
            if not ok:
                damaged.append(vault.store_name(index))
        files.append(ScannedFile(opened, tuple(damaged)))
    listener(Step("read file list", len(ids), len(ids)))
    return ScanResult(files, unreadable)
