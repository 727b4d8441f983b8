"""A store in a plain folder (USB disk, NAS mount): atomic writes via temp file + rename."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..core.durable import TEMP_PREFIX, StreamingFile, fsync_dir, temp_name
from ..core.errors import ObjectNotFound, StoreError
from .base import ObjectInfo, ObjectReader, ObjectWriter, Store


class _FolderWriter(ObjectWriter):
    def __init__(self, store: FolderStore, path: Path) -> None:
        self._store = store
        self._path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
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
    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh

    def read(self, size: int) -> bytes:
        return self._fh.read(size)

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
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(self.name, f"cannot create folder {self.root}: {exc.strerror}") \
                from exc

    def open_write(self, key: str) -> ObjectWriter:
        return _FolderWriter(self, self._path(key))

    def open_read(self, key: str, offset: int = 0) -> ObjectReader:
        path = self._path(key)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - owned by the reader
        except FileNotFoundError:
            raise ObjectNotFound(self.name, key) from None
        except OSError as exc:
            raise StoreError(self.name, f"cannot read {path}: {exc.strerror}") from exc
        if offset:
            fh.seek(offset)
        if hasattr(os, "posix_fadvise"):  # parts are read front to back: read ahead more
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        return _FolderReader(fh)

    def _walk(self, prefix: str, temporary: bool) -> Iterator[ObjectInfo]:
        """Committed objects, or (temporary=True) the temp files of unfinished writes."""
        base = self.root.joinpath(*prefix.strip("/").split("/")) if prefix.strip("/") else self.root
        for dirpath, _dirs, files in os.walk(base):
            for fname in files:
                if fname.startswith(TEMP_PREFIX) != temporary:
                    continue
                full = Path(dirpath, fname)
                try:
                    st = full.stat()
                except FileNotFoundError:
                    continue
                yield ObjectInfo(full.relative_to(self.root).as_posix(), st.st_size, st.st_mtime)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            raise StoreError(self.name, f"folder {self.root} does not exist")
        return self._walk(prefix, temporary=False)

    def children(self, prefix: str) -> list[str]:
        base = self.root.joinpath(*prefix.strip("/").split("/")) if prefix.strip("/") else self.root
        if not self.root.is_dir():
            raise StoreError(self.name, f"folder {self.root} does not exist")
        try:
            return sorted(e.name for e in os.scandir(base) if e.is_dir())
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
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(self.name, f"cannot delete {info.key}: {exc.strerror}") from exc

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(self.name, f"cannot delete {key}: {exc.strerror}") from exc

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
