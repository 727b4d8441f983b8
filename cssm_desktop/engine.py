"""The one entry point both faces use: config + stores + vault + catalog, operation by operation.

Nothing here draws or prompts; the CLI and the GUI pass listeners and cancel tokens.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import config as cfgmod
from .catalog import DEGRADED, HEALTHY, LOST, Catalog, Entry, health_of
from .config import Config
from .core import parallel
from .core.gc import DEFAULT_GRACE_SECONDS, GcReport, collect_garbage
from .core.get import open_file, restore_file
from .core.keys import KdfParams, content_tag
from .core.progress import CancelToken, FileFailed, Listener, Step, ignore
from .core.put import DEFAULT_BLOCK_SIZE, StoredFile, put_file
from .core.remove import remove_everywhere
from .core.repair import RepairResult, repair_file
from .core.scan import scan
from .core.status import StoreState, StoreStatus
from .core.vault import Vault, change_password, init_vault
from .core.verify import FileReport, verify_file
from .errors import (
    Cancelled,
    ConfigError,
    CssmError,
    FormatError,
    InputError,
    IntegrityError,
    NotEnoughStores,
    NotFound,
    StoreError,
    log_text,
)
from .stores.base import Store
from .stores.factory import make_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PutResult:
    source: Path
    name: str
    stored: StoredFile | None = None
    error: CssmError | None = None


def expand_paths(paths: list[Path]) -> list[tuple[Path, str]]:
    """Files keep their base name; files in folders are named relative to the folder's parent."""
    out: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            base = path.resolve().parent
            for dirpath, dirs, files in os.walk(path):
                dirs.sort()
                for fname in sorted(files):
                    full = Path(dirpath, fname)
                    out.append((full, full.resolve().relative_to(base).as_posix()))
        else:
            out.append((path, path.name))
    return out


def safe_relative(name: str) -> Path:
    """A stored name as a relative path that cannot climb out of the destination folder."""
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts
             if p not in ("", ".", "..", "/") and "\x00" not in p and ":" not in p]
    if not parts:
        raise FormatError(f"stored name {name!r} is not usable as a file name")
    return Path(*parts)


class Engine:
    def __init__(self, config: Config, catalog_path: Path | None = None,
                 stores: list[Store] | None = None) -> None:
        """`stores` overrides the ones the config describes (tests use tuned clients)."""
        self.config = config
        self.catalog = Catalog(catalog_path or cfgmod.data_dir() / "catalog.sqlite")
        self._stores: list[Store] | None = stores
        self._broken: dict[str, str] = {}
        self._vault: Vault | None = None
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
                        made.append(make_store(sc))
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

    # ---------------------------------------------------------------- files

    def entries(self) -> list[Entry]:
        return self.catalog.entries(self.vault().id_hex)

    def resolve(self, ref: str) -> Entry:
        matches = self.catalog.find(self.vault().id_hex, ref)
        if not matches:
            raise NotFound(f"no stored file matches {ref!r}")
        if len({m.id for m in matches}) > 1:
            ids = ", ".join(m.id[:12] for m in matches)
            raise NotFound(f"{ref!r} matches several files ({ids}); give the id")
        return matches[0]

    def put(self, paths: list[Path], listener: Listener = ignore,
            cancel: CancelToken | None = None, block_size: int = DEFAULT_BLOCK_SIZE
            ) -> list[PutResult]:
        """Each file on its own: one unreadable file fails alone, the others are stored."""
        vault = self.vault()
        cancel = cancel or CancelToken()
        results = []
        for source, name in expand_paths(paths):
            if cancel.cancelled:
                results.append(PutResult(source, name, error=Cancelled()))
                continue
            results.append(self.put_one(vault, source, name, listener, cancel, block_size))
        return results

    def put_one(self, vault: Vault, source: Path, name: str, listener: Listener,
                cancel: CancelToken, block_size: int = DEFAULT_BLOCK_SIZE) -> PutResult:
        try:
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
        return PutResult(source, name, stored=stored)

    def get(self, entry: Entry, dest: Path | None = None, force: bool = False,
            listener: Listener = ignore, cancel: CancelToken | None = None) -> Path:
        vault = self.vault()
        target = self.destination(entry.name, dest)
        opened = open_file(vault, bytes.fromhex(entry.id), listener)
        try:
            path = restore_file(vault, opened, target, overwrite=force, listener=listener,
                                cancel=cancel)
        finally:
            members = {vault.store_name(i) for i in range(vault.n)}
            bad = sorted(s for s in opened.damaged if s in members)
            self.catalog.set_health(vault.id_hex, entry.id,
                                    health_of(len(bad), vault.n, opened.header.k), bad)
        return path

    @staticmethod
    def destination(name: str, dest: Path | None) -> Path:
        rel = safe_relative(name)
        if dest is None:
            return Path.cwd() / rel
        if dest.is_dir():
            return dest / rel
        return dest

    def verify(self, ids: list[str] | None = None, listener: Listener = ignore,
               cancel: CancelToken | None = None) -> list[tuple[Entry, FileReport | str]]:
        """Each file's report, or why it could not be checked; health goes to the catalog."""
        vault = self.vault()
        out: list[tuple[Entry, FileReport | str]] = []
        selection = self._selection(ids)
        for done, entry in enumerate(selection):
            if cancel:
                cancel.check()
            listener(Step("verify", done, len(selection)))
            try:
                report = verify_file(vault, bytes.fromhex(entry.id), listener, cancel)
            except (NotEnoughStores, FormatError) as exc:
                self.catalog.set_health(vault.id_hex, entry.id, LOST, [])
                out.append((entry, str(exc)))
                continue
            self._record_report(vault, entry, report)
            out.append((entry, report))
        return out

    def repair(self, ids: list[str] | None = None, listener: Listener = ignore,
               cancel: CancelToken | None = None
               ) -> tuple[list[str], list[tuple[Entry, RepairResult | str]]]:
        """Adopt empty replacement stores, then rebuild what is bad; (adopted, results)."""
        vault = self.vault()
        adopted = vault.heal_headers()
        out: list[tuple[Entry, RepairResult | str]] = []
        selection = self._selection(ids)
        for done, entry in enumerate(selection):
            if cancel:
                cancel.check()
            listener(Step("repair", done, len(selection)))
            try:
                result = repair_file(vault, bytes.fromhex(entry.id), listener, cancel)
            except (NotEnoughStores, StoreError, FormatError, IntegrityError) as exc:
                out.append((entry, str(exc)))
                continue
            self._record_report(vault, entry, result.after)
            out.append((entry, result))
        return adopted, out

    def gc(self, grace_seconds: float = DEFAULT_GRACE_SECONDS, dry_run: bool = False,
           listener: Listener = ignore, cancel: CancelToken | None = None) -> GcReport:
        return collect_garbage(self.vault(), grace_seconds, dry_run, listener=listener,
                               cancel=cancel)

    def _selection(self, ids: list[str] | None) -> list[Entry]:
        return [self.resolve(i) for i in ids] if ids else self.entries()

    def _record_report(self, vault: Vault, entry: Entry, report: FileReport) -> None:
        health = HEALTHY if report.healthy else DEGRADED if report.restorable else LOST
        self.catalog.set_health(vault.id_hex, entry.id, health, report.damaged)

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
