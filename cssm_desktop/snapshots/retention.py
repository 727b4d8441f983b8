"""Which snapshots a retention policy keeps, and why: a pure function, as restic's
ApplyPolicy is, so the preview and the prune can never disagree.

Periods are counted as restic counts them: only periods that hold a snapshot count (a
month without backups uses up no "monthly"), the newest snapshot of each period is the
one kept, and "within" counts back from the newest snapshot, not from now (a computer
switched off for a month does not lose its history the day it comes back). Periods are
the local calendar's (ISO weeks). A group (one protected folder on one computer) never
loses its newest snapshot, and a policy that keeps nothing is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from ..errors import InputError
from .manifest import Snapshot

PERIODS: dict[str, Callable[[datetime], tuple[int, ...]]] = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: tuple(t.isocalendar()[:2]),
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: (t.year,),
}


@dataclass(frozen=True)
class Policy:
    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within_s: float = 0.0   # keep everything this close to the newest snapshot

    def empty(self) -> bool:
        return not (self.last or self.within_s or any(self.count(p) for p in PERIODS))

    def count(self, period: str) -> int:
        return int(getattr(self, period))

    def words(self) -> str:
        parts = [f"the last {self.last}"] if self.last else []
        parts += [f"{self.count(p)} {p}" for p in PERIODS if self.count(p)]
        if self.within_s:
            parts.append(f"all within {duration_words(self.within_s)} of the newest")
        return ", ".join(parts) or "nothing"

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {k: self.count(k) for k in ("last", *PERIODS) if
                                  self.count(k)}
        if self.within_s:
            out["within"] = duration_words(self.within_s)
        return out


# Kopia's defaults, thinning hourly -> daily -> weekly -> monthly -> yearly.
SMART = Policy(last=10, hourly=48, daily=7, weekly=4, monthly=24, yearly=3)


@dataclass
class Decision:
    snapshot: Snapshot
    keep: bool
    reasons: list[str] = field(default_factory=list)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def parse_duration(text: str) -> float:
    """`90m`, `1h`, `2d12h`, `4w`, `1y`: seconds. A month is written as days (30d)."""
    raw = text.strip().lower()
    parts = re.fullmatch(r"(?:\d+[smhdwy])+", raw)
    if not parts:
        raise InputError(f"not a duration: {text!r} (write it as 30m, 1h, 7d, 4w, 1y, "
                         "or combined: 1d12h)")
    total = sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([smhdwy])", raw))
    if total <= 0:
        raise InputError(f"a duration must be more than zero: {text!r}")
    return float(total)


def duration_words(seconds: float) -> str:
    for unit, size in (("y", _UNITS["y"]), ("w", _UNITS["w"]), ("d", 86400), ("h", 3600),
                       ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def group_key(snap: Snapshot) -> tuple[str, str]:
    return (snap.host, snap.root)


def apply_policy(snapshots: Sequence[Snapshot], policy: Policy,
                 tz: tzinfo | None = None) -> list[Decision]:
    """A decision per snapshot (newest first, per group in turn), each kept one with its
    reasons ("last", "daily 3", "within 7d", "newest", "oldest")."""
    if policy.empty():
        raise InputError("a policy that keeps nothing is refused: say what to keep "
                         "(--keep-last 10, --keep-daily 7, ...)")
    groups: dict[tuple[str, str], list[Snapshot]] = {}
    for s in snapshots:
        groups.setdefault(group_key(s), []).append(s)
    out: list[Decision] = []
    for members in groups.values():
        out += _apply_group(sorted(members, key=lambda s: (s.time_ns, s.id), reverse=True),
                            policy, tz)
    return out


def _apply_group(newest_first: list[Snapshot], policy: Policy,
                 tz: tzinfo | None) -> list[Decision]:
    left = {p: policy.count(p) for p in PERIODS}
    last_period: dict[str, tuple[int, ...] | None] = dict.fromkeys(PERIODS)
    newest = newest_first[0].time_ns
    decisions = []
    for pos, snap in enumerate(newest_first):
        d = Decision(snap, False)
        when = datetime.fromtimestamp(snap.time_ns / 1e9, tz)
        if pos < policy.last:
            d.reasons.append(f"last {pos + 1}")
        for period, key in PERIODS.items():
            value = key(when)
            if left[period] > 0 and value != last_period[period]:
                last_period[period] = value
                d.reasons.append(f"{period} {policy.count(period) - left[period] + 1}")
                left[period] -= 1
        if policy.within_s and newest - snap.time_ns <= policy.within_s * 1e9:
            d.reasons.append(f"within {duration_words(policy.within_s)}")
        if pos == 0 and not d.reasons:
            d.reasons.append("newest")
        decisions.append(d)
    # Periods not used up: the oldest snapshot stands for the time before (restic 0.16).
    if any(v > 0 for p, v in left.items() if policy.count(p)) and \
            not decisions[-1].reasons:
        decisions[-1].reasons.append("oldest")
    for d in decisions:
        d.keep = bool(d.reasons)
    return decisions
