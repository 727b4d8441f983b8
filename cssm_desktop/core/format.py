"""Byte layout of every stored object (docs/FORMAT.md is the normative description).

Parsers here see bytes an attacker may have written: every length is checked and
every failure is a FormatError, never an IndexError or struct.error.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, replace

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import FormatError, WrongPassword
from ..text import name_bytes, name_text
from .keys import KEY_LEN, KdfParams, password_key, share_key

VERSION = 2                 # what this version writes
READABLE_VERSIONS = (1, 2)  # version 1 vaults (the first release) stay readable
ID_LEN = 16
NONCE_LEN = 12
TAG_LEN = 16
MAX_N = 16
MAX_NAME_BYTES = 4096       # longer than any path a file system takes
MAX_DATA_LEN = 1 << 56      # 64 PiB: far past any real file, short of overflow anywhere
MAX_META_LEN = 64 * 1024    # a metadata object is ~0.3 KiB plus the padded name

VAULT_MAGIC = b"CSVH"
META_MAGIC = b"CSMD"
PART_MAGIC = b"CSDP"


def check_geometry(n: int, k: int) -> None:
    if not (2 <= n <= MAX_N and 1 <= k <= n):
        raise FormatError(f"invalid geometry k={k}, n={n} (need 1 <= k <= n, 2 <= n <= {MAX_N})")


def _aead_open(key: bytes, nonce: bytes, data: bytes, ad: bytes) -> bytes | None:
    try:
        return AESGCM(key).decrypt(nonce, data, ad)
    except InvalidTag:
        return None


def _check_version(version: int, what: str) -> None:
    if version not in READABLE_VERSIONS:
        raise FormatError(f"{what} version {version} is not supported by this version")


# ---------------------------------------------------------------- vault header

_VAULT_FIXED = struct.Struct(">4sB16sBBBBIII16s")  # up to and including the salt
VAULT_HEADER_LEN = _VAULT_FIXED.size + NONCE_LEN + KEY_LEN + TAG_LEN


@dataclass(frozen=True)
class VaultHeader:
    vault_id: bytes
    n: int
    k: int
    index: int
    kdf: KdfParams
    salt: bytes
    nonce: bytes
    wrapped_vmk: bytes
    version: int = VERSION

    def _ad(self) -> bytes:
        return _VAULT_FIXED.pack(VAULT_MAGIC, self.version, self.vault_id, self.n, self.k,
                                 self.index,
                                 self.kdf.algorithm, self.kdf.memory_kib, self.kdf.iterations,
                                 self.kdf.lanes, self.salt)

    def to_bytes(self) -> bytes:
        return self._ad() + self.nonce + self.wrapped_vmk

    @classmethod
    def parse(cls, data: bytes) -> VaultHeader:
        if len(data) != VAULT_HEADER_LEN:
            raise FormatError(f"vault header has {len(data)} bytes, expected {VAULT_HEADER_LEN}")
        (magic, version, vault_id, n, k, index, alg, mem, it, lanes,
         salt) = _VAULT_FIXED.unpack_from(data)
        if magic != VAULT_MAGIC:
            raise FormatError("not a CSSM vault header")
        _check_version(version, "vault header")
        check_geometry(n, k)
        if index >= n:
            raise FormatError(f"store index {index} out of range for n={n}")
        kdf = KdfParams(memory_kib=mem, iterations=it, lanes=lanes, algorithm=alg)
        kdf.check()
        off = _VAULT_FIXED.size
        return cls(vault_id, n, k, index, kdf, salt, data[off:off + NONCE_LEN],
                   data[off + NONCE_LEN:], version)

    @classmethod
    def seal(cls, vmk: bytes, pk: bytes, vault_id: bytes, n: int, k: int, index: int,
             kdf: KdfParams, salt: bytes, version: int = VERSION) -> VaultHeader:
        nonce = os.urandom(NONCE_LEN)
        draft = cls(vault_id, n, k, index, kdf, salt, nonce, b"", version)
        return cls(vault_id, n, k, index, kdf, salt, nonce,
                   AESGCM(pk).encrypt(nonce, vmk, draft._ad()), version)

    def open_with_key(self, pk: bytes) -> bytes:
        vmk = _aead_open(pk, self.nonce, self.wrapped_vmk, self._ad())
        if vmk is None:
            raise WrongPassword()
        return vmk

    def unlock(self, password: str) -> bytes:
        return self.open_with_key(password_key(password, self.salt, self.kdf))

    @property
    def kdf_group(self) -> tuple[bytes, KdfParams]:
        """Headers sealed under one password key share this pair."""
        return self.salt, self.kdf


# ---------------------------------------------------------------- shared file header

_COMMON = struct.Struct(">4sB16s16sBBI")
COMMON_LEN = _COMMON.size          # 43
HEADER_LEN = COMMON_LEN + 1        # 44: common header + store/part index


@dataclass(frozen=True)
class FileHeader:
    """Public header of a metadata object or data part; authenticated as AEAD data."""

    magic: bytes
    vault_id: bytes
    file_id: bytes
    n: int
    k: int
    block_size: int
    index: int
    version: int = VERSION

    def common(self) -> bytes:
        return _COMMON.pack(self.magic, self.version, self.vault_id, self.file_id, self.n,
                            self.k, self.block_size)

    def to_bytes(self) -> bytes:
        return self.common() + bytes([self.index])

    @classmethod
    def parse(cls, data: bytes, magic: bytes) -> FileHeader:
        if len(data) < HEADER_LEN:
            raise FormatError("object too short for its header")
        m, version, vault_id, file_id, n, k, block_size = _COMMON.unpack_from(data)
        if m != magic:
            raise FormatError("wrong object type (bad magic)")
        _check_version(version, "object")
        check_geometry(n, k)
        index = data[COMMON_LEN]
        if index >= n:
            raise FormatError(f"index {index} out of range for n={n}")
        if not 1 <= block_size <= 64 * 1024 * 1024:
            raise FormatError(f"block size {block_size} out of range")
        return cls(m, vault_id, file_id, n, k, block_size, index, version)

    def with_index(self, index: int) -> FileHeader:
        return replace(self, index=index)

    def as_part(self, index: int) -> FileHeader:
        """The data part header of store `index` of the same file."""
        return replace(self, magic=PART_MAGIC, index=index)


# ---------------------------------------------------------------- key box


PACK_INDEX_MIN = 8                  # magic and member count
MAX_PACK_INDEX = 64 * 1024 * 1024   # far above any pack this version writes (~16 MiB)
KIND_FILE = 0
KIND_PACK = 1               # the parts carry many small files and their index (section 6a)
KIND_FILE_MODE = 2          # a file, its permission bits after the name (section 5)
KIND_SNAPSHOT = 3           # the parts carry a snapshot: a backed-up tree (section 6b)
KINDS = (KIND_FILE, KIND_PACK, KIND_FILE_MODE, KIND_SNAPSHOT)
MAX_SNAPSHOT_LEN = 1 << 32  # 4 GiB: some 20 million files in one backed-up folder
MODE_BITS = 0o777           # what is kept of a file's mode: read, write, run for all three
# The kind of entry, as POSIX st_mode says it, above those bits (section 5): a file, a
# folder (kept only when empty: others come with their files) or a symbolic link.
TYPE_BITS = 0o170000
S_FILE, S_DIR, S_LINK = 0o100000, 0o040000, 0o120000


def valid_mode(mode: int) -> bool:
    """One of the three kinds, and no bit beyond the permission bits."""
    return not mode & ~(TYPE_BITS | MODE_BITS) and mode & TYPE_BITS in (S_FILE, S_DIR, S_LINK)
KEY_BOX_BUCKET = 256        # a version 2 key box is padded to a multiple of this
MIN_PADDED_LEN = 1024       # version 2: no file's parts look smaller than a 1 KiB file's


def padded_length(size: int) -> int:
    """Padme (Nikitin et al., PETS 2019): round `size` up so that only its top ~log2(log2)
    bits stay visible; at most ~12% more (3% above 1 MiB), never below MIN_PADDED_LEN.
    Written out because it is five lines and no maintained library offers it."""
    if size <= MIN_PADDED_LEN:
        return MIN_PADDED_LEN
    e = size.bit_length() - 1
    s = e.bit_length()
    mask = (1 << (e - s)) - 1
    return (size + mask) & ~mask


@dataclass(frozen=True)
class KeyBox:
    """What the container key protects: part keys and everything private about the file.

    `data_len` is how many bytes the parts carry: the file, then zeros up to
    padded_length(size) (version 2); exactly the file in version 1.
    """

    part_keys: tuple[bytes, ...]
    size: int
    mtime_ns: int
    stored_at_ns: int
    sha256: bytes
    name: str
    data_len: int = -1
    kind: int = KIND_FILE
    index_offset: int = 0     # a pack: where its member index starts in the content
    mode: int = -1            # S_FILE | permission bits (MODE_BITS); -1: not recorded

    _FIXED_V1 = struct.Struct(">Qqq32sH")
    _FIXED_V2 = struct.Struct(">QQqq32sH")
    _PACK_TAIL = struct.Struct(">Q")
    _MODE_TAIL = struct.Struct(">I")

    def __post_init__(self) -> None:
        if self.data_len < 0:
            object.__setattr__(self, "data_len", padded_length(self.size))

    def to_bytes(self, version: int = VERSION) -> bytes:
        name = name_bytes(self.name)
        if len(name) > MAX_NAME_BYTES:
            raise FormatError("file name too long")
        keys = b"".join(self.part_keys)
        if version == 1:
            return (bytes([1, len(self.part_keys)]) + keys
                    + self._FIXED_V1.pack(self.size, self.mtime_ns, self.stored_at_ns,
                                          self.sha256, len(name)) + name)
        if self.kind == KIND_PACK and version == 1:
            raise FormatError("packs need format version 2")
        with_mode = self.kind == KIND_FILE and self.mode >= 0
        kind = KIND_FILE_MODE if with_mode else self.kind
        body = (bytes([2, kind, len(self.part_keys)]) + keys
                + self._FIXED_V2.pack(self.size, self.data_len, self.mtime_ns,
                                      self.stored_at_ns, self.sha256, len(name)) + name)
        if self.kind == KIND_PACK:
            body += self._PACK_TAIL.pack(self.index_offset)
        if with_mode:
            body += self._MODE_TAIL.pack(S_FILE | self.mode & MODE_BITS)
        return body + bytes(-len(body) % KEY_BOX_BUCKET)

    @classmethod
    def parse(cls, data: bytes, n: int, version: int) -> KeyBox:
        """`version` is the version byte of the header the box was sealed with."""
        if version == 1:
            if len(data) < 2 or data[0] != 1 or data[1] != n:
                raise FormatError("key box version or part count mismatch")
            off, fixed, kind = 2, cls._FIXED_V1, KIND_FILE
        else:
            if len(data) < 3 or data[0] != 2 or data[2] != n:
                raise FormatError("key box version or part count mismatch")
            off, fixed, kind = 3, cls._FIXED_V2, data[1]
            if kind not in KINDS:
                raise FormatError(f"key box kind {kind} is not supported by this version")
        keys = tuple(data[off + i * KEY_LEN: off + (i + 1) * KEY_LEN] for i in range(n))
        off += n * KEY_LEN
        if len(data) < off + fixed.size:
            raise FormatError("key box truncated")
        if version == 1:
            size, mtime, stored, sha, name_len = fixed.unpack_from(data, off)
            data_len = size
        else:
            size, data_len, mtime, stored, sha, name_len = fixed.unpack_from(data, off)
            if not size <= data_len <= MAX_DATA_LEN:
                raise FormatError("key box data length out of range")
        off += fixed.size
        end = off + name_len
        index_offset = 0
        if kind == KIND_SNAPSHOT and (name_len or size > MAX_SNAPSHOT_LEN):
            raise FormatError("snapshot key box has a name or is too large")
        if kind == KIND_PACK:
            if name_len or len(data) < end + cls._PACK_TAIL.size:
                raise FormatError("pack key box has a name or is truncated")
            (index_offset,) = cls._PACK_TAIL.unpack_from(data, end)
            if not size - MAX_PACK_INDEX <= index_offset <= size - PACK_INDEX_MIN:
                raise FormatError("pack index out of range")
            end += cls._PACK_TAIL.size
        mode = -1
        if kind == KIND_FILE_MODE:
            if len(data) < end + cls._MODE_TAIL.size:
                raise FormatError("key box mode truncated")
            (mode,) = cls._MODE_TAIL.unpack_from(data, end)
            if not valid_mode(mode) or mode & TYPE_BITS != S_FILE:
                raise FormatError("key box mode out of range (not a file)")
            end += cls._MODE_TAIL.size
            kind = KIND_FILE
        if version == 1 and len(data) != end:
            raise FormatError("key box name length mismatch")
        if version != 1 and (len(data) < end or len(data) % KEY_BOX_BUCKET
                             or any(data[end:])):
            raise FormatError("key box name length or padding mismatch")
        name = name_text(data[off:off + name_len])
        return cls(keys, size, mtime, stored, sha, name, data_len, kind, index_offset, mode)


# ---------------------------------------------------------------- metadata object

_META_TAIL = struct.Struct(">I")


@dataclass(frozen=True)
class MetaObject:
    header: FileHeader
    share_nonce: bytes
    sealed_share: bytes
    box_nonce: bytes
    sealed_box: bytes

    def to_bytes(self) -> bytes:
        return (self.header.to_bytes() + self.share_nonce + self.sealed_share + self.box_nonce
                + _META_TAIL.pack(len(self.sealed_box)) + self.sealed_box)

    @classmethod
    def parse(cls, data: bytes) -> MetaObject:
        header = FileHeader.parse(data, META_MAGIC)
        off = HEADER_LEN
        share_len = KEY_LEN + TAG_LEN
        need = off + NONCE_LEN + share_len + NONCE_LEN + _META_TAIL.size
        if len(data) < need:
            raise FormatError("metadata object truncated")
        share_nonce = data[off:off + NONCE_LEN]
        off += NONCE_LEN
        sealed_share = data[off:off + share_len]
        off += share_len
        box_nonce = data[off:off + NONCE_LEN]
        off += NONCE_LEN
        (box_len,) = _META_TAIL.unpack_from(data, off)
        off += _META_TAIL.size
        if len(data) != off + box_len or box_len < TAG_LEN:
            raise FormatError("metadata object key box length mismatch")
        return cls(header, share_nonce, sealed_share, box_nonce, data[off:])

    @classmethod
    def seal(cls, header: FileHeader, vmk: bytes, share: bytes, box_nonce: bytes,
             sealed_box: bytes) -> MetaObject:
        sk = share_key(vmk, header.vault_id, header.file_id, header.index)
        nonce = os.urandom(NONCE_LEN)
        sealed = AESGCM(sk).encrypt(nonce, share, header.to_bytes())
        return cls(header, nonce, sealed, box_nonce, sealed_box)

    def open_share(self, vmk: bytes) -> bytes | None:
        h = self.header
        sk = share_key(vmk, h.vault_id, h.file_id, h.index)
        return _aead_open(sk, self.share_nonce, self.sealed_share, h.to_bytes())

    def open_box(self, ck: bytes) -> KeyBox | None:
        plain = _aead_open(ck, self.box_nonce, self.sealed_box, self.header.common())
        return None if plain is None else KeyBox.parse(plain, self.header.n,
                                                       self.header.version)


def seal_key_box(ck: bytes, header: FileHeader, box: KeyBox) -> tuple[bytes, bytes]:
    """CK is fresh per file and seals exactly one key box, so a random nonce never repeats."""
    nonce = os.urandom(NONCE_LEN)
    return nonce, AESGCM(ck).encrypt(nonce, box.to_bytes(header.version), header.common())


# ---------------------------------------------------------------- data part geometry


def stripe_count(data_len: int, k: int, block_size: int) -> int:
    stripe = k * block_size
    return max(1, -(-data_len // stripe))


def last_block_len(data_len: int, k: int, block_size: int) -> int:
    stripes = stripe_count(data_len, k, block_size)
    rest = data_len - (stripes - 1) * k * block_size
    return -(-rest // k)


def block_len(stripe: int, data_len: int, k: int, block_size: int) -> int:
    if stripe == stripe_count(data_len, k, block_size) - 1:
        return last_block_len(data_len, k, block_size)
    return block_size


def part_size(data_len: int, k: int, block_size: int) -> int:
    """Exact byte length of every data part carrying `data_len` bytes (KeyBox.data_len)."""
    stripes = stripe_count(data_len, k, block_size)
    return (HEADER_LEN + (stripes - 1) * (block_size + TAG_LEN)
            + last_block_len(data_len, k, block_size) + TAG_LEN)


def stripe_offset(stripe: int, block_size: int) -> int:
    """Byte offset of a stripe's sealed block within a part (all earlier blocks are full)."""
    return HEADER_LEN + stripe * (block_size + TAG_LEN)


def block_nonce(stripe: int, final: bool) -> bytes:
    """STREAM nonce: 88-bit big-endian stripe counter, then 0x01 on the last stripe."""
    if not 0 <= stripe < 1 << 88:
        raise FormatError("stripe counter overflow")
    return stripe.to_bytes(11, "big") + (b"\x01" if final else b"\x00")
