"""A vault: the set of stores that share one vault id, and the master key that opens it."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from ..stores.base import Store
from . import parallel
from .errors import (
    CssmError,
    FormatError,
    NotEnoughStores,
    ObjectNotFound,
    StoreError,
    VaultError,
    WrongPassword,
)
from .format import VaultHeader, check_geometry
from .keys import KEY_LEN, KdfParams, password_key
from .layout import id_from_key, new_id, vault_key

log = logging.getLogger(__name__)


def _vault_ids(store: Store) -> list[bytes]:
    """Vault ids present in a store: top-level `<id>/` folders holding a `vault` object.

    One listing of the top level and one read per candidate, however many files the
    vault holds.
    """
    found = []
    for name in store.children(""):
        vault_id = id_from_key(name, "")
        if vault_id is None:
            continue
        try:
            store.open_read(vault_key(vault_id)).close()
        except ObjectNotFound:
            continue
        found.append(vault_id)
    return found


def _read_header(store: Store) -> VaultHeader | None:
    ids = _vault_ids(store)
    if not ids:
        return None
    if len(ids) > 1:
        raise VaultError(f"store {store.name!r} holds {len(ids)} vaults; give each vault its own "
                         "folder, bucket or prefix")
    header = VaultHeader.parse(store.get_bytes(vault_key(ids[0]), limit=4096))
    if header.vault_id != ids[0]:
        raise FormatError(f"store {store.name!r}: vault header does not match its object name")
    return header


@dataclass
class Vault:
    """Opened from the public headers; `unlock` adds the master key."""

    vault_id: bytes
    n: int
    k: int
    stores: dict[int, Store]               # vault index -> Store
    headers: dict[int, VaultHeader]
    unavailable: dict[str, str] = field(default_factory=dict)  # store name -> reason
    vmk: bytes | None = None
    # Configured position of every store; names an unreachable store by its index, which
    # is right as long as the config keeps the order it had at `init`.
    positions: dict[str, int] = field(default_factory=dict)
    # Reachable stores that hold no vault yet (a replaced, empty bucket): repair adopts them.
    spare: dict[str, Store] = field(default_factory=dict)
    pk: bytes | None = None
    unlocked_with: VaultHeader | None = None

    @property
    def id_hex(self) -> str:
        return self.vault_id.hex()

    def store_name(self, index: int) -> str:
        store = self.stores.get(index)
        if store is not None:
            return store.name
        for name, pos in self.positions.items():
            if pos == index and name in self.unavailable:
                return name
        return f"store #{index + 1}"

    @classmethod
    def open(cls, stores: list[Store]) -> Vault:
        results = parallel.each(_read_header, stores)
        headers: dict[int, VaultHeader] = {}
        by_index: dict[int, Store] = {}
        unavailable: dict[str, str] = {}
        ids: dict[bytes, list[str]] = {}
        spare: dict[str, Store] = {}
        for store, res in zip(stores, results, strict=True):
            if isinstance(res, VaultError):
                raise res
            if isinstance(res, BaseException):
                reason = res.reason if isinstance(res, StoreError) else str(res)
                unavailable[store.name] = reason
                log.warning("store %s unavailable: %s", store.name, reason)
                continue
            if res is None:
                unavailable[store.name] = "holds no vault"
                spare[store.name] = store
                continue
            ids.setdefault(res.vault_id, []).append(store.name)
            if res.index in headers:
                raise VaultError(f"stores {by_index[res.index].name!r} and {store.name!r} "
                                 f"both claim to be store #{res.index + 1} of the vault")
            headers[res.index] = res
            by_index[res.index] = store
        if not headers:
            detail = "; ".join(f"{s}: {r}" for s, r in unavailable.items())
            raise VaultError(f"no vault found on any store ({detail}); run `cssm init` first")
        if len(ids) > 1:
            groups = "; ".join(f"{vid.hex()[:8]}: {', '.join(names)}" for vid, names in ids.items())
            raise VaultError(f"the stores hold different vaults ({groups})")
        first = next(iter(headers.values()))
        if any((h.n, h.k) != (first.n, first.k) for h in headers.values()):
            raise VaultError("the vault headers disagree about n and k")
        positions = {store.name: pos for pos, store in enumerate(stores)}
        return cls(first.vault_id, first.n, first.k, by_index, headers, unavailable,
                   positions=positions, spare=spare)

    def unlock(self, password: str) -> bytes:
        """Try each distinct (salt, cost) once, so a half-finished password change still opens."""
        tried: set[tuple[bytes, KdfParams]] = set()
        for header in self.headers.values():
            if (header.salt, header.kdf) in tried:
                continue
            tried.add((header.salt, header.kdf))
            pk = password_key(password, header.salt, header.kdf)
            try:
                self.vmk = header.open_with_key(pk)
            except WrongPassword:
                continue
            self.pk, self.unlocked_with = pk, header
            return self.vmk
        raise WrongPassword()

    def adopt_spare_stores(self) -> list[str]:
        """Give each missing store index to the empty store configured at that position.

        Writes a vault header sealed with the key the vault was unlocked with; returns
        the names of the stores adopted.
        """
        if self.pk is None or self.vmk is None:
            raise CssmError("the vault is locked")
        base = self.unlocked_with
        assert base is not None
        adopted = []
        for name, store in list(self.spare.items()):
            index = self.positions.get(name)
            if index is None or index >= self.n or index in self.stores:
                continue
            header = VaultHeader.seal(self.vmk, self.pk, self.vault_id, self.n, self.k, index,
                                      base.kdf, base.salt)
            store.prepare()
            store.put_bytes(vault_key(self.vault_id), header.to_bytes())
            self.stores[index] = store
            self.headers[index] = header
            del self.spare[name]
            self.unavailable.pop(name, None)
            log.info("store %s adopted as store #%d of vault %s", name, index + 1, self.id_hex)
            adopted.append(name)
        return adopted

    def require_key(self) -> bytes:
        if self.vmk is None:
            raise CssmError("the vault is locked")
        return self.vmk

    def require_all_stores(self, what: str) -> None:
        missing = [i for i in range(self.n) if i not in self.stores]
        if missing:
            raise NotEnoughStores(self.n - len(missing), self.n, self.unavailable, what=what)


def init_vault(stores: list[Store], k: int, password: str, kdf: KdfParams | None = None) -> Vault:
    """Write a new vault header to every store; refuses stores that already hold a vault."""
    n = len(stores)
    check_geometry(n, k)
    if not password:
        raise CssmError("the password must not be empty")
    kdf = kdf or KdfParams()

    def prepare(store: Store) -> list[bytes]:
        store.prepare()
        return _vault_ids(store)

    failures: dict[str, str] = {}
    for store, res in zip(stores, parallel.each(prepare, stores), strict=True):
        if isinstance(res, StoreError):
            failures[store.name] = res.reason
        elif isinstance(res, BaseException):
            raise res
        elif res:
            raise VaultError(f"store {store.name!r} already holds vault {res[0].hex()}")
    if failures:
        raise NotEnoughStores(n - len(failures), n, failures, what="create the vault")
    vault_id = new_id()
    vmk = os.urandom(KEY_LEN)
    salt = os.urandom(16)
    pk = password_key(password, salt, kdf)
    headers = {i: VaultHeader.seal(vmk, pk, vault_id, n, k, i, kdf, salt) for i in range(n)}
    _write_headers(stores, headers)
    return Vault(vault_id, n, k, dict(enumerate(stores)), headers, {}, vmk,
                 positions={s.name: i for i, s in enumerate(stores)}, pk=pk,
                 unlocked_with=headers[0])


def _write_headers(stores: list[Store], headers: dict[int, VaultHeader]) -> None:
    def write(i: int) -> None:
        stores[i].put_bytes(vault_key(headers[i].vault_id), headers[i].to_bytes())

    results = parallel.each(write, list(headers))
    failures = {stores[i].name: (r.reason if isinstance(r, StoreError) else str(r))
                for i, r in zip(headers, results, strict=True) if isinstance(r, BaseException)}
    if failures:
        raise NotEnoughStores(len(headers) - len(failures), len(headers), failures,
                              what="write the vault header")


def change_password(vault: Vault, old: str, new: str, kdf: KdfParams | None = None) -> None:
    """Re-wrap the same master key: no data is rewritten."""
    if not new:
        raise CssmError("the new password must not be empty")
    vault.require_all_stores("change the password")
    vmk = vault.unlock(old)
    kdf = kdf or next(iter(vault.headers.values())).kdf
    salt = os.urandom(16)
    pk = password_key(new, salt, kdf)
    headers = {i: VaultHeader.seal(vmk, pk, vault.vault_id, vault.n, vault.k, i, kdf, salt)
               for i in range(vault.n)}
    stores = [vault.stores[i] for i in range(vault.n)]
    _write_headers(stores, headers)
    vault.headers = headers
    vault.pk, vault.unlocked_with = pk, headers[0]
