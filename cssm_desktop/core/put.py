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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import TOO_LARGE, Cancelled, InputError, NotEnoughStores, StoreError
from ..stores.base import ObjectWriter
from . import shamir
from .format import (
    KIND_FILE,
    KIND_PACK,
    KIND_SNAPSHOT,
    META_MAGIC,
    MODE_BITS,
    PART_MAGIC,
    FileHeader,
    KeyBox,
    check_geometry,
    padded_length,
    seal_key_box,
)
from .journal import CHECKPOINT, RESUMABLE, Identity, Journal, Journals
from .keys import KEY_LEN
from .layout import data_key, new_id
from .progress import (
    CancelToken,
    FileDone,
    FileStarted,
    Listener,
    Resumed,
    StoreDamaged,
    ignore,
)
from .remove import remove_everywhere
from .stages import (
    PartProgress,
    abort_all,
    commit_all,
    encode_stripes,
    read_stripes,
    seal_and_write,
    write_metadata,
)
from .streams import Pipeline
from .vault import Vault

log = logging.getLogger(__name__)

# 256 KiB blocks: coding runs faster than at 1 MiB (cache), still few stripes per GiB.
DEFAULT_BLOCK_SIZE = 256 * 1024


@dataclass(slots=True)   # one per file: not frozen, whose __init__ costs ~3 us more
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
             cancel: CancelToken | None = None, min_stores: int | None = None,
             journals: Journals | None = None) -> StoredFile:
    """Store `source` under `name`. On any failure or cancel, nothing of it stays visible.
    With `journals`, a large file's upload is journaled: an interrupted one (killed, a
    store gone, Ctrl+C) is kept, and the next put of the unchanged file goes on with it."""
    vault.require_key()
    k = k or vault.k
    vault.require_stores(put_needs(vault.n, k, min_stores), "store the file")
    (cancel or CancelToken()).check()
    with open_source(source) as fh:
        st = os.fstat(fh.fileno())
        journal = None
        # Only where a store can go on with an upload: a journal costs an fsync per
        # 4 MiB (~1 s per GiB on a local disk), which a vault of folders gains nothing from.
        if journals is not None and st.st_size >= RESUMABLE and \
                any(s.resumable for s in vault.stores.values()):
            journal = _journal_for(journals, vault, fh, source, name, Identity.of(st), k,
                                   block_size)
        try:
            stored = store_content(vault, fh, str(source), name, st.st_size,
                                   st.st_mtime_ns, k=k, block_size=block_size,
                                   listener=listener, cancel=cancel, min_stores=min_stores,
                                   journal=journal, mode=stat.S_IMODE(st.st_mode) & MODE_BITS)
        finally:
            if journal is not None:
                Journals.release(journal)
    listener(FileDone(name, stored.id_hex, stored.size))
    return stored


def _journal_for(journals: Journals, vault: Vault, fh: BinaryIO, source: Path, name: str,
                 identity: Identity, k: int, block_size: int) -> Journal:
    """The journal of an earlier, interrupted put of this very file (unchanged: same
    identity, same bytes up to its mark), or a new one; claimed for this put (released
    by the caller). An earlier upload that cannot go on (the file changed, another name
    or layout) is discarded first. One another put of this process goes on with now (the
    same file dropped twice) is left to it: this put starts its own."""
    old = journals.find(source)
    if old is not None and not journals.claim(old):
        old = None
    if old is not None:
        same = (old.name, old.identity, old.geometry) == (name, identity,
                                                          (vault.n, k, block_size))
        try:
            old.part_keys()   # opens under this vault's key (else: start over)
        except InputError:
            same = False
        try:
            if same and old.matches(fh, k * block_size):
                return old
        except BaseException:
            journals.release(old)
            raise
        log.info("an interrupted upload cannot go on (%s); starting over",
                 "the file changed" if same else "another name or layout")
        journals.release(old)
        journals.discard(old, vault)
    journal = journals.start(source, name, identity, new_id(), vault.n, k, block_size,
                             tuple(os.urandom(KEY_LEN) for _ in range(vault.n)), time.time())
    journals.claim(journal)
    return journal


class Refused(ObjectWriter):
    """Stands for a writer its store would not open: every write raises why."""

    def __init__(self, why: StoreError | OSError) -> None:
        self.why = why

    def write(self, data: bytes | memoryview) -> None:
        raise self.why

    def commit(self) -> None:
        raise self.why

    def abort(self) -> None:
        pass


def _quietly(steps: list[Callable[[], object]]) -> None:
    for step in steps:
        with contextlib.suppress(StoreError, OSError):
            step()


def _resumable(exc: BaseException) -> bool:
    """Failures a later run may go on from: a store or the network, an interrupt. A
    cancel or a file that changed or cannot be read ends the upload for good."""
    if isinstance(exc, StoreError):
        return exc.code != TOO_LARGE
    return isinstance(exc, NotEnoughStores | KeyboardInterrupt) or (
        isinstance(exc, Cancelled) and exc.keep)


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
        if isinstance(exc, StoreError) and exc.code == TOO_LARGE:
            raise exc   # the file's fault, not the store's: every store would refuse it
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
                  min_stores: int | None = None, journal: Journal | None = None,
                  mode: int = -1) -> StoredFile:
    """Store the `size` bytes `fh` gives as one file id (a file, or a pack of small files):
    parts to every usable store and committed, then metadata there (put_needs() of them
    at least; the parts of a store that is down, or fails on the way, are written by
    repair later). On any failure or cancel, whatever was written is removed again,
    except the uploads of a journaled put that a later run can go on with."""
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
    file_id = journal.file_id if journal else new_id()
    departures = Departures(len(stores), need, file_id, listener)
    part_keys = journal.part_keys() if journal else \
        tuple(os.urandom(KEY_LEN) for _ in range(n))
    uploads = journal.uploads() if journal else {}
    part_header = FileHeader(PART_MAGIC, vault.vault_id, file_id, n, k, block_size, 0)
    hasher = hashlib.sha256()
    pipe = Pipeline(cancel)
    writers: list[ObjectWriter] = []
    data_len = padded_length(size)
    committing = False
    try:
        listener(FileStarted(name, size))
        progress = PartProgress(name, size, len(stores), listener)
        for i, store in zip(indexes, stores, strict=True):
            try:
                writers.append(store.open_write(
                    data_key(vault.vault_id, file_id), uploads.get(i),
                    functools.partial(journal.record, i) if journal else None))
            except (StoreError, OSError) as exc:
                # Refused at once (read-only share, a file where data/ goes): the store
                # leaves at its first write, by the same rule as one failing later.
                writers.append(Refused(exc))
        held = [getattr(w, "resumed", 0) for w in writers]
        if any(held):
            # Every store's part must reach a stripe before it counts as sent.
            listener(Resumed(name, sum(held), plain=min(size, min(held) * k)))
        # Eight stripes of slack (~20 MiB in flight): a write that stalls on writeback
        # throttling, or a slow disk read, no longer idles the other stages. A store
        # that buffers whole parts itself (S3) needs less (its write_slack).
        to_encoder = pipe.channel(8)
        to_stores = [pipe.channel(s.write_slack) for s in stores]
        pipe.spawn(read_stripes, pipe, fh, source, size, data_len, k, block_size,
                   to_encoder, journal.guard() if journal else None,
                   max(1, CHECKPOINT // (k * block_size)), name="cssm-read")
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
        committing = True
        live = commit_all(writers, names, departures.leave, live)
        # Split a fresh container key, seal the key box once, a metadata object per store.
        stored_at = time.time_ns()
        ck = os.urandom(KEY_LEN)
        meta_header = FileHeader(META_MAGIC, vault.vault_id, file_id, n, k, block_size, 0)
        box_nonce, sealed_box = seal_key_box(ck, meta_header, KeyBox(
            part_keys, size, mtime_ns, stored_at, hasher.digest(),
            "" if kind in (KIND_PACK, KIND_SNAPSHOT) else name, data_len, kind, index_offset, mode))
        shares = shamir.split(ck, k, n)
        written = write_metadata(vault, vmk, meta_header,
                                 {indexes[s]: shares[indexes[s] + 1] for s in live},
                                 box_nonce, sealed_box, departures.leave)
    except BaseException as exc:
        err = pipe.cause(exc)
        if err is exc:
            pipe.fail(Cancelled(keep=True))   # Ctrl+C here: the stages stop as well
        if journal is not None and not committing and _resumable(err):
            for writer in writers:
                writer.suspend()
            log.info("put interrupted (%s); its upload is kept for a resume",
                     type(err).__name__)
        else:
            abort_all(writers)()
            remove_everywhere(vault, file_id)
            if journal is not None:
                journal.delete()
        if err is exc:
            raise
        raise err from None
    # Stores that left: what they hold of this file is of no use. Cleaned up in the
    # background (a store that is down answers only after its retries; what is left
    # there, gc finds and removes).
    useless = [writers[slot].abort for slot in range(len(stores)) if slot not in live]
    useless += [functools.partial(stores[slot].delete, data_key(vault.vault_id, file_id))
                for slot in live if indexes[slot] not in written]
    if useless:
        threading.Thread(target=_quietly, args=(useless,), name="cssm-leftovers",
                         daemon=True).start()
    if journal is not None:
        journal.delete()
    missing = tuple(vault.store_name(i) for i in range(n) if i not in written)
    return StoredFile(file_id, name, size, mtime_ns, stored_at, hasher.digest(), n, k,
                      data_len, missing, tuple(sorted(departures.gone.items())))


# Opening never blocks on a FIFO or device; anything but a regular file is refused.
_SOURCE_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
                 | getattr(os, "O_BINARY", 0))


def open_source(source: Path | str) -> BinaryIO:
    fd, _st = open_source_fd(source)
    try:
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def open_source_fd(source: Path | str) -> tuple[int, os.stat_result]:
    """The open fd of a regular file and its stat (packs read thousands of small files
    this way: no buffered file object per file)."""
    try:
        fd = os.open(source, _SOURCE_FLAGS)
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror or exc}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{source} is not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return fd, st
    except BaseException:
        os.close(fd)
        raise


