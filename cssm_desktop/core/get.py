"""Open a file's metadata (any k stores), and restore it block by block to a temp file
that is renamed into place only when its hash matches (the stages are in stages.py)."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..durable import PendingFile
from ..errors import (
    SLOW,
    Cancelled,
    DamagedPart,
    DestinationExists,
    ForeignFile,
    FormatError,
    InputError,
    IntegrityError,
    NotEnoughStores,
    NotFound,
    ObjectNotFound,
    StoreError,
)
from . import parallel, shamir
from .fetched import FetchCache
from .format import MAX_META_LEN, FileHeader, KeyBox, MetaObject, stripe_count
from .layout import meta_key
from .progress import (
    CancelToken,
    FileDone,
    FileStarted,
    Listener,
    Resumed,
    StoreDamaged,
    ignore,
)
from .stages import decode_stripes, hash_stripes, undo_on_failure, write_plain
from .status import PieceState
from .streams import Pipeline
from .vault import Vault

log = logging.getLogger(__name__)


@dataclass
class OpenedFile:
    """What the metadata objects say about a file, and which stores failed to say it."""

    file_id: bytes
    header: FileHeader        # the authenticated common header (n, k, B); index meaningless
    box: KeyBox
    damaged: dict[str, str] = field(default_factory=dict)   # store name -> reason
    meta_ok: set[int] = field(default_factory=set)          # vault indexes with good metadata
    shares: dict[int, bytes] = field(default_factory=dict)  # vault index -> share that fits
    meta: MetaObject | None = None                          # a good copy, for its key box
    # vault index -> what is wrong with that store's metadata object (reachable stores)
    meta_problems: dict[int, tuple[PieceState, str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.box.name

    @property
    def stripes(self) -> int:
        return stripe_count(self.box.data_len, self.header.k, self.header.block_size)


class _OtherShape(DamagedPart):
    """A store's metadata for the file opens, but names another n or k than the vault."""


# Bounds the Lagrange work when stores hand in bad shares: C(5,3) = 10, C(16,8) = 12,870.
MAX_SHARE_SUBSETS = 2000


def open_file(vault: Vault, file_id: bytes, listener: Listener = ignore) -> OpenedFile:
    """Read every store's metadata object, rebuild CK from k shares, open the key box.

    A store may hand in a share that opens under its own key yet is garbage (it knows the
    password), a forged n/k/B, or a damaged key box: other k-subsets of the shares are
    tried, n/k/B are taken from the header the opened key box authenticates, and a share
    counts only if it fits the polynomial that opened the box.
    """
    vmk = vault.require_key()
    key = meta_key(vault.vault_id, file_id)
    in_use = dict(vault.stores)   # as asked (another job may leave one behind meanwhile)
    indexes = sorted(in_use)

    def fetch(index: int) -> tuple[MetaObject, bytes]:
        store = in_use[index]
        meta = MetaObject.parse(store.get_bytes(key, limit=MAX_META_LEN))
        h = meta.header
        if h.vault_id != vault.vault_id or h.file_id != file_id or h.index != index:
            raise DamagedPart(store.name, file_id.hex(), "metadata belongs to another file, "
                                                         "vault or store")
        share = meta.open_share(vmk)
        if share is None:
            raise DamagedPart(store.name, file_id.hex(), "metadata failed authentication")
        if (h.n, h.k) != (vault.n, vault.k):
            # Sealed by someone with the vault key, but not as this vault stores files:
            # never a share to combine (a k = 1 file is its one store's alone).
            raise _OtherShape(store.name, file_id.hex(),
                              f"metadata says {h.k} of {h.n}; the vault is "
                              f"{vault.k} of {vault.n}")
        return meta, share

    damaged: dict[str, str] = dict(vault.unavailable)
    problems: dict[int, tuple[PieceState, str]] = {}

    def bad(index: int, state: PieceState, reason: str) -> None:
        problems[index] = (state, reason)
        damaged[vault.store_name(index)] = f"metadata {reason}"

    good: dict[int, tuple[MetaObject, bytes]] = {}
    other_shape: dict[str, str] = {}
    missing = 0
    answers = parallel.each(fetch, indexes, quorum=vault.k,
                            late=lambda i: parallel.left_behind(in_use[i]))
    for index, res in zip(indexes, answers, strict=True):
        if isinstance(res, ObjectNotFound):
            missing += 1
            bad(index, PieceState.MISSING, "missing")
        elif isinstance(res, FormatError):
            bad(index, PieceState.DAMAGED, f"unreadable: {res}")
        elif isinstance(res, _OtherShape):
            other_shape[vault.store_name(index)] = res.reason
            bad(index, PieceState.DAMAGED, res.reason.removeprefix("metadata "))
        elif isinstance(res, DamagedPart):
            bad(index, PieceState.DAMAGED, res.reason.removeprefix("metadata "))
        elif isinstance(res, StoreError):
            bad(index, PieceState.UNREACHABLE, f"unreadable: {res.reason}")
            if res.code == SLOW:   # not asked again for every file of this run
                vault.leave_behind(vault.store_name(index), res.reason)
        elif isinstance(res, BaseException):
            raise res
        else:
            good[index] = res
    if not good and missing == len(indexes):
        raise NotFound(f"no file with id {file_id.hex()} in this vault")
    if not good and other_shape:
        raise ForeignFile(file_id.hex(), other_shape)
    found = _open_box(good)
    if found is None:
        raise NotEnoughStores(_usable(good), vault.k, damaged)
    header, box, meta, fitting = found
    for index, (m, _share) in good.items():
        if index in fitting:
            continue
        if m.header.common() != header.common():
            bad(index, PieceState.DAMAGED, "disagrees with the other stores")
        else:
            bad(index, PieceState.DAMAGED, "holds a key share that does not fit the others")
    meta_ok = {i for i in fitting if good[i][0].sealed_box == meta.sealed_box
               and good[i][0].box_nonce == meta.box_nonce}
    for index in fitting - meta_ok:
        bad(index, PieceState.DAMAGED, "key box failed authentication")
    for store, reason in damaged.items():
        listener(StoreDamaged(store, file_id.hex(), reason))
        log.warning("file %s: store %s: %s", file_id.hex(), store, reason)
    return OpenedFile(file_id, header, box, damaged, meta_ok,
                      {i: good[i][1] for i in fitting}, meta, problems)


def _usable(good: dict[int, tuple[MetaObject, bytes]]) -> int:
    """How many stores' metadata agree on one header: the most that could have helped."""
    counts: dict[bytes, int] = {}
    for m, _ in good.values():
        counts[m.header.common()] = counts.get(m.header.common(), 0) + 1
    return max(counts.values(), default=0)


def _open_box(good: dict[int, tuple[MetaObject, bytes]]
              ) -> tuple[FileHeader, KeyBox, MetaObject, set[int]] | None:
    """(authenticated header, key box, a metadata copy whose box opened, indexes whose
    share lies on the same polynomial), or None when no k-subset opens any copy."""
    groups: dict[bytes, list[int]] = {}
    for index, (m, _) in sorted(good.items()):
        groups.setdefault(m.header.common(), []).append(index)
    tried = 0
    for members in sorted(groups.values(), key=len, reverse=True):
        header = good[members[0]][0].header
        k = header.k
        copies: dict[tuple[bytes, bytes], MetaObject] = {}
        for i in members:
            m = good[i][0]
            copies.setdefault((m.box_nonce, m.sealed_box), m)
        for subset in itertools.combinations(members, k):
            tried += 1
            if tried > MAX_SHARE_SUBSETS:
                return None
            shares = {i + 1: good[i][1] for i in subset}
            ck = shamir.combine(shares)
            for copy in copies.values():
                try:
                    box = copy.open_box(ck)
                except FormatError:
                    box = None
                if box is None:
                    continue
                fitting = {i for i in members
                           if hmac.compare_digest(shamir.interpolate(shares, i + 1),
                                                  good[i][1])}
                return copy.header, box, copy, fitting
    return None


def restore_file(vault: Vault, opened: OpenedFile, dest: Path, *, overwrite: bool = False,
                 listener: Listener = ignore, cancel: CancelToken | None = None,
                 cache: FetchCache | None = None, modes: bool = True) -> Path:
    """Write the file to `dest` via a temp file beside it; publish only if SHA-256 matches.
    With `cache` (core/fetched.py), what far stores send is kept until the restore ends,
    and what an interrupted earlier run kept is used first. `modes`: the permission bits
    recorded at upload (files stored before they were recorded: owner-only)."""
    cancel = cancel or CancelToken()
    if dest.exists() and not overwrite:
        raise DestinationExists(str(dest))
    if cache is not None:
        held = cache.held()
        if held:
            listener(Resumed(opened.name, held, download=True))
    try:
        with local_writing(dest):
            path = _restore_into(vault, opened, dest, overwrite, listener, cancel, cache,
                                 modes)
    except BaseException as exc:
        if cache is not None:
            cache.close()
            if not _worth_keeping(exc):
                cache.drop()
        raise
    if cache is not None:
        cache.drop()
    return path


def _worth_keeping(exc: BaseException) -> bool:
    """A restore that a later run may go on from: stores or the network failed, or it was
    interrupted to go on later. A cancel, a wrong destination or bad bytes end it."""
    if isinstance(exc, Cancelled):
        return exc.keep
    return isinstance(exc, StoreError | NotEnoughStores | KeyboardInterrupt)


@contextmanager
def local_writing(dest: Path) -> Iterator[None]:
    """The local side's failures (read-only place, disk full, a file where a folder must
    be) as one clear InputError."""
    try:
        yield
    except (FileExistsError, NotADirectoryError) as exc:
        raise InputError(f"cannot write {dest}: a file is in the way of its folder") from exc
    except OSError as exc:
        raise InputError(f"cannot write {dest}: {exc.strerror or exc}") from exc


def _decode_into(vault: Vault, opened: OpenedFile, out: PendingFile | BinaryIO,
                 listener: Listener, cancel: CancelToken, cache: FetchCache | None,
                 undo: Callable[[], None]) -> None:
    """The file's stripes decoded, written to `out` and hashed, each on its own thread;
    raises IntegrityError (after `undo`) when the whole does not match its SHA-256."""
    box = opened.box
    pipe = Pipeline(cancel)
    hasher = hashlib.sha256()
    listener(FileStarted(box.name, box.size))
    with undo_on_failure(pipe, undo):
        to_writer = pipe.channel(depth=6)
        to_hash = pipe.channel(depth=8)
        pipe.spawn(decode_stripes, pipe, vault, opened, listener, to_writer, 0, None, cache,
                   name="cssm-decode")
        pipe.spawn(write_plain, pipe, out, box.name, box.size, opened.stripes, listener,
                   to_writer, to_hash, name="cssm-write")
        pipe.spawn(hash_stripes, pipe, hasher, opened.stripes, to_hash, name="cssm-hash")
        pipe.join()
        cancel.check()
        if not hmac.compare_digest(hasher.digest(), box.sha256):
            raise IntegrityError(
                f"{box.name}: restored bytes do not match the recorded SHA-256; nothing was "
                "written" if isinstance(out, PendingFile) else
                f"{box.name}: the bytes written do not match the recorded SHA-256")


def _restore_into(vault: Vault, opened: OpenedFile, dest: Path, overwrite: bool,
                  listener: Listener, cancel: CancelToken, cache: FetchCache | None,
                  modes: bool = True) -> Path:
    box = opened.box
    dest.parent.mkdir(parents=True, exist_ok=True)
    out = PendingFile(dest, mode=box.mode if modes else -1)
    try:
        _decode_into(vault, opened, out, listener, cancel, cache, out.discard)
        out.publish(overwrite, box.mtime_ns)
    except FileExistsError:
        out.discard()
        raise DestinationExists(str(dest)) from None
    except BaseException:
        out.discard()
        raise
    listener(FileDone(box.name, opened.file_id.hex(), box.size))
    return dest


def restore_to_stream(vault: Vault, opened: OpenedFile, stream: BinaryIO, listener: Listener,
                      cancel: CancelToken) -> None:
    """The file's bytes to an open stream (`cssm get ID -o -`), each block as it is
    authenticated; the SHA-256 of the whole is checked at the end. A failure part-way
    leaves what was written (a pipe cannot take bytes back): the caller exits non-zero."""
    _decode_into(vault, opened, stream, listener, cancel, None, lambda: None)
    stream.flush()
    box = opened.box
    listener(FileDone(box.name, opened.file_id.hex(), box.size))
