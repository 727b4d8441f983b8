"""Forget: apply a retention policy, remove the snapshots it drops and the stored copies
that only those held. One prune at a time across computers, never while a backup runs
(an exclusive lease), and never the newest copy of a name: a file that still exists keeps
its last version whatever the policy says."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import TYPE_CHECKING

from ..catalog import Entry
from ..core.remove import remove_everywhere
from .follow import follow
from .history import History
from .lease import EXCLUSIVE, Lease
from .manifest import Snapshot
from .retention import Decision, Policy, apply_policy

if TYPE_CHECKING:
    from ..engine import Engine

log = logging.getLogger(__name__)


@dataclass
class ForgetPlan:
    policy: Policy
    decisions: list[Decision]
    versions: list[Entry]       # stored copies only the dropped snapshots hold

    @property
    def dropped(self) -> list[Snapshot]:
        return [d.snapshot for d in self.decisions if not d.keep]


@dataclass
class ForgetResult:
    plan: ForgetPlan
    snapshots_removed: int = 0
    versions_removed: int = 0
    failures: dict[str, str] = field(default_factory=dict)   # store -> why


def plan_forget(engine: Engine, policy: Policy, root: str | None = None,
                tz: tzinfo | None = None) -> ForgetPlan:
    vault = engine.vault()
    history = History(engine.catalog, vault.id_hex)
    snaps = [s for s in history.snapshots() if root is None or s.root == root]
    if not snaps:
        return ForgetPlan(policy, [], [])
    decisions = apply_policy(snaps, policy, tz)
    drop = {d.snapshot.id for d in decisions if not d.keep}
    if not drop:
        return ForgetPlan(policy, decisions, [])
    keep = [s.id for s in history.snapshots() if s.id not in drop]
    candidates = history.referenced(drop) - history.referenced(keep)
    entries = engine.catalog.by_ids(vault.id_hex, candidates)
    named = engine.catalog.named_many(vault.id_hex, {e.name for e in entries.values()})
    newest = {name: max(copies, key=lambda c: (c.stored_at_ns, c.id)).id
              for name, copies in named.items()}
    versions = sorted((e for e in entries.values() if newest.get(e.name) != e.id),
                      key=lambda e: (e.name, e.stored_at_ns))
    return ForgetPlan(policy, decisions, versions)


def forget(engine: Engine, policy: Policy, root: str | None = None,
           tz: tzinfo | None = None) -> ForgetResult:
    """Under an exclusive lease: the plan is made again there (after following the
    stores: another computer's new snapshots count), then snapshots go first, the
    copies after (a crash between leaves old copies listed, never a snapshot whose
    files are gone)."""
    vault = engine.vault()
    vault.require_key()
    history = History(engine.catalog, vault.id_hex)
    with Lease(vault, EXCLUSIVE) as lease:
        follow(engine)
        plan = plan_forget(engine, policy, root, tz)
        result = ForgetResult(plan)
        for snap in plan.dropped:
            lease.check()
            failures = remove_everywhere(vault, bytes.fromhex(snap.id))
            result.failures.update(failures)
            history.remove([snap.id])
            result.snapshots_removed += 1
            log.info("forget: removed snapshot %s (%d files)", snap.id, snap.files)
        if plan.versions:
            lease.check()
            removed = engine.remove_many([e.id for e in plan.versions])
            for why in removed.values():
                result.failures.update(why)
            result.versions_removed = len(plan.versions)
            log.info("forget: removed %d stored copies no kept snapshot holds",
                     len(plan.versions))
    return result
