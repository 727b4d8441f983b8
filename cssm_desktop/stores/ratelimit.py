"""Bandwidth limits: a person on a home connection keeps some of it for everything else.

One limit per direction for the whole process, shared by every S3 store and every
transfer at once (the uplink is one, however many clouds are on the other side). Folder
stores are not limited: they are disks (a network share is limited by its mount).

A token bucket, written here rather than taken from a library: the well-kept ones
(aiolimiter, pyrate-limiter) count requests or serve asyncio, while this counts bytes
across plain threads, and is twenty lines.
"""

from __future__ import annotations

import re
import threading
import time

# Bytes taken at once: small enough that the rate is even over a fraction of a second,
# large enough that a fast link is not slowed by the bookkeeping.
CHUNK = 64 * 1024
# Seconds of bytes an idle link may save up and send at once.
BURST = 0.25

_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?(?:\s*/\s*s)?\s*$", re.IGNORECASE)


class RateLimit:
    """Bytes per second for one direction; None or 0 is no limit."""

    def __init__(self, rate: int | None = None) -> None:
        self._lock = threading.Lock()
        self.rate = 0
        self._tokens = 0.0
        self._stamp = time.monotonic()
        self.set(rate)

    def set(self, rate: int | None) -> None:
        with self._lock:
            self.rate = int(rate or 0)
            self._tokens, self._stamp = 0.0, time.monotonic()

    @property
    def on(self) -> bool:
        return self.rate > 0

    def take(self, n: int) -> None:
        """Wait until `n` more bytes fit the rate. The bucket holds at most BURST seconds
        of bytes (an idle link does not earn a long burst); callers go into debt
        in turn, each sleeping off its own share, so none starves."""
        with self._lock:
            rate = self.rate
            if rate <= 0:
                return
            now = time.monotonic()
            self._tokens = min(rate * BURST, self._tokens + (now - self._stamp) * rate) - n
            self._stamp = now
            debt = -self._tokens
        if debt > 0:
            time.sleep(debt / rate)


UPLOAD = RateLimit()
DOWNLOAD = RateLimit()


def configure(upload: int | None, download: int | None) -> None:
    UPLOAD.set(upload)
    DOWNLOAD.set(download)


def parse_rate(text: str) -> int:
    """"2M", "500k", "1.5 MiB/s", "100000" (bytes/s; k, M, G are binary) -> bytes per
    second; "0" is no limit. ValueError with the reason otherwise."""
    m = _RATE_RE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a rate: write it like 2M, 500k or 1.5 MiB/s")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_limits(text: str) -> tuple[int, int]:
    """`--limit-rate`: one rate for both directions, or UP:DOWN (as rclone's --bwlimit)."""
    up, sep, down = text.partition(":")
    rate = parse_rate(up)
    return (rate, parse_rate(down)) if sep else (rate, rate)


def rate_text(rate: int) -> str:
    """What parse_rate reads back exactly: 2M, 512K, or plain bytes per second."""
    for unit, size in (("G", 1024 ** 3), ("M", 1024 ** 2), ("K", 1024)):
        if rate and rate % size == 0:
            return f"{rate // size}{unit}"
    return str(rate)
