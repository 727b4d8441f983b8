"""The one entry point both faces use: config + stores + vault + catalog, operation by operation.

Nothing here draws or prompts; the CLI and the GUI pass listeners and cancel tokens.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import os
import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from . import config as cfgmod
from .catalog import (
    AT_RISK,
    LOST,
    MIN_ID_PREFIX,
    SAFE,
    Catalog,
    Entry,
    health_of,
    worst,
)
from .config import Config
from .core import parallel
from .core.gc import DEFAULT_GRACE_SECONDS, GcReport, collect_garbage
from .core.get import open_file, restore_file
from .core.keys import KdfParams, content_tag
from .core.progress import CancelToken, FileFailed, Listener, Step, ignore
from .core.put import DEFAULT_BLOCK_SIZE, StoredFile, open_source, put_file
from .core.remove import remove_everywhere
from .core.repair import RepairResult, repair_file
from .core.scan import scan
from .core.status import PieceState, StoreReport, StoresLook, StoreState, StoreStatus
from .core.vault import Vault, change_password, init_vault
from .core.verify import FileReport, verify_file
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
from .paths import list_sources, printable, safe_relative
from .stores.base import Store
from .stores.factory import make_store

log = logging.getLogger(__name__)


class Duplicate(Enum):
    """What a put does with a file whose name and content are already stored."""

    SKIP = "skip"          # the default: nothing is uploaded
    AGAIN = "again"        # store a second copy
    REPLACE = "replace"    # store it, then remove the older copies of that name


@dataclass(frozen=True)
class PutResult:
    source: Path
    name: str
    stored: StoredFile | None = None
    error: CssmError | None = None
    skipped: str = ""                 # why it was left out (a link, a FIFO, a duplicate)
    duplicate_of: Entry | None = None
    replaced: tuple[str, ...] = ()    # ids of older copies removed (Duplicate.REPLACE)


def sha256_of(source: Path) -> bytes:
    """The plain SHA-256 of a local file, kept in memory only (it becomes a keyed tag)."""
    with open_source(source) as fh:
        try:
            return hashlib.file_digest(fh, "sha256").digest()
        except OSError as exc:
            raise InputError(f"cannot read {source}: {exc.strerror or exc}") from exc


class Engine:
    def __init__(self, config: Config, catalog_path: Path | None = None,
                 stores: list[Store] | None = None) -> None:
        """`stores` overrides the ones the config describes (tests use tuned clients)."""
        self.config = config
        self.catalog = Catalog(catalog_path or cfgmod.data_dir() / "catalog.sqlite")
        self._stores: list[Store] | None = stores
        self._broken: dict[str, str] = {}
        self._vault: Vault | None = None
        # The last fresh look at each store (check_stores), newer than the vault's open.
        self._checked: dict[str, StoreReport] = {}
        # The window's workers reach for the stores and the vault from several threads at
        # once; each is built once, under this lock (re-entrant: vault() needs stores).
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- stores and vault

    @property
    def stores(self) -> list[Store]:
        with self._lock:
            if self._stores is None:
                made = []
                for sc in self.config.stores:
                    try:
                        made.append(make_store(
                            sc, folder=self.config.folder(sc) if sc.type == "folder" else None))
                    except StoreError as exc:
                        self._broken[sc.name] = exc.reason
                self._stores = made
            return self._stores

    def vault(self) -> Vault:
        with self._lock:
            if self._vault is None:
                vault = Vault.open(self.stores, self.config.binding())
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
            self._vault.vmk = None

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
        index = vault.replace(old, target)
        self.config.stores = [s for s in self.config.stores if s.name != old]
        self._stores = [s for s in self.stores if s.name != old]
        self._keep_binding(vault)
        return index

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
        return StoresLook(reports, self.down(vault), vault.n, vault.k)

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
            ids = ", ".join(m.id[:12] for m in matches)
            raise NotFound(f"{ref!r} matches several files ({ids}); give the id")
        return matches[0]

    def select(self, refs: list[str]) -> tuple[list[Entry], bool]:
        """The files the refs name, and whether any ref named a folder.

        A ref is an id, an id prefix, a name, or a stored folder ("Photos" or "Photos/"):
        every file under it. Where one name was stored several times, the newest copy is
        the one a folder restore takes (they would land on one path)."""
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
                    newest: dict[str, Entry] = {}
                    for e in under:
                        if e.name not in newest or e.stored_at_ns > newest[e.name].stored_at_ns:
                            newest[e.name] = e
                    chosen.update((e.id, e) for e in newest.values())
                    continue
            entry = self.resolve(ref)
            chosen[entry.id] = entry
        return sorted(chosen.values(), key=lambda e: e.name), folder

    def put(self, paths: list[Path], listener: Listener = ignore,
            cancel: CancelToken | None = None, block_size: int = DEFAULT_BLOCK_SIZE,
            duplicates: Duplicate = Duplicate.SKIP) -> list[PutResult]:
        """Each file on its own: one unreadable file fails alone, the others are stored;
        links inside folders and special files are skipped with the reason."""
        cancel = cancel or CancelToken()
        results = []
        own = self.own_folders()
        for path in paths:
            sources, left_out = list_sources([path], own)
            for s in left_out:
                if s.asked:
                    log.warning("put failed: InputError (%s)", s.reason)   # no path in the log
                    results.append(PutResult(s.path, s.path.name,
                                             error=InputError(f"{s.path}: {s.reason}")))
                else:
                    results.append(PutResult(s.path, s.path.name, skipped=s.reason))
            for src in sources:
                if cancel.cancelled:
                    results.append(PutResult(src.path, src.name, error=Cancelled()))
                    continue
                results.append(self.put_one(src.path, src.name, listener, cancel, block_size,
                                            duplicates))
        return results

    def own_folders(self) -> frozenset[str]:
        """Folders a put never takes: the folder stores' roots and the app's own data."""
        roots = [s.root for s in self.stores if isinstance(getattr(s, "root", None), Path)]
        roots += [cfgmod.data_dir(), cfgmod.log_dir(), self.catalog.path.parent]
        return frozenset(os.path.realpath(r) for r in roots)

    def stored_copy(self, source: Path, name: str) -> Entry | None:
        """An entry with this name and the same content (keyed tag), if there is one.

        Only files whose name is already stored are read for this, so a put of new files
        costs no extra pass."""
        vault = self.vault()
        same_name = [e for e in self._named(vault, name) if e.tag]
        if not same_name:
            return None
        tag = content_tag(vault.require_key(), vault.vault_id, sha256_of(source)).hex()
        return next((e for e in same_name if hmac.compare_digest(e.tag, tag)), None)

    def _named(self, vault: Vault, name: str) -> list[Entry]:
        """The stored copies of exactly this name (find() also takes id prefixes)."""
        return [e for e in self.catalog.find(vault.id_hex, name) if e.name == name]

    def put_one(self, source: Path, name: str, listener: Listener = ignore,
                cancel: CancelToken | None = None, block_size: int = DEFAULT_BLOCK_SIZE,
                duplicates: Duplicate = Duplicate.SKIP) -> PutResult:
        vault = self.vault()
        cancel = cancel or CancelToken()
        try:
            if duplicates is not Duplicate.AGAIN:
                twin = self.stored_copy(source, name)
                if twin is not None and duplicates is Duplicate.SKIP:
                    return PutResult(source, name, skipped="already stored with the same "
                                     "content", duplicate_of=twin)
            stored = put_file(vault, source, name, k=self.config.threshold,
                              block_size=block_size, listener=listener, cancel=cancel)
        except (InputError, StoreError, NotEnoughStores, Cancelled) as exc:
            listener(FileFailed(name, str(exc)))
            log.warning("put failed: %s", log_text(exc))   # no name or path in the log
            return PutResult(source, name, error=exc)
        except CssmError as exc:
            listener(FileFailed(name, str(exc)))
            raise
        tag = content_tag(vault.require_key(), vault.vault_id, stored.sha256).hex()
        self.catalog.add(vault.id_hex, Entry(stored.id_hex, stored.name, stored.size,
                                             stored.mtime_ns, stored.stored_at_ns, tag,
                                             stored.n, stored.k))
        replaced: tuple[str, ...] = ()
        if duplicates is Duplicate.REPLACE:
            older = [e.id for e in self._named(vault, name) if e.id != stored.id_hex]
            for old in older:
                self.remove(old)
            replaced = tuple(older)
        return PutResult(source, name, stored=stored, replaced=replaced)

    def get(self, entry: Entry, dest: str | Path | None = None, force: bool = False,
            listener: Listener = ignore, cancel: CancelToken | None = None) -> Path:
        vault = self.vault()
        target = self.destination(entry.name, dest)
        if target.is_dir():
            raise DestinationExists(str(target), folder=True)
        try:
            opened = open_file(vault, bytes.fromhex(entry.id), listener)
        except NotEnoughStores as exc:
            # What a restore just found is a fact: the list must not keep saying "safe".
            # Stores known to be down are left out: health follows them as they come back.
            self.catalog.set_health(vault.id_hex, entry.id, LOST,
                                    set(exc.failures) - set(self.down(vault)))
            raise
        try:
            path = restore_file(vault, opened, target, overwrite=force, listener=listener,
                                cancel=cancel)
        finally:
            members = {vault.store_name(i) for i in range(vault.n)} - set(self.down(vault))
            bad = sorted(s for s in opened.damaged if s in members)
            self.catalog.set_health(vault.id_hex, entry.id,
                                    health_of(len(bad), vault.n, opened.header.k), bad)
        return path

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
        vault = self.vault()
        out: list[tuple[Entry, FileReport | CssmError]] = []
        selection = self._selection(ids)
        for done, entry in enumerate(selection):
            if cancel:
                cancel.check()
            listener(Step("verify", done, len(selection), entry.name))
            try:
                report = verify_file(vault, bytes.fromhex(entry.id), listener, cancel)
            except (NotEnoughStores, FormatError) as exc:
                self.catalog.set_health(vault.id_hex, entry.id, LOST,
                                        set(getattr(exc, "failures", {})) -
                                        set(self.down(vault)))
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

    def gc(self, grace_seconds: float = DEFAULT_GRACE_SECONDS, dry_run: bool = False,
           listener: Listener = ignore, cancel: CancelToken | None = None) -> GcReport:
        return collect_garbage(self.vault(), grace_seconds, dry_run, listener=listener,
                               cancel=cancel)

    def _selection(self, ids: list[str] | None) -> list[Entry]:
        return [self.resolve(i) for i in ids] if ids else self.entries()

    def _record_report(self, vault: Vault, entry: Entry, report: FileReport) -> None:
        """The catalog keeps what is wrong with the file's own parts; a store that could
        not be reached is noted as down (health follows it live, and comes back with it)."""
        down = {c.store: c.problem for c in report.checks
                if c.state is PieceState.UNREACHABLE}
        self._note_down(down)
        bad = [c.store for c in report.checks if not c.ok and c.store not in down]
        if report.healthy or not down:
            health = SAFE if report.healthy else AT_RISK if report.restorable else LOST
        else:
            health = health_of(len(bad), vault.n, report.opened.header.k)
        self.catalog.set_health(vault.id_hex, entry.id, health, bad)

    def _note_down(self, down: dict[str, str]) -> None:
        """A store a job just failed to reach is down now, whatever the last look said."""
        if not down:
            return
        now = time.time()
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

    def remove(self, file_id: str) -> dict[str, str]:
        """Delete metadata then data everywhere; returns stores that could not be cleaned."""
        vault = self.vault()
        failures = remove_everywhere(vault, bytes.fromhex(file_id))
        failures.update(vault.unavailable)
        self.catalog.remove(vault.id_hex, file_id)
        return failures

    def rebuild_catalog(self, listener: Listener = ignore, cancel: CancelToken | None = None
                        ) -> tuple[int, dict[str, str]]:
        """Recreate the catalog from the stores and the password alone (a job)."""
        vault = self.vault()
        vault.require_key()
        result = scan(vault, listener, cancel)
        entries = []
        vmk = vault.require_key()
        for f in result.files:
            box = f.opened.box
            health = health_of(len(f.damaged), vault.n, f.opened.header.k)
            entries.append(Entry(f.opened.file_id.hex(), box.name, box.size, box.mtime_ns,
                                 box.stored_at_ns,
                                 content_tag(vmk, vault.vault_id, box.sha256).hex(),
                                 f.opened.header.n,
                                 f.opened.header.k, health, ",".join(f.damaged)))
        self.catalog.replace_all(vault.id_hex, entries)
        return len(entries), result.unreadable
