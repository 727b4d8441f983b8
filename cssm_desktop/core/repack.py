"""Give back the space of removed pack members: a pack whose removed share passes a
threshold is rewritten with its live members only (their ids kept), then the old pack
goes. Every step is decided on authenticated data: the pack's index and its removal
records, never a listing alone.

Order, so that a crash at any point loses nothing: (1) the new pack is stored whole;
(2) a removal record names every member of the old pack, so no reader takes any of them
from it; (3) the old pack and its records are deleted. After a crash between (1) and (2)
a member is live in two packs; readers take the newest, and the next gc finishes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import CssmError, IntegrityError, NotFound
from .pack import (
    REPACK_DEAD_SHARE,
    OpenedPack,
    open_pack,
    put_pack,
    read_members,
    read_removals,
    record_removal,
    remove_records,
)
from .pack_format import Member
from .progress import CancelToken, Listener, Step, ignore
from .remove import remove_everywhere
from .vault import Vault

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Repacked:
    old: str                      # pack id
    new: str | None               # the pack that took its live members (None: none left)
    kept: tuple[bytes, ...]       # member ids moved to `new`
    removed: int                  # members whose space comes back
    freed: int                    # bytes of removed members
    done: bool                    # False in a dry run, or when it failed (see `why`)
    why: str = ""


def repack(vault: Vault, dry_run: bool = False, threshold: float = REPACK_DEAD_SHARE,
           listener: Listener = ignore, cancel: CancelToken | None = None) -> list[Repacked]:
    removals = read_removals(vault)
    out: list[Repacked] = []
    for done, (pid, dead) in enumerate(sorted(removals.items())):
        if cancel is not None:
            cancel.check()
        listener(Step("repack", done, len(removals)))
        try:
            pack = open_pack(vault, pid, cancel=cancel)
        except NotFound:   # the pack is gone (removed whole): only its records are left
            if not dry_run:
                remove_records(vault, pid)
            continue
        except CssmError as exc:
            log.warning("gc: pack %s not readable, left alone: %s", pid.hex(), exc)
            continue
        live = [m for m in pack.members if m.member_id not in dead]
        gone = [m for m in pack.members if m.member_id in dead]
        total = sum(m.size for m in pack.members) or 1
        freed = sum(m.size for m in gone)
        if live and freed / total < threshold:
            continue
        row = Repacked(pid.hex(), None, tuple(m.member_id for m in live), len(gone), freed,
                       False)
        if dry_run:
            out.append(row)
            continue
        try:
            new = _move(vault, pack.opened.header.k, pack, live, cancel) if live else None
            record_removal(vault, pid, {m.member_id for m in pack.members})
            remove_everywhere(vault, pid)
            remove_records(vault, pid)
        except (CssmError, IntegrityError) as exc:
            log.warning("gc: repacking %s failed: %s", pid.hex(), exc)
            out.append(Repacked(row.old, None, (), 0, 0, False, str(exc)))
            continue
        out.append(Repacked(row.old, new, row.kept, row.removed, row.freed, True))
    listener(Step("repack", len(removals), len(removals)))
    return out


def _move(vault: Vault, k: int, pack: OpenedPack, live: list[Member],
          cancel: CancelToken | None) -> str:
    carried: list[tuple[Member, bytes]] = []
    for member, data in read_members(vault, pack, live, cancel=cancel):
        if isinstance(data, IntegrityError):
            raise data
        carried.append((member, data))
    result = put_pack(vault, [], k=k, members=carried, cancel=cancel)
    assert result.stored is not None
    return result.stored.id_hex
