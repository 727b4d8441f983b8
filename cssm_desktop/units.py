"""Sizes and durations in the words both faces use (the window and `cssm` say the same)."""

from __future__ import annotations


def human(n: float) -> str:
    """Bytes in binary units: 512 B, 1.5 KiB, 3.2 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


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
