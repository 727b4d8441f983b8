"""Remove what interrupted work left behind, never anything a restore could still use.

Decides on authenticated data only (the vault must be unlocked): a file id counts as
garbage when fewer than the vault's k stores hold metadata of the vault's n and k whose
share opens under that store's key, counting every unreachable, damaged or foreign store
as if it held one. A store can hide or edit its own objects, which at most makes gc delete
less; k is the vault's (local), never what a file's metadata says. Objects younger than the grace
period are left alone (an upload may still be running on another machine).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import CssmError, FormatError, StoreError
from ..stores.base import ObjectInfo, Store
from . import parallel
from .format import MAX_META_LEN, MetaObject
from .layout import data_prefix, id_from_key, meta_key, meta_prefix
from .progress import CancelToken, Listener, Step, ignore
from .repack import Repacked
from .vault import Vault

log = logging.getLogger(__name__)

DEFAULT_GRACE_SECONDS = 48 * 3600

INTERRUPTED = "interrupted upload"


@dataclass(frozen=True)
class Garbage:
    store: str
    key: str
    size: int
    reason: str                # in words, for people
    age: float = 0.0           # seconds since the object was written
    upload: ObjectInfo | None = None   # set for an interrupted upload: discard it, not delete


@dataclass
class GcReport:
    found: list[Garbage]
    removed: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    # What would be garbage but is younger than the grace period: left alone, listed.
    young: list[Garbage] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # restorable, not on every store
    repacked: list[Repacked] = field(default_factory=list)  # packs rewritten (engine.gc)
    # Interrupted uploads a resume on this machine would still use: kept.
    resumable: list[Garbage] = field(default_factory=list)
    # Stores that could not be listed (down, or a folder leading out of the store): nothing
    # was removed there, and they counted as holding every file's metadata.
    unlisted: dict[str, str] = field(default_factory=dict)

    @property
    def skipped_young(self) -> int:
        return len(self.young)


Listing = tuple[dict[bytes, ObjectInfo], dict[bytes, ObjectInfo], list[ObjectInfo]]


def collect_garbage(vault: Vault, grace_seconds: float = DEFAULT_GRACE_SECONDS,
                    dry_run: bool = False, now: float | None = None,
                    listener: Listener = ignore, cancel: CancelToken | None = None,
                    resumable: Mapping[str, str] | None = None) -> GcReport:
    """A job (core/progress.py): a cancel stops it between two deletions. Interrupted
    uploads whose id is in `resumable` (upload id -> local file: an upload journal on this
    machine can go on with them) are listed apart and kept, whatever their age."""
    resumable = resumable or {}
    vmk = vault.require_key()
    now = time.time() if now is None else now
    cutoff = now - grace_seconds
    stores = dict(vault.stores)
    unreachable = vault.n - len(stores)
    mp, dp = meta_prefix(vault.vault_id), data_prefix(vault.vault_id)

    def scan(store: Store) -> Listing:
        metas = {fid: o for o in store.list(mp) if (fid := id_from_key(o.key, mp))}
        datas = {fid: o for o in store.list(dp) if (fid := id_from_key(o.key, dp))}
        return metas, datas, list(store.incomplete_uploads(vault.id_hex + "/"))

    listing: dict[int, Listing] = {}
    report = GcReport([])
    for index, res in zip(stores, parallel.each(scan, stores.values()), strict=True):
        if isinstance(res, CssmError):
            log.warning("gc: cannot list store %s: %s", vault.store_name(index), res)
            report.unlisted[vault.store_name(index)] = getattr(res, "reason", str(res))
            unreachable += 1
            continue
        if isinstance(res, BaseException):
            raise res
        listing[index] = res

    ids = {fid for metas, datas, _ in listing.values() for fid in (*metas, *datas)}
    for fid in sorted(ids):
        if cancel is not None:
            cancel.check()
        holders = [i for i, (metas, _, _) in listing.items() if fid in metas]
        if len(holders) + unreachable >= vault.n:
            # Metadata wherever it could be: kept whatever k is, without reading it.
            if len(holders) < vault.n:
                report.incomplete.append(fid.hex())
            continue
        authentic = _authentic_holders(vault, vmk, fid, holders)
        if authentic + unreachable >= vault.k:
            if authentic >= vault.k:
                report.incomplete.append(fid.hex())
            continue
        why = ("no metadata" if not holders else
               f"authentic metadata on {authentic} of the {vault.k} stores needed")
        objects = [(i, o) for i, (metas, datas, _) in listing.items()
                   for o in (metas.get(fid), datas.get(fid)) if o is not None]
        items = [Garbage(vault.store_name(i), o.key, o.size, f"orphan ({why})",
                         max(0.0, now - o.modified)) for i, o in objects]
        if any(o.modified > cutoff for _, o in objects):
            report.young += items
        else:
            report.found += items
    for index, (_, _, uploads) in listing.items():
        for up in uploads:
            item = Garbage(vault.store_name(index), up.key, up.size, INTERRUPTED,
                           max(0.0, now - up.modified), up)
            if up.upload_id is not None and up.upload_id in resumable:
                report.resumable.append(dataclasses.replace(
                    item, reason=f"unfinished upload of {resumable[up.upload_id]}"))
            else:
                (report.found if up.modified <= cutoff else report.young).append(item)
    if dry_run:
        return report
    by_store = {vault.store_name(i): s for i, s in stores.items()}
    # Metadata first, as `rm` does: a crash half-way leaves data that gc finds again.
    for done, item in enumerate(sorted(report.found, key=lambda g: "/meta/" not in g.key)):
        listener(Step("remove garbage", done, len(report.found)))
        if cancel is not None:
            cancel.check()
        store = by_store[item.store]
        try:
            if item.upload is not None:
                store.discard_upload(item.upload)
            else:
                store.delete(item.key)
            report.removed += 1
            log.info("gc: removed %s from store %s (%s)", item.key, item.store, item.reason)
        except StoreError as exc:
            report.failed[f"{item.store}:{item.key}"] = exc.reason
            log.warning("gc: could not remove %s from store %s: %s", item.key, item.store,
                        exc.reason)
    return report


def _authentic_holders(vault: Vault, vmk: bytes, fid: bytes, holders: list[int]) -> int:
    """How many holders have metadata that names this file, this store and the vault's own
    n and k, and whose share opens under that store's key. Anything else counts for
    nothing: a store that knows the password seals any k, but a file that is not the
    vault's shape is never restored (core/get.py), so it is not kept for one."""

    def read(index: int) -> bool:
        raw = vault.stores[index].get_bytes(meta_key(vault.vault_id, fid), limit=MAX_META_LEN)
        meta = MetaObject.parse(raw)
        h = meta.header
        if (h.vault_id, h.file_id, h.index, h.n, h.k) != (vault.vault_id, fid, index,
                                                          vault.n, vault.k):
            return False
        return meta.open_share(vmk) is not None

    count = 0
    for res in parallel.each(read, holders):
        if res is True:
            count += 1
        elif isinstance(res, BaseException) and not isinstance(res, CssmError | FormatError):
            raise res
    return count
