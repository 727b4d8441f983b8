"""Byte layout of a pack's member index and of a pack's removal record (FORMAT.md 6a, 7a).

Both are parsed from bytes a store may have written: the index only after the pack's
blocks authenticated it, the removal record only after its tag did; every length is
still checked, and every failure is a FormatError.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import FormatError
from ..text import name_bytes, name_text
from .format import (
    ID_LEN,
    MAX_NAME_BYTES,
    NONCE_LEN,
    PACK_INDEX_MIN,
    S_FILE,
    TAG_LEN,
    TYPE_BITS,
    VERSION,
    valid_mode,
)
from .keys import removal_key

INDEX_MAGIC = b"CSPX"
INDEX_MAGIC_MODES = b"CSPM"   # entries carry each file's permission bits (section 6a)
REMOVAL_MAGIC = b"CSGR"
MAX_REMOVAL_LEN = 4 * 1024 * 1024   # 260,000 member ids: more than a pack can hold


@dataclass(slots=True)   # one per file: not frozen, whose __init__ costs ~3 us more
class Member:
    """One small file inside a pack: its bytes are content[offset:offset + size]."""

    member_id: bytes
    offset: int
    size: int
    mtime_ns: int
    sha256: bytes
    name: str
    # Kind and permission bits (format.valid_mode): a file, an empty folder or a link
    # (its bytes: the link's target); -1: not recorded (an older pack: a file).
    mode: int = -1

    @property
    def kind(self) -> int:
        """format.S_FILE, S_DIR or S_LINK (a member of an older pack is a file)."""
        return self.mode & TYPE_BITS if self.mode >= 0 else S_FILE

    @property
    def end(self) -> int:
        return self.offset + self.size


_INDEX_HEAD = struct.Struct(">4sI")
_ENTRY = struct.Struct(">16sQQq32sH")
_MODE = struct.Struct(">I")


def index_bytes(members: list[Member]) -> bytes:
    """With every member's mode known, the index that carries them (CSPM); else the
    first one (CSPX: a repack of an older pack keeps its members as they were)."""
    modes = all(m.mode >= 0 for m in members)
    if not modes and any(m.mode >= 0 and m.mode & TYPE_BITS != S_FILE for m in members):
        raise FormatError("a folder or link needs an index with modes")
    out = [_INDEX_HEAD.pack(INDEX_MAGIC_MODES if modes else INDEX_MAGIC, len(members))]
    for m in members:
        name = name_bytes(m.name)
        if len(name) > MAX_NAME_BYTES:
            raise FormatError("file name too long")
        out.append(_ENTRY.pack(m.member_id, m.offset, m.size, m.mtime_ns, m.sha256, len(name)))
        if modes:
            out.append(_MODE.pack(m.mode))
        out.append(name)
    return b"".join(out)


def parse_index(data: bytes, index_offset: int) -> list[Member]:
    """Members in the order written; each lies before the index, ids are unique."""
    if len(data) < PACK_INDEX_MIN:
        raise FormatError("pack index truncated")
    magic, count = _INDEX_HEAD.unpack_from(data)
    if magic not in (INDEX_MAGIC, INDEX_MAGIC_MODES):
        raise FormatError("not a pack index (bad magic)")
    modes = magic == INDEX_MAGIC_MODES
    entry = _ENTRY.size + (_MODE.size if modes else 0)
    if count > (len(data) - _INDEX_HEAD.size) // entry:
        raise FormatError("pack index member count out of range")
    off = _INDEX_HEAD.size
    members: list[Member] = []
    seen: set[bytes] = set()
    for _ in range(count):
        if len(data) < off + _ENTRY.size:
            raise FormatError("pack index truncated")
        mid, offset, size, mtime, sha, name_len = _ENTRY.unpack_from(data, off)
        off += _ENTRY.size
        mode = -1
        if modes:
            if len(data) < off + _MODE.size:
                raise FormatError("pack index truncated")
            (mode,) = _MODE.unpack_from(data, off)
            if not valid_mode(mode):
                raise FormatError("pack index mode out of range")
            off += _MODE.size
        if name_len > MAX_NAME_BYTES or len(data) < off + name_len:
            raise FormatError("pack index name out of range")
        name = name_text(data[off:off + name_len])
        off += name_len
        if offset + size > index_offset or mid in seen:
            raise FormatError("pack index member out of range or repeated")
        seen.add(mid)
        members.append(Member(mid, offset, size, mtime, sha, name, mode))
    if off != len(data):
        raise FormatError("pack index has trailing bytes")
    return members


# ---------------------------------------------------------------- removal record

_REMOVAL_HEAD = struct.Struct(">4sB16s16s")


def seal_removals(vmk: bytes, vault_id: bytes, pack_id: bytes, removed: set[bytes]) -> bytes:
    """RK seals one record per write under a fresh random nonce; a pack sees a few
    thousand writes at most, far from the 2^32 a random 96-bit nonce allows."""
    head = _REMOVAL_HEAD.pack(REMOVAL_MAGIC, VERSION, vault_id, pack_id)
    body = struct.pack(">I", len(removed)) + b"".join(sorted(removed))
    nonce = os.urandom(NONCE_LEN)
    return head + nonce + AESGCM(removal_key(vmk, vault_id, pack_id)).encrypt(nonce, body, head)


def open_removals(vmk: bytes, vault_id: bytes, pack_id: bytes, data: bytes) -> set[bytes]:
    """The member ids the record says are removed; FormatError unless it authenticates as
    this vault's record for this pack."""
    if not _REMOVAL_HEAD.size + NONCE_LEN + TAG_LEN + 4 <= len(data) <= MAX_REMOVAL_LEN:
        raise FormatError("removal record size out of range")
    magic, version, vid, pid = _REMOVAL_HEAD.unpack_from(data)
    if magic != REMOVAL_MAGIC or version != VERSION or vid != vault_id or pid != pack_id:
        raise FormatError("removal record belongs to another pack or version")
    off = _REMOVAL_HEAD.size
    nonce = data[off:off + NONCE_LEN]
    try:
        body = AESGCM(removal_key(vmk, vault_id, pack_id)).decrypt(
            nonce, data[off + NONCE_LEN:], data[:_REMOVAL_HEAD.size])
    except InvalidTag:
        raise FormatError("removal record failed authentication") from None
    (count,) = struct.unpack_from(">I", body)
    if len(body) != 4 + count * ID_LEN:
        raise FormatError("removal record length mismatch")
    return {body[4 + i * ID_LEN: 4 + (i + 1) * ID_LEN] for i in range(count)}
