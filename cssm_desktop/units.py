"""Sizes and durations in the words both faces use (the window and `cssm` say the same)."""

from __future__ import annotations

import time
from collections.abc import Callable


def human(n: float) -> str:
    """Bytes in binary units: 512 B, 1.5 KiB, 3.2 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def count(n: int, thing: str, things: str | None = None) -> str:
    """'1 file', '2 files', '20,000 files' (never 'file(s)')."""
    return f"{n:,} {thing if n == 1 else things or thing + 's'}"


def age(seconds: float) -> str:
    """How old something is: 5 min, 3.5 h, 4 days."""
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 72 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def seconds(n: float) -> str:
    """A short wait: 12 s, 4 min 10 s, 1 h 5 min."""
    n = max(0, round(n))
    if n < 60:
        return f"{n} s"
    if n < 3600:
        return f"{n // 60} min {n % 60} s" if n % 60 else f"{n // 60} min"
    return f"{n // 3600} h {n % 3600 // 60} min" if n % 3600 // 60 else f"{n // 3600} h"


class Rate:
    """How fast work in bytes goes, and how long it still takes, measured from the first
    report (not from zero: bytes a job already had, a resumed upload's kept parts, are
    not speed). Both faces show it the same way."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._start: tuple[float, int] | None = None

    def speed(self, done: int) -> float:
        now = self._clock()
        if self._start is None or done < self._start[1]:
            self._start = (now, done)
        since, base = self._start
        return (done - base) / (now - since) if now - since >= 1.0 else 0.0

    def text(self, done: int, total: int) -> str:
        """'12.0 MiB/s, 4 min left', or '' until a second has been measured."""
        speed = self.speed(done)
        if speed <= 0:
            return ""
        return f"{human(speed)}/s, {seconds((total - done) / speed)} left" \
            if total > done else f"{human(speed)}/s"
