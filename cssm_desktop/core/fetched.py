"""Blocks a restore has fetched from far stores, kept until it ends: a restore that was
killed, or lost its network, fetches only what it lacks when run again.

One folder per file in `<data dir>/downloads/<vault id>/<file id>/`, owner-only, one file
per part: the sealed blocks of that part from stripe 0 on, in order, exactly as the store
sent them (ciphertext: FORMAT.md 3, without the part header), each appended only after it
opened (so a block in the cache was sound when fetched). On the next restore of the same
file they are opened again before use, like any store's bytes: the cache is read up to
the first block that is short or fails, cut there, and the store is asked for the rest
from that block's offset. Never plaintext: the restored file itself goes only to its
destination (an unnamed temporary file there, named when complete).

Kept only where it pays: files of RESUMABLE bytes or more, parts from stores that are
far (S3); never for folder stores. Removed when the restore ends, unless it was
interrupted in a way a later run may go on from; older than MAX_AGE, removed by the next
restore. A cache that cannot be written (disk full) is given up, never the restore.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..durable import private_dir

log = logging.getLogger(__name__)

MAX_AGE = 7 * 24 * 3600


class PartCache:
    """One part's fetched blocks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._broken = False

    def replay(self, end: int, length: Callable[[int], int]) -> Iterator[tuple[int, bytes]]:
        """(stripe, sealed block) from stripe 0 while the file holds whole blocks."""
        try:
            fh = open(self.path, "rb")   # noqa: SIM115 (closed below, generator)
        except OSError:
            return
        with fh:
            for stripe in range(end):
                want = length(stripe)
                sealed = fh.read(want)
                if len(sealed) != want:
                    return
                yield stripe, sealed

    def keep(self, size: int) -> None:
        """Go on after the first `size` bytes (the blocks that opened): cut the rest."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                         0o600)
            os.ftruncate(fd, size)
            os.lseek(fd, size, os.SEEK_SET)
            self._fd = fd
        except OSError as exc:
            self._give_up(exc)

    def add(self, sealed: bytes) -> None:
        if self._fd is None or self._broken:
            return
        try:
            view = memoryview(sealed)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            self._give_up(exc)

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _give_up(self, exc: OSError) -> None:
        log.warning("download cache: cannot write (%s); the restore goes on without it",
                    exc.strerror or type(exc).__name__)
        self._broken = True
        self.close()


class FetchCache:
    """The blocks kept for one file's restore, one PartCache per far store's part."""

    def __init__(self, root: Path, far: set[int]) -> None:
        self.root = root
        self.far = far
        self._parts: list[PartCache] = []

    def part(self, index: int) -> PartCache | None:
        if index not in self.far:
            return None
        try:
            private_dir(self.root, tighten=True)
        except OSError as exc:
            log.warning("download cache: cannot create its folder (%s)",
                        exc.strerror or type(exc).__name__)
            self.far = set()
            return None
        part = PartCache(self.root / f"{index}.blocks")
        self._parts.append(part)
        return part

    def held(self) -> int:
        """Bytes fetched by an earlier run of this restore."""
        total = 0
        for index in self.far:
            with contextlib.suppress(OSError):
                total += (self.root / f"{index}.blocks").stat().st_size
        return total

    def close(self) -> None:
        for part in self._parts:
            part.close()

    def drop(self) -> None:
        self.close()
        shutil.rmtree(self.root, ignore_errors=True)


def sweep(folder: Path, now: float | None = None) -> None:
    """Remove caches of restores left more than MAX_AGE ago (`folder`: a vault's)."""
    now = time.time() if now is None else now
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False) and \
                    now - entry.stat(follow_symlinks=False).st_mtime > MAX_AGE:
                shutil.rmtree(entry.path, ignore_errors=True)
