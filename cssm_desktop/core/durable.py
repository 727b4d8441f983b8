"""Files written so that a crash leaves the old state or the new one, never a mix."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

TEMP_PREFIX = ".tmp-"
# Hand written data to the kernel's writeback every few MiB (Linux): the disk then works
# while we encode instead of all at once in the final fsync, and bytes we will not read
# again do not push the user's own files out of the page cache.
WRITEBACK_EVERY = 8 * 1024 * 1024
_FADVISE = getattr(os, "posix_fadvise", None)


def fsync_dir(path: Path) -> None:
    """Make a rename durable; directories cannot be opened this way on Windows."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(path: Path) -> Path:
    return path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(8)}-{path.name}")


class StreamingFile:
    """An unbuffered, exclusive-create file for large sequential writes; fsync on close."""

    def __init__(self, path: Path, mode: int = 0o666) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        self.path = path
        self._fd: int | None = os.open(path, flags, mode)
        self._written = 0
        self._advised = 0

    def write(self, data: bytes | memoryview) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        self._written += len(data)
        if _FADVISE and self._written - self._advised >= WRITEBACK_EVERY:
            _FADVISE(self._fd, self._advised, self._written - self._advised,
                     os.POSIX_FADV_DONTNEED)
            self._advised = self._written

    def sync_and_close(self) -> None:
        assert self._fd is not None
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def discard(self) -> None:
        """Close (if open) and delete; for failures and cancels."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, rename: readers see all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = StreamingFile(temp_name(path))
    try:
        out.write(data)
        out.sync_and_close()
        os.replace(out.path, path)
    except BaseException:
        out.discard()
        raise
    fsync_dir(path.parent)
