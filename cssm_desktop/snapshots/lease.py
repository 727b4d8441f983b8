"""Leases in the stores, so two computers never prune at once and a prune never removes
what another computer's running backup is about to name in its snapshot.

As restic's locks: a small object per holder in every store, written, then the others
looked at; unlike them, sealed (AES-GCM under a key the password gives: a store cannot
forge one, nor read the host name), with an explicit expiry that a holder renews, and
re-checked before each batch of deletions. A backup holds a shared lease, a prune an
exclusive one; a prune waits for no one: it refuses while another lease is live.
A store may hide a lease; the others still show it (it is written to every reachable
store). A store may keep a stale copy: expired leases count for nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..core import parallel
from ..core.keys import lease_key
from ..core.layout import id_from_key, lease_prefix, new_id
from ..core.vault import Vault
from ..errors import CssmError, StoreError
from ..text import name_bytes, name_text

log = logging.getLogger(__name__)

MAGIC = b"CSLS"
SHARED, EXCLUSIVE = 1, 2
LEASE_SECONDS = 30 * 60          # renewed every third of this while held
_HEAD = struct.Struct(">4sB16s16s")   # magic, version, vault id, lease id
_BODY = struct.Struct(">Bqqi")        # kind, taken_ns, expires_ns, pid
NONCE_LEN = 12


class LeaseHeld(CssmError):
    """Another computer (or process) holds a lease that conflicts."""


@dataclass(frozen=True)
class LeaseInfo:
    id: str
    kind: int
    host: str
    pid: int
    taken_ns: int
    expires_ns: int

    def words(self) -> str:
        what = "pruning" if self.kind == EXCLUSIVE else "backing up"
        left = max(0, int((self.expires_ns - time.time_ns()) / 1e9 / 60))
        return f"{self.host} (process {self.pid}) is {what}; its lease ends in {left} min " \
               "unless renewed"


def seal(vmk: bytes, vault_id: bytes, lease_id: bytes, kind: int, expires_ns: int,
         host: str, pid: int) -> bytes:
    head = _HEAD.pack(MAGIC, 1, vault_id, lease_id)
    body = _BODY.pack(kind, time.time_ns(), expires_ns, pid) + name_bytes(host)[:255]
    nonce = os.urandom(NONCE_LEN)
    return head + nonce + AESGCM(lease_key(vmk, vault_id)).encrypt(nonce, body, head)


def open_lease(vmk: bytes, vault_id: bytes, lease_id: bytes, data: bytes) -> LeaseInfo | None:
    """None for anything that is not this vault's lease under this name."""
    if not _HEAD.size + NONCE_LEN + 16 + _BODY.size <= len(data) <= 4096:
        return None
    magic, version, vid, lid = _HEAD.unpack_from(data)
    if magic != MAGIC or version != 1 or vid != vault_id or lid != lease_id:
        return None
    nonce = data[_HEAD.size:_HEAD.size + NONCE_LEN]
    try:
        body = AESGCM(lease_key(vmk, vault_id)).decrypt(nonce, data[_HEAD.size + NONCE_LEN:],
                                                         data[:_HEAD.size])
    except InvalidTag:
        return None
    kind, taken, expires, pid = _BODY.unpack_from(body)
    if kind not in (SHARED, EXCLUSIVE):
        return None
    return LeaseInfo(lease_id.hex(), kind, name_text(body[_BODY.size:]), pid, taken, expires)


def _dead_here(lease: LeaseInfo) -> bool:
    """A lease this computer's process took and that process is gone (killed, crashed):
    stale at once, as restic's are, not only when it expires."""
    if lease.host != socket.gethostname() or lease.pid == os.getpid():
        return False
    try:
        os.kill(lease.pid, 0)
    except ProcessLookupError:
        return True
    except OSError:   # exists, another user's: alive
        return False
    return False


def live_leases(vault: Vault, now_ns: int | None = None) -> list[LeaseInfo]:
    """Every unexpired lease any reachable store shows (each once); one whose process on
    this computer is gone does not count."""
    vmk = vault.require_key()
    prefix = lease_prefix(vault.vault_id)
    now_ns = time.time_ns() if now_ns is None else now_ns

    def read(store) -> list[LeaseInfo]:   # type: ignore[no-untyped-def]
        found = []
        for info in store.list(prefix):
            lid = id_from_key(info.key, prefix)
            if lid is None:
                continue
            try:
                got = open_lease(vmk, vault.vault_id, lid, store.get_bytes(info.key, 4096))
            except StoreError:
                continue
            if got is not None and got.expires_ns > now_ns and not _dead_here(got):
                found.append(got)
        return found

    out: dict[str, LeaseInfo] = {}
    for res in parallel.each(read, list(vault.stores.values())):
        if isinstance(res, list):
            for lease in res:
                out.setdefault(lease.id, lease)
    return sorted(out.values(), key=lambda lease: lease.taken_ns)


class Lease:
    """A context manager: taken on enter (LeaseHeld when it conflicts), renewed in the
    background, given back on exit."""

    def __init__(self, vault: Vault, kind: int, seconds: float = LEASE_SECONDS) -> None:
        self.vault = vault
        self.kind = kind
        self.seconds = seconds
        self.id = new_id()
        self.host = socket.gethostname()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _key(self) -> str:
        return lease_prefix(self.vault.vault_id) + self.id.hex()

    def _write(self) -> int:
        data = seal(self.vault.require_key(), self.vault.vault_id, self.id, self.kind,
                    time.time_ns() + int(self.seconds * 1e9), self.host, os.getpid())
        stores = list(self.vault.stores.values())
        results = parallel.each(lambda s: s.put_bytes(self._key(), data), stores)
        return sum(not isinstance(r, BaseException) for r in results)

    def conflicts(self) -> list[LeaseInfo]:
        mine = self.id.hex()
        return [lease for lease in live_leases(self.vault) if lease.id != mine and
                (self.kind == EXCLUSIVE or lease.kind == EXCLUSIVE)]

    def __enter__(self) -> Lease:
        before = self.conflicts()
        if before:
            raise LeaseHeld(before[0].words())
        if self._write() < self.vault.k:
            self._release()
            raise LeaseHeld("the lease could not be written to enough stores")
        # Two computers that looked at the same moment both see each other now.
        time.sleep(0.2)
        after = self.conflicts()
        if after:
            self._release()
            raise LeaseHeld(after[0].words())
        self._renewer = threading.Thread(target=self._renew, name="cssm-lease", daemon=True)
        self._renewer.start()
        return self

    def check(self) -> None:
        """Before each batch of deletions: still alone (for an exclusive lease)."""
        found = self.conflicts()
        if found:
            raise LeaseHeld(found[0].words())

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                self._write()
            except CssmError as exc:   # pragma: no cover (a store gone: the others hold it)
                log.warning("lease renewal failed: %s", exc)

    def _release(self) -> None:
        key = self._key()
        parallel.each(lambda s: s.delete(key), list(self.vault.stores.values()))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        self._release()
