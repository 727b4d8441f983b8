"""The catalog follows the stores: what another computer stored, backed up or removed
shows here without a full `catalog rebuild` (one listing of each store's metadata; only
objects not seen before are opened)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..catalog import Entry, health_of
from ..core import parallel
from ..core.format import KIND_PACK, KIND_SNAPSHOT
from ..core.get import OpenedFile, open_file
from ..core.keys import content_tagger
from ..core.layout import id_from_key, meta_prefix
from ..core.pack import open_pack, read_range, read_removals
from ..core.progress import CancelToken
from ..core.vault import Vault
from ..errors import (
    CssmError,
    ForeignFile,
    FormatError,
    IntegrityError,
    NotEnoughStores,
    StoreError,
)
from . import manifest
from .history import History
from .manifest import Snapshot

if TYPE_CHECKING:
    from ..engine import Engine

log = logging.getLogger(__name__)


def read_snapshot(vault: Vault, opened: OpenedFile, cancel: CancelToken | None = None
                  ) -> Snapshot:
    """The snapshot an object of KIND_SNAPSHOT holds, read from k stores and checked."""
    data = read_range(vault, opened, 0, opened.box.size, cancel=cancel)
    return manifest.parse(bytes(data), opened.file_id.hex())


@dataclass
class Opened:
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None


def entries_of(vault: Vault, opened: OpenedFile, damaged: list[str],
               removals: dict[bytes, set[bytes]], tag_of: Callable[[bytes], bytes],
               cancel: CancelToken | None = None) -> Opened:
    """What one stored object holds: a file, a pack's members (less those removed) or a
    snapshot. Raises what opening its content raises."""
    box = opened.box
    fid = opened.file_id.hex()
    n, k = opened.header.n, opened.header.k
    health = health_of(len(damaged), vault.n, k)
    bad = ",".join(damaged)
    if box.kind == KIND_SNAPSHOT:
        return Opened(snapshot=read_snapshot(vault, opened, cancel))
    if box.kind != KIND_PACK:
        return Opened([Entry(fid, box.name, box.size, box.mtime_ns, box.stored_at_ns,
                             tag_of(box.sha256).hex(), n, k, health, bad)])
    pack = open_pack(vault, opened.file_id, cancel=cancel, opened=opened)
    dead = removals.get(opened.file_id, set())
    return Opened([Entry(m.member_id.hex(), m.name, m.size, m.mtime_ns, box.stored_at_ns,
                         tag_of(m.sha256).hex(), n, k, health, bad, pack=fid)
                   for m in pack.members if m.member_id not in dead])


@dataclass
class FollowResult:
    files: int = 0        # entries that appeared
    snapshots: int = 0    # snapshots that appeared
    gone: int = 0         # entries and snapshots no store holds any more
    unreadable: dict[str, str] = field(default_factory=dict)
    listed: int = 0       # stores whose listing was read


def follow(engine: Engine, cancel: CancelToken | None = None) -> FollowResult:
    vault = engine.vault()
    vmk = vault.require_key()
    out = FollowResult()
    out.listed, present = _present(vault)
    if out.listed < vault.k:
        return out   # too few stores to tell anything: the catalog stays as it is
    history = History(engine.catalog, vault.id_hex)
    entries = engine.catalog.entries(vault.id_hex)
    alone = {e.id for e in entries if not e.pack}
    packs: dict[str, list[Entry]] = {}
    for e in entries:
        if e.pack:
            packs.setdefault(e.pack, []).append(e)
    snapshots = {s.id for s in history.snapshots()}
    seen = history.seen()
    known = alone | set(packs) | snapshots | seen
    tag_of = content_tagger(vmk, vault.vault_id)
    new = sorted(present - known)
    removals = read_removals(vault, {bytes.fromhex(p) for p in packs} |
                             {bytes.fromhex(p) for p in new}) if (packs or new) else {}
    added: list[Entry] = []
    looked: list[str] = []
    for fid in new:
        if cancel is not None:
            cancel.check()
        try:
            opened = open_file(vault, bytes.fromhex(fid))
            got = entries_of(vault, opened, [], removals, tag_of, cancel)
        except ForeignFile as exc:
            out.unreadable[fid] = f"foreign: {exc.held}; not listed"
            looked.append(fid)
            continue
        except NotEnoughStores:
            continue   # still being stored, or stores down: looked at again next time
        except (CssmError, FormatError, IntegrityError) as exc:
            out.unreadable[fid] = str(exc)
            looked.append(fid)
            continue
        looked.append(fid)
        if got.snapshot is not None:
            history.add(got.snapshot, opened.header.n, opened.header.k,
                        health_of(0, vault.n, opened.header.k))
            out.snapshots += 1
        added += got.entries
    if added:
        engine.catalog.add_many(vault.id_hex, added)
        out.files = len(added)
    history.mark_seen(looked)
    # Gone: on none of the stores listed (at least k of them answered).
    vanished = [i for i in alone | set(packs) if i not in present]
    dropped = [i for i in vanished if i in alone]
    for pid in vanished:
        dropped += [e.id for e in packs.get(pid, [])]
    for pid, dead in removals.items():
        dropped += [m.hex() for m in dead if pid.hex() in packs]
    gone_snaps = [s for s in snapshots if s not in present]
    if dropped:
        before = len(engine.catalog.by_ids(vault.id_hex, dropped))
        engine.catalog.remove_many(vault.id_hex, dropped)
        out.gone += before
    if gone_snaps:
        history.remove(gone_snaps)
        out.gone += len(gone_snaps)
    stale = [i for i in seen if i not in present]
    if stale:
        history.forget_seen(stale)
    if out.files or out.snapshots or out.gone:
        log.info("follow: %d files and %d snapshots appeared, %d gone", out.files,
                 out.snapshots, out.gone)
    return out


def _present(vault: Vault) -> tuple[int, set[str]]:
    """How many stores listed, and every object id their metadata names (names only)."""
    prefix = meta_prefix(vault.vault_id)

    def names(index: int) -> set[str]:
        return {key[len(prefix):] for key in vault.stores[index].keys(prefix)
                if id_from_key(key, prefix) is not None}

    listed, found = 0, set()
    for res in parallel.each(names, sorted(vault.stores)):
        if isinstance(res, set):
            listed += 1
            found |= res
        elif not isinstance(res, StoreError):
            raise res   # a bug, not a store that failed
    return listed, found


def unseen(engine: Engine) -> int:
    """How many objects the stores list that this catalog has not looked at (no password
    needed: a listing of each store's metadata)."""
    vault = engine.vault()
    _listed, present = _present(vault)
    history = History(engine.catalog, vault.id_hex)
    known = history.stored_ids() | history.seen()
    return len(present - known)
