"""The store interface the engine writes to: streaming writers that commit atomically."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: float  # seconds since the epoch
    upload_id: str | None = None  # for incomplete uploads: the store's handle on it


@dataclass(frozen=True)
class UploadState:
    """What a store already holds of an unfinished write: its handle on the upload and
    the parts it acknowledged, (number, etag, size) each. Kept in the upload journal
    (core/journal.py) so that a later run sends only what is missing."""

    upload_id: str
    parts: tuple[tuple[int, str, int], ...] = ()

    @property
    def size(self) -> int:
        return sum(size for _, _, size in self.parts)


Progress = Callable[[UploadState], None]


class ObjectWriter(ABC):
    """Bytes written are invisible under the key until commit(); abort() leaves nothing."""

    @abstractmethod
    def write(self, data: bytes | memoryview) -> None: ...

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def abort(self) -> None: ...

    def suspend(self) -> None:
        """Stop, keeping what the store holds for a later run where the store can resume
        (a journaled S3 upload); elsewhere the same as abort()."""
        self.abort()


class ObjectReader(ABC):
    @abstractmethod
    def read(self, size: int) -> bytes:
        """Up to `size` bytes; fewer only at the end of the object."""

    @abstractmethod
    def close(self) -> None: ...

    def abort(self) -> None:  # noqa: B027  (optional: most readers cannot be interrupted)
        """From another thread: the object is no longer wanted; a read in progress may end
        with a StoreError. Readers that cannot be interrupted do nothing."""

    def __enter__(self) -> ObjectReader:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class Store(ABC):
    """A flat namespace of keys like `<vault-id>/data/<file-id>`."""

    name: str
    # Stripes a writer of this store may fall behind the coder before it waits: room for
    # a disk's writeback stalls. Stores that buffer whole parts themselves need fewer.
    write_slack: int = 8

    def write_problem(self, prefix: str) -> str:
        """Why objects under `prefix` could not be created now ('' when nothing says so),
        from a cheap look, without writing: stores that can tell (a folder) override it."""
        return ""
    # Whether an unfinished write can go on in a later run (open_write's `resume`): a
    # put journals its upload only when some store can, else the journal buys nothing.
    resumable: bool = False
    # Across a network, where one far slower than the others is left behind for the run
    # (core/parallel.py: each(quorum=...)); a local folder (a USB disk spinning up) is
    # waited for.
    remote: bool = False

    @abstractmethod
    def open_write(self, key: str, resume: UploadState | None = None,
                   on_progress: Progress | None = None) -> ObjectWriter:
        """A writer for `key`. Stores that can (S3) continue the upload `resume` describes,
        skipping the bytes it holds, and report each part they have sent to on_progress;
        while on_progress is set, a failure keeps the upload for a later run (abort()
        discards it). Other stores write everything and never call on_progress."""

    @abstractmethod
    def open_read(self, key: str, offset: int = 0) -> ObjectReader:
        """Raises ObjectNotFound when the key does not exist."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[ObjectInfo]: ...

    def keys(self, prefix: str) -> Iterator[str]:
        """The names list() gives, where a store can give them cheaper (no size)."""
        return (info.key for info in self.list(prefix))

    @abstractmethod
    def delete(self, key: str) -> None:
        """Deleting a missing key is not an error."""

    @abstractmethod
    def check(self) -> None:
        """Write, read back and delete a probe; raise StoreError saying exactly what failed."""

    @abstractmethod
    def describe(self) -> str: ...

    @abstractmethod
    def children(self, prefix: str) -> list[str]:
        """Names one level below `prefix` that have objects under them (like sub-folders):
        finding the vaults in a store must not list every object in it."""

    def incomplete_uploads(self, prefix: str) -> Iterator[ObjectInfo]:
        """Uploads that were started and never committed (temp files, multipart uploads)."""
        return iter(())

    def discard_upload(self, info: ObjectInfo) -> None:
        """Remove one of incomplete_uploads(); a no-op if it is already gone."""
        return None

    def prepare(self) -> None:
        """Make the store ready for a new vault (create the folder); default: nothing."""
        return None

    def put_bytes(self, key: str, data: bytes) -> None:
        writer = self.open_write(key)
        try:
            writer.write(data)
            writer.commit()
        except BaseException:
            writer.abort()
            raise

    def get_bytes(self, key: str, limit: int = 16 * 1024 * 1024) -> bytes:
        """Whole small object; `limit` stops a hostile store from feeding us gigabytes."""
        with self.open_read(key) as reader:
            data = reader.read(limit + 1)
        if len(data) > limit:
            from ..errors import StoreError

            raise StoreError(self.name, f"object {key} is larger than {limit} bytes")
        return data


def read_exact(reader: ObjectReader, size: int) -> bytes:
    """Read until `size` bytes or the end; some streams hand back short reads."""
    chunks = []
    left = size
    while left > 0:
        chunk = reader.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
