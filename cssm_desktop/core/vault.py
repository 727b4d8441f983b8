"""A vault: the stores that share one vault id, which index each holds, and the master key.

Which store holds which index is local state (the config's binding), never a store's
word: a store can write any header it likes, and one that knows the password can even
seal it. Before unlock nothing a header says is trusted; unlock authenticates every
header and checks it against the binding. See docs/SECURITY.md, "Store identity".
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import (
    SLOW,
    CssmError,
    FormatError,
    Locked,
    NotEnoughStores,
    NoVault,
    ObjectNotFound,
    StoreError,
    VaultError,
    WrongPassword,
)
from ..stores.base import Store
from . import parallel
from .format import VAULT_HEADER_LEN, VaultHeader, check_geometry
from .keys import KEY_LEN, MAX_DERIVATIONS, KdfParams, normalize_password, password_key
from .layout import id_from_key, new_id, vault_key
from .status import StoreState, StoreStatus

log = logging.getLogger(__name__)

# A store left behind as too slow is looked at again by a probe after this long.
SLOW_RECHECK = 60.0

# A store may hold other vaults (another prefix's, a test's); more than this many
# candidates on one store are not read, so a store cannot make opening slow.
MAX_VAULTS_PER_STORE = 8

FOREIGN = "foreign"


@dataclass(frozen=True)
class Binding:
    """Local record of the vault: its id and the index each configured store holds."""

    vault_id: bytes
    indexes: dict[str, int]     # store name -> vault index (0-based, as in FORMAT.md)
    # The vault's n and k as recorded here (None: not yet, a config of an older version):
    # once recorded, no header decides them.
    n: int | None = None
    k: int | None = None

    @property
    def shape(self) -> tuple[int, int] | None:
        return (self.n, self.k) if self.n is not None and self.k is not None else None


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
        if len(found) >= MAX_VAULTS_PER_STORE:
            break
    return found


def _read_header(store: Store, vault_id: bytes) -> VaultHeader | None:
    """The header under `<vault_id>/vault`, or None when the store holds none there."""
    try:
        raw = store.get_bytes(vault_key(vault_id), limit=4 * VAULT_HEADER_LEN)
    except ObjectNotFound:
        return None
    header = VaultHeader.parse(raw)
    if header.vault_id != vault_id:
        raise FormatError("vault header does not match its object name")
    return header


def _read_all(store: Store, binding: Binding | None) -> dict[bytes, VaultHeader | Exception]:
    """Every vault header the store holds (only the bound vault's when there is one)."""
    ids = [binding.vault_id] if binding else _vault_ids(store)
    out: dict[bytes, VaultHeader | Exception] = {}
    for vault_id in ids:
        try:
            header = _read_header(store, vault_id)
        except FormatError as exc:
            out[vault_id] = exc
            continue
        if header is not None:
            out[vault_id] = header
    return out


def _header_problem(header: VaultHeader, key: bytes, vmk: bytes,
                    shape: tuple[int, int] | None = None) -> str:
    """Why a header cannot be trusted as one of this vault's ('' when it can): it must
    open under the password key to this very master key and, once the vault's shape is
    known, agree about n and k."""
    try:
        opened = header.open_with_key(key)
    except WrongPassword:
        return "vault header failed authentication"
    if not hmac.compare_digest(opened, vmk):
        return "vault header holds another master key"
    return _shape_problem(header, shape)


def _shape_words(shape: tuple[int, int]) -> str:
    return f"{shape[1]} of {shape[0]}"


def _shape_problem(header: VaultHeader, shape: tuple[int, int] | None) -> str:
    """Why a header does not fit the vault's n and k ('' when it does, or none is known)."""
    if shape is None or (header.n, header.k) == shape:
        return ""
    return f"vault header says {header.k} of {header.n}, but this vault is " \
        f"{_shape_words(shape)}"


def settle_shape(claims: dict[str, tuple[int, int]], configured: int) -> tuple[int, int]:
    """The vault's (n, k) from authenticated headers, where nothing local records it.

    Up to k-1 stores may know the password and seal any n and k, so a shape is taken only
    when at least its k stores and at least half of the stores (of its n, or of those
    configured, whichever is more) sealed it, and more than sealed any other: k-1 insiders
    cannot reach that wherever they are fewer than half (k <= n/2 rounded up: 3 of 5,
    2 of 4), so at least one store that sealed it is the user's. Headers that say otherwise
    mark their stores damaged. Short of that the user decides (VaultError says what each
    store claims).
    """
    ranked = Counter(claims.values()).most_common()
    if ranked:
        (n, k), count = ranked[0]
        runner_up = ranked[1][1] if len(ranked) > 1 else 0
        if count >= k and 2 * count >= max(n, configured) and count > runner_up:
            return n, k
    said = "; ".join(
        ", ".join(sorted(name for name, s in claims.items() if s == shape))
        + f": {_shape_words(shape)}" for shape, _ in ranked)
    raise VaultError(
        "cannot tell how many stores this vault has and needs: the stores that opened "
        f"say {said}, and too few agree to be sure (a store that knows the password can "
        "claim anything). If you know the right numbers, write them into the config as "
        "vault_n and vault_k (for 3 of 5: vault_n = 5, vault_k = 3) and try again")


@dataclass
class Vault:
    """Opened from the public headers; `unlock` authenticates them and adds the master key."""

    vault_id: bytes
    n: int
    k: int
    stores: dict[int, Store]               # vault index -> Store (authenticated after unlock)
    headers: dict[int, VaultHeader]
    # Every configured store not in `stores`, with why: unreachable, damaged, foreign, empty.
    status: dict[str, StoreStatus] = field(default_factory=dict)
    vmk: bytes | None = None
    # store name -> index: the binding (from the config, or made at unlock on first use)
    bound: dict[str, int] = field(default_factory=dict)
    # Bound stores that hold no vault header (a replaced, empty disk): repair writes one.
    spare: dict[str, Store] = field(default_factory=dict)
    pk: bytes | None = None
    unlocked_with: VaultHeader | None = None
    # Every configured store and the header read from it (not trusted before unlock).
    members: dict[str, Store] = field(default_factory=dict)
    seen: dict[str, VaultHeader] = field(default_factory=dict)
    foreign: set[str] = field(default_factory=set)
    # Bound stores whose header needs writing again (failed, stale after a password change).
    reseal: dict[str, Store] = field(default_factory=dict)
    binding_changed: bool = False
    legacy: bool = False     # opened without any binding (a config from the first release)
    # (n, k) as recorded locally; None until settled (settle_shape) on a first unlock.
    shape: tuple[int, int] | None = None
    # Stores left behind as too slow -> when (time.monotonic()): not asked again at once.
    slow: dict[str, float] = field(default_factory=dict)
    _asking: set[str] = field(default_factory=set)   # header reads still running (probe)

    @property
    def id_hex(self) -> str:
        return self.vault_id.hex()

    @property
    def unavailable(self) -> dict[str, str]:
        """Store name -> why it is not in use, for messages."""
        return {name: st.reason for name, st in self.status.items()}

    def mark(self, name: str, state: StoreState, reason: str) -> None:
        self.status = {**self.status, name: StoreStatus(state, reason)}
        log.warning("store %s %s: %s", name, state.value, reason)

    def leave_behind(self, name: str, reason: str) -> None:
        """A store in use failed to keep up (too slow): out of use for this run, like one
        down at open; a probe after SLOW_RECHECK that finds it answering takes it back."""
        self.stores = {i: s for i, s in self.stores.items() if s.name != name}
        self.slow[name] = time.monotonic()
        self.mark(name, StoreState.UNREACHABLE, reason)

    def _use(self, index: int, store: Store, header: VaultHeader) -> None:
        """`store` holds `index` with this good header: in use, nothing pending for it.

        The maps are replaced, never changed in place: a store check may take a store back
        into use while a job on another thread is iterating them."""
        self.stores = {**self.stores, index: store}
        self.headers = {**self.headers, index: header}
        self.seen[store.name] = header
        self._forget(store.name)

    def _forget(self, name: str) -> None:
        self.spare.pop(name, None)
        self.reseal.pop(name, None)
        self.status = {k: v for k, v in self.status.items() if k != name}

    @property
    def binding(self) -> Binding:
        n, k = self.shape if self.shape is not None else (None, None)
        return Binding(self.vault_id, dict(self.bound), n, k)

    def store_name(self, index: int) -> str:
        store = self.stores.get(index)
        if store is not None:
            return store.name
        for name, pos in self.bound.items():
            if pos == index:
                return name
        return f"store #{index + 1}"

    # ---------------------------------------------------------------- open

    @classmethod
    def open(cls, stores: list[Store], binding: Binding | None = None,
             shape: tuple[int, int] | None = None) -> Vault:
        """Read each store's header. With a binding, only the bound vault's header is read
        and each store is taken only as the index bound to it; without one (a first
        connection, or a config from the first release) the vault most stores hold is
        chosen, and indexes are settled at unlock. `shape` is (n, k) as the user wrote it
        where no binding records it yet."""
        # Go on once enough stores answered: one that trickles its header is left behind.
        shape = binding.shape if binding and binding.shape else shape
        enough = shape[1] if shape else len(stores) // 2 + 1
        results = parallel.each(lambda s: _read_all(s, binding), stores, quorum=enough,
                                late=parallel.left_behind)
        status: dict[str, StoreStatus] = {}
        found: dict[str, dict[bytes, VaultHeader | Exception]] = {}
        slow = {}
        for store, res in zip(stores, results, strict=True):
            if isinstance(res, StoreError):
                if res.code == SLOW:
                    slow[store.name] = time.monotonic()
                status[store.name] = StoreStatus(StoreState.UNREACHABLE, res.reason)
                log.warning("store %s unreachable: %s", store.name, res.reason)
            elif isinstance(res, BaseException):
                raise res
            else:
                found[store.name] = res
        unavailable = {name: st.reason for name, st in status.items()}
        if binding is not None:
            vault_id = binding.vault_id
        else:
            votes = Counter(vid for headers in found.values() for vid, h in headers.items()
                            if isinstance(h, VaultHeader))
            if not votes:
                detail = "; ".join(f"{s}: {r}" for s, r in unavailable.items())
                raise NoVault("no vault found on any store" + (f" ({detail})" if detail else ""))
            ranked = votes.most_common()
            if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
                groups = "; ".join(
                    f"{vid.hex()[:8]}: " + ", ".join(sorted(
                        s for s, hs in found.items() if isinstance(hs.get(vid), VaultHeader)))
                    for vid, count in ranked if count == ranked[0][1])
                raise VaultError(f"the stores hold different vaults ({groups}); give each "
                                 "vault its own folders or buckets")
            vault_id = ranked[0][0]
        bound = dict(binding.indexes) if binding else {}
        vault = cls(vault_id, 0, 0, {}, {}, status, bound=bound,
                    members={s.name: s for s in stores}, legacy=binding is None,
                    shape=shape, slow=slow)
        for store in stores:
            if store.name not in found:
                continue
            res = found[store.name].get(vault_id)
            if res is None:
                vault._no_header(store)
            elif isinstance(res, Exception):
                vault.mark(store.name, StoreState.DAMAGED, f"vault header unreadable: {res}")
                if store.name in bound:   # repair writes it a good one
                    vault.reseal[store.name] = store
            elif store.name in bound and res.index != bound[store.name]:
                vault._foreign(store.name, res.index)
            elif _shape_problem(res, vault.shape):
                vault._damaged(store.name, _shape_problem(res, vault.shape))
                if store.name in bound:   # repair writes it a good one
                    vault.reseal[store.name] = store
            else:
                vault.seen[store.name] = res
        if not vault.seen:
            detail = "; ".join(f"{s}: {r}" for s, r in unavailable.items())
            raise VaultError(f"no store holds vault {vault_id.hex()[:8]}"
                             + (f" ({detail})" if detail else ""))
        vault._settle_provisionally()
        return vault

    def _no_header(self, store: Store) -> None:
        if store.name in self.bound:
            self.spare[store.name] = store
            self.mark(store.name, StoreState.EMPTY, "holds no vault (an empty replacement? "
                                                    "repair writes what belongs there)")
        else:
            self.mark(store.name, StoreState.EMPTY,
                      "holds no vault and is not part of this one")

    def _damaged(self, name: str, reason: str) -> None:
        self.mark(name, StoreState.DAMAGED, reason)

    def _foreign(self, name: str, claimed: int) -> None:
        self.foreign.add(name)
        bound = self.bound.get(name)
        where = f"store #{bound + 1}" if bound is not None else "a store of this vault"
        self.mark(name, StoreState.FOREIGN, f"it is {where} here but its header claims "
                                            f"store #{claimed + 1}; it is neither read nor "
                                            "written")

    def _settle_provisionally(self) -> None:
        """Before unlock: n and k as recorded (else as most headers say); stores at their
        bound index, or at an index only one unbound store claims. Unlock replaces all of
        this."""
        (self.n, self.k), _ = Counter((h.n, h.k) for h in self.seen.values()).most_common(1)[0]
        if self.shape is not None:
            self.n, self.k = self.shape
        claims = Counter(h.index for h in self.seen.values())
        self.stores, self.headers = {}, {}
        taken = set(self.bound.values())
        for name, header in self.seen.items():
            if name in self.bound or (claims[header.index] == 1 and header.index not in taken):
                self.stores[header.index] = self.members[name]
                self.headers[header.index] = header

    # ---------------------------------------------------------------- unlock

    def unlock(self, password: str) -> bytes:
        """Open the master key with the NFC form of the password (and, for vaults whose
        password was set before passwords were normalized, the form as typed)."""
        forms = [normalize_password(password)]
        if forms[0] != password:
            forms.append(password)
        for form in forms[:-1]:
            try:
                return self._unlock(form)
            except WrongPassword:
                continue
        return self._unlock(forms[-1])

    def _unlock(self, password: str) -> bytes:
        """Open the master key, then authenticate every header and settle the binding.

        The (salt, parameters) pair most stores hold is tried first, pairs beyond the KDF
        ceiling never, and at most MAX_DERIVATIONS Argon2id runs happen per unlock (a
        forged header cannot make unlock take minutes or gigabytes).
        """
        groups: dict[tuple[bytes, KdfParams], list[str]] = {}
        for name, header in self.seen.items():
            groups.setdefault(header.kdf_group, []).append(name)
        order = sorted(groups, key=lambda g: (-len(groups[g]), g[1].cost))
        keys: dict[tuple[bytes, KdfParams], bytes] = {}
        vmk = unlocked = None
        over = [g for g in order if not g[1].within_ceiling()]
        for group in order:
            if group in over or len(keys) >= MAX_DERIVATIONS:
                continue
            keys[group] = password_key(password, *group)
            # Every header of the group with that one key: a store that edited its own
            # header (n, k, index) must not be the one whose failure decides.
            for name in groups[group]:
                try:
                    vmk = self.seen[name].open_with_key(keys[group])
                except WrongPassword:
                    continue
                unlocked = self.seen[name]
                break
            if unlocked is not None:
                break
        if vmk is None or unlocked is None:
            if not keys and over:
                worst = max(over, key=lambda g: g[1].cost)[1]
                raise VaultError(f"the vault headers ask for Argon2id with {worst.memory_kib} "
                                 f"KiB and {worst.iterations} passes, beyond what this "
                                 "version accepts (a forged header, or a newer version's vault)")
            raise WrongPassword()
        return self._settle(vmk, unlocked, keys, over,
                            lambda group: password_key(password, *group))

    def held_key(self) -> tuple[tuple[bytes, KdfParams], bytes] | None:
        """The password key this unlock derived, with its (salt, parameters): what
        unlock_with_key takes to open the vault again without the password."""
        if self.vmk is None or self.pk is None or self.unlocked_with is None:
            return None
        return self.unlocked_with.kdf_group, self.pk

    def unlock_with_key(self, held: tuple[tuple[bytes, KdfParams], bytes]) -> bytes:
        """Unlock with a password key an earlier unlock of this vault derived (the
        stores' settings were saved: the password did not change). Every header is
        checked as unlock checks it; one sealed under other parameters cannot be, and is
        marked so (as when unlock would not derive for it)."""
        group, pk = held
        over = [g for g in {h.kdf_group for h in self.seen.values()}
                if not g[1].within_ceiling()]
        for name, header in self.seen.items():
            if header.kdf_group != group:
                continue
            try:
                vmk = header.open_with_key(pk)
            except WrongPassword:
                continue
            return self._settle(vmk, self.seen[name], {group: pk}, over, None)
        raise WrongPassword()

    def _settle(self, vmk: bytes, unlocked: VaultHeader,
                keys: dict[tuple[bytes, KdfParams], bytes],
                over: list[tuple[bytes, KdfParams]],
                derive: Callable[[tuple[bytes, KdfParams]], bytes] | None) -> bytes:
        """After the master key opened: authenticate every header, settle n and k and
        the binding. `derive`: a key for another (salt, parameters) pair, or None when
        no password is at hand."""
        authentic: dict[str, VaultHeader] = {}
        for name, header in self.seen.items():
            group = header.kdf_group
            if group in over:
                self._damaged(name, "vault header asks for key derivation beyond the limit")
                continue
            if group not in keys:
                # Another pair (a password change interrupted half-way) is derived only
                # at no more than the cost that unlocked: a stray header cannot make
                # unlock dearer than the vault itself.
                if derive is None or len(keys) >= MAX_DERIVATIONS \
                        or group[1].cost > unlocked.kdf.cost:
                    self._damaged(name, "vault header could not be checked (sealed under "
                                        "other password parameters)")
                    continue
                keys[group] = derive(group)
            problem = _header_problem(header, keys[group], vmk)
            if problem:
                self._damaged(name, problem)
            else:
                authentic[name] = header
        if self.shape is None:
            self.shape = settle_shape({name: (h.n, h.k) for name, h in authentic.items()},
                                      len(self.members))
            self.binding_changed = True
        for name, header in list(authentic.items()):
            problem = _shape_problem(header, self.shape)
            if problem:
                self._damaged(name, problem)
                del authentic[name]
        if not authentic:
            raise VaultError(f"no store holds a vault header of {_shape_words(self.shape)}, "
                             "as this vault was recorded here")
        # The header whose settings repair and new headers copy: one that agrees with the
        # vault, of the newest version any of them has (a store cannot talk it down).
        base = max(authentic.values(), key=lambda h: (h.version, h is unlocked))
        self.vmk, self.pk, self.unlocked_with = vmk, keys[base.kdf_group], base
        self.n, self.k = self.shape
        self._bind(authentic)
        return vmk

    def _bind(self, authentic: dict[str, VaultHeader]) -> None:
        """Bound stores keep their index; unbound ones with an authentic header are bound
        to the index it claims, unless another store holds or claims it too (trust on
        first use, refusing duplicates)."""
        self.stores, self.headers = {}, {}
        for name, index in list(self.bound.items()):
            if index >= self.n:
                self._damaged(name, f"bound to store #{index + 1}, but the vault has only "
                                    f"{self.n} stores")
                del self.bound[name]
        claims: dict[int, list[str]] = {}
        for name, header in authentic.items():
            if name not in self.bound:
                claims.setdefault(header.index, []).append(name)
        taken = {index: name for name, index in self.bound.items()}
        for index, names in sorted(claims.items()):
            if index in taken:
                for name in names:
                    self._foreign(name, index)
            elif len(names) > 1:
                for name in names:
                    self._damaged(name, f"claims store #{index + 1}, as does "
                                        f"{' and '.join(n for n in names if n != name)}; "
                                        "neither is used until one is replaced")
            else:
                self.bound[names[0]] = index
                taken[index] = names[0]
                self.binding_changed = True
                log.info("store %s bound as store #%d of vault %s", names[0], index + 1,
                         self.id_hex)
        if self.legacy:
            self._bind_empty_by_position(taken)
        base = self.unlocked_with
        assert base is not None
        for name, header in authentic.items():
            index = self.bound.get(name)
            if index is None or index != header.index:
                continue
            self._use(index, self.members[name], header)
            if header.kdf_group != base.kdf_group or header.version != base.version:
                self.reseal[name] = self.members[name]
        for name in self.bound:
            if name not in authentic and name not in self.spare and name in self.seen \
                    and name not in self.foreign:
                self.reseal[name] = self.members[name]   # failed authentication

    def _bind_empty_by_position(self, taken: dict[int, str]) -> None:
        """Configs from the first release recorded no binding; there the config order was
        the index, and an empty store at a free position was adopted by repair. Kept for
        those configs only: the order is the user's, not a store's word."""
        for position, (name, store) in enumerate(self.members.items()):
            status = self.status.get(name)
            holds_nothing = status is not None and status.state is StoreState.EMPTY
            if holds_nothing and position < self.n and position not in taken:
                self.bound[name] = position
                taken[position] = name
                self.spare[name] = store
                self.binding_changed = True
                self.mark(name, StoreState.EMPTY, f"holds no vault yet: store #{position + 1} "
                                                  "by its place in the config; repair writes "
                                                  "what belongs there")

    # ---------------------------------------------------------------- writes

    def heal_headers(self) -> list[str]:
        """Write the vault header to every bound store that lacks a good one (an empty
        replacement, a header that failed, one sealed before a password change). Each gets
        the header of the index bound to it, sealed with the key that unlocked; returns the
        names of the stores written."""
        if self.pk is None or self.vmk is None:
            raise CssmError("the vault is locked")
        base = self.unlocked_with
        assert base is not None
        healed = []
        for name, store in [*self.spare.items(), *self.reseal.items()]:
            index = self.bound.get(name)
            if index is None or index >= self.n or name in self.foreign:
                continue
            current = self.stores.get(index)
            if current is not None and current.name != name:
                continue
            header = VaultHeader.seal(self.vmk, self.pk, self.vault_id, self.n, self.k, index,
                                      base.kdf, base.salt, base.version)
            store.prepare()
            store.put_bytes(vault_key(self.vault_id), header.to_bytes())
            self._use(index, store, header)
            log.info("store %s: vault header written as store #%d of vault %s", name,
                     index + 1, self.id_hex)
            healed.append(name)
        return healed

    def replace(self, old: str, new: Store) -> int:
        """Bind `new` (a store holding no vault) to the index of `old`, and write its header.

        Returns the index. The store's parts and shares come with the next repair.
        """
        if self.pk is None or self.vmk is None:
            raise CssmError("the vault is locked")
        if old not in self.bound:
            raise VaultError(f"store {old!r} is not bound to this vault")
        if new.name in self.bound:
            raise VaultError(f"store {new.name!r} already holds store "
                             f"#{self.bound[new.name] + 1} of this vault")
        new.prepare()
        if _read_header(new, self.vault_id) is not None:
            raise VaultError(f"store {new.name!r} already holds a header of this vault; "
                             "replace a store only with an empty one")
        index = self.bound.pop(old)
        self._forget(old)
        self.foreign.discard(old)
        self.members.pop(old, None)
        self.stores.pop(index, None)
        self.bound[new.name] = index
        self.members[new.name] = new
        self.spare[new.name] = new
        self.binding_changed = True
        self.heal_headers()
        return index

    def writable(self, index: int) -> Store | None:
        """The store bound to `index` if it can be written: reachable, not foreign (its
        header may be missing or bad: writing that index's header there is safe)."""
        store = self.stores.get(index)
        if store is not None:
            return store
        for name, bound in self.bound.items():
            if bound == index and (name in self.spare or name in self.reseal):
                return self.members[name]
        return None

    # ---------------------------------------------------------------- a fresh look

    def probe(self) -> dict[str, StoreStatus]:
        """Each configured store as it is now: one small read of its vault header.

        Cheap enough for a timer. A store in use whose header still reads back the same is
        reachable; one that fails is unreachable; a header that vanished or changed is
        damaged (the store was wiped, or rewritten behind our back). A store that was down
        at open and is back with the very header it had, or (unlocked) one that
        authenticates under the key that unlocked, is taken into use again.
        """
        recent = time.monotonic() - SLOW_RECHECK
        # A store left behind is asked again after a while, and never while an earlier
        # read of it still hangs (each would hold a thread).
        members = [s for s in self.members.values() if s.name not in self._asking
                   and (s.name not in self.slow or self.slow[s.name] < recent)]

        def read(store: Store) -> VaultHeader | None:
            self._asking.add(store.name)
            try:
                return _read_header(store, self.vault_id)
            finally:
                self._asking.discard(store.name)

        results = parallel.each(read, members, quorum=max(1, self.k),
                                late=parallel.left_behind)
        asked = {s.name for s in members}
        now: dict[str, StoreStatus] = {
            name: self.status.get(name) or StoreStatus(
                StoreState.UNREACHABLE, "has not finished answering an earlier request")
            for name in self.members if name not in asked}
        for store, res in zip(members, results, strict=True):
            name = store.name
            if isinstance(res, StoreError) and res.code == SLOW:
                self.slow[name] = time.monotonic()
            in_use = any(s is store for s in self.stores.values())
            if isinstance(res, StoreError):
                now[name] = StoreStatus(StoreState.UNREACHABLE, res.reason)
            elif isinstance(res, FormatError):
                now[name] = StoreStatus(StoreState.DAMAGED, f"vault header unreadable: {res}")
            elif isinstance(res, BaseException):
                raise res
            elif res is None:
                now[name] = self.status.get(name) if not in_use and name in self.status \
                    else StoreStatus(StoreState.DAMAGED, "its vault header has gone (the "
                                                         "store was emptied or replaced)")
            elif in_use:
                same = self.seen.get(name)
                now[name] = StoreStatus(StoreState.REACHABLE, "") if same is not None and \
                    hmac.compare_digest(same.to_bytes(), res.to_bytes()) else StoreStatus(
                        StoreState.DAMAGED, "its vault header changed since the vault was "
                                            "opened (a password change elsewhere? lock and "
                                            "unlock)")
            elif self._readmit(name, store, res):
                now[name] = StoreStatus(StoreState.REACHABLE, "")
            elif self._back_while_locked(name, res):
                # It answers: saying "cannot reach" with a fresh time would be untrue.
                now[name] = StoreStatus(StoreState.REACHABLE, "answers again; in use again "
                                                              "once the vault is unlocked")
            else:
                now[name] = self.status.get(name) or StoreStatus(
                    StoreState.DAMAGED, "its vault header is not one this vault opened with")
        return now

    def _back_while_locked(self, name: str, header: VaultHeader) -> bool:
        """A store that was unreachable at open answers with a header at its bound index,
        while the vault is locked (it is taken in by the first probe after unlocking)."""
        status = self.status.get(name)
        return self.vmk is None and status is not None and \
            status.state is StoreState.UNREACHABLE and name not in self.foreign and \
            self.bound.get(name) == header.index

    def _readmit(self, name: str, store: Store, header: VaultHeader) -> bool:
        """A store that was unreachable at open, back with a header we can trust: use it.

        Only while unlocked (a locked vault takes it in at the next open or unlock), and
        only a header at the bound index, sealed under the key that unlocked, that passes
        the checks unlock makes of every header."""
        status = self.status.get(name)
        if status is None or status.state is not StoreState.UNREACHABLE \
                or name in self.foreign:
            return False
        if self.vmk is None or self.pk is None or self.unlocked_with is None:
            return False
        index = self.bound.get(name)
        if index is None or index != header.index or index in self.stores \
                or header.kdf_group != self.unlocked_with.kdf_group \
                or _header_problem(header, self.pk, self.vmk, (self.n, self.k)):
            return False
        self._use(index, store, header)
        log.info("store %s is reachable again; back in use as store #%d", name, index + 1)
        return True

    def require_key(self) -> bytes:
        if self.vmk is None:
            raise Locked("the vault is locked")
        return self.vmk

    def require_stores(self, need: int, what: str) -> list[int]:
        """The indexes of the stores in use now; NotEnoughStores if fewer than `need`."""
        have = sorted(i for i in self.stores if i < self.n)
        if len(have) < need:
            raise NotEnoughStores(len(have), need, self.unavailable, what=what)
        return have


def init_vault(stores: list[Store], k: int, password: str, kdf: KdfParams | None = None) -> Vault:
    """Write a new vault header to every store; refuses stores that already hold a vault."""
    n = len(stores)
    check_geometry(n, k)
    if not password:
        raise CssmError("the password must not be empty")
    kdf = kdf or KdfParams()
    password = normalize_password(password)

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
    return Vault(vault_id, n, k, dict(enumerate(stores)), headers, {}, vmk, shape=(n, k),
                 bound={s.name: i for i, s in enumerate(stores)}, pk=pk,
                 unlocked_with=headers[0], members={s.name: s for s in stores},
                 seen={s.name: headers[i] for i, s in enumerate(stores)}, binding_changed=True)


def _write_headers(stores: list[Store], headers: dict[int, VaultHeader]) -> None:
    def write(i: int) -> None:
        stores[i].put_bytes(vault_key(headers[i].vault_id), headers[i].to_bytes())

    results = parallel.each(write, list(headers))
    failures = parallel.reasons([stores[i].name for i in headers], results)
    if failures:
        raise NotEnoughStores(len(headers) - len(failures), len(headers), failures,
                              what="write the vault header")


def change_password(vault: Vault, new: str, kdf: KdfParams | None = None) -> None:
    """Re-wrap the same master key under a new password: no data is rewritten.

    The vault must be unlocked (with the old password). The cost is that of the header
    that unlocked, never below the defaults: a store cannot talk the vault down.
    """
    if not new:
        raise CssmError("the new password must not be empty")
    vmk = vault.require_key()
    targets = {i: vault.writable(i) for i in range(vault.n)}
    if any(store is None for store in targets.values()):
        ready = sum(store is not None for store in targets.values())
        raise NotEnoughStores(ready, vault.n, vault.unavailable, what="change the password")
    assert vault.unlocked_with is not None
    kdf = kdf or vault.unlocked_with.kdf.at_least(KdfParams())
    salt = os.urandom(16)
    pk = password_key(normalize_password(new), salt, kdf)
    headers = {i: VaultHeader.seal(vmk, pk, vault.vault_id, vault.n, vault.k, i, kdf, salt)
               for i in range(vault.n)}
    stores = [targets[i] for i in range(vault.n)]
    _write_headers(stores, headers)   # type: ignore[arg-type]
    for i, store in enumerate(stores):
        assert store is not None
        vault._use(i, store, headers[i])
    vault.pk, vault.unlocked_with = pk, headers[0]
