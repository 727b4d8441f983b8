"""Key derivations of the hierarchy in docs/FORMAT.md: password -> PK -> VMK -> SK_i."""

from __future__ import annotations

import hmac
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_LEN = 32
KDF_ARGON2ID = 1

# What one unlock may cost. Readers parse anything up to the format's bounds (4 GiB, 64
# passes) but derive keys only up to this ceiling: 1 GiB and 16x the default work
# (memory x passes), so a forged header costs a few seconds at most, never minutes.
MAX_KDF_MEMORY_KIB = 1024 * 1024
MAX_KDF_COST = 16 * 64 * 1024 * 3
# Argon2id runs per unlock: the pair most stores hold, one more for a password change
# interrupted half-way, one to check a stray header. Each is bounded by the ceiling.
MAX_DERIVATIONS = 3


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost; stored in every vault header so it can be raised later."""

    memory_kib: int = 64 * 1024
    iterations: int = 3
    lanes: int = 4
    algorithm: int = KDF_ARGON2ID

    @property
    def cost(self) -> int:
        return self.memory_kib * self.iterations

    def within_ceiling(self) -> bool:
        return self.memory_kib <= MAX_KDF_MEMORY_KIB and self.cost <= MAX_KDF_COST

    def at_least(self, floor: KdfParams) -> KdfParams:
        """Each cost at least `floor`'s: a password change never lowers the cost (nor raises
        it past the ceiling, which would lock the vault; then `floor` itself)."""
        raised = KdfParams(max(self.memory_kib, floor.memory_kib),
                           max(self.iterations, floor.iterations), max(self.lanes, floor.lanes))
        return raised if raised.within_ceiling() else floor

    def check(self) -> None:
        from ..errors import FormatError

        if self.algorithm != KDF_ARGON2ID:
            raise FormatError(f"unknown key derivation algorithm {self.algorithm}")
        # Bounds keep a forged header from making unlock hang or exhaust memory.
        if not (8 * self.lanes <= self.memory_kib <= 4 * 1024 * 1024):
            raise FormatError(f"Argon2id memory {self.memory_kib} KiB out of range")
        if not (1 <= self.iterations <= 64) or not (1 <= self.lanes <= 64):
            raise FormatError("Argon2id iterations/lanes out of range")


def normalize_password(password: str) -> str:
    """NFC: the same password typed on another system (which may compose accents
    differently) gives the same bytes, hence the same key."""
    return unicodedata.normalize("NFC", password)


def password_key(password: str, salt: bytes, params: KdfParams) -> bytes:
    """PK = Argon2id(password, salt). Slow on purpose: run it off any UI thread."""
    params.check()
    kdf = Argon2id(salt=salt, length=KEY_LEN, iterations=params.iterations,
                   lanes=params.lanes, memory_cost=params.memory_kib)
    return kdf.derive(password.encode("utf-8"))


SHARE_KEY_INFO = b"cssm-v1 share key"


def share_key(vmk: bytes, vault_id: bytes, file_id: bytes, index: int) -> bytes:
    """SK_i: binds the share of store i to this vault and this file."""
    info = SHARE_KEY_INFO + vault_id + file_id + bytes([index])
    return HKDF(algorithm=hashes.SHA256(), length=KEY_LEN, salt=None, info=info).derive(vmk)


DUPLICATE_KEY_INFO = b"cssm-v2 duplicate key"


def content_tag(vmk: bytes, vault_id: bytes, sha256: bytes) -> bytes:
    """A keyed hash of a file's SHA-256 for the local catalog: it finds the same content
    stored twice, yet unlike the plain hash it confirms no guess about a file's content
    to someone who reads the catalog without the vault key."""
    return content_tagger(vmk, vault_id)(sha256)


def content_tagger(vmk: bytes, vault_id: bytes) -> Callable[[bytes], bytes]:
    """content_tag with its key derived once, for the thousands of files of one put (the
    key lives as long as the returned function, not beyond the job)."""
    keyed = hmac.new(HKDF(algorithm=hashes.SHA256(), length=KEY_LEN, salt=None,
                          info=DUPLICATE_KEY_INFO + vault_id).derive(vmk), digestmod="sha256")

    def tag(sha256: bytes) -> bytes:
        # A copy of the keyed state: 3.4 us a file against 4.6 for a one-shot HMAC
        # (20,000 files in one put).
        h = keyed.copy()
        h.update(sha256)
        return h.digest()
    return tag


REMOVAL_KEY_INFO = b"cssm-v2 removal key"


def removal_key(vmk: bytes, vault_id: bytes, pack_id: bytes) -> bytes:
    """RK: seals the list of a pack's removed members (only the vault key can write it)."""
    info = REMOVAL_KEY_INFO + vault_id + pack_id
    return HKDF(algorithm=hashes.SHA256(), length=KEY_LEN, salt=None, info=info).derive(vmk)


LEASE_KEY_INFO = b"cssm-v3 lease key"


def lease_key(vmk: bytes, vault_id: bytes) -> bytes:
    """Seals the leases (snapshots/lease.py): only someone with the password can hold one."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_LEN, salt=None,
                info=LEASE_KEY_INFO + vault_id).derive(vmk)
