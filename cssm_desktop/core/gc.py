"""Remove what interrupted work left behind, never anything a restore could still use.

Needs no password: whether a file is complete is read from which metadata objects exist.
A file id counts as garbage only when fewer than k stores hold its metadata, even
counting every unreachable store as if it did (so it can never be restored), and when
every object of it is older than the grace period (so an upload still running on another
machine is left alone).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..stores.base import ObjectInfo, Store
from . import parallel
from .errors import CssmError, FormatError, StoreError
from .format import HEADER_LEN, META_MAGIC, FileHeader
from .layout import data_prefix, id_from_key, meta_prefix
from .vault import Vault

log = logging.getLogger(__name__)

DEFAULT_GRACE_SECONDS = 48 * 3600


@dataclass(frozen=True)
class Garbage:
    store: str
    key: str
    size: int
    reason: str


@dataclass
class GcReport:
    found: list[Garbage]
    removed: int = 0
    failed: dict[str, str] | None = None
    skipped_young: int = 0         # file ids that look orphaned but are within the grace
    incomplete: list[str] | None = None  # restorable but not on every store: `repair`


def collect_garbage(vault: Vault, grace_seconds: float = DEFAULT_GRACE_SECONDS,
                    dry_run: bool = False, now: float | None = None) -> GcReport:
    now = time.time() if now is None else now
    cutoff = now - grace_seconds
    stores = dict(vault.stores)
    unreachable = vault.n - len(stores)
    mp, dp = meta_prefix(vault.vault_id), data_prefix(vault.vault_id)

    def scan(store: Store) -> tuple[dict[bytes, ObjectInfo], dict[bytes, ObjectInfo],
                                    list[ObjectInfo]]:
        metas = {fid: o for o in store.list(mp) if (fid := id_from_key(o.key, mp))}
        datas = {fid: o for o in store.list(dp) if (fid := id_from_key(o.key, dp))}
        return metas, datas, list(store.incomplete_uploads(vault.id_hex + "/"))

    listing: dict[int, tuple[dict[bytes, ObjectInfo], dict[bytes, ObjectInfo],
                             list[ObjectInfo]]] = {}
    for index, res in zip(stores, parallel.each(scan, stores.values()), strict=True):
        if isinstance(res, BaseException):
            log.warning("gc: cannot list store %s: %s", vault.store_name(index), res)
            unreachable += 1
            continue
        listing[index] = res

    found: list[Garbage] = []
    report = GcReport(found, failed={}, incomplete=[])
    ids = {fid for metas, datas, _ in listing.values() for fid in (*metas, *datas)}
    for fid in sorted(ids):
        holders = [i for i, (metas, _, _) in listing.items() if fid in metas]
        # k <= n: with metadata wherever it could be, the file's k need not be read (one
        # GET per file on a big vault); only doubtful files pay for it.
        k = vault.n if len(holders) + unreachable >= vault.n else \
            _threshold(vault, fid, holders)
        objects = [(i, o) for i, (metas, datas, _) in listing.items()
                   for o in (metas.get(fid), datas.get(fid)) if o is not None]
        if len(holders) + unreachable >= k:
            if len(holders) < vault.n:
                report.incomplete.append(fid.hex())  # type: ignore[union-attr]
            continue
        if any(o.modified > cutoff for _, o in objects):
            report.skipped_young += 1
            continue
        why = "no metadata" if not holders else f"metadata on {len(holders)} of {k} stores needed"
        found += [Garbage(vault.store_name(i), o.key, o.size, f"orphan ({why})")
                  for i, o in objects]
    for index, (_, _, uploads) in listing.items():
        for up in uploads:
            if up.modified <= cutoff:
                found.append(Garbage(vault.store_name(index), up.key, up.size,
                                     "interrupted upload"))
    if dry_run:
        return report
    by_store = {vault.store_name(i): s for i, s in stores.items()}
    uploads = {(vault.store_name(i), u.key): u for i, (_, _, ups) in listing.items()
               for u in ups}
    # Metadata first, as `rm` does: a crash half-way leaves data that gc finds again.
    for item in sorted(found, key=lambda g: "/meta/" not in g.key):
        store = by_store[item.store]
        try:
            upload = uploads.get((item.store, item.key))
            if item.reason == "interrupted upload" and upload is not None:
                store.discard_upload(upload)
            else:
                store.delete(item.key)
            report.removed += 1
            log.info("gc: removed %s from store %s (%s)", item.key, item.store, item.reason)
        except (StoreError, OSError) as exc:
            report.failed[f"{item.store}:{item.key}"] = str(exc)  # type: ignore[index]
            log.warning("gc: could not remove %s from store %s: %s", item.key, item.store, exc)
    return report


def _threshold(vault: Vault, fid: bytes, holders: list[int]) -> int:
    """The file's k from a metadata header (public); 1 when none can be read."""
    for index in holders:
        try:
            with vault.stores[index].open_read(f"{meta_prefix(vault.vault_id)}{fid.hex()}") as r:
                return FileHeader.parse(r.read(HEADER_LEN), META_MAGIC).k
        except (CssmError, FormatError):
            continue
    return 1
