"""A store in a plain folder (USB disk, NAS mount): atomic writes via temp file + rename."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..durable import TEMP_PREFIX, StreamingFile, fsync_dir, temp_name
from ..errors import ObjectNotFound, StoreError
from .base import ObjectInfo, ObjectReader, ObjectWriter, Progress, Store, UploadState

# Reads never follow a link in the last step nor block on a FIFO or device a store put
# in place of an object (O_NONBLOCK, then S_ISREG on the open descriptor).
_READ_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))


class _FolderWriter(ObjectWriter):
    def __init__(self, store: FolderStore, path: Path) -> None:
        self._store = store
        self._path = path
        store.require_root()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            store.require_inside(path.parent)
            self._out: StreamingFile | None = StreamingFile(temp_name(path))
        except OSError as exc:
            raise StoreError(store.name, f"cannot write in {path.parent}: {exc.strerror}") from exc

    def write(self, data: bytes | memoryview) -> None:
        assert self._out is not None
        try:
            self._out.write(data)
        except OSError as exc:
            raise StoreError(self._store.name, f"write failed: {exc.strerror}") from exc

    def commit(self) -> None:
        assert self._out is not None
        try:
            self._out.sync_and_close()
            os.replace(self._out.path, self._path)
            self._out = None
            fsync_dir(self._path.parent)
        except OSError as exc:
            self.abort()
            raise StoreError(self._store.name, f"write failed: {exc.strerror}") from exc

    def abort(self) -> None:
        if self._out is not None:
            self._out.discard()
            self._out = None


class _FolderReader(ObjectReader):
    def __init__(self, store: str, fh: BinaryIO) -> None:
        self._store = store
        self._fh = fh

    def read(self, size: int) -> bytes:
        try:
            return self._fh.read(size)
        except OSError as exc:
            raise StoreError(self._store, f"read failed: {exc.strerror}") from exc

    def close(self) -> None:
        self._fh.close()


class FolderStore(Store):
    def __init__(self, name: str, root: str | os.PathLike[str]) -> None:
        self.name = name
        self.root = Path(root).expanduser()

    def describe(self) -> str:
        return f"folder {self.root}"

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if any(p in ("", ".", "..") or p.startswith(TEMP_PREFIX) for p in parts):
            raise ValueError(f"bad object key {key!r}")
        return self.root.joinpath(*parts)

    def prepare(self) -> None:
        """Only `init` and replacing a store create the root: a missing root elsewhere is an
        unplugged disk or unmounted share, and writing onto the bare mount point would
        scatter parts where the user will never look."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(self.name, f"cannot create folder {self.root}: {exc.strerror}") \
                from exc

    def require_root(self) -> None:
        if not self.root.is_dir():
            raise StoreError(self.name, f"folder {self.root} does not exist (disk unplugged "
                                        "or share not mounted?)")

    def require_inside(self, folder: Path) -> None:
        """A sub-folder the store replaced by a link must not lead our reads or writes out
        of the store (the root itself may be a link, e.g. a mount point)."""
        real = os.path.realpath(folder)
        root = os.path.realpath(self.root)
        if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
            raise StoreError(self.name, f"{folder} leads out of the store")

    def open_write(self, key: str, resume: UploadState | None = None,
                   on_progress: Progress | None = None) -> ObjectWriter:
        # A folder is local (or a LAN share): writing a part again costs less than
        # keeping half-written temp files between runs.
        return _FolderWriter(self, self._path(key))

    def open_read(self, key: str, offset: int = 0) -> ObjectReader:
        path = self._path(key)
        try:
            fd = os.open(path, _READ_FLAGS)
        except FileNotFoundError:
            self.require_root()
            raise ObjectNotFound(self.name, key) from None
        except OSError as exc:
            raise StoreError(self.name, f"cannot read {key}: {exc.strerror}") from exc
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StoreError(self.name, f"{key} is not a regular file")
            self.require_inside(path.parent)
            if hasattr(os, "set_blocking"):
                os.set_blocking(fd, True)
            fh = os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
        if offset:
            fh.seek(offset)
        if hasattr(os, "posix_fadvise"):  # parts are read front to back: read ahead more
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        return _FolderReader(self.name, fh)

    def _entries(self, prefix: str, temporary: bool) -> Iterator[os.DirEntry[str]]:
        """Regular files under `prefix` (committed ones, or the temp files of unfinished
        writes), by scandir: no Path per file (a listing of 10,000 objects spent most of
        its time making and relativising Paths)."""
        base = self._folder(prefix)
        self.require_inside(base)   # a link out of the store in place of meta/ or data/
        stack = [str(base)]
        while stack:
            try:
                it = os.scandir(stack.pop())
            except OSError:   # gone, or not a folder: nothing there (as os.walk)
                continue
            with it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.name.startswith(TEMP_PREFIX) == temporary and \
                            entry.is_file(follow_symlinks=False):   # links, FIFOs: not ours
                        yield entry

    def _key(self, path: str) -> str:
        return path[len(str(self.root)) + 1:].replace(os.sep, "/")

    def _walk(self, prefix: str, temporary: bool) -> Iterator[ObjectInfo]:
        for entry in self._entries(prefix, temporary):
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield ObjectInfo(self._key(entry.path), st.st_size, st.st_mtime)

    def keys(self, prefix: str) -> Iterator[str]:
        """Names only: no stat per object."""
        if not self.root.is_dir():
            raise StoreError(self.name, f"folder {self.root} does not exist")
        return (self._key(e.path) for e in self._entries(prefix, temporary=False))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            raise StoreError(self.name, f"folder {self.root} does not exist")
        return self._walk(prefix, temporary=False)

    def _folder(self, prefix: str) -> Path:
        return self.root.joinpath(*prefix.strip("/").split("/")) if prefix.strip("/") \
            else self.root

    def children(self, prefix: str) -> list[str]:
        base = self._folder(prefix)
        if not self.root.is_dir():
            raise StoreError(self.name, f"folder {self.root} does not exist")
        self.require_inside(base)
        try:
            return sorted(e.name for e in os.scandir(base) if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(self.name, f"cannot list {base}: {exc.strerror}") from exc

    def incomplete_uploads(self, prefix: str) -> Iterator[ObjectInfo]:
        return self._walk(prefix, temporary=True)

    def discard_upload(self, info: ObjectInfo) -> None:
        path = self.root.joinpath(*info.key.split("/"))
        if not path.name.startswith(TEMP_PREFIX):
            raise ValueError(f"not a temporary file: {info.key}")
        self.require_inside(path.parent)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(self.name, f"cannot delete {info.key}: {exc.strerror}") from exc

    def delete(self, key: str) -> None:
        path = self._path(key)
        self.require_inside(path.parent)   # never delete through a link out of the store
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(self.name, f"cannot delete {key}: {exc.strerror}") from exc

    def write_problem(self, prefix: str) -> str:
        base = self._folder(prefix)
        for sub in ("data", "meta", ""):
            try:
                st = (base / sub).lstat() if sub else base.lstat()
            except FileNotFoundError:
                continue
            except OSError as exc:
                return f"cannot look at {sub or base.name}: {exc.strerror}"
            if not stat.S_ISDIR(st.st_mode):
                return f"a file or link is where the folder {sub or base.name}/ goes"
        where = base if base.is_dir() else self.root
        try:
            if hasattr(os, "statvfs") and os.statvfs(where).f_flag & os.ST_RDONLY:
                return "it is on a read-only file system"
        except OSError as exc:
            return f"cannot look at {where}: {exc.strerror}"
        if not os.access(where, os.W_OK):
            return f"no write permission in {where}"
        return ""

    def check(self) -> None:
        if not self.root.exists():
            raise StoreError(self.name, f"folder {self.root} does not exist")
        if not self.root.is_dir():
            raise StoreError(self.name, f"{self.root} is not a folder")
        probe = f"cssm-probe-{secrets.token_hex(6)}"
        data = secrets.token_bytes(32)
        try:
            self.put_bytes(probe, data)
        except StoreError as exc:
            raise StoreError(self.name, f"no write permission in {self.root}") from exc
        try:
            if self.get_bytes(probe) != data:
                raise StoreError(self.name, "a probe written could not be read back intact")
        finally:
            self.delete(probe)
