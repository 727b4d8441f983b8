"""Byte layout of a snapshot: the tree of a protected folder as one backup found it
(FORMAT.md section 6b). Stored as the content of an object of kind KIND_SNAPSHOT, so it
is sealed, split k-of-n and authenticated like any file; parsed here only after that
authentication, every length still checked."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..core.format import MAX_NAME_BYTES, TYPE_BITS, valid_mode
from ..errors import FormatError
from ..text import name_bytes, name_text

MAGIC = b"CSSN"
VERSION = 1
_HEAD = struct.Struct(">4sBqII")          # magic, version, time_ns, failed, record count
# entry id, size, mtime_ns, ctime_ns, inode, mode, name length
_RECORD = struct.Struct(">16sQqqQIH")
MAX_TEXT = 4096                           # host, folder path, label


@dataclass(slots=True)   # one per file: not frozen (its __init__ costs more)
class Record:
    """One entry of the tree: which stored entry holds it, and what it looked like."""

    entry_id: str     # hex: a file stored alone, or a member of a pack
    name: str         # the stored name (the folder's own name first)
    size: int
    mtime_ns: int
    mode: int         # format.S_FILE/S_DIR/S_LINK | permission bits
    ctime_ns: int = 0   # change detection on the computer that made it (never restored)
    ino: int = 0

    @property
    def kind(self) -> int:
        return self.mode & TYPE_BITS


@dataclass(slots=True)
class Snapshot:
    id: str            # the id of the object that holds it (hex)
    time_ns: int       # when the backup began (UTC nanoseconds)
    host: str          # the computer's name
    root: str          # the protected folder's absolute path there
    label: str         # its stored name (the first part of every record's name)
    records: list[Record] = field(default_factory=list)
    failed: int = 0    # files the run could not store (the snapshot holds the others)
    files: int = 0     # records, when `records` were not loaded
    size: int = 0      # their bytes, likewise


def _text(value: str) -> bytes:
    raw = name_bytes(value)
    if len(raw) > MAX_TEXT:
        raise FormatError("snapshot text field too long")
    return struct.pack(">H", len(raw)) + raw


def encode(snap: Snapshot) -> bytes:
    out = [_HEAD.pack(MAGIC, VERSION, snap.time_ns, snap.failed, len(snap.records)),
           _text(snap.host), _text(snap.root), _text(snap.label)]
    for r in snap.records:
        name = name_bytes(r.name)
        if len(name) > MAX_NAME_BYTES:
            raise FormatError("file name too long")
        if not valid_mode(r.mode):
            raise FormatError("snapshot record mode out of range")
        out.append(_RECORD.pack(bytes.fromhex(r.entry_id), r.size, r.mtime_ns, r.ctime_ns,
                                r.ino, r.mode, len(name)))
        out.append(name)
    return b"".join(out)


def parse(data: bytes, snapshot_id: str) -> Snapshot:
    """FormatError for anything but a well-formed snapshot of this version."""
    if len(data) < _HEAD.size:
        raise FormatError("snapshot truncated")
    magic, version, time_ns, failed, count = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise FormatError("not a snapshot (bad magic)")
    if version != VERSION:
        raise FormatError(f"snapshot version {version} is not supported by this version")
    if count > (len(data) - _HEAD.size) // _RECORD.size:
        raise FormatError("snapshot record count out of range")
    off = _HEAD.size
    texts = []
    for _ in range(3):
        if len(data) < off + 2:
            raise FormatError("snapshot truncated")
        (length,) = struct.unpack_from(">H", data, off)
        off += 2
        if length > MAX_TEXT or len(data) < off + length:
            raise FormatError("snapshot text field out of range")
        texts.append(name_text(data[off:off + length]))
        off += length
    records: list[Record] = []
    seen: set[str] = set()
    for _ in range(count):
        if len(data) < off + _RECORD.size:
            raise FormatError("snapshot truncated")
        eid, size, mtime, ctime, ino, mode, name_len = _RECORD.unpack_from(data, off)
        off += _RECORD.size
        if name_len > MAX_NAME_BYTES or len(data) < off + name_len:
            raise FormatError("snapshot name out of range")
        if not valid_mode(mode):
            raise FormatError("snapshot record mode out of range")
        name = name_text(data[off:off + name_len])
        off += name_len
        if name in seen:
            raise FormatError("snapshot names a file twice")
        seen.add(name)
        records.append(Record(eid.hex(), name, size, mtime, mode, ctime, ino))
    if off != len(data):
        raise FormatError("snapshot has trailing bytes")
    host, root, label = texts
    return Snapshot(snapshot_id, time_ns, host, root, label, records, failed,
                    len(records), sum(r.size for r in records))

