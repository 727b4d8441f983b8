"""The window's vault work, off the UI thread: open the vault, look at the stores, list the
files, verify, repair, rebuild the list, delete, create a first vault.

It holds no widgets but the dialogs a job shows; the main window lays things out and
connects to its signals. Every status it emits follows from a check just made.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QWidget

from ..catalog import AT_RISK, Entry
from ..config import Config, StoreConfig, data_dir
from ..core.repair import RepairResult
from ..core.status import PieceState, StoresLook
from ..core.verify import FileReport
from ..errors import CssmError, NotEnoughStores
from ..units import human
from . import workers
from .context import AppContext
from .task_dialog import Row, TaskDialog

CHECK_EVERY_MS = 60_000   # a look at each store: one small read per store


def _problems(report: FileReport) -> str:
    """Stores that are down named once, together; other problems one by one."""
    down = [c.store for c in report.checks if c.state is PieceState.UNREACHABLE]
    other = [f"{c.store}: {c.problem}" for c in report.checks
             if not c.ok and c.state is not PieceState.UNREACHABLE]
    return "; ".join(([f"store down: {', '.join(down)}"] if down else []) + other)


def verify_rows(results: list[tuple[Entry, FileReport | CssmError]]) -> tuple[str, list[Row]]:
    rows = []
    for entry, r in results:
        if isinstance(r, CssmError):
            rows.append(Row(entry.name, "lost", str(r), entry.files))
        elif not r.healthy:
            rows.append(Row(entry.name, "at risk" if r.restorable else "lost", _problems(r),
                            entry.files))
    return _summary(sum(e.files for e, _ in results), rows, 0), rows


def repair_rows(results: list[tuple[Entry, RepairResult | CssmError]]
                ) -> tuple[str, list[Row]]:
    rows = []
    rebuilt = 0
    for entry, r in results:
        if isinstance(r, CssmError):
            rows.append(Row(entry.name, "lost" if isinstance(r, NotEnoughStores)
                            else "at risk", str(r), entry.files))
        elif not r.after.healthy:
            rows.append(Row(entry.name, "at risk" if r.after.restorable else "lost",
                            _problems(r.after), entry.files))
        elif r.rebuilt:
            rebuilt += entry.files
            rows.append(Row(entry.name, "repaired", "rebuilt on " + ", ".join(r.rebuilt),
                            entry.files))
    return _summary(sum(e.files for e, _ in results), rows, rebuilt), rows


def _summary(total: int, rows: list[Row], rebuilt: int) -> str:
    at_risk = sum(r.files for r in rows if r.outcome == "at risk")
    lost = sum(r.files for r in rows if r.outcome == "lost")
    safe = total - at_risk - lost
    if not at_risk and not lost:
        text = f"All {total} files are safe: every part on every store was read and checked."
        return text + (f" {rebuilt} were repaired." if rebuilt else "")
    parts = [f"{safe} of {total} files safe"]
    if rebuilt:
        parts.append(f"{rebuilt} repaired")
    if at_risk:
        parts.append(f"{at_risk} at risk (restorable; Repair, or bring the stores back)")
    if lost:
        parts.append(f"{lost} lost (fewer than the needed stores hold good parts)")
    return ", ".join(parts) + "."


class VaultController(QObject):
    opened = Signal(object)            # the engine's Vault: n, k, stores
    open_failed = Signal(object)       # the exception
    stores_checked = Signal(object)    # core.status.StoresLook
    files_loaded = Signal(object)      # list[Entry]
    message = Signal(str)              # for the status bar
    failed = Signal(str, str)          # title, text: for a warning box
    vault_created = Signal()
    mended = Signal(object)            # list[str]: files repaired by themselves (below)

    def __init__(self, ctx: AppContext, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self._checking = False
        self._mending = False
        self._mended: set[str] = set()   # file ids already given a repair this session
        self._mend_next: StoresLook | None = None
        # A check asked for while one runs (None: none): run once that one ends, so what a
        # job just changed is never left unshown.
        self._again: bool | None = None
        self.timer = QTimer(self, interval=CHECK_EVERY_MS)
        self.timer.timeout.connect(lambda: self.check_stores(count_bytes=False))

    @property
    def engine(self) -> Any:
        return self.ctx.engine

    def _start(self, worker: workers.Worker, **callbacks: Any) -> None:
        workers.start(worker, owner=self, **callbacks)

    # -- the vault and its stores
    def open_vault(self) -> None:
        engine = self.engine
        if engine is None:
            return
        held, self.ctx.handover = self.ctx.handover, None

        def open_it() -> Any:
            vault = engine.vault()
            if held is not None:
                with contextlib.suppress(CssmError):   # else it stays locked: asked later
                    engine.unlock_with(held)
            return vault

        self._start(workers.Call(open_it), succeeded=self._opened,
                    failed=self.open_failed.emit)

    def _opened(self, vault: Any) -> None:
        self.opened.emit(vault)
        self.check_stores(count_bytes=True)
        self.timer.start()

    def check_stores(self, count_bytes: bool = True) -> None:
        """A fresh look at every store; the file list is refreshed from it."""
        engine = self.engine
        if engine is None:
            return
        if self._checking:
            self._again = bool(self._again) or count_bytes
            return
        self._checking = True

        def done(look: StoresLook) -> None:
            self.stores_checked.emit(look)
            self.refresh_files()
            self._mend(look)

        self._start(workers.Call(lambda: engine.check_stores(count_bytes=count_bytes)),
                    succeeded=done, failed=lambda err: self.message.emit(workers.message(err)),
                    finished=self._checked)

    def _mend(self, look: StoresLook) -> None:
        """Files at risk only because of stores that were down and are reachable again
        (stored while one was away, or unreadable there) are repaired in the background,
        once per session each, while the vault is unlocked: nobody has to remember to."""
        engine = self.engine
        if self._mending:   # after the one running, with this newer look
            self._mend_next = look
            return
        if engine is None or not engine.unlocked:
            return
        back = engine.seen_down - set(look.down)    # seen down this session, reachable now
        if not back:
            return
        tried = self._mended

        def mend() -> list[str]:
            # Only what those stores missed while away: damage found by a verify on a
            # store that never left is the user's to repair (the result list says why).
            todo = [e for e in engine.entries() if e.health == AT_RISK and e.id not in tried
                    and e.damaged_stores and set(e.damaged_stores) <= back]
            if not todo:
                return []
            tried.update(e.id for e in todo)
            _, results = engine.repair([e.id for e in todo])
            return [entry.name for entry, r in results
                    if not isinstance(r, BaseException) and r.after.healthy]

        def again() -> None:
            self._mending = False
            look, self._mend_next = self._mend_next, None
            if look is not None:
                self._mend(look)

        def mended(names: list[str]) -> None:
            again()
            if names:
                self.message.emit(self.tr("%n file(s) repaired now that their stores are "
                                          "reachable.", "", len(names)))
                self.refresh_files()
            self.mended.emit(names)

        def failed(err: BaseException) -> None:
            again()
            self.message.emit(workers.message(err))

        self._mending = True
        self._start(workers.Call(mend), succeeded=mended, failed=failed)

    def discard_unfinished(self, journals: list[Any]) -> None:
        """Remove what unfinished uploads sent, off the UI thread (the stores are remote)."""
        engine = self.engine
        if engine is None:
            return

        def discard() -> list[str]:
            return sorted({store for j in journals
                           for store in engine.discard_unfinished(j)})

        def done(away: list[str]) -> None:
            text = self.tr("%n unfinished upload(s) discarded.", "", len(journals))
            if away:
                text += " " + self.tr("Not reachable: %1 (Clean up removes what is left "
                                      "there).").replace("%1", ", ".join(away))
            self.message.emit(text)

        self._start(workers.Call(discard), succeeded=done,
                    failed=lambda err: self.message.emit(workers.message(err)))

    def _checked(self) -> None:
        self._checking = False
        if self._again is not None:
            count_bytes, self._again = self._again, None
            self.check_stores(count_bytes)

    def refresh_files(self) -> None:
        engine = self.engine
        if engine is None:
            return
        self._start(workers.Call(engine.entries), succeeded=self.files_loaded.emit,
                    failed=lambda err: self.message.emit(workers.message(err)))

    # -- long jobs, each in a dialog with progress, Cancel and a result list
    def _run(self, parent: QWidget, title: str, doing: str, worker: workers.Worker,
             render: Any) -> TaskDialog:
        dialog = TaskDialog(title, doing, parent)

        def ended(result: object) -> None:
            if result is not None:
                summary, rows = render(result)
                dialog.show_result(summary, rows)
                self.message.emit(summary)
            self.check_stores(count_bytes=True)   # what the job found shows everywhere

        dialog.ended.connect(ended)
        dialog.run(worker)
        return dialog

    def verify(self, parent: QWidget) -> TaskDialog:
        return self._run(parent, self.tr("Verify"), self.tr("Verifying"),
                         workers.Job(self.engine.verify), verify_rows)

    def repair(self, parent: QWidget) -> TaskDialog:
        def render(result: tuple[list[str], list[Any]]) -> tuple[str, list[Row]]:
            adopted, results = result
            summary, rows = repair_rows(results)
            if adopted:
                summary += " " + self.tr("Vault header written to %1.").replace(
                    "%1", ", ".join(adopted))
            return "Repair done: " + summary[0].lower() + summary[1:], rows

        return self._run(parent, self.tr("Repair"), self.tr("Repairing"),
                         workers.Job(self.engine.repair), render)

    def rebuild(self, parent: QWidget) -> TaskDialog:
        def render(result: tuple[int, dict[str, str]]) -> tuple[str, list[Row]]:
            count, unreadable = result
            rows = [Row(fid[:12], "foreign" if why.startswith("foreign") else "lost", why)
                    for fid, why in unreadable.items()]
            text = f"{count} files found in the stores."
            if unreadable:
                text += f" {len(unreadable)} could not be read."
            return text, rows

        return self._run(parent, self.tr("Rebuild the file list"), self.tr("Reading"),
                         workers.Job(self.engine.rebuild_catalog), render)

    def clean_up(self, parent: QWidget) -> TaskDialog:
        """gc: what interrupted uploads left (older than the grace period), and packs whose
        removed files' space can come back."""
        def render(report: Any) -> tuple[str, list[Row]]:
            rows = [Row(f"pack {r.old[:12]}", "repacked" if r.done else "left as it is",
                        r.why or self.tr("%1 removed files gave back %2; %3 kept")
                        .replace("%1", str(r.removed)).replace("%2", human(r.freed))
                        .replace("%3", str(len(r.kept)))) for r in report.repacked]
            rows += [Row(g.key.rsplit("/", 1)[-1][:12], "removed", f"{g.store}: {g.reason}")
                     for g in report.found]
            freed = sum(r.freed for r in report.repacked if r.done) + \
                sum(g.size for g in report.found)
            text = self.tr("Clean-up done: %1 given back.").replace("%1", human(freed))
            if report.young:
                text += " " + self.tr("%1 recent leftovers left alone (an upload may still be "
                                      "running elsewhere).").replace("%1", str(len(report.young)))
            return text, rows

        return self._run(parent, self.tr("Clean up"), self.tr("Cleaning up"),
                         workers.Job(self.engine.gc), render)

    def restore_snapshot(self, parent: QWidget, snap: Any, folder: Path) -> TaskDialog:
        """A snapshot's tree into `folder`, as it was then; existing files are left."""
        def render(results: list[tuple[Any, Any]]) -> tuple[str, list[Row]]:
            failed = [(r, got) for r, got in results if not isinstance(got, Path)]
            rows = [Row(r.name, "failed", workers.message(got)) for r, got in failed]
            text = self.tr("%1 of %2 restored into %3.").replace(
                "%1", str(len(results) - len(failed))).replace(
                "%2", str(len(results))).replace("%3", str(folder))
            return text, rows

        return self._run(parent, self.tr("Restore as of a snapshot"), self.tr("Restoring"),
                         workers.Job(self.engine.restore_snapshot, snap=snap, dest=folder),
                         render)

    # -- short jobs
    def delete(self, entries: list[Entry]) -> None:
        engine = self.engine

        def remove() -> list[str]:
            left = engine.remove_many([e.id for e in entries])
            return [e.name for e in entries if left.get(e.id)]

        def removed(leftovers: list[str]) -> None:
            self.refresh_files()
            text = self.tr("%n file(s) deleted.", "", len(entries))
            if leftovers:
                text += " " + self.tr("Some stores were down; garbage collection removes the "
                                      "rest later.")
            self.message.emit(text)

        self._start(workers.Call(remove), succeeded=removed,
                    failed=lambda err: self.failed.emit(self.tr("Delete"),
                                                        workers.message(err)))

    def create_local_vault(self, password: str, root: Path | None = None) -> None:
        """Five folder stores under the user data dir, 3 needed: a vault in seconds."""
        root = root or data_dir() / "local-vault"
        stores = [StoreConfig(name=f"local-{i}", type="folder", path=str(root / f"store-{i}"))
                  for i in range(1, 6)]
        self.ctx.save(Config(stores=stores, threshold=3))
        self.create_vault(password)

    def create_vault(self, password: str, needed: int | None = None) -> None:
        """A new vault on the configured stores (as `cssm init`), `needed` of them to
        restore a file; the settings keep that number."""
        config = self.ctx.config
        if config is None:
            return
        if needed is not None and needed != config.threshold:
            self.ctx.save(dataclasses.replace(config, threshold=needed,
                                              stores=copy.deepcopy(config.stores)))
        self.message.emit(self.tr("Creating the vault…"))
        engine = self.engine

        def created(vault: Any) -> None:
            self.message.emit(self.tr("Vault created on %1 stores: any %2 of them restore a "
                                      "file.").replace("%1", str(vault.n))
                              .replace("%2", str(vault.k)))
            self.vault_created.emit()

        self._start(workers.Call(lambda: engine.init(password)), succeeded=created,
                    failed=lambda err: self.failed.emit(self.tr("New vault"),
                                                        workers.message(err)))
