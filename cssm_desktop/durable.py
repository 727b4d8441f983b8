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

    def __init__(self, path: Path | None, mode: int = 0o666, fd: int | None = None) -> None:
        """Creates `path`; or adopts an open `fd` (path None: an unnamed file)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        self.path = path
        if fd is None:
            assert path is not None
            fd = os.open(path, flags, mode)
        self._fd: int | None = fd
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

    @property
    def fd(self) -> int:
        assert self._fd is not None
        return self._fd

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
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)


def private_dir(path: Path, tighten: bool = False) -> None:
    """Create `path` readable by its owner only; with `tighten`, also make an existing one
    so (only for folders that are ours alone, never a folder the user named)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if tighten and os.name != "nt":
        os.chmod(path, 0o700)


def private_file(path: Path) -> None:
    """Create `path` (if missing) or tighten it to owner-only."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, rename: readers see all or nothing. The file is
    the owner's only (a config names the user's buckets and folders)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_name(path)
    out = StreamingFile(temp, 0o600)
    try:
        out.write(data)
        out.sync_and_close()
        os.replace(temp, path)
    except BaseException:
        out.discard()
        raise
    fsync_dir(path.parent)


def _link_fd(fd: int, dest: Path) -> None:
    """Give an unnamed (O_TMPFILE) file a name: FileExistsError if `dest` is taken.

    The /proc path works for every user but not in some sandboxes; linkat with
    AT_EMPTY_PATH works there (with CAP_DAC_READ_SEARCH). Python's os.link cannot pass
    AT_EMPTY_PATH, hence the libc call.
    """
    try:
        os.link(f"/proc/self/fd/{fd}", dest, follow_symlinks=True)
        return
    except FileExistsError:
        raise
    except OSError:
        pass
    import ctypes
    import errno

    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, at_empty_path = -100, 0x1000
    if libc.linkat(fd, b"", at_fdcwd, os.fsencode(dest), at_empty_path) != 0:
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(str(dest))
        raise OSError(err, os.strerror(err), str(dest))


def _unnamed_file(folder: Path) -> int | None:
    """An O_TMPFILE in `folder` if this system can later give it a name, else None."""
    tmpfile = getattr(os, "O_TMPFILE", 0)
    if not tmpfile or not hasattr(os, "fsencode"):
        return None
    try:
        probe = os.open(folder, tmpfile | os.O_WRONLY, 0o600)
    except OSError:  # not Linux, or a file system without O_TMPFILE
        return None
    try:
        name = temp_name(folder / "probe")
        _link_fd(probe, name)
        name.unlink()
    except OSError:
        return None
    finally:
        os.close(probe)
    return os.open(folder, tmpfile | os.O_WRONLY, 0o600)


class PendingFile:
    """A file that appears under its name only when complete, and never half-written.

    On Linux it is an unnamed O_TMPFILE in the destination folder: if the process is
    killed, the kernel frees it and nothing is left. Elsewhere it is a hidden temporary
    file beside the destination. Owner-only permissions either way.
    """

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        fd = _unnamed_file(dest.parent)
        self._anonymous = fd is not None
        if fd is not None:
            self.out = StreamingFile(None, fd=fd)
        else:
            self.out = StreamingFile(dest.with_name(
                f".{dest.name}.cssm-{secrets.token_hex(6)}.partial"), 0o600)

    def write(self, data: bytes | memoryview) -> None:
        self.out.write(data)

    def publish(self, overwrite: bool, mtime_ns: int) -> None:
        """fsync, then give it its name; without `overwrite` never replace a file."""
        os.fsync(self.out.fd)
        if self._anonymous:
            os.utime(self.out.fd, ns=(mtime_ns, mtime_ns))
            if overwrite:
                named = temp_name(self.dest)
                _link_fd(self.out.fd, named)
                os.replace(named, self.dest)
            else:
                _link_fd(self.out.fd, self.dest)
            self.out.sync_and_close()
        else:
            assert self.out.path is not None
            self.out.sync_and_close()
            os.utime(self.out.path, ns=(mtime_ns, mtime_ns))
            _rename_into_place(self.out.path, self.dest, overwrite)
        fsync_dir(self.dest.parent)

    def discard(self) -> None:
        self.out.discard()


def _rename_into_place(tmp: Path, dest: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, dest)
        return
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise
    except OSError:  # file systems without hard links (FAT, some network shares)
        if dest.exists():
            raise FileExistsError(str(dest)) from None
        os.rename(tmp, dest)
        return
    tmp.unlink()
