"""The one entry point both faces use: config + stores + vault + catalog, operation by operation.

Nothing here draws or prompts; the CLI and the GUI pass listeners and cancel tokens.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import logging
import math
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import BinaryIO

from . import config as cfgmod
from . import durable
from .catalog import (
    AT_RISK,
    LOST,
    MIN_ID_PREFIX,
    SAFE,
    Catalog,
    Entry,
    health_of,
    newest_per_name,
    worst,
)
from .config import Config
from .core import fetched, parallel
from .core.content import Content, open_content
from .core.fetched import FetchCache
from .core.format import S_DIR, S_FILE, S_LINK
from .core.gc import DEFAULT_GRACE_SECONDS, GcReport, collect_garbage
from .core.get import OpenedFile, open_file, restore_file, restore_to_stream
from .core.journal import RESUMABLE, Journal, Journals
from .core.keys import KdfParams, content_tag, content_tagger
from .core.pack import (
    PACK_FILES,
    PACK_TARGET,
    SMALL_FILE,
    PackInput,
    PackResult,
    entry_bytes,
    open_pack,
    put_pack,
    read_members,
    read_removals,
    record_removal,
    remove_records,
)
from .core.pack_format import Member
from .core.progress import (
    CancelToken,
    Checking,
    FileDone,
    FileFailed,
    FileProgress,
    FileStarted,
    Listener,
    Step,
    TreeProgress,
    ignore,
    waiting_for_stores,
)
from .core.put import DEFAULT_BLOCK_SIZE, StoredFile, open_source, put_file, store_content
from .core.remove import remove_everywhere
from .core.repack import repack
from .core.repair import RepairResult, repair_file
from .core.scan import scan
from .core.status import PieceState, StoreReport, StoresLook, StoreState, StoreStatus
from .core.vault import Vault, change_password, init_vault
from .core.verify import FileReport, verify_file
from .durable import DurableBatch, MadeAhead, temp_name
from .errors import (
    Cancelled,
    ConfigError,
    CssmError,
    DestinationExists,
    FormatError,
    InputError,
    IntegrityError,
    NotEnoughStores,
    NotFound,
    StoreError,
    log_text,
)
from .paths import (
    FILE,
    NOTHING_EXCLUDED,
    Excludes,
    Skipped,
    Source,
    check_stored_name,
    list_sources,
    printable,
    safe_parts,
    safe_relative,
)
from .snapshots.backup import BackupResult, run_backup
from .snapshots.follow import FollowResult, entries_of, follow
from .snapshots.history import History
from .snapshots.manifest import Record, Snapshot
from .snapshots.prune import ForgetPlan, ForgetResult, forget, plan_forget
from .snapshots.restore import restore_snapshot
from .snapshots.retention import Policy
from .stores import ratelimit
from .stores.base import Store
from .stores.factory import make_store

log = logging.getLogger(__name__)


@dataclass(frozen=True, repr=False)   # no repr: it would print a key
class HeldKey:
    vault_id: bytes
    group: tuple[bytes, KdfParams]
    pk: bytes


class Duplicate(Enum):
    """What a put does with a file whose name and content are already stored."""

    SKIP = "skip"          # the default: nothing is uploaded
    AGAIN = "again"        # store a second copy
    REPLACE = "replace"    # store it, then remove the older copies of that name


@dataclass(slots=True)   # one per file: not frozen, whose __init__ costs ~3 us more
class PutResult:
    source: str     # the path as given to the system (paths.Source.path)
    name: str
    stored: StoredFile | None = None
    error: CssmError | None = None
    skipped: str = ""                 # why it was left out (a link, a FIFO, a duplicate)
    duplicate_of: Entry | None = None
    replaced: tuple[str, ...] = ()    # ids of older copies removed (Duplicate.REPLACE)


HASH_CHUNK = 1024 * 1024


def sha256_of(source: Path | str, listener: Listener = ignore,
              cancel: CancelToken | None = None, name: str = "") -> bytes:
    """The plain SHA-256 of a local file, kept in memory only (it becomes a keyed tag).
    Says how far it got (Checking): a large file takes seconds, and the window showed an
    upload at 0 B/s meanwhile."""
    hasher = hashlib.sha256()
    with open_source(source) as fh:
        total = os.fstat(fh.fileno()).st_size
        done = 0
        try:
            while chunk := fh.read(HASH_CHUNK):
                hasher.update(chunk)
                done += len(chunk)
                if cancel is not None:
                    cancel.check()
                listener(Checking(name, done, total))
        except OSError as exc:
            raise InputError(f"cannot read {source}: {exc.strerror or exc}") from exc
    return hasher.digest()


def _stored_health(stored: StoredFile) -> tuple[str, str]:
    """(health, damaged) of what a put just wrote: at risk while a store that was down
    lacks its part (repair writes it when the store is back)."""
    return health_of(len(stored.missing), stored.n, stored.k), ",".join(stored.missing)


def _link_on_the_way(cwd: str, base: str, target: Path, seen: dict[str, bool]
                     ) -> str | None:
    """A symbolic link among the folders between the restore folder `base` and `target`
    (one a restore made from a stored link, say): writing through it could land anywhere.
    One look per folder (`seen` keeps them). `base` is absolute; relative targets are
    taken from `cwd` (abspath asked the system for it twice a file: 40,000 calls in a
    restore of 20,000 files)."""
    folder = os.path.dirname(os.path.normpath(os.path.join(cwd, target)))
    between = []
    while folder != base and folder.startswith(base + os.sep):
        between.append(folder)
        folder = os.path.dirname(folder)
    for path in reversed(between):
        if path not in seen:
            seen[path] = os.path.islink(path)
        if seen[path]:
            return path
    return None


def _make_folder(target: Path, mode: int, mtime_ns: int) -> Path:
    """An empty folder as stored: made (a file there: FileExistsError), its bits and
    time set when this restore made it."""
    try:
        os.mkdir(target)
    except FileExistsError:
        if not target.is_dir() or target.is_symlink():
            raise
        return target
    except FileNotFoundError:
        os.makedirs(target)
    os.chmod(target, mode & 0o777)
    os.utime(target, ns=(mtime_ns, mtime_ns))
    return target


def _make_link(target: Path, points_to: bytes, mtime_ns: int, force: bool) -> Path:
    """A symbolic link as stored (its target as it was, never looked at or followed);
    one already there is replaced only with `force`, a folder never."""
    if os.path.lexists(target):
        if target.is_dir() and not target.is_symlink():
            raise IsADirectoryError(str(target))
        if not force:
            raise FileExistsError(str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_name(target)
    os.symlink(points_to, os.fsencode(temp))
    try:
        with contextlib.suppress(NotImplementedError, OSError):
            os.utime(temp, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
        if force:
            os.replace(temp, target)
        else:
            os.link(temp, target, follow_symlinks=False)   # never replaces
    finally:   # moved by replace; still there after link or a failure
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    return target


def _iso_seconds(ns: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pack_label(members: list[Entry], pack_id: str) -> str:
    """How a pack shows in verify and repair: the files it holds, by name."""
    names = sorted(m.name for m in members)
    if len(names) == 1:
        return names[0]
    return f"{names[0]} and {len(names) - 1} more small files (stored together, " \
           f"pack {pack_id[:12]})"


class Engine:
    def __init__(self, config: Config, catalog_path: Path | None = None,
                 stores: list[Store] | None = None) -> None:
        """`stores` overrides the ones the config describes (tests use tuned clients)."""
        self.config = config
        self.catalog = Catalog(catalog_path or cfgmod.data_dir() / "catalog.sqlite")
        # A probe of how files are made durable is named here, never among restored files.
        durable.set_probe_home(self.catalog.path.parent)
        # Restored files get the permission bits they had when stored (`cssm get
        # --no-modes`: owner-only, as files stored before modes were recorded).
        self.restore_modes = True
        # One limit each way for the whole process (the uplink is one); the last engine
        # made sets it: the window makes a new one when Settings are saved.
        ratelimit.configure(config.upload_limit, config.download_limit)
        self._stores: list[Store] | None = stores
        # Files below this size go into packs (core/pack.py); 0 stores every file alone.
        self.small_file = SMALL_FILE
        self._broken: dict[str, str] = {}
        self._vault: Vault | None = None
        # The last fresh look at each store (check_stores), newer than the vault's open.
        self._checked: dict[str, StoreReport] = {}
        # Stores found down at some point of this run (a look, or a job they failed):
        # files they missed may be repaired once they are back (the window does).
        self.seen_down: set[str] = set()
        # The window's workers reach for the stores and the vault from several threads at
        # once; each is built once, under this lock (re-entrant: vault() needs stores).
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- stores and vault

    def retune(self, config: Config) -> None:
        """Take over new network settings while running (uploads go on): the limits,
        and how long a store that stops answering is waited for."""
        self.config = config
        ratelimit.configure(config.upload_limit, config.download_limit)
        for store in self._stores or []:
            outage = getattr(store, "outage", None)
            if outage is not None:
                outage.wait = config.outage_seconds

    @property
    def stores(self) -> list[Store]:
        with self._lock:
            if self._stores is None:
                made = []
                for sc in self.config.stores:
                    try:
                        made.append(make_store(
                            sc, folder=self.config.folder(sc) if sc.type == "folder" else None,
                            outage_wait=self.config.outage_seconds))
                    except StoreError as exc:
                        self._broken[sc.name] = exc.reason
                self._stores = made
            return self._stores

    def vault(self) -> Vault:
        with self._lock:
            if self._vault is None:
                vault = Vault.open(self.stores, self.config.binding(), self.config.shape)
                for name, reason in self._broken.items():   # could not even be set up
                    vault.status[name] = StoreStatus(StoreState.UNREACHABLE, reason)
                self._vault = vault
            return self._vault

    @property
    def unlocked(self) -> bool:
        return self._vault is not None and self._vault.vmk is not None

    def unlock(self, password: str) -> None:
        vault = self.vault()
        with self._lock:
            vault.unlock(password)
            self._keep_binding(vault)
        if len(vault.stores) < vault.n:
            # Stores down when the vault was opened may be back: a probe takes them in
            # (only an unlocked vault can check their headers), so the first put after
            # the unlock reaches every store there is. Not recorded as a look: what the
            # window shows comes from its own checks.
            with contextlib.suppress(CssmError):
                vault.probe()

    def _keep_binding(self, vault: Vault) -> None:
        """Record which store holds which index in the config (and its file, if it has one):
        from now on no store's word decides it."""
        if not vault.binding_changed and self.config.vault is not None:
            return
        self.config.record_binding(vault.binding)
        vault.binding_changed = False
        if self.config.path is None:
            return
        try:
            cfgmod.save_config(self.config, self.config.path)
        except (OSError, CssmError) as exc:
            log.warning("could not record the store binding in the config: %s",
                        type(exc).__name__)

    def lock(self) -> None:
        if self._vault is not None:
            # The password key too: it opens the master key again without the password.
            self._vault.vmk = None
            self._vault.pk = None

    def held_key(self) -> HeldKey | None:
        """While unlocked: what lets the same vault be unlocked again, without the
        password, by an engine built from edited settings (they locked the vault)."""
        vault = self._vault
        held = vault.held_key() if vault is not None else None
        return HeldKey(vault.vault_id, *held) if vault is not None and held else None

    def unlock_with(self, held: HeldKey) -> bool:
        """Unlock with a key an engine of the same vault held; False (still locked) if
        these stores hold another vault. Headers are checked as by unlock."""
        vault = self.vault()
        if not hmac.compare_digest(vault.vault_id, held.vault_id):
            return False
        with self._lock:
            vault.unlock_with_key((held.group, held.pk))
            self._keep_binding(vault)
        return True

    def init(self, password: str, kdf: KdfParams | None = None) -> Vault:
        stores = self.stores
        if self._broken:
            raise NotEnoughStores(len(stores), len(self.config.stores), self._broken,
                                  what="create the vault")
        self._vault = init_vault(stores, self.config.threshold, password, kdf)
        self._keep_binding(self._vault)
        return self._vault

    def change_password(self, new: str) -> None:
        """The vault must be unlocked (with the old password)."""
        change_password(self.vault(), new)

    def replace_store(self, old: str, new: str) -> int:
        """Bind the empty store `new` to the index of `old` and drop `old` from the config;
        the next repair fills it. Returns the index."""
        vault = self.vault()
        vault.require_key()
        target = next((s for s in self.stores if s.name == new), None)
        if target is None:
            raise ConfigError(f"no store named {new!r} in {self.config.where()}; add it first")
        try:   # (a store of the vault: vault.replace says so first)
            first = None if new in vault.bound else next(iter(target.list("")), None)
        except (StoreError, OSError):
            first = None   # not there yet, or not reachable: replace says which
        if first is not None:   # D2: a folder full of the user's files was taken
            raise InputError(f"store {new!r} is not empty (it holds {printable(first.key)}, "
                             "…): a replacement starts empty; give it an empty folder or "
                             "bucket")
        index = vault.replace(old, target)
        self.config.stores = [s for s in self.config.stores if s.name != old]
        self._stores = [s for s in self.stores if s.name != old]
        self._keep_binding(vault)
        return index

    def store_is_healthy(self, name: str) -> bool:
        """Reachable, bound, header good: replacing it would only put files at risk."""
        vault = self.vault()
        return any(s.name == name for s in vault.stores.values()) \
            and name not in vault.unavailable

    def test_stores(self) -> list[tuple[str, str, str | None]]:
        """(name, description, error or None) for every configured store."""
        stores = self.stores
        failed = parallel.reasons([s.name for s in stores],
                                  parallel.each(lambda s: s.check(), stores))
        out = [(s.name, s.describe(), failed.get(s.name)) for s in stores]
        out += [(name, "s3", reason) for name, reason in self._broken.items()]
        return out

    def check_stores(self, count_bytes: bool = False) -> StoresLook:
        """A fresh look at every configured store (one small read each; `count_bytes` also
        lists what this vault holds there). File health follows from it at once."""
        now = time.time()
        try:
            vault = self.vault()
        except CssmError as exc:   # no vault opened: each store says what it is, on its own
            reports = [self._look_without_vault(s, now) for s in self.stores] + [
                StoreReport(name, "s3", None, StoreState.UNREACHABLE, why, now)
                for name, why in self._broken.items()]
            return StoresLook(reports, {r.name: r.reason for r in reports}, 0, 0, exc)
        states = vault.probe()
        for name, reason in self._broken.items():
            states[name] = StoreStatus(StoreState.UNREACHABLE, reason)
        for store in self.stores:   # reads work, but a put would be refused there
            st = states.get(store.name)
            if st is not None and st.state is StoreState.REACHABLE:
                problem = store.write_problem(vault.id_hex)
                if problem:
                    states[store.name] = StoreStatus(StoreState.DAMAGED,
                                                     f"cannot be written: {problem}")
        held: dict[str, int | BaseException] = {}
        if count_bytes:
            reachable = [s for s in self.stores
                         if states.get(s.name, StoreStatus(StoreState.UNREACHABLE, "")).state
                         is StoreState.REACHABLE]
            counted = parallel.each(
                lambda s: sum(o.size for o in s.list(vault.id_hex + "/")), reachable)
            held = {s.name: c for s, c in zip(reachable, counted, strict=True)}
        reports = []
        kinds = {s.name: s.describe() for s in self.stores}
        for sc in self.config.stores:
            st = states.get(sc.name, StoreStatus(StoreState.UNREACHABLE, "not configured"))
            size = held.get(sc.name)
            reports.append(StoreReport(sc.name, kinds.get(sc.name, sc.type),
                                       vault.bound.get(sc.name), st.state, st.reason, now,
                                       size if isinstance(size, int) else None))
        with self._lock:
            self._checked = {r.name: r for r in reports}
        down = self.down(vault)
        self.seen_down |= set(down)
        return StoresLook(reports, down, vault.n, vault.k)

    @staticmethod
    def _look_without_vault(store: Store, now: float) -> StoreReport:
        try:
            store.children("")
        except StoreError as exc:
            return StoreReport(store.name, store.describe(), None, StoreState.UNREACHABLE,
                               exc.reason, now)
        return StoreReport(store.name, store.describe(), None, StoreState.EMPTY,
                           "reachable, holds no vault", now)

    def down(self, vault: Vault | None = None) -> dict[str, str]:
        """The vault's stores that are not usable now (name -> why), by the newest look:
        a fresh check if there was one, else what opening the vault found."""
        vault = vault or self.vault()
        out = {}
        for index in range(vault.n):
            name = vault.store_name(index)
            checked = self._checked.get(name)
            if checked is not None:
                if checked.state is not StoreState.REACHABLE:
                    out[name] = checked.reason
            elif index not in vault.stores:
                status = vault.status.get(name)
                out[name] = status.reason if status else "not reachable"
        return out

    # ---------------------------------------------------------------- files

    def entries(self) -> list[Entry]:
        """Stored files with the health the facts give now: the last verify or restore,
        made worse by any of the vault's stores that is down at this moment."""
        vault = self.vault()
        return self._as_now(vault, self.catalog.entries(vault.id_hex))

    def _as_now(self, vault: Vault, entries: list[Entry]) -> list[Entry]:
        down = set(self.down(vault))
        out = []
        for e in entries:
            recorded = set(e.damaged_stores)
            bad = recorded | down
            health = worst(e.health, health_of(len(bad), e.n, e.k))
            if health != e.health or bad != recorded:
                e = dataclasses.replace(e, health=health, damaged=",".join(sorted(bad)))
            out.append(e)
        return out

    def resolve(self, ref: str) -> Entry:
        vault = self.vault()
        matches = self._as_now(vault, self.catalog.find(vault.id_hex, ref))
        if not matches:
            short = len(ref) < MIN_ID_PREFIX and all(c in "0123456789abcdefABCDEF" for c in ref)
            raise NotFound(f"no stored file matches {printable(ref)}" + (
                f" (an id prefix needs at least {MIN_ID_PREFIX} hex digits)" if short else ""))
        if len({m.id for m in matches}) > 1:
            if {m.name for m in matches} == {ref}:
                # Versions of one name: the newest is the file (`cssm versions` lists
                # the others, each by its id).
                return max(matches, key=lambda m: (m.stored_at_ns, m.id))
            ids = ", ".join(m.id[:12] for m in matches)
            raise NotFound(f"{printable(ref)} matches several files ({ids}); give the id")
        return matches[0]

    def versions(self, name: str) -> list[Entry]:
        """Every stored copy of exactly this name, newest first."""
        vault = self.vault()
        named = self._as_now(vault, self._named(vault, name))
        return sorted(named, key=lambda e: (e.stored_at_ns, e.id), reverse=True)

    def select(self, refs: list[str], every: bool = False) -> tuple[list[Entry], bool]:
        """The files the refs name, and whether any ref named a folder.

        A ref is an id, an id prefix, a name, or a stored folder ("Photos" or "Photos/"):
        every file under it. Where one name was stored several times, the newest copy is
        the one a folder restore takes (they would land on one path); with `every`, all
        copies (what removing a folder removes)."""
        vault = self.vault()
        chosen: dict[str, Entry] = {}
        folder = False
        everything: list[Entry] | None = None
        for ref in refs:
            prefix = ref.strip("/") + "/"
            exact = [] if ref.endswith("/") else self.catalog.find(vault.id_hex, ref)
            if not exact:
                if everything is None:
                    everything = self._as_now(vault, self.catalog.entries(vault.id_hex))
                under = [e for e in everything if e.name.startswith(prefix)]
                if under:
                    folder = True
                    chosen.update((e.id, e) for e in (under if every
                                                      else newest_per_name(under)))
                    continue
            entry = self.resolve(ref)
            if every and entry.name == ref:   # a name: every version of it
                chosen.update((e.id, e) for e in self.versions(ref))
            chosen[entry.id] = entry
        return sorted(chosen.values(), key=lambda e: e.name), folder

    def put(self, paths: list[Path], listener: Listener = ignore,
            cancel: CancelToken | None = None, block_size: int = DEFAULT_BLOCK_SIZE,
            duplicates: Duplicate = Duplicate.SKIP, password: str | None = None,
            exclude: Excludes = NOTHING_EXCLUDED, links: bool = True) -> list[PutResult]:
        """Each file on its own: one unreadable file fails alone, the others are stored;
        links inside folders and special files are skipped with the reason. Small files
        go into packs (core/pack.py); results come in the order the files were listed.
        With `password`, the vault is unlocked while the paths are listed; what `exclude`
        matches is left out."""
        cancel = cancel or CancelToken()
        results: list[PutResult] = []
        own = self.own_folders()
        if password is None:
            listed = (list_sources([path], own, exclude=exclude, links=links)
                      for path in paths)
        else:
            listed = self._list_while_unlocking(paths, own, password, exclude, links)
        for sources, left_out in listed:
            for s in left_out:
                if s.asked:
                    log.warning("put failed: InputError (%s)", s.reason)   # no path in the log
                    results.append(PutResult(str(s.path), s.path.name,
                                             error=InputError(f"{s.path}: {s.reason}")))
                else:
                    results.append(PutResult(str(s.path), s.path.name, skipped=s.reason))
            results += self.put_sources(sources, listener, cancel, block_size, duplicates)
        return results

    def _list_while_unlocking(self, paths: list[Path], own: frozenset[str], password: str,
                              exclude: Excludes = NOTHING_EXCLUDED, links: bool = True
                              ) -> list[tuple[list[Source], list[Skipped]]]:
        """Argon2id (~0.2 s, the GIL released) and the headers' reads overlap the listing
        instead of coming first (a put of 2,000 small files: 0.87 -> 0.78 s median here,
        where Argon2id already keeps both cores busy). A wrong password still ends the put
        at once: the listing stops at its next folder."""
        stop = threading.Event()
        listed: list[tuple[list[Source], list[Skipped]]] = []
        failure: list[BaseException] = []

        def listing() -> None:
            try:
                for path in paths:
                    listed.append(list_sources([path], own, stop, exclude, links))
            except BaseException as exc:   # raised in the caller's thread below
                failure.append(exc)

        worker = threading.Thread(target=listing, name="cssm-list", daemon=True)
        worker.start()
        try:
            self.unlock(password)
        except BaseException:
            stop.set()
            worker.join()
            raise
        worker.join()
        if failure:
            raise failure[0]
        return listed

    def put_sources(self, sources: list[Source], listener: Listener = ignore,
                    cancel: CancelToken | None = None, block_size: int = DEFAULT_BLOCK_SIZE,
                    duplicates: Duplicate = Duplicate.SKIP) -> list[PutResult]:
        """Store listed files: large ones one by one, small ones gathered into packs of
        PACK_TARGET bytes. The result of each source, in the order given."""
        cancel = cancel or CancelToken()
        out: dict[int, PutResult] = {}
        batch: list[tuple[int, Source]] = []
        held = 0

        def flush() -> None:
            nonlocal held
            done = self.put_small([s for _, s in batch], listener, cancel, block_size,
                                  duplicates)
            out.update((pos, r) for (pos, _), r in zip(batch, done, strict=True))
            batch.clear()
            held = 0

        for pos, src in enumerate(sources):
            if cancel.cancelled:
                out[pos] = PutResult(src.path, src.name, error=Cancelled())
            elif src.size < self.small_file or src.kind != FILE:   # links, empty folders
                batch.append((pos, src))
                held += src.size
                if held >= PACK_TARGET or len(batch) >= PACK_FILES:
                    flush()
            else:
                out[pos] = self.put_one(Path(src.path), src.name, listener, cancel, block_size,
                                        duplicates)
        if batch:
            flush()
        return [out[pos] for pos in range(len(sources))]

    def put_small(self, sources: list[Source], listener: Listener = ignore,
                  cancel: CancelToken | None = None, block_size: int = DEFAULT_BLOCK_SIZE,
                  duplicates: Duplicate = Duplicate.SKIP) -> list[PutResult]:
        """Store small files as one pack (a file that cannot be read fails alone; a pack
        that cannot be stored fails them all and leaves nothing listed)."""
        vault = self.vault()
        cancel = cancel or CancelToken()
        results: dict[int, PutResult] = {}
        todo: list[PackInput] = []
        place: dict[int, int] = {}   # id() of a PackInput -> its position in `sources`
        known = {} if duplicates is Duplicate.AGAIN else \
            self.catalog.named_many(vault.id_hex, (s.name for s in sources))
        for pos, src in enumerate(sources):
            try:
                twin = None if src.name not in known else \
                    self.stored_copy(src.path, src.name, known[src.name], kind=src.kind)
            except InputError as exc:
                results[pos] = PutResult(src.path, src.name, error=exc)
                continue
            if twin is not None and duplicates is Duplicate.SKIP:
                results[pos] = PutResult(src.path, src.name, skipped="already stored "
                                         "with the same content", duplicate_of=twin)
            else:
                item = PackInput(src.path, src.name, src.kind)
                todo.append(item)
                place[id(item)] = pos
        try:
            with waiting_for_stores(listener, cancel):
                packed = put_pack(vault, todo, block_size=block_size, listener=listener,
                                  cancel=cancel, min_stores=self.config.put_min_stores) \
                    if todo else PackResult()
        except (InputError, StoreError, NotEnoughStores, Cancelled) as exc:
            log.warning("put of a pack failed: %s", log_text(exc))
            for item in todo:
                listener(FileFailed(item.name, str(exc)))
                results[place[id(item)]] = PutResult(item.source, item.name, error=exc)
            return [results[pos] for pos in range(len(sources))]
        for item, exc in packed.failed:
            listener(FileFailed(item.name, str(exc)))
            results[place[id(item)]] = PutResult(item.source, item.name, error=exc)
        if packed.stored is not None:
            pack = packed.stored
            self._note_down(dict(pack.left))
            tag_of = content_tagger(vault.require_key(), vault.vault_id)
            health, damaged = _stored_health(pack)
            pack_hex = pack.id_hex
            entries = []
            for item, m in packed.members:
                stored = StoredFile(m.member_id, m.name, m.size, m.mtime_ns,
                                    pack.stored_at_ns, m.sha256, pack.n, pack.k, m.size,
                                    pack.missing)
                file_hex = m.member_id.hex()
                entries.append(Entry(file_hex, m.name, m.size, m.mtime_ns, pack.stored_at_ns,
                                     tag_of(m.sha256).hex(), pack.n, pack.k, health, damaged,
                                     pack_hex))
                listener(FileDone(m.name, file_hex, m.size))
                results[place[id(item)]] = PutResult(item.source, item.name, stored=stored)
            self.catalog.add_many(vault.id_hex, entries)
            if duplicates is Duplicate.REPLACE:
                new = {e.id for e in entries}
                for item, _ in packed.members:
                    older = [e.id for e in self._named(vault, item.name) if e.id not in new]
                    self.remove_many(older)
                    pos = place[id(item)]
                    results[pos] = dataclasses.replace(results[pos], replaced=tuple(older))
            log.info("stored pack %s: %d small files, %d bytes", pack_hex, len(entries),
                     sum(e.size for e in entries))
        return [results[pos] for pos in range(len(sources))]

    def own_folders(self) -> frozenset[str]:
        """Folders a put never takes: the folder stores' roots and the app's own data."""
        roots = [s.root for s in self.stores if isinstance(getattr(s, "root", None), Path)]
        roots += [cfgmod.data_dir(), cfgmod.log_dir(), self.catalog.path.parent]
        return frozenset(os.path.realpath(r) for r in roots)

    def stored_copy(self, source: Path | str, name: str, named: list[Entry] | None = None,
                    listener: Listener = ignore, cancel: CancelToken | None = None,
                    kind: str = FILE) -> Entry | None:
        """An entry with this name and the same content (keyed tag), if there is one.

        Only files whose name is already stored are read for this, so a put of new files
        costs no extra pass. `named`: the copies of this name, when already looked up."""
        vault = self.vault()
        same_name = [e for e in (self._named(vault, name) if named is None else named)
                     if e.tag]
        if not same_name:
            return None
        if kind == FILE:
            digest = sha256_of(source, listener, cancel, name)
        else:   # a link's target, a folder's nothing: what its pack holds of it
            got = entry_bytes(str(source), kind)
            if isinstance(got, InputError):
                raise got
            digest = hashlib.sha256(got[0]).digest()
        tag = content_tag(vault.require_key(), vault.vault_id, digest).hex()
        return next((e for e in same_name if hmac.compare_digest(e.tag, tag)), None)

    def _named(self, vault: Vault, name: str) -> list[Entry]:
        """The stored copies of exactly this name (find() also takes id prefixes)."""
        return self.catalog.named(vault.id_hex, name)

    def put_one(self, source: Path, name: str, listener: Listener = ignore,
                cancel: CancelToken | None = None, block_size: int = DEFAULT_BLOCK_SIZE,
                duplicates: Duplicate = Duplicate.SKIP) -> PutResult:
        vault = self.vault()
        cancel = cancel or CancelToken()
        try:
            if duplicates is not Duplicate.AGAIN:
                twin = self.stored_copy(source, name, listener=listener, cancel=cancel)
                if twin is not None and duplicates is Duplicate.SKIP:
                    return PutResult(str(source), name, skipped="already stored with the same "
                                     "content", duplicate_of=twin)
            # k is the vault's (its headers say it), not what the config says today.
            with waiting_for_stores(listener, cancel):
                stored = put_file(vault, source, name, block_size=block_size,
                                  listener=listener, cancel=cancel,
                                  min_stores=self.config.put_min_stores,
                                  journals=self.journals())
        except (InputError, StoreError, NotEnoughStores, Cancelled) as exc:
            listener(FileFailed(name, str(exc)))
            log.warning("put failed: %s", log_text(exc))   # no name or path in the log
            return PutResult(str(source), name, error=exc)
        except CssmError as exc:
            listener(FileFailed(name, str(exc)))
            raise
        self._listed(vault, stored)
        replaced: tuple[str, ...] = ()
        if duplicates is Duplicate.REPLACE:
            older = [e.id for e in self._named(vault, name) if e.id != stored.id_hex]
            for old in older:
                self.remove(old)
            replaced = tuple(older)
        return PutResult(str(source), name, stored=stored, replaced=replaced)

    def _listed(self, vault: Vault, stored: StoredFile) -> Entry:
        """A file just stored, in the catalog (and the log: ids and sizes, never a name
        or a path)."""
        self._note_down(dict(stored.left))
        tag = content_tag(vault.require_key(), vault.vault_id, stored.sha256).hex()
        entry = Entry(stored.id_hex, stored.name, stored.size, stored.mtime_ns,
                      stored.stored_at_ns, tag, stored.n, stored.k, *_stored_health(stored))
        self.catalog.add(vault.id_hex, entry)
        log.info("stored file %s: %d bytes, %d of %d stores%s", stored.id_hex, stored.size,
                 stored.n - len(stored.missing), stored.n,
                 f" (at risk: {', '.join(stored.missing)})" if stored.missing else "")
        return entry

    def put_stream(self, stream: BinaryIO, name: str, size: int, mtime_ns: int | None = None,
                   listener: Listener = ignore, cancel: CancelToken | None = None) -> Entry:
        """`size` bytes read from `stream` (a network body: never on disk) stored under
        `name`. A stream that ends early or runs long stores nothing (InputError)."""
        check_stored_name(name)
        vault = self.vault()
        cancel = cancel or CancelToken()
        with waiting_for_stores(listener, cancel):
            stored = store_content(vault, stream, "the upload", name, size,
                                   time.time_ns() if mtime_ns is None else mtime_ns,
                                   listener=listener, cancel=cancel,
                                   min_stores=self.config.put_min_stores, mode=0o600)
        return self._listed(vault, stored)

    def open_content(self, entry: Entry, cancel: CancelToken | None = None) -> Content:
        """Its size and SHA-256 now, its checked bytes as they are read (core/content.py)."""
        self.vault().require_key()
        return open_content(self.vault(), entry.id, entry.pack, cancel)

    def get_to_stream(self, entry: Entry, stream: BinaryIO, listener: Listener = ignore,
                      cancel: CancelToken | None = None) -> None:
        """One file's bytes to an open stream (standard output), checked as a restore is;
        a failure part-way raises after what was written."""
        vault = self.vault()
        cancel = cancel or CancelToken()
        if entry.pack:
            pack = open_pack(vault, bytes.fromhex(entry.pack), listener, cancel)
            member = pack.member(bytes.fromhex(entry.id))
            if member is None:
                raise NotFound(f"{printable(entry.name)} is no longer in its pack; `cssm "
                               "catalog rebuild` updates the list")
            if member.kind != S_FILE:
                raise InputError(f"{printable(entry.name)} is a "
                                 f"{'folder' if member.kind == S_DIR else 'link'}, not a "
                                 "file: restore it into a folder")
            for _m, data in read_members(vault, pack, [member], listener, cancel):
                if isinstance(data, IntegrityError):
                    raise data
                stream.write(data)
            stream.flush()
            return
        opened = open_file(vault, bytes.fromhex(entry.id), listener)
        restore_to_stream(vault, opened, stream, listener, cancel)

    def get(self, entry: Entry, dest: str | Path | None = None, force: bool = False,
            listener: Listener = ignore, cancel: CancelToken | None = None) -> Path:
        vault = self.vault()
        target = self.destination(entry.name, dest)
        if target.is_dir():
            raise DestinationExists(str(target), folder=True)
        if entry.pack:
            ((_, got),) = self._get_members(vault, entry.pack, [(entry, target)], force,
                                            listener, cancel, events=True)
            if isinstance(got, BaseException):
                raise got
            return got
        try:
            opened = open_file(vault, bytes.fromhex(entry.id), listener)
        except NotEnoughStores as exc:
            # What a restore just found is a fact: the list must not keep saying "safe".
            self.catalog.set_health(vault.id_hex, entry.id, *self._health_after_failure(
                vault, exc, entry.k))
            raise
        try:
            path = restore_file(vault, opened, target, overwrite=force, listener=listener,
                                cancel=cancel, cache=self._fetch_cache(vault, opened),
                                modes=self.restore_modes)
        finally:
            self._health_after_restore(vault, entry.id, opened.damaged, opened.header.k)
        return path

    def _fetch_cache(self, vault: Vault, opened: OpenedFile) -> FetchCache | None:
        """Where a restore keeps what far stores sent (core/fetched.py): for large files
        with parts on S3 stores; a vault of folders keeps nothing."""
        far = {i for i, s in vault.stores.items() if s.resumable}
        if opened.box.size < RESUMABLE or not far:
            return None
        folder = self.catalog.path.parent / "downloads" / vault.id_hex
        fetched.sweep(folder)
        return FetchCache(folder / opened.file_id.hex(), far)

    def _health_after_failure(self, vault: Vault, exc: CssmError, k: int
                              ) -> tuple[str, set[str]]:
        """(health, damaged stores) to record when a file could not be opened. Stores that
        were not in use (down, unreachable, left behind) are noted as down, not recorded
        against the file: its health follows them live and comes back with them (a file
        marked lost while three stores were away stayed lost after they came back)."""
        away = vault.unavailable
        self._note_down(away)
        bad = set(getattr(exc, "failures", {})) - set(self.down(vault)) - set(away)
        return (health_of(len(bad), vault.n, k) if bad or away else LOST), bad

    def _health_after_restore(self, vault: Vault, stored_id: str, damaged: dict[str, str],
                              k: int, pack: bool = False) -> None:
        members = {vault.store_name(i) for i in range(vault.n)} - set(self.down(vault))
        bad = sorted(s for s in damaged if s in members)
        health = health_of(len(bad), vault.n, k)
        if pack:
            self.catalog.set_health_of_pack(vault.id_hex, stored_id, health, bad)
        else:
            self.catalog.set_health(vault.id_hex, stored_id, health, bad)

    def get_many(self, entries: list[Entry], dest: str | Path, force: bool = False,
                 listener: Listener = ignore, cancel: CancelToken | None = None,
                 password: str | None = None, targets: list[Path] | None = None
                 ) -> list[tuple[Entry, Path | CssmError]]:
        """Restore many files under `dest` (a folder, made if missing; `targets`: the
        caller's tree_targets of them): one progress line for the whole tree; small files
        come out of each pack in one read, into files made ahead
        (durable.MadeAhead). Each file's own failure is in its row; a cancel stops the
        whole job. With `password`, the vault is unlocked while the first files are made
        (a wrong password leaves nothing behind)."""
        cancel = cancel or CancelToken()
        if targets is None:
            targets = self.tree_targets(entries, dest)
        out: dict[str, Path | CssmError] = {}
        plan: list[tuple[Entry, Path]] = []
        links: dict[str, bool] = {}
        cwd = os.getcwd()
        base = os.path.normpath(os.path.join(cwd, dest))
        for e, target in zip(entries, targets, strict=True):
            through = _link_on_the_way(cwd, base, target, links)
            if through is not None:   # (a link restored earlier): never written through
                out[e.id] = InputError(f"not restored: {printable(through)} is a symbolic "
                                       f"link on the way to {printable(str(target))}")
            # Small files find a folder in their way when they are named (_get_members).
            elif not e.pack and target.is_dir():
                out[e.id] = DestinationExists(str(target), folder=True)
            else:
                plan.append((e, target))
        by_pack: dict[str, list[tuple[Entry, Path]]] = {}
        for e, target in plan:
            if e.pack:
                by_pack.setdefault(e.pack, []).append((e, target))
        with MadeAhead([t for wanted in by_pack.values() for _, t in wanted]) as made:
            if password is not None:
                self.unlock(password)
            vault = self.vault()
            vault.require_key()
            tree = TreeProgress(listener, f"{len(entries)} files",
                                sum(e.size for e in entries))
            for pack_id, wanted in by_pack.items():
                cancel.check()
                for e, got in self._get_members(vault, pack_id, wanted, force, tree, cancel,
                                                made=made):
                    out[e.id] = got
        for e, target in plan:
            if e.pack:
                continue
            cancel.check()
            try:
                out[e.id] = self.get(e, target, force=force, listener=tree, cancel=cancel)
                tree.finished(e.size)
            except (DestinationExists, NotEnoughStores, IntegrityError, StoreError,
                    FormatError, InputError, NotFound) as exc:
                out[e.id] = exc
        tree.close()
        failed = sum(not isinstance(got, Path) for got in out.values())
        log.info("restored %d of %d files (%d bytes)%s", len(out) - failed, len(entries),
                 sum(e.size for e in entries if isinstance(out.get(e.id), Path)),
                 f"; {failed} failed" if failed else "")
        return [(e, out[e.id]) for e in entries]

    def _get_members(self, vault: Vault, pack_id: str, wanted: list[tuple[Entry, Path]],
                     force: bool, listener: Listener, cancel: CancelToken | None,
                     events: bool = False, made: MadeAhead | None = None
                     ) -> list[tuple[Entry, Path | CssmError]]:
        """Small files of one pack: the pack's index once, then the stripes that hold them;
        each is checked against its SHA-256 and written atomically, made durable in
        batches (durable.DurableBatch)."""
        out: dict[str, Path | CssmError] = {}
        try:
            pack = open_pack(vault, bytes.fromhex(pack_id), listener, cancel)
        except NotEnoughStores as exc:
            self.catalog.set_health_of_pack(vault.id_hex, pack_id, *self._health_after_failure(
                vault, exc, wanted[0][0].k))
            return [(e, exc) for e, _ in wanted]
        except (StoreError, FormatError, IntegrityError, NotFound) as exc:
            return [(e, exc) for e, _ in wanted]
        found: dict[bytes, tuple[Member, Entry, Path]] = {}
        for e, target in wanted:
            m = pack.member(bytes.fromhex(e.id))
            if m is None:
                out[e.id] = NotFound(f"{printable(e.name)} is no longer in its pack (removed "
                                     "on another machine?); `cssm catalog rebuild` updates "
                                     "the list")
            else:
                found[m.member_id] = (m, e, target)
        finished = getattr(listener, "finished", None)
        batch = DurableBatch(made=made)

        def ended(mid: object, got: Path | OSError) -> None:
            _, e, target = found[bytes(mid)]   # the member ids batch.add was given
            if isinstance(got, NotADirectoryError):
                out[e.id] = InputError(f"cannot write {target}: a file is in the way of its "
                                       "folder")
            elif isinstance(got, (FileExistsError, IsADirectoryError)):
                out[e.id] = DestinationExists(str(target), folder=target.is_dir())
            elif isinstance(got, OSError):
                out[e.id] = InputError(f"cannot write {target}: {got.strerror or got}")
            else:
                out[e.id] = got
                if finished is not None:
                    finished(e.size)
                if events:
                    listener(FileProgress(e.name, e.size, e.size))
                    listener(FileDone(e.name, e.id, e.size))

        try:
            chosen = [m for m, _, _ in found.values()]
            links: list[tuple[Member, Path, bytes]] = []
            for m, data in read_members(vault, pack, chosen, listener, cancel):
                _, e, target = found[m.member_id]
                if isinstance(data, IntegrityError):
                    out[e.id] = data
                    continue
                if events:
                    listener(FileStarted(e.name, e.size))
                if m.kind == S_LINK:   # made last: no file of this restore goes through one
                    links.append((m, target, data))
                    continue
                if m.kind == S_DIR:
                    try:
                        ended(m.member_id, _make_folder(target, m.mode if self.restore_modes
                                                        else 0o700, m.mtime_ns))
                    except OSError as exc:
                        ended(m.member_id, exc)
                    continue
                batch.add(m.member_id, target, data, m.mtime_ns, overwrite=force,
                          mode=m.mode if self.restore_modes else -1)
                for mid, got in batch.drain():
                    ended(mid, got)
            for mid, got in batch.close():
                ended(mid, got)
            for m, target, data in links:
                try:
                    ended(m.member_id, _make_link(target, data, m.mtime_ns, force))
                except OSError as exc:
                    ended(m.member_id, exc)
        except (NotEnoughStores, StoreError, FormatError) as exc:
            batch.discard()
            for e, _ in wanted:
                out.setdefault(e.id, exc)
        except BaseException:
            batch.discard()
            raise
        finally:
            self._health_after_restore(vault, pack_id, pack.opened.damaged,
                                       pack.opened.header.k, pack=True)
        return [(e, out[e.id]) for e, _ in wanted]

    @staticmethod
    def tree_targets(entries: list[Entry], folder: str | Path) -> list[Path]:
        """Where each file of a tree restore goes: under `folder`, its stored name's
        folders kept (one rule for cssm get, the restore dialog and get_many; ~7 us a
        file, where `destination` looks at the folder each time)."""
        base = Path(folder)
        return [base.joinpath(*safe_parts(e.name)) for e in entries]

    @staticmethod
    def destination(name: str, dest: str | Path | None) -> Path:
        """Where a stored file goes: into `dest` if it is a folder (or is written as one,
        with a trailing slash, and created), else to `dest` itself."""
        rel = safe_relative(name)
        if dest is None:
            return Path.cwd() / rel
        as_folder = str(dest).endswith(("/", os.sep))
        dest = Path(dest)
        if as_folder or dest.is_dir():
            return dest / rel
        return dest

    def verify(self, ids: list[str] | None = None, listener: Listener = ignore,
               cancel: CancelToken | None = None) -> list[tuple[Entry, FileReport | CssmError]]:
        """Each file's report, or why it could not be checked; health goes to the catalog."""
        return self._verify_rows(self._selection(ids), listener, cancel)

    def verify_slice(self, share: float, listener: Listener = ignore,
                     cancel: CancelToken | None = None
                     ) -> list[tuple[Entry, FileReport | CssmError]]:
        """The next `share` of every stored object (files, packs, snapshots), in id
        order from where the last slice ended: run after each backup, with share =
        interval / 30 days, everything is read back within a month."""
        rows = sorted(self._selection(None), key=lambda e: e.id)
        if not rows:
            return []
        history = self.history()
        cursor = history.get_value("verify_cursor")
        count = max(1, min(len(rows), math.ceil(len(rows) * share)))
        start = next((i for i, e in enumerate(rows) if e.id > cursor), 0)
        chosen = [rows[(start + i) % len(rows)] for i in range(count)]
        out = self._verify_rows(chosen, listener, cancel)
        history.set_value("verify_cursor", chosen[-1].id)
        return out

    def _verify_rows(self, selection: list[Entry], listener: Listener,
                     cancel: CancelToken | None
                     ) -> list[tuple[Entry, FileReport | CssmError]]:
        vault = self.vault()
        out: list[tuple[Entry, FileReport | CssmError]] = []
        for done, entry in enumerate(selection):
            if cancel:
                cancel.check()
            listener(Step("verify", done, len(selection), entry.name))
            try:
                report = verify_file(vault, bytes.fromhex(entry.id), listener, cancel)
            except (NotEnoughStores, FormatError) as exc:
                self._set_health(vault, entry, *self._health_after_failure(vault, exc, entry.k))
                out.append((entry, exc))
                continue
            self._record_report(vault, entry, report)
            out.append((entry, report))
        listener(Step("verify", len(selection), len(selection)))
        return out

    def repair(self, ids: list[str] | None = None, listener: Listener = ignore,
               cancel: CancelToken | None = None
               ) -> tuple[list[str], list[tuple[Entry, RepairResult | CssmError]]]:
        """Adopt empty replacement stores, then rebuild what is bad; (adopted, results)."""
        vault = self.vault()
        adopted = vault.heal_headers()
        out: list[tuple[Entry, RepairResult | CssmError]] = []
        selection = self._selection(ids)
        for done, entry in enumerate(selection):
            if cancel:
                cancel.check()
            listener(Step("repair", done, len(selection), entry.name))
            try:
                result = repair_file(vault, bytes.fromhex(entry.id), listener, cancel)
            except (NotEnoughStores, StoreError, FormatError, IntegrityError) as exc:
                out.append((entry, exc))
                continue
            self._record_report(vault, entry, result.after)
            out.append((entry, result))
        listener(Step("repair", len(selection), len(selection)))
        return adopted, out

    def journals(self) -> Journals:
        """This vault's unfinished uploads on this machine (beside the catalog)."""
        vault = self.vault()
        return Journals(self.catalog.path.parent / "uploads" / vault.id_hex,
                        vault.require_key(), vault.vault_id)

    @property
    def can_resume(self) -> bool:
        """Whether an interrupted upload can go on later: some store keeps unfinished
        uploads (S3); a vault of folders writes a part again."""
        return any(getattr(s, "resumable", False) for s in self.stores)

    def unfinished_count(self) -> int:
        """How many unfinished uploads this machine holds for the vault (no key needed)."""
        folder = self.catalog.path.parent / "uploads" / self.vault().id_hex
        try:
            return sum(1 for _ in folder.glob("*.json"))
        except OSError:
            return 0

    def unfinished(self) -> list[Journal]:
        """Uploads an interrupted put left, oldest first: the same put goes on with them."""
        return sorted(self.journals().all(), key=lambda j: j.started)

    def discard_unfinished(self, journal: Journal) -> dict[str, str]:
        """Remove an unfinished upload's parts from the stores now; stores that could not
        be reached -> why (gc removes what is left there later)."""
        return self.journals().discard(journal, self.vault())

    def gc(self, grace_seconds: float = DEFAULT_GRACE_SECONDS, dry_run: bool = False,
           listener: Listener = ignore, cancel: CancelToken | None = None) -> GcReport:
        """Orphans and interrupted uploads (core/gc.py), then packs whose removed share
        passed the threshold are rewritten (core/repack.py) and the catalog follows.
        Uploads an unfinished put on this machine can go on with are listed, not removed."""
        vault = self.vault()
        report = collect_garbage(vault, grace_seconds, dry_run, listener=listener,
                                 cancel=cancel, resumable=self.journals().upload_ids())
        if vault.unavailable and not dry_run:
            return report   # a repack stores a new pack: it needs every store
        report.repacked = repack(vault, dry_run, listener=listener, cancel=cancel)
        for r in report.repacked:
            if not r.done:
                continue
            if r.new is not None:
                self.catalog.move_to_pack(vault.id_hex, [m.hex() for m in r.kept], r.new)
            # The old pack is gone: what the catalog still lists in it (removed on another
            # machine) can no longer be restored from anywhere.
            for entry in self.catalog.in_pack(vault.id_hex, r.old):
                self.catalog.remove(vault.id_hex, entry.id)
        return report

    def _selection(self, ids: list[str] | None) -> list[Entry]:
        """What verify and repair work on: files stored alone, and each pack once (a row
        that stands for every file in it; its id is the pack's, and so is its `pack`)."""
        # Ids, names and folders, as get takes them (a folder was refused here).
        entries = self.select(ids, every=True)[0] if ids else self.entries()
        out: list[Entry] = []
        packs: dict[str, list[Entry]] = {}
        for e in entries:
            if e.pack:
                packs.setdefault(e.pack, []).append(e)
            else:
                out.append(e)
        for pack_id, members in packs.items():
            members = self.catalog.in_pack(self.vault().id_hex, pack_id) or members
            out.append(dataclasses.replace(members[0], id=pack_id, pack=pack_id,
                                           name=pack_label(members, pack_id),
                                           size=sum(m.size for m in members),
                                           files=len(members)))
        if not ids:   # everything: the snapshots too (objects like files, FORMAT.md 6b)
            out += self._snapshot_rows()
        return sorted(out, key=lambda e: e.name)

    def _snapshot_rows(self) -> list[Entry]:
        history = self.history()
        health = history.health()
        rows = []
        for snap in history.snapshots():
            state, damaged, n, k = health.get(snap.id, (SAFE, "", self.vault().n, 1))
            rows.append(Entry(snap.id, f"snapshot of {snap.root} at "
                              f"{_iso_seconds(snap.time_ns)}", snap.size, snap.time_ns,
                              snap.time_ns, "", n, k, state, damaged, files=0))
        return rows

    def shown_id(self, entry: Entry) -> str:
        """The id a person knows a row of verify or repair by: a pack that holds one file
        is that file (its own id), a pack of several is the pack."""
        if entry.pack and entry.pack == entry.id and entry.files == 1:
            members = self.catalog.in_pack(self.vault().id_hex, entry.id)
            if len(members) == 1:
                return members[0].id
        return entry.id

    def _set_health(self, vault: Vault, entry: Entry, health: str, bad: Iterable[str]
                    ) -> None:
        if entry.files == 0:   # a snapshot's row (_snapshot_rows)
            History(self.catalog, vault.id_hex).set_health(entry.id, health, bad)
        elif entry.pack and entry.pack == entry.id:   # a pack's row: every file in it
            self.catalog.set_health_of_pack(vault.id_hex, entry.id, health, bad)
        else:
            self.catalog.set_health(vault.id_hex, entry.id, health, bad)

    def _record_report(self, vault: Vault, entry: Entry, report: FileReport) -> None:
        """The catalog keeps what is wrong with the file's own parts; a store that could
        not be reached is noted as down (health follows it live, and comes back with it)."""
        down = {c.store: c.problem for c in report.checks
                if c.state is PieceState.UNREACHABLE}
        self._note_down(down)
        self._note_up({c.store for c in report.checks if c.ok})
        bad = [c.store for c in report.checks if not c.ok and c.store not in down]
        if report.healthy or not down:
            health = SAFE if report.healthy else AT_RISK if report.restorable else LOST
        else:
            health = health_of(len(bad), vault.n, report.opened.header.k)
        self._set_health(vault, entry, health, bad)

    def note_silent(self, name: str) -> StoresLook | None:
        """A job waits for `name`, which stopped answering: the look at the stores says it
        is down from now (it is not "reachable" because an earlier look found it so)."""
        self._note_down({name: "not answering; uploads wait for it"})
        return self.look()

    def note_answering(self, name: str) -> StoresLook | None:
        """A store a job waited for answers again."""
        self._note_up({name})
        return self.look()

    def look(self) -> StoresLook | None:
        """The newest look at the stores, from what checks and jobs found (no new check);
        None before any."""
        vault = self._vault
        with self._lock:
            reports = [self._checked[sc.name] for sc in self.config.stores
                       if sc.name in self._checked]
        if vault is None or len(reports) != len(self.config.stores):
            return None
        return StoresLook(reports, self.down(vault), vault.n, vault.k)

    def _note_down(self, down: dict[str, str]) -> None:
        """A store a job just failed to reach is down now, whatever the last look said."""
        if not down:
            return
        now = time.time()
        self.seen_down |= set(down)
        with self._lock:
            for name, why in down.items():
                old = self._checked.get(name)
                if old is None:
                    index = self._vault.bound.get(name) if self._vault else None
                    self._checked[name] = StoreReport(name, "", index, StoreState.UNREACHABLE,
                                                      why, now)
                elif old.state is StoreState.REACHABLE:
                    self._checked[name] = dataclasses.replace(
                        old, state=StoreState.UNREACHABLE, reason=why, checked_at=now,
                        held=None)

    def _note_up(self, names: set[str]) -> None:
        """A store a job just read a sound piece from is reachable now: health stops
        counting it as down (a look at the stores would find the same)."""
        with self._lock:
            for name in names:
                old = self._checked.get(name)
                if old is not None and old.state is StoreState.UNREACHABLE:
                    self._checked[name] = dataclasses.replace(
                        old, state=StoreState.REACHABLE, reason="", checked_at=time.time())

    def remove(self, file_id: str) -> dict[str, str]:
        """Delete metadata then data everywhere (a small file: record its removal in its
        pack); returns stores that could not be cleaned."""
        return self.remove_many([file_id])[file_id]

    def remove_many(self, file_ids: list[str]) -> dict[str, dict[str, str]]:
        """file id -> stores that could not be cleaned. Files of one pack share one
        removal record; a pack none of whose files stays is deleted whole."""
        vault = self.vault()
        out: dict[str, dict[str, str]] = {}
        packs: dict[str, list[str]] = {}
        known = self.catalog.by_ids(vault.id_hex, file_ids)
        for fid in file_ids:
            entry = known.get(fid)
            if entry is not None and entry.pack:
                packs.setdefault(entry.pack, []).append(fid)
                continue
            failures = remove_everywhere(vault, bytes.fromhex(fid))
            failures.update(vault.unavailable)
            self.catalog.remove(vault.id_hex, fid)
            out[fid] = failures
        for pack_id, ids in packs.items():   # one record (or one deletion) per pack
            failures = self._remove_members(vault, pack_id, ids)
            self.catalog.remove_many(vault.id_hex, ids)
            for fid in ids:
                out[fid] = dict(failures)
        return out

    def _remove_members(self, vault: Vault, pack_id: str, ids: list[str]) -> dict[str, str]:
        """A removal record, written before the catalog forgets them: from then on no
        reader (a catalog rebuild on another machine included) sees these files. Only
        when the pack's own index and records show nothing else alive is it deleted."""
        pid = bytes.fromhex(pack_id)
        gone = {bytes.fromhex(i) for i in ids}
        vault.require_key()
        try:
            pack = open_pack(vault, pid)
            removed = read_removals(vault, {pid}).get(pid, set())
            whole = all(m.member_id in gone | removed for m in pack.members)
        except NotFound:
            return {}
        except CssmError as exc:   # cannot see the rest of the pack: only record
            log.warning("pack %s not readable (%s); recording the removal only", pack_id,
                        log_text(exc))
            whole = False
        if whole:
            failures = remove_everywhere(vault, pid)
            failures.update(vault.unavailable)
            remove_records(vault, pid)
            return failures
        return record_removal(vault, pid, gone)

    def rebuild_catalog(self, listener: Listener = ignore, cancel: CancelToken | None = None
                        ) -> tuple[int, dict[str, str]]:
        """Recreate the catalog from the stores and the password alone (a job): files from
        their metadata, small files from their packs' indexes less the removal records."""
        vault = self.vault()
        vmk = vault.require_key()
        result = scan(vault, listener, cancel)
        removals = read_removals(vault)
        tag_of = content_tagger(vmk, vault.vault_id)
        entries: dict[str, Entry] = {}
        stored_at: dict[str, int] = {}
        snapshots: list[tuple[Snapshot, int, int, str, str]] = []
        unreadable = dict(result.unreadable)
        for f in result.files:
            fid = f.opened.file_id.hex()
            try:
                got = entries_of(vault, f.opened, list(f.damaged), removals, tag_of, cancel)
            except (NotEnoughStores, StoreError, FormatError, IntegrityError) as exc:
                unreadable[fid] = str(exc)
                continue
            if got.snapshot is not None:
                k = f.opened.header.k
                snapshots.append((got.snapshot, f.opened.header.n, k,
                                  health_of(len(f.damaged), vault.n, k), ",".join(f.damaged)))
            for e in got.entries:
                old = stored_at.get(e.id)
                if old is not None and old >= e.stored_at_ns:
                    continue   # also in a newer pack (a repack cut short)
                entries[e.id] = e
                stored_at[e.id] = e.stored_at_ns
        history = History(self.catalog, vault.id_hex)
        history.clear()
        history.mark_seen([f.opened.file_id.hex() for f in result.files] + list(unreadable))
        for snap, n, k, health, damaged in snapshots:
            history.add(snap, n, k, health, damaged)
        self.catalog.replace_all(vault.id_hex, entries.values())
        return len(entries), unreadable

    # ---------------------------------------------------------------- history
    # Backups, snapshots and retention live in snapshots/; these are their faces' door.

    def history(self) -> History:
        return History(self.catalog, self.vault().id_hex)

    def backup(self, folder: Path, exclude: Excludes = NOTHING_EXCLUDED,
               listener: Listener = ignore, cancel: CancelToken | None = None
               ) -> BackupResult:
        cancel = cancel or CancelToken()
        with waiting_for_stores(listener, cancel):
            return run_backup(self, folder, exclude, listener, cancel)

    def follow(self, cancel: CancelToken | None = None) -> FollowResult:
        """What other computers stored, backed up or removed since this one last looked."""
        return follow(self, cancel)

    def snapshots(self) -> list[Snapshot]:
        return self.history().snapshots()

    def listed_snapshots(self) -> list[Snapshot]:
        """What the catalog lists, without a look at the stores (for the UI thread): the
        vault recorded in the settings, or none yet."""
        vault_id = self._vault.id_hex if self._vault is not None else self.config.vault
        return History(self.catalog, vault_id).snapshots() if vault_id else []

    def restore_snapshot(self, snap: Snapshot, dest: str | Path, ref: str | None = None,
                         force: bool = False, listener: Listener = ignore,
                         cancel: CancelToken | None = None
                         ) -> list[tuple[Record, Path | CssmError]]:
        return restore_snapshot(self, snap, dest, ref, force, listener, cancel)

    def held_by_snapshots(self, entry_ids: list[str]) -> set[str]:
        """Which of these stored copies some snapshot names."""
        vault_id = self._vault.id_hex if self._vault is not None else self.config.vault
        if not vault_id:
            return set()
        return History(self.catalog, vault_id).holding(entry_ids)

    def plan_forget(self, policy: Policy, root: str | None = None) -> ForgetPlan:
        return plan_forget(self, policy, root)

    def forget(self, policy: Policy, root: str | None = None) -> ForgetResult:
        return forget(self, policy, root)
