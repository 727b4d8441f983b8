"""Store one file: read+hash -> erasure-code -> seal+write per store, then metadata."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..stores.base import ObjectWriter
from . import erasure, parallel, shamir
from .errors import Cancelled, InputError
from .format import (
    META_MAGIC,
    PART_MAGIC,
    FileHeader,
    KeyBox,
    MetaObject,
    block_nonce,
    check_geometry,
    padded_length,
    seal_key_box,
    stripe_count,
)
from .keys import KEY_LEN
from .layout import data_key, meta_key, new_id
from .progress import (
    CancelToken,
    FileDone,
    FileProgress,
    FileStarted,
    Listener,
    StoreProgress,
    ignore,
)
from .remove import remove_everywhere
from .streams import Aborted, Channel, Pipeline
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

    @property
    def id_hex(self) -> str:
        return self.file_id.hex()


class PartProgress:
    """File bytes done = what every store has written; thread-safe."""

    def __init__(self, name: str, total: int, n: int, listener: Listener) -> None:
        self._name, self._total, self._listener = name, total, listener
        self._per_store = [0] * n
        self._reported = -1
        self._lock = threading.Lock()

    def stored(self, index: int, store: str, plain_done: int, bytes_done: int) -> None:
        self._listener(StoreProgress(self._name, store, bytes_done))
        with self._lock:
            self._per_store[index] = plain_done
            done = min(self._per_store)
            if done <= self._reported:
                return
            self._reported = done
        self._listener(FileProgress(self._name, done, max(self._total, done)))


def put_file(vault: Vault, source: Path, name: str, *, k: int | None = None,
             block_size: int = DEFAULT_BLOCK_SIZE, listener: Listener = ignore,
             cancel: CancelToken | None = None) -> StoredFile:
    """Store `source` under `name`. On any failure or cancel, nothing of it stays visible."""
    vmk = vault.require_key()
    n = vault.n
    k = k or vault.k
    check_geometry(n, k)
    vault.require_all_stores("store the file")
    stores = [vault.stores[i] for i in range(n)]
    cancel = cancel or CancelToken()
    cancel.check()
    fh = open_source(source)

    file_id = new_id()
    part_keys = tuple(os.urandom(KEY_LEN) for _ in range(n))
    part_header = FileHeader(PART_MAGIC, vault.vault_id, file_id, n, k, block_size, 0)
    hasher = hashlib.sha256()
    pipe = Pipeline(cancel)
    writers: list[ObjectWriter] = []
    try:
        with fh:
            st = os.fstat(fh.fileno())
            size = st.st_size
            data_len = padded_length(size)
            listener(FileStarted(name, size))
            progress = PartProgress(name, size, n, listener)
            for store in stores:
                writers.append(store.open_write(data_key(vault.vault_id, file_id)))
            # Eight stripes of slack per queue (~20 MiB in flight): a write that stalls on
            # writeback throttling, or a slow disk read, no longer idles the other stages.
            to_encoder = pipe.channel(8)
            to_stores = [pipe.channel(8) for _ in range(n)]
            pipe.spawn(_read_stripes, pipe, fh, source, size, data_len, k, block_size,
                       to_encoder, name="cssm-read")
            pipe.spawn(_encode_stripes, pipe, k, n, block_size, hasher, to_encoder, to_stores,
                       name="cssm-encode")
            for i in range(n):
                pipe.spawn(seal_and_write, pipe, i, i, stores[i].name, part_keys[i],
                           part_header.with_index(i).to_bytes(), to_stores[i], writers[i],
                           progress, name=f"cssm-write-{i}")
            pipe.join()
        cancel.check()
        commit_all(writers, [s.name for s in stores])
        stored = StoredFile(file_id, name, size, st.st_mtime_ns, time.time_ns(), hasher.digest(),
                            n, k, data_len)
        _write_metadata(vault, vmk, stored, part_keys, block_size)
    except BaseException as exc:
        for writer in writers:
            writer.abort()
        remove_everywhere(vault, file_id)
        if isinstance(exc, Aborted):
            raise pipe.first_error() or Cancelled() from None
        raise
    listener(FileDone(name, file_id.hex(), stored.size))
    return stored


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


def _read_stripes(pipe: Pipeline, fh: BinaryIO, source: Path, size: int, data_len: int,
                  k: int, block_size: int, out: Channel) -> None:
    """The file's `size` bytes, then zeros up to `data_len` (size padding), stripe by
    stripe; each item carries how many of its bytes are the file's."""

    def read(count: int) -> bytes:
        try:
            data = fh.read(count)
        except OSError as exc:
            raise InputError(f"cannot read {source}: {exc.strerror or exc}") from exc
        if len(data) != count:
            raise InputError(f"{source} changed while it was being stored; nothing was kept")
        return data

    stripe_len = k * block_size
    stripes = stripe_count(data_len, k, block_size)
    offset = 0
    for stripe in range(stripes):
        pipe.check()
        want = min(stripe_len, data_len - offset)
        real = max(0, min(want, size - offset))
        data = read(real) if real else b""
        if real < want:
            data += bytes(want - real)
        final = stripe == stripes - 1
        if final and fh.read(1):
            raise InputError(f"{source} changed while it was being stored; nothing was kept")
        out.put((stripe, final, data, real))
        offset += want


def encode_stripe(k: int, n: int, block_size: int, final: bool, data: bytes
                ) -> tuple[list[bytes | memoryview], int]:
    """All n blocks of one stripe, and how many plaintext bytes it carries."""
    plain = len(data)
    blen = -(-plain // k) if final else block_size
    if plain < k * blen:
        data = data + bytes(k * blen - plain)
    view = memoryview(data)
    blocks: list[bytes | memoryview] = [view[j * blen:(j + 1) * blen] for j in range(k)]
    if n > k:
        blocks += erasure.encode(k, n, blocks)
    return blocks, plain


def _encode_stripes(pipe: Pipeline, k: int, n: int, block_size: int, hasher,
                    inp: Channel, outs: list[Channel]) -> None:
    """Two stripes are coded at once, handed on in order. The whole-file SHA-256 is taken
    here, while the pool codes, not in the reader: reading then waits only for the disk."""
    with erasure.executor() as pool:
        while True:
            stripe, final, data, real = inp.get()
            job = pool.submit(encode_stripe, k, n, block_size, final, data)
            hasher.update(memoryview(data)[:real])
            for out in outs:
                out.put((stripe, final, job, real))
            if final:
                return


def seal_and_write(pipe: Pipeline, index: int, slot: int, store: str, key: bytes,
                    header: bytes, inp: Channel, writer: ObjectWriter, progress: PartProgress
                    ) -> None:
    """Seal block `index` of every stripe and write it; the caller commits. `slot` is
    this writer's place in `progress`; items carry how many file bytes each stripe holds."""
    aead = AESGCM(key)
    writer.write(header)
    written = len(header)
    plain_done = 0
    while True:
        stripe, final, job, real = inp.get()
        blocks, _ = job.result()
        sealed = aead.encrypt(block_nonce(stripe, final), blocks[index], header)
        writer.write(sealed)
        written += len(sealed)
        plain_done += real
        progress.stored(slot, store, plain_done, written)
        if final:
            return


def commit_all(writers: list[ObjectWriter], names: list[str]) -> None:
    """Commit (fsync + rename) every part at once; the first failure is raised."""
    parallel.each_or_raise(lambda w: w.commit(), writers, names, "commit")


def _write_metadata(vault: Vault, vmk: bytes, stored: StoredFile, part_keys: tuple[bytes, ...],
                    block_size: int) -> None:
    """Split CK, seal the key box once, write one metadata object per store."""
    ck = os.urandom(KEY_LEN)
    header = FileHeader(META_MAGIC, vault.vault_id, stored.file_id, stored.n, stored.k,
                        block_size, 0)
    box = KeyBox(part_keys, stored.size, stored.mtime_ns, stored.stored_at_ns, stored.sha256,
                 stored.name, stored.data_len)
    box_nonce, sealed_box = seal_key_box(ck, header, box)
    shares = shamir.split(ck, stored.k, stored.n)
    key = meta_key(vault.vault_id, stored.file_id)

    def write(i: int) -> None:
        meta = MetaObject.seal(header.with_index(i), vmk, shares[i + 1], box_nonce, sealed_box)
        vault.stores[i].put_bytes(key, meta.to_bytes())

    parallel.each_or_raise(write, range(stored.n),
                           [vault.store_name(i) for i in range(stored.n)], "writing metadata")
