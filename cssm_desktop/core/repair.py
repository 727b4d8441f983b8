"""Rebuild missing or damaged parts and metadata objects from k healthy stores."""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass

from ..errors import IntegrityError, NotEnoughStores
from ..stores.base import ObjectWriter
from . import shamir
from .get import OpenedFile
from .layout import data_key
from .progress import CancelToken, FileProgress, Listener, ignore
from .stages import (
    PartProgress,
    abort_all,
    commit_all,
    decode_stripes,
    encode_stripes,
    hash_stripes,
    seal_and_write,
    undo_on_failure,
    write_metadata,
)
from .status import PieceState
from .streams import Channel, Pipeline
from .vault import Vault
from .verify import FileReport, verify_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RepairResult:
    before: FileReport
    after: FileReport
    rebuilt: tuple[str, ...]    # stores that received a new part or metadata object

    @property
    def name(self) -> str:
        return self.after.opened.name


def repair_file(vault: Vault, file_id: bytes, listener: Listener = ignore,
                cancel: CancelToken | None = None) -> RepairResult:
    """Verify, rewrite what is bad on every reachable store, verify again.

    Writes only to the store bound to each index: part `i` and share `i` go to the store
    that holds index `i`, never to one that merely claims it.
    """
    cancel = cancel or CancelToken()
    before = verify_file(vault, file_id, listener, cancel)
    if before.healthy:
        return RepairResult(before, before, ())
    opened = before.opened
    k = opened.header.k
    if not before.restorable:
        raise NotEnoughStores(before.good, k, {c.store: c.problem for c in before.checks
                                               if not c.ok}, what="repair")
    bad = [c for c in before.checks if not c.ok and c.index in vault.stores]
    data_bad = [c.index for c in bad if c.data_state is not PieceState.OK]
    if data_bad:
        _rebuild_parts(vault, opened, data_bad, listener, cancel)
    cancel.check()
    meta_bad = [c.index for c in bad if c.meta_state is not PieceState.OK]
    if meta_bad:
        _rebuild_metadata(vault, opened, meta_bad)
    rebuilt = tuple(vault.store_name(i) for i in sorted(set(data_bad) | set(meta_bad)))
    for name in rebuilt:
        log.info("repair %s: rebuilt on store %s", file_id.hex(), name)
    return RepairResult(before, verify_file(vault, file_id, cancel=cancel), rebuilt)


def _rebuild_metadata(vault: Vault, opened: OpenedFile, indexes: list[int]) -> None:
    """A lost share is recomputed from k that fit, so it agrees with the others."""
    assert opened.meta is not None
    known = {i + 1: share for i, share in sorted(opened.shares.items())[:opened.header.k]}
    write_metadata(vault, vault.require_key(), opened.header,
                   {i: shamir.interpolate(known, i + 1) for i in indexes},
                   opened.meta.box_nonce, opened.meta.sealed_box)


def _rebuild_parts(vault: Vault, opened: OpenedFile, targets: list[int],
                   listener: Listener, cancel: CancelToken) -> None:
    """Decode (block by block, from every part), check the whole-file hash, then decode
    again, re-encode, seal and write only the target parts.

    Nothing is sealed before the hash matched: a re-encoded block that differed from the
    original would be a second plaintext under the same part key and nonce.
    """
    box = opened.box
    stripes = opened.stripes
    pipe = Pipeline(cancel)
    hasher = hashlib.sha256()
    with undo_on_failure(pipe):
        decoded = pipe.channel(depth=6)
        pipe.spawn(decode_stripes, pipe, vault, opened, ignore, decoded, name="cssm-decode")
        pipe.spawn(hash_stripes, pipe, hasher, stripes, decoded, name="cssm-hash")
        pipe.join()
    cancel.check()
    if not hmac.compare_digest(hasher.digest(), box.sha256):
        raise IntegrityError(f"{box.name}: decoded bytes do not match the recorded SHA-256; "
                             "nothing was rewritten")

    h = opened.header
    key = data_key(vault.vault_id, opened.file_id)
    pipe = Pipeline(cancel)
    writers: list[ObjectWriter] = []
    with undo_on_failure(pipe, abort_all(writers)):
        for index in targets:
            writers.append(vault.stores[index].open_write(key))
        decoded = pipe.channel(depth=3)
        padded = pipe.channel(depth=3)
        to_parts = [pipe.channel() for _ in targets]
        progress = PartProgress(box.name, box.size, len(targets), listener)
        pipe.spawn(decode_stripes, pipe, vault, opened, ignore, decoded, name="cssm-decode")
        pipe.spawn(_as_read, pipe, opened, decoded, padded, name="cssm-pad")
        pipe.spawn(encode_stripes, pipe, h.k, h.n, h.block_size, None, padded, to_parts,
                   name="cssm-reencode")
        for slot, index in enumerate(targets):
            pipe.spawn(seal_and_write, pipe, index, slot, vault.store_name(index),
                       box.part_keys[index], h.as_part(index).to_bytes(),
                       to_parts[slot], writers[slot], progress, name=f"cssm-repair-{index}")
        pipe.join()
        cancel.check()
        commit_all(writers, [vault.store_name(i) for i in targets])
        listener(FileProgress(box.name, box.size, box.size))


def _as_read(pipe: Pipeline, opened: OpenedFile, inp: Channel, out: Channel) -> None:
    """The decoder hands on file bytes only; put the size padding (zeros) back, so the
    stripes are those read_stripes gave when the file was stored."""
    h = opened.header
    stripe_len = h.k * h.block_size
    data_len = opened.box.data_len
    stripes = opened.stripes
    for stripe in range(stripes):
        data = b"".join(inp.get())
        real = len(data)
        want = min(stripe_len, data_len - stripe * stripe_len)
        if real < want:
            data += bytes(want - real)
        out.put((stripe, stripe == stripes - 1, data, real))
