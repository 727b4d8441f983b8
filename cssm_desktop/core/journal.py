"""The upload journal: what an interrupted put needs to go on where it stopped.

One JSON file per unfinished upload in `<data dir>/uploads/<vault id>/`, the owner's only
(0600), replaced atomically at every step. It holds the local path and the stored name
(as the catalog does), the file's identity (size, mtime, ctime, inode, device), the file
id, the n part keys sealed under JK = HKDF-SHA256(VMK, "cssm-v2 journal key" || vault id),
each store's upload id and the parts it acknowledged, and HMAC-SHA256 under JK of the
file's first bytes up to the last stripe handed on to the stores. No byte of the file, no
plain hash of it.

Why the digest: a resumed put seals the same stripes under the same part keys and
nonces. That is safe only for the same bytes, so the reader records the digest *before*
it hands a window of stripes on (nothing beyond it can have reached a store), and a
resume first checks the file against it: a file that changed starts over with a new id
and new keys (docs/SECURITY.md, "Resumed uploads").
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..durable import atomic_write_bytes, private_dir
from ..errors import InputError, StoreError
from ..stores.base import ObjectInfo, UploadState
from .keys import KEY_LEN
from .layout import data_key
from .vault import Vault

log = logging.getLogger(__name__)

JOURNAL_KEY_INFO = b"cssm-v2 journal key"
JOURNAL_VERSION = 1
# The reader records a digest per window of about this many bytes before handing the
# window on: one small atomic write per 4 MiB (~64 for 256 MiB), and 4 MiB more memory.
CHECKPOINT = 4 * 1024 * 1024
# Files smaller than this are sent again whole: their upload is one part per store.
RESUMABLE = 8 * 1024 * 1024

# Journals a put of this process goes on with right now (their paths): not "unfinished"
# to offer, discard or take up a second time (the window offered a running upload as
# left over from last time, and its Discard would have aborted that upload).
_busy: set[str] = set()
_busy_lock = threading.Lock()


def journal_key(vmk: bytes, vault_id: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_LEN, salt=None,
                info=JOURNAL_KEY_INFO + vault_id).derive(vmk)


@dataclass(frozen=True)
class Identity:
    """What must be the same for the file to count as unchanged (as backup tools check)."""

    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    dev: int

    @classmethod
    def of(cls, st: os.stat_result) -> Identity:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


class Journal:
    """One unfinished upload. Thread-safe: writers report parts from their own threads."""

    def __init__(self, path: Path, key: bytes, data: dict[str, Any]) -> None:
        self.path = path
        self._key = key
        self._data = data
        self._lock = threading.Lock()

    # -- what it says
    @property
    def source(self) -> str:
        return str(self._data["source"])

    @property
    def name(self) -> str:
        return str(self._data["name"])

    @property
    def file_id(self) -> bytes:
        return bytes.fromhex(self._data["file_id"])

    @property
    def identity(self) -> Identity:
        return Identity(**self._data["identity"])

    @property
    def geometry(self) -> tuple[int, int, int]:
        return self._data["n"], self._data["k"], self._data["block_size"]

    @property
    def stripes(self) -> int:
        """Stripes handed on to the stores so far (all of them covered by `digest`)."""
        return int(self._data["stripes"])

    @property
    def digest(self) -> bytes:
        return bytes.fromhex(self._data["digest"])

    @property
    def started(self) -> float:
        return float(self._data["started"])

    def uploads(self) -> dict[int, UploadState]:
        with self._lock:
            return {int(i): UploadState(u["upload_id"], tuple(tuple(p) for p in u["parts"]))
                    for i, u in self._data["uploads"].items()}

    @property
    def held(self) -> int:
        """Bytes the stores acknowledged (all stores together)."""
        return sum(u.size for u in self.uploads().values())

    def part_keys(self) -> tuple[bytes, ...]:
        sealed = bytes.fromhex(self._data["keys"])
        try:
            raw = AESGCM(self._key).decrypt(sealed[:12], sealed[12:], self._aad())
        except InvalidTag:
            raise InputError("the upload journal does not open under this vault's key") \
                from None
        n = self._data["n"]
        return tuple(raw[i * KEY_LEN:(i + 1) * KEY_LEN] for i in range(n))

    def _aad(self) -> bytes:
        return JOURNAL_KEY_INFO + bytes.fromhex(self._data["vault_id"]) + self.file_id

    # -- what changes
    def record(self, index: int, state: UploadState) -> None:
        """A store acknowledged a part (or started the upload): kept before going on."""
        with self._lock:
            self._data["uploads"][str(index)] = {"upload_id": state.upload_id,
                                                 "parts": [list(p) for p in state.parts]}
            self._save()

    def checkpoint(self, stripes: int, digest: bytes) -> None:
        with self._lock:
            self._data["stripes"] = stripes
            self._data["digest"] = digest.hex()
            self._save()

    def _save(self) -> None:
        atomic_write_bytes(self.path, json.dumps(self._data, indent=1).encode())

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def guard(self) -> Callable[[list[bytes | memoryview], int], None]:
        """For the reader (stages.read_stripes): called with each window's file bytes and
        the stripe count after it, before the window is handed on. Records the digest
        past the old mark; at the old mark, checks the file against it."""
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        mark, expected = self.stripes, self.digest

        def window(chunks: list[bytes | memoryview], stripes: int) -> None:
            for chunk in chunks:
                mac.update(chunk)
            digest = mac.copy().digest()
            if stripes == mark and mark and not hmac.compare_digest(digest, expected):
                raise InputError(f"{self.source} changed since its upload was interrupted; "
                                 "nothing more was sent (store it again)")
            if stripes > mark:
                self.checkpoint(stripes, digest)
        return window

    def matches(self, fh: BinaryIO, stripe_len: int) -> bool:
        """The file's bytes up to the mark give the recorded digest (read once more now:
        what follows may send some of them again under the same keys)."""
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        left = min(self.stripes * stripe_len, self.identity.size)
        fh.seek(0)
        while left > 0:
            chunk = fh.read(min(left, 8 << 20))
            if not chunk:
                break
            mac.update(chunk)
            left -= len(chunk)
        fh.seek(0)
        return left == 0 and hmac.compare_digest(mac.digest(), self.digest)


class Journals:
    """The unfinished uploads of one vault on this machine."""

    def __init__(self, folder: Path, vmk: bytes, vault_id: bytes) -> None:
        self.folder = folder
        self.vault_id = vault_id
        self._key = journal_key(vmk, vault_id)

    def all(self, busy: bool = False) -> list[Journal]:
        """The journals on disk; `busy`: with those a put of this process works with."""
        out = []
        try:
            # Not the temporary file of a journal being rewritten (".tmp-…json"): a look
            # taken meanwhile saw the one upload twice.
            paths = sorted(p for p in self.folder.glob("*.json") if not p.name.startswith("."))
        except OSError:
            return []
        with _busy_lock:
            working = set(_busy)
        for path in paths:
            if not busy and str(path) in working:
                continue
            try:
                data = json.loads(path.read_bytes())
                if data.get("version") != JOURNAL_VERSION or \
                        data.get("vault_id") != self.vault_id.hex():
                    continue
                journal = Journal(path, self._key, data)
                journal.identity  # noqa: B018  (every field there)
                out.append(journal)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("upload journal %s unreadable (%s); its upload starts over",
                            path.name, type(exc).__name__)
        return out

    def find(self, source: Path) -> Journal | None:
        where = os.path.abspath(source)
        return next((j for j in self.all() if j.source == where), None)

    def start(self, source: Path, name: str, identity: Identity, file_id: bytes,
              n: int, k: int, block_size: int, part_keys: tuple[bytes, ...],
              started: float) -> Journal:
        """A new journal; written at the reader's first checkpoint, before any part."""
        private_dir(self.folder)
        nonce = os.urandom(12)
        data: dict[str, Any] = {
            "version": JOURNAL_VERSION, "vault_id": self.vault_id.hex(),
            "source": os.path.abspath(source), "name": name, "identity": identity.__dict__,
            "file_id": file_id.hex(), "n": n, "k": k, "block_size": block_size,
            "started": started, "stripes": 0, "digest": "", "uploads": {}, "keys": "",
        }
        journal = Journal(self.folder / f"{secrets.token_hex(8)}.json", self._key, data)
        data["keys"] = (nonce + AESGCM(self._key).encrypt(nonce, b"".join(part_keys),
                                                          journal._aad())).hex()
        return journal

    @staticmethod
    def claim(journal: Journal) -> bool:
        """Mark it worked on by this process; False if it already is."""
        with _busy_lock:
            if str(journal.path) in _busy:
                return False
            _busy.add(str(journal.path))
            return True

    @staticmethod
    def release(journal: Journal) -> None:
        with _busy_lock:
            _busy.discard(str(journal.path))

    def discard(self, journal: Journal, vault: Vault) -> dict[str, str]:
        """Remove what the stores hold of it, then the journal; stores that could not be
        reached -> why (gc removes their leftovers later). Not one a put works with."""
        with _busy_lock:
            if str(journal.path) in _busy:
                raise InputError("that upload is running now; cancel it first")
        key = data_key(vault.vault_id, journal.file_id)
        failed: dict[str, str] = {}
        for index, state in journal.uploads().items():
            store = vault.stores.get(index)
            if store is None:
                failed[vault.store_name(index)] = "not reachable"
                continue
            try:
                store.discard_upload(ObjectInfo(key, 0, 0, state.upload_id))
            except StoreError as exc:
                failed[store.name] = exc.reason
        journal.delete()
        return failed

    def upload_ids(self) -> dict[str, str]:
        """Upload id -> the local file whose unfinished put uses it."""
        return {u.upload_id: j.source for j in self.all(busy=True)
                for u in j.uploads().values()}
