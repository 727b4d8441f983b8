"""Store one file: read+hash -> erasure-code -> seal+write per store, then metadata
(the stages are in stages.py)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import InputError, NotEnoughStores, StoreError
from ..stores.base import ObjectWriter
from . import shamir
from .format import (
    KIND_FILE,
    KIND_PACK,
    META_MAGIC,
    PART_MAGIC,
    FileHeader,
    KeyBox,
    check_geometry,
    padded_length,
    seal_key_box,
)
from .keys import KEY_LEN
from .layout import data_key, new_id
from .progress import CancelToken, FileDone, FileStarted, Listener, StoreDamaged, ignore
from .remove import remove_everywhere
from .stages import (
    PartProgress,
    abort_all,
    commit_all,
    encode_stripes,
    read_stripes,
    seal_and_write,
    undo_on_failure,
    write_metadata,
)
from .streams import Pipeline
from .vault import Vault

log = logging.getLogger(__name__)

# 256 KiB blocks: coding runs faster than at 1 MiB (cache), still few stripes per GiB.
DEFAULT_BLOCK_SIZE = 256 * 1024


@dataclass(frozen=True)
class StoredFile:
    file_id: bytes
    name: str
    size: int
    mtime_ns: int
    stored_at_ns: int
    sha256: bytes
    n: int
    k: int
    data_len: int
    missing: tuple[str, ...] = ()   # stores that were down: their parts come with repair
    left: tuple[tuple[str, str], ...] = ()   # (store, why) of those that failed on the way

    @property
    def id_hex(self) -> str:
        return self.file_id.hex()


def put_needs(n: int, k: int, configured: int | None = None) -> int:
    """How many stores must take a new file's parts: by default n-1 (one store may be
    down, or a bucket unreachable, and storing goes on), never fewer than k+1 (a file
    stored at risk must still survive one more loss), never more than n."""
    want = n - 1 if configured is None else configured
    return max(min(n, k + 1), min(n, want))


def put_file(vault: Vault, source: Path, name: str, *, k: int | None = None,
             block_size: int = DEFAULT_BLOCK_SIZE, listener: Listener = ignore,
             cancel: CancelToken | None = None, min_stores: int | None = None) -> StoredFile:
    """Store `source` under `name`. On any failure or cancel, nothing of it stays visible."""
    vault.require_key()
    vault.require_stores(put_needs(vault.n, k or vault.k, min_stores), "store the file")
    (cancel or CancelToken()).check()
    with open_source(source) as fh:
        st = os.fstat(fh.fileno())
        stored = store_content(vault, fh, str(source), name, st.st_size, st.st_mtime_ns,
                               k=k, block_size=block_size, listener=listener, cancel=cancel,
                               min_stores=min_stores)
    listener(FileDone(name, stored.id_hex, stored.size))
    return stored


class Departures:
    """Stores that failed during one put. The put goes on while `need` stores remain (the
    file is then at risk, like a put with a store down from the start, and repair writes
    the rest); one more failure past that ends it, undone."""

    def __init__(self, total: int, need: int, file_id: bytes, listener: Listener) -> None:
        self.total, self.need = total, need
        self.file_id, self.listener = file_id, listener
        self.gone: dict[str, str] = {}
        self._lock = threading.Lock()

    def leave(self, store: str, exc: BaseException) -> None:
        reason = exc.reason if isinstance(exc, StoreError) else \
            getattr(exc, "strerror", None) or str(exc)
        with self._lock:
            self.gone.setdefault(store, reason)
            left = self.total - len(self.gone)
            gone = dict(self.gone)
        if left < self.need:
            raise NotEnoughStores(left, self.need, gone, what="store the file")
        log.warning("store %s failed during an upload (%s); going on with %d stores",
                    store, reason, left)
        self.listener(StoreDamaged(store, self.file_id.hex(), f"failed during the upload "
                                   f"({reason}); the file is stored at risk until repair "
                                   "writes its part there"))


def store_content(vault: Vault, fh: BinaryIO, source: str, name: str, size: int,
                  mtime_ns: int, *, k: int | None = None, block_size: int = DEFAULT_BLOCK_SIZE,
                  listener: Listener = ignore, cancel: CancelToken | None = None,
                  kind: int = KIND_FILE, index_offset: int = 0,
                  min_stores: int | None = None) -> StoredFile:
    """Store the `size` bytes `fh` gives as one file id (a file, or a pack of small files):
    parts to every usable store and committed, then metadata there (put_needs() of them
    at least; the parts of a store that is down, or fails on the way, are written by
    repair later). On any failure or cancel, whatever was written is removed again."""
    vmk = vault.require_key()
    n = vault.n
    k = k or vault.k
    check_geometry(n, k)
    need = put_needs(n, k, min_stores)
    indexes = vault.require_stores(need, "store the file")
    stores = [vault.stores[i] for i in indexes]
    names = [s.name for s in stores]
    cancel = cancel or CancelToken()
    cancel.check()
    file_id = new_id()
    departures = Departures(len(stores), need, file_id, listener)
    part_keys = tuple(os.urandom(KEY_LEN) for _ in range(n))
    part_header = FileHeader(PART_MAGIC, vault.vault_id, file_id, n, k, block_size, 0)
    hasher = hashlib.sha256()
    pipe = Pipeline(cancel)
    writers: list[ObjectWriter] = []
    data_len = padded_length(size)
    with undo_on_failure(pipe, abort_all(writers), lambda: remove_everywhere(vault, file_id)):
        listener(FileStarted(name, size))
        progress = PartProgress(name, size, len(stores), listener)
        for store in stores:
            writers.append(store.open_write(data_key(vault.vault_id, file_id)))
        # Eight stripes of slack (~20 MiB in flight): a write that stalls on writeback
        # throttling, or a slow disk read, no longer idles the other stages. A store
        # that buffers whole parts itself (S3) needs less (its write_slack).
        to_encoder = pipe.channel(8)
        to_stores = [pipe.channel(s.write_slack) for s in stores]
        pipe.spawn(read_stripes, pipe, fh, source, size, data_len, k, block_size,
                   to_encoder, name="cssm-read")
        pipe.spawn(encode_stripes, pipe, k, n, block_size, hasher, to_encoder, to_stores,
                   name="cssm-encode")
        for slot, i in enumerate(indexes):
            pipe.spawn(seal_and_write, pipe, i, slot, names[slot], part_keys[i],
                       part_header.with_index(i).to_bytes(), to_stores[slot], writers[slot],
                       progress, functools.partial(departures.leave, names[slot]),
                       name=f"cssm-write-{i}")
        pipe.join()
        cancel.check()
        live = [slot for slot in range(len(stores)) if names[slot] not in departures.gone]
        live = commit_all(writers, names, departures.leave, live)
        # Split a fresh container key, seal the key box once, a metadata object per store.
        stored_at = time.time_ns()
        ck = os.urandom(KEY_LEN)
        meta_header = FileHeader(META_MAGIC, vault.vault_id, file_id, n, k, block_size, 0)
        box_nonce, sealed_box = seal_key_box(ck, meta_header, KeyBox(
            part_keys, size, mtime_ns, stored_at, hasher.digest(),
            "" if kind == KIND_PACK else name, data_len, kind, index_offset))
        shares = shamir.split(ck, k, n)
        written = write_metadata(vault, vmk, meta_header,
                                 {indexes[s]: shares[indexes[s] + 1] for s in live},
                                 box_nonce, sealed_box, departures.leave)
        for slot in live:   # committed, but its metadata failed: the part is of no use
            if indexes[slot] not in written:
                with contextlib.suppress(StoreError, OSError):
                    stores[slot].delete(data_key(vault.vault_id, file_id))
        missing = tuple(vault.store_name(i) for i in range(n) if i not in written)
    return StoredFile(file_id, name, size, mtime_ns, stored_at, hasher.digest(), n, k,
                      data_len, missing, tuple(sorted(departures.gone.items())))


# Opening never blocks on a FIFO or device; anything but a regular file is refused.
_SOURCE_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
                 | getattr(os, "O_BINARY", 0))


def open_source(source: Path) -> BinaryIO:
    try:
        fd = os.open(source, _SOURCE_FLAGS)
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror or exc}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(f"{source} is not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


