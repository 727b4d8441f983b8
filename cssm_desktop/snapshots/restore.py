"""Restore as of a time: a snapshot's tree (or a folder or file in it) exactly as the
backup found it: bytes, permission bits, modification times, empty folders, links."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.format import MODE_BITS, S_LINK
from ..core.progress import CancelToken, Listener, ignore
from ..errors import CssmError, InputError, NotFound
from ..paths import printable
from .history import History
from .manifest import Record, Snapshot

if TYPE_CHECKING:
    from ..catalog import Entry
    from ..engine import Engine


def parse_time(text: str) -> int:
    """An ISO 8601 date or time (`2026-11-30`, `2026-11-30T14:00`, `...Z`, `...+01:00`),
    local time when no zone is given; nanoseconds since the epoch."""
    raw = text.strip()
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        raise InputError(f"not a time: {text!r} (write it as 2026-11-30 or "
                         "2026-11-30T14:00, or give a snapshot id)") from None
    if len(raw) == 10:   # a day: as of its end
        when = when.replace(hour=23, minute=59, second=59, microsecond=999999)
    if when.tzinfo is None:
        when = when.astimezone()
    return int(when.timestamp() * 1e9)


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="seconds")


def under(records: list[Record], ref: str) -> list[Record]:
    """The records a ref names in a snapshot: the whole tree (the label), a folder, or
    one file."""
    ref = ref.strip("/")
    if not ref:
        return records
    prefix = ref + "/"
    return [r for r in records if r.name == ref or r.name.startswith(prefix)]


def pick(history: History, at: str, ref: str | None = None) -> Snapshot:
    """The snapshot `at` names: a snapshot id (prefix), or the newest one at or before a
    time that holds `ref` (when given)."""
    hexish = all(c in "0123456789abcdefABCDEF" for c in at) and len(at) >= 6
    if hexish:
        found = history.find(at)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise NotFound(f"{at} matches several snapshots; give more of the id")
    when = parse_time(at)
    for snap in reversed(history.snapshots()):
        if snap.time_ns > when:
            continue
        if ref is None or under(history.records(snap.id), ref):
            return snap
    what = f" holding {printable(ref)}" if ref else ""
    raise NotFound(f"no snapshot{what} at or before {at}")


def restore_snapshot(engine: Engine, snap: Snapshot, dest: str | Path, ref: str | None = None,
                     force: bool = False, listener: Listener = ignore,
                     cancel: CancelToken | None = None
                     ) -> list[tuple[Record, Path | CssmError]]:
    """Under `dest`, names keeping their folders (the snapshot's own name first)."""
    vault = engine.vault()
    history = History(engine.catalog, vault.id_hex)
    records = under(history.records(snap.id), ref or "")
    if not records:
        raise NotFound(f"snapshot {snap.id[:12]} holds nothing named {printable(ref or '')}")
    found = engine.catalog.by_ids(vault.id_hex, [r.entry_id for r in records])
    out: list[tuple[Record, Path | CssmError]] = []
    entries: list[Entry] = []
    chosen: list[Record] = []
    for r in records:
        e = found.get(r.entry_id)
        if e is None:
            out.append((r, NotFound(f"{printable(r.name)}: its stored copy is gone (removed "
                                    "on another computer?)")))
            continue
        entries.append(dataclasses.replace(e, name=r.name))
        chosen.append(r)
    targets = engine.tree_targets(entries, dest)
    got = engine.get_many(entries, dest, force=force, listener=listener, cancel=cancel,
                          targets=targets)
    for r, (_e, result), target in zip(chosen, got, targets, strict=True):
        if isinstance(result, Path):
            _settle(r, target, engine.restore_modes)
        out.append((r, result))
    return out


def _settle(r: Record, target: Path, modes: bool) -> None:
    """As the snapshot saw it (a stored copy may carry the times and bits of an earlier
    file with the same content)."""
    try:
        if modes and r.kind != S_LINK:
            os.chmod(target, r.mode & MODE_BITS)
        os.utime(target, ns=(r.mtime_ns, r.mtime_ns), follow_symlinks=False)
    except (OSError, NotImplementedError):
        pass   # restored; only its time or bits could not be set here
