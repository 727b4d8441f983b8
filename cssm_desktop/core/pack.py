"""Packs: many small files stored as one file id (FORMAT.md 6a), read back stripe range by
stripe range, and their removal records (7a).

A small file stored alone costs ten objects (n parts and n metadata objects at 5 stores),
ten round trips and a padded 1 KiB minimum per part; in a pack it costs a share of one
pack's objects. A pack is stored exactly like a file (every promise of the format holds:
k-of-n, its own container key, every byte sealed), with `kind` = pack in its key box and
an index of its members, inside the sealed content, at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import logging
import os
import stat
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..errors import (
    Cancelled,
    CssmError,
    FormatError,
    InputError,
    IntegrityError,
    NotEnoughStores,
    ObjectNotFound,
    SourceChanged,
    StoreError,
)
from ..paths import DIR, FILE, LINK
from . import parallel
from .format import KIND_PACK, MODE_BITS, S_DIR, S_FILE, S_LINK
from .get import OpenedFile, open_file
from .layout import id_from_key, new_id, removal_prefix
from .pack_format import (
    MAX_REMOVAL_LEN,
    Member,
    index_bytes,
    open_removals,
    parse_index,
    seal_removals,
)
from .progress import CancelToken, Listener, ignore
from .put import DEFAULT_BLOCK_SIZE, StoredFile, open_source_fd, put_needs, store_content
from .stages import decode_stripes
from .streams import Aborted, Pipeline
from .vault import Vault

log = logging.getLogger(__name__)

# Files below 1 MiB go into packs: alone, such a file pays ten objects and ten round trips
# (at 5 stores) for at most a few hundred KiB each; from 1 MiB up the objects are a small
# share of the bytes, and a file of its own restores without reading any neighbour.
SMALL_FILE = 1024 * 1024
# A pack is stored once it holds 16 MiB: a handful of objects per store for thousands of
# small files, and what a killed upload loses (the pack in flight) stays small. The whole
# pack is held in memory while it is stored (never more than this plus one member).
PACK_TARGET = 16 * 1024 * 1024
# And at most this many files, so an index (~100 bytes a file) stays small to read.
PACK_FILES = 20_000
# gc repacks a pack once this share of its bytes belongs to removed members.
REPACK_DEAD_SHARE = 0.25


@dataclass(slots=True)   # one per file: not frozen, whose __init__ costs ~3 us more
class PackInput:
    source: str     # the path (paths.Source)
    name: str
    kind: str = FILE   # paths.FILE, LINK or DIR


@dataclass
class PackResult:
    stored: StoredFile | None = None
    members: list[tuple[PackInput, Member]] = field(default_factory=list)
    failed: list[tuple[PackInput, CssmError]] = field(default_factory=list)


# Files opened ahead of the one being read, the system asked to fetch each at once.
READ_AHEAD = 32


def _read_small(fd: int, item: PackInput) -> tuple[bytes, int, int]:
    """The whole file, its mtime and permission bits; a file that grew far past small
    while being read is refused (it would be held in memory). Plain reads on the fd: a
    buffered file object per file was a third of the time of a put of 2,000 small files."""
    try:
        chunks, left = [], 4 * SMALL_FILE + 1
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        st = os.fstat(fd)   # as read (it may have changed since the open)
        mtime, mode = st.st_mtime_ns, S_FILE | stat.S_IMODE(st.st_mode) & MODE_BITS
    except OSError as exc:
        raise InputError(f"cannot read {item.source}: {exc.strerror or exc}") from exc
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if len(data) > 4 * SMALL_FILE:
        raise SourceChanged(f"{item.source} changed while it was being stored; nothing was kept")
    return data, mtime, mode


def entry_bytes(path: str, kind: str) -> tuple[bytes, int, int] | InputError:
    """What a link or an empty folder is stored as: a link's target (its bytes), nothing
    for a folder; with its time and mode (kind and permission bits)."""
    try:
        st = os.lstat(path)
        if kind == LINK and stat.S_ISLNK(st.st_mode):
            return os.fsencode(os.readlink(path)), st.st_mtime_ns, S_LINK | 0o777
        if kind == DIR and stat.S_ISDIR(st.st_mode):
            return b"", st.st_mtime_ns, S_DIR | stat.S_IMODE(st.st_mode) & MODE_BITS
    except OSError as exc:
        return InputError(f"cannot read {path}: {exc.strerror or exc}")
    return SourceChanged(f"{path} changed while it was being stored; nothing was kept")


def _read_all(items: list[PackInput], cancel: CancelToken
              ) -> Iterator[tuple[PackInput, tuple[bytes, int, int] | InputError]]:
    """Each file's bytes, mtime and mode (or why it cannot be read), in order. The next
    READ_AHEAD files are already open and the system was asked to read them
    (POSIX_FADV_WILLNEED), so the disk serves many at once: 20,000 files of 1 KiB not in
    the page cache read in 0.4-0.5 s instead of 1.0 s one by one; in the cache the hint
    costs ~1 us a file. (Threads reading were slower: the work is the interpreter's.)"""
    hint = getattr(os, "posix_fadvise", None)   # not on macOS or Windows: plain reads
    ahead: deque[tuple[PackInput, int | InputError]] = deque()
    todo = iter(items)

    def open_next() -> None:
        item = next(todo, None)
        if item is None:
            return
        if item.kind != FILE:   # a link or a folder: never opened (that would follow it)
            ahead.append((item, -1))
            return
        try:
            fd, _st = open_source_fd(item.source)
        except InputError as exc:
            ahead.append((item, exc))
            return
        ahead.append((item, fd))
        if hint is not None:
            with contextlib.suppress(OSError):
                hint(fd, 0, 0, os.POSIX_FADV_WILLNEED)

    try:
        for _ in range(READ_AHEAD):
            open_next()
        while ahead:
            cancel.check()
            item, opened = ahead.popleft()
            open_next()
            if isinstance(opened, InputError):
                yield item, opened
                continue
            if item.kind != FILE:
                yield item, entry_bytes(item.source, item.kind)
                continue
            fd = opened
            try:
                got: tuple[bytes, int, int] | InputError = _read_small(fd, item)
            except InputError as exc:
                got = exc
            finally:
                os.close(fd)
            yield item, got
    finally:   # cancelled, or a failure: the files opened ahead are closed
        for _item, left in ahead:
            if isinstance(left, int):
                os.close(left)


def put_pack(vault: Vault, items: list[PackInput], *, k: int | None = None,
             block_size: int = DEFAULT_BLOCK_SIZE, label: str = "",
             listener: Listener = ignore, cancel: CancelToken | None = None,
             members: list[tuple[Member, bytes]] | None = None,
             min_stores: int | None = None) -> PackResult:
    """Read the files, store them as one pack. A file that cannot be read fails alone;
    a pack that cannot be stored fails every member (nothing of it stays listed).
    `members` (gc's repack) are carried over as they are, ids included."""
    vault.require_key()
    vault.require_stores(put_needs(vault.n, k or vault.k, min_stores), "store the files")
    cancel = cancel or CancelToken()
    result = PackResult()
    content = bytearray()
    index: list[Member] = []
    for member, data in members or []:
        index.append(Member(member.member_id, len(content), len(data), member.mtime_ns,
                            member.sha256, member.name, member.mode))
        content += data
    for item, got in _read_all(items, cancel):
        if isinstance(got, InputError):
            result.failed.append((item, got))
            continue
        data, mtime, mode = got
        member = Member(new_id(), len(content), len(data), mtime,
                        hashlib.sha256(data).digest(), item.name, mode)
        content += data
        index.append(member)
        result.members.append((item, member))
    if not index:
        return result
    index_offset = len(content)
    content += index_bytes(index)
    result.stored = store_content(
        vault, io.BytesIO(content), "a pack", label or f"{len(index)} small files",
        len(content), 0, k=k, block_size=block_size, listener=listener, cancel=cancel,
        kind=KIND_PACK, index_offset=index_offset, min_stores=min_stores)
    return result


# ---------------------------------------------------------------- reading


@dataclass
class OpenedPack:
    opened: OpenedFile
    members: list[Member]
    _by_id: dict[bytes, Member] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_id = {m.member_id: m for m in self.members}

    def member(self, member_id: bytes) -> Member | None:
        return self._by_id.get(member_id)


def stream_range(vault: Vault, opened: OpenedFile, start: int, end: int,
                 listener: Listener = ignore, cancel: CancelToken | None = None
                 ) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of the stripes that hold content[start:end], in order; only those
    stripes are read (each block authenticates on its own)."""
    stripe_len = opened.header.k * opened.header.block_size
    first = start // stripe_len
    stop = max(first + 1, -(-end // stripe_len))
    pipe = Pipeline(cancel)
    out = pipe.channel(depth=4)
    pipe.spawn(decode_stripes, pipe, vault, opened, listener, out, first, stop,
               name="cssm-decode")
    finished = False
    try:
        for stripe in range(first, min(stop, opened.stripes)):
            try:
                pieces = out.get()
            except Aborted:
                break
            yield stripe * stripe_len, b"".join(pieces)
        else:
            finished = True
    finally:
        if not finished:
            pipe.fail(Aborted())   # stops every stage (and is not an error of its own)
        pipe.join()                # the stage's own failure, or Cancelled
        if not finished and pipe.cancel.cancelled:
            raise Cancelled()


def read_range(vault: Vault, opened: OpenedFile, start: int, end: int,
               listener: Listener = ignore, cancel: CancelToken | None = None) -> bytes:
    buf = bytearray()
    base = -1
    for offset, chunk in stream_range(vault, opened, start, end, listener, cancel):
        if base < 0:
            base = offset
        buf += chunk
    return bytes(buf[start - base:end - base])


def open_pack(vault: Vault, pack_id: bytes, listener: Listener = ignore,
              cancel: CancelToken | None = None, opened: OpenedFile | None = None
              ) -> OpenedPack:
    """The pack's authenticated key box, then its index (the stripes at its end only)."""
    opened = opened or open_file(vault, pack_id, listener)
    box = opened.box
    if box.kind != KIND_PACK:
        raise FormatError(f"{pack_id.hex()} is not a pack")
    raw = read_range(vault, opened, box.index_offset, box.size, listener, cancel)
    return OpenedPack(opened, parse_index(raw, box.index_offset))


def read_members(vault: Vault, pack: OpenedPack, wanted: list[Member],
                 listener: Listener = ignore, cancel: CancelToken | None = None
                 ) -> Iterator[tuple[Member, bytes | IntegrityError]]:
    """Each wanted member's bytes, checked against its SHA-256, in one pass per run of
    nearby members (a gap of more than a few stripes starts a new read)."""
    stripe_len = pack.opened.header.k * pack.opened.header.block_size
    order = sorted(wanted, key=lambda m: m.offset)
    runs: list[list[Member]] = []
    for m in order:
        if runs and m.offset - runs[-1][-1].end <= 4 * stripe_len:
            runs[-1].append(m)
        else:
            runs.append([m])
    for run in runs:
        start, end = run[0].offset, max(m.end for m in run)
        buf = bytearray()
        base = -1
        next_up = 0
        for offset, chunk in stream_range(vault, pack.opened, start, max(end, start + 1),
                                          listener, cancel):
            if base < 0:
                base = offset
            buf += chunk
            while next_up < len(run) and run[next_up].end <= base + len(buf):
                m = run[next_up]
                next_up += 1
                yield m, _checked(m, bytes(buf[m.offset - base:m.end - base]))
            if next_up < len(run):   # drop what no member still waiting needs
                cut = run[next_up].offset - base
                if cut > 0:
                    del buf[:cut]
                    base += cut
        for m in run[next_up:]:   # the content ended early: the index lied about it
            yield m, IntegrityError(f"{m.name}: not in its pack")


def _checked(member: Member, data: bytes) -> bytes | IntegrityError:
    if hmac.compare_digest(hashlib.sha256(data).digest(), member.sha256):
        return data
    return IntegrityError(f"{member.name}: restored bytes do not match the recorded SHA-256; "
                          "nothing was written")


# ---------------------------------------------------------------- removal records


# What one run reads of removal records, per store: past it the rest is left unread (a
# removal not seen deletes nothing), so a store cannot make gc or a rebuild read without end.
MAX_REMOVAL_RECORDS = 4096
MAX_REMOVAL_BYTES = 64 * 1024 * 1024


def read_removals(vault: Vault, pack_ids: set[bytes] | None = None
                  ) -> dict[bytes, set[bytes]]:
    """pack id -> removed member ids: those that authentic records on at least k of the
    vault's stores name (FORMAT.md 7a). A store that knows the password can seal any
    record, but only on itself: k-1 of them cannot make a removal count, and a store that
    hides or rolls back its records only makes fewer removals count (nothing is deleted
    that is not removed)."""
    vmk = vault.require_key()
    prefix = removal_prefix(vault.vault_id)

    def one_store(index: int) -> dict[bytes, set[bytes]]:
        store = vault.stores[index]
        found: dict[bytes, set[bytes]] = {}
        records = read = 0
        for info in store.list(prefix):
            pid_hex, _, _rid = info.key[len(prefix):].partition("/")
            pid = id_from_key(prefix + pid_hex, prefix)
            if pid is None or (pack_ids is not None and pid not in pack_ids):
                continue
            if records >= MAX_REMOVAL_RECORDS or read + info.size > MAX_REMOVAL_BYTES:
                log.warning("store %s: more removal records than one run reads; the rest "
                            "are left for the next", store.name)
                break
            records, read = records + 1, read + info.size
            try:
                removed = open_removals(vmk, vault.vault_id, pid,
                                        store.get_bytes(info.key, limit=MAX_REMOVAL_LEN))
            except (FormatError, ObjectNotFound, StoreError) as exc:
                log.warning("store %s: removal record %s unusable: %s", store.name,
                            info.key, exc)
                continue
            found.setdefault(pid, set()).update(removed)
        return found

    votes: dict[bytes, dict[bytes, int]] = {}
    indexes = sorted(vault.stores)
    for res in parallel.each(one_store, indexes):
        if isinstance(res, StoreError):
            continue
        if isinstance(res, BaseException):
            raise res
        for pid, removed in res.items():
            counts = votes.setdefault(pid, {})
            for mid in removed:
                counts[mid] = counts.get(mid, 0) + 1
    out: dict[bytes, set[bytes]] = {}
    for pid, counts in votes.items():
        agreed = {mid for mid, count in counts.items() if count >= vault.k}
        if agreed:
            out[pid] = agreed
    return out


def record_removal(vault: Vault, pack_id: bytes, removed: set[bytes]) -> dict[str, str]:
    """Write one new record (a new object: no read-modify-write, so two machines removing
    at once lose nothing) to every reachable store; store name -> why it failed. A removal
    counts only where k stores hold it: on fewer, NotEnoughStores (nothing is removed)."""
    vmk = vault.require_key()
    vault.require_stores(vault.k, "record the removal")
    key = f"{removal_prefix(vault.vault_id)}{pack_id.hex()}/{new_id().hex()}"
    data = seal_removals(vmk, vault.vault_id, pack_id, removed)
    stores = [vault.stores[i] for i in sorted(vault.stores)]
    failures = parallel.reasons([s.name for s in stores],
                                parallel.each(lambda s: s.put_bytes(key, data), stores))
    if len(stores) - len(failures) < vault.k:
        raise NotEnoughStores(len(stores) - len(failures), vault.k,
                              {**vault.unavailable, **failures}, what="record the removal")
    failures.update(vault.unavailable)
    return failures


def remove_records(vault: Vault, pack_id: bytes) -> dict[str, str]:
    """Delete every removal record of a pack that no longer exists."""
    prefix = f"{removal_prefix(vault.vault_id)}{pack_id.hex()}/"

    def clean(index: int) -> None:
        store = vault.stores[index]
        for info in list(store.list(prefix)):
            store.delete(info.key)

    indexes = sorted(vault.stores)
    return parallel.reasons([vault.store_name(i) for i in indexes],
                            parallel.each(clean, indexes))
