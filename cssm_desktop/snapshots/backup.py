"""One backup run of a protected folder: what changed is stored, the tree is recorded as
a snapshot in the stores. Unchanged files (type, size, mtime, ctime and inode as the
last snapshot saw them, the entry still listed) are not read at all; changed ones go
through the usual put, which stores nothing new when the same name already holds the
same content (keyed hash)."""

from __future__ import annotations

import io
import logging
import os
import socket
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..catalog import SAFE
from ..core.format import KIND_SNAPSHOT, MODE_BITS, S_DIR, S_FILE, S_LINK
from ..core.progress import CancelToken, Listener, ignore
from ..core.put import store_content
from ..errors import Cancelled, InputError, SourceChanged
from ..paths import DIR, LINK, NOTHING_EXCLUDED, Excludes, Skipped, Source, list_sources
from . import manifest
from .follow import follow
from .history import History
from .lease import SHARED, Lease
from .manifest import Record, Snapshot

if TYPE_CHECKING:
    from ..engine import Engine

log = logging.getLogger(__name__)


@dataclass
class BackupResult:
    snapshot: Snapshot | None
    new: int = 0            # files whose content was stored by this run
    unchanged: int = 0      # files taken from the last snapshot without reading them
    same_content: int = 0   # files read again, found stored already
    sent_bytes: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)   # (name, why)
    skipped: list[Skipped] = field(default_factory=list)


def host_name() -> str:
    return socket.gethostname() or "this computer"


def _mode(src: Source) -> int:
    kind = S_LINK if src.kind == LINK else S_DIR if src.kind == DIR else S_FILE
    return kind | (src.mode & MODE_BITS if src.mode else (0o777 if kind == S_LINK else 0o600))


def _same(old: Record, src: Source, mode: int) -> bool:
    return (old.size == src.size and old.mtime_ns == src.mtime_ns and old.ino == src.ino
            and old.ctime_ns == src.ctime_ns and old.mode == mode)


def run_backup(engine: Engine, folder: Path, exclude: Excludes = NOTHING_EXCLUDED,
               listener: Listener = ignore, cancel: CancelToken | None = None,
               now_ns: int | None = None) -> BackupResult:
    """A job: Cancelled leaves no snapshot (what was stored stays listed, and the next
    run finds it stored); files that fail are named, the snapshot holds the others."""
    cancel = cancel or CancelToken()
    root = os.path.abspath(folder)
    if not os.path.isdir(root):
        raise InputError(f"{root} is not a folder (protected folders are folders)")
    vault = engine.vault()
    vault.require_key()
    history = History(engine.catalog, vault.id_hex)
    host = host_name()
    started = time.time_ns() if now_ns is None else now_ns
    with Lease(vault, SHARED):
        # What other computers removed or stored counts (an unchanged file is taken from
        # the last snapshot only while its stored copy is still listed).
        follow(engine, cancel)
        sources, skipped = list_sources([Path(root)], engine.own_folders(), exclude=exclude)
        asked = [s for s in skipped if s.asked]
        if asked:
            raise InputError(f"{root}: {asked[0].reason}")
        previous = history.latest(host, root)
        before = {r.name: r for r in previous.records} if previous else {}
        alive = engine.catalog.by_ids(vault.id_hex, [r.entry_id for r in before.values()])
        result = BackupResult(None, skipped=skipped)
        records: list[Record] = []
        todo: list[tuple[Source, int]] = []
        for src in sources:
            if src.kind == DIR and not src.mode:
                try:
                    st = os.lstat(src.path)
                    src.mtime_ns, src.ctime_ns, src.ino, src.mode = (
                        st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)
                except OSError as exc:
                    result.failed.append((src.name, exc.strerror or "unreadable"))
                    continue
            mode = _mode(src)
            old = before.get(src.name)
            if old is not None and old.entry_id in alive and _same(old, src, mode):
                records.append(Record(old.entry_id, src.name, src.size, src.mtime_ns, mode,
                                      src.ctime_ns, src.ino))
                result.unchanged += 1
            else:
                todo.append((src, mode))
        records += _store(engine, todo, result, listener, cancel)
        cancel.check()
        records.sort(key=lambda r: r.name)
        snap = Snapshot("", started, host, root, Path(root).name or "folder", records,
                        len(result.failed))
        data = manifest.encode(snap)
        stored = store_content(vault, io.BytesIO(data), "snapshot", "", len(data), started,
                               kind=KIND_SNAPSHOT, cancel=cancel,
                               min_stores=engine.config.put_min_stores)
        snap.id = stored.id_hex
        snap.files, snap.size = len(records), sum(r.size for r in records)
        history.add(snap, stored.n, stored.k, SAFE if not stored.missing else "at risk",
                    ",".join(stored.missing))
    log.info("backup: snapshot %s, %d files (%d new, %d unchanged, %d same content), "
             "%d failed", snap.id, len(records), result.new, result.unchanged,
             result.same_content, len(result.failed))
    result.snapshot = snap
    return result


def _store(engine: Engine, todo: list[tuple[Source, int]], result: BackupResult,
           listener: Listener, cancel: CancelToken) -> list[Record]:
    """Changed files through put; one that changed while it was read is tried once more
    (never stored torn: put checks the file did not change under it)."""
    records: list[Record] = []
    for attempt in (1, 2):
        if not todo:
            break
        again: list[tuple[Source, int]] = []
        outcomes = engine.put_sources([s for s, _ in todo], listener, cancel)
        for (src, mode), res in zip(todo, outcomes, strict=True):
            if isinstance(res.error, Cancelled):
                raise res.error
            if res.error is not None:
                if attempt == 1 and isinstance(res.error, SourceChanged):
                    again.append((_fresh(src), mode))
                else:
                    result.failed.append((src.name, str(res.error)))
                continue
            if res.stored is not None:
                entry_id = res.stored.id_hex
                result.new += 1
                result.sent_bytes += src.size
            elif res.duplicate_of is not None:
                entry_id = res.duplicate_of.id
                result.same_content += 1
            else:
                result.failed.append((src.name, res.skipped or "not stored"))
                continue
            records.append(Record(entry_id, src.name, src.size, src.mtime_ns, mode,
                                  src.ctime_ns, src.ino))
        todo = again
    return records


def _fresh(src: Source) -> Source:
    """The file as it is now, for its second try."""
    try:
        st = os.lstat(src.path)
    except OSError:
        return src
    if not stat.S_ISREG(st.st_mode):
        return src
    return Source(src.path, src.name, st.st_size, src.kind, st.st_mtime_ns, st.st_ctime_ns,
                  st.st_ino, st.st_mode)
