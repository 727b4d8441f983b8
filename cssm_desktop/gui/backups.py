"""The Backups place: protected folders, their snapshots, restore as of a time; and the
runner that backs them up by itself while the app runs (the window open or not).

The schedule itself (when a folder is due, debounced watching) is snapshots/schedule.py,
the same code `cssm backup --watch` runs; here a timer asks it what is due and each
backup runs on a worker thread, one at a time.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..paths import Excludes, printable
from ..snapshots.manifest import Snapshot
from ..snapshots.protect import ProtectedFolder
from ..snapshots.restore import iso
from ..snapshots.retention import SMART
from ..snapshots.schedule import TICK, Scheduler, Watcher, next_run
from ..units import human
from . import autostart, workers
from .context import AppContext
from .tables import EmptyHint, plain_rows

log = logging.getLogger(__name__)
FOLLOW_EVERY_TICKS = 4        # the stores are followed every minute (4 ticks of 15 s)
STALE_AFTER = 24 * 3600.0     # no backup for this long (or 3 intervals): said once
MONTH = 30 * 24 * 3600.0      # everything stored is read back within this
CLEAN_EVERY = 24 * 3600.0     # space given back after retention at most this often


def _when(ns: int | None) -> str:
    if ns is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ns / 1e9))


class BackupRunner(QObject):
    """Runs due backups, one at a time, on worker threads. Works while the vault is
    unlocked; a locked vault waits (said on the Backups page)."""

    started = Signal(str)                  # folder path
    progress = Signal(str, object, object)  # folder, items done, items total
    finished = Signal(str, object)         # folder, BackupResult
    failed = Signal(str, str)              # folder, why (one line)
    changed = Signal()                     # snapshots may have changed: refresh views
    followed = Signal(object)              # FollowResult: another computer's work arrived
    stale = Signal(str, float)             # folder, hours since its last backup
    unhealthy = Signal(int)                # the rolling check found objects not safe

    def __init__(self, ctx: AppContext, parent: QObject | None = None,
                 settle: float | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.running: str | None = None
        self._worker: workers.Worker | None = None
        self._scheduler: Scheduler | None = None
        self._watcher: Watcher | None = None
        self._watched: list[str] = []
        self._settle = settle
        self.timer = QTimer(self, interval=int(TICK * 1000))
        self.timer.timeout.connect(self.tick)
        self._ticks = 0
        self._following = False
        self._follow_again = False
        self._queued: ProtectedFolder | None = None
        self._cleaned_at = 0.0
        self._warned: set[str] = set()   # folders whose staleness was said (once a run)

    def folders(self) -> list[ProtectedFolder]:
        cfg = self.ctx.config
        return list(cfg.protect) if cfg is not None else []

    def start(self) -> None:
        self._rebuild()
        self.timer.start()
        QTimer.singleShot(0, self.tick)   # a missed run is caught up at start

    def _rebuild(self) -> None:
        """After the protected folders changed (or the engine did)."""
        folders = self.folders()
        last = self._scheduler.last if self._scheduler is not None else None
        kwargs: dict[str, Any] = {} if self._settle is None else {"settle": self._settle}
        self._scheduler = Scheduler(folders, lambda f: 0, engine=self.ctx.engine,
                                    last=last, watch=False, **kwargs)
        paths = [f.path for f in folders]
        if paths != self._watched:
            if self._watcher is not None:
                self._watcher.stop()
            self._watcher = Watcher(paths, **kwargs) if paths else None
            self._watched = paths

    def reconfigure(self) -> None:
        self._rebuild()
        self.changed.emit()

    def stop(self) -> None:
        self.timer.stop()
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
            self._watched = []
        if self._worker is not None:
            self._worker.cancel(keep=True)

    def last_backup(self, path: str) -> int | None:
        return self._scheduler.last.get(path) if self._scheduler is not None else None

    def tick(self) -> None:
        engine = self.ctx.engine
        if self.running is not None or engine is None or self._scheduler is None:
            return
        if not engine.unlocked:
            return
        self._ticks += 1
        if self._ticks % FOLLOW_EVERY_TICKS == 1:
            self.follow()
        self._say_stale()
        changed = self._watcher.quiet() if self._watcher is not None else []
        due = self._scheduler.due(time.time(), changed)
        if due:
            self.run(due[0])

    def follow(self) -> None:
        """Catch up with the stores (another computer's files, snapshots, removals)."""
        engine = self.ctx.engine
        if engine is None or self.running is not None:
            return
        if self._following:   # asked while one runs: once more after it
            self._follow_again = True
            return
        self._following = True
        self._follow_again = False

        def done(result: Any) -> None:
            self._following = False
            if result.files or result.snapshots or result.gone:
                self.followed.emit(result)
                self.changed.emit()
            if self._follow_again:
                self.follow()

        def failed(_err: BaseException) -> None:
            self._following = False

        workers.start(workers.Call(engine.follow), owner=self, succeeded=done, failed=failed)

    def _say_stale(self) -> None:
        """A folder with no successful backup for three of its intervals (at least a
        day): said once, not on every tick (and never on success)."""
        if self._scheduler is None:
            return
        now = time.time()
        for f in self.folders():
            last = self._scheduler.last.get(f.path)
            limit = max(3 * f.every_seconds, STALE_AFTER)
            if last is not None and now - last / 1e9 > limit and f.path not in self._warned:
                self._warned.add(f.path)
                self.stale.emit(f.path, (now - last / 1e9) / 3600)

    def run(self, folder: ProtectedFolder) -> bool:
        """Back one folder up now; while another backup (or its retention) runs, this one
        comes right after it. False: no vault."""
        engine = self.ctx.engine
        if engine is None:
            return False
        if self.running is not None:
            self._queued = folder
            return True
        self.running = folder.path
        exclude = Excludes.read(folder.exclude, [])
        worker = workers.Job(engine.backup, folder=Path(folder.path), exclude=exclude)
        self._worker = worker
        self.started.emit(folder.path)

        def done(result: Any) -> None:
            assert self._scheduler is not None
            self._scheduler.last[folder.path] = result.snapshot.time_ns
            self._scheduler.failed_at.pop(folder.path, None)
            self._warned.discard(folder.path)
            self.finished.emit(folder.path, result)
            # Still running until its retention is applied: a forget holds the vault's
            # exclusive lease, and a backup started meanwhile would be refused.
            self._tidy(folder)

        def failed(err: BaseException) -> None:
            if self._scheduler is not None:
                self._scheduler.failed_at[folder.path] = time.time()
            self._end()
            self.failed.emit(folder.path, workers.message(err))

        workers.start(worker, owner=self, succeeded=done, failed=failed,
                      step=lambda d, t, _i: self.progress.emit(folder.path, d, t))
        return True

    def _end(self) -> None:
        self.running = None
        self._worker = None
        self.changed.emit()
        queued, self._queued = self._queued, None
        if queued is not None:
            self.run(queued)

    def _tidy(self, folder: ProtectedFolder) -> None:
        """After a backup, the folder's retention rule, as `cssm forget` applies it (the
        log says what went and why); stores' space comes back with Clean up."""
        engine = self.ctx.engine
        if engine is None:
            self._end()
            return

        def forget() -> Any:
            return engine.forget(folder.policy, folder.path)

        def failed(err: BaseException) -> None:
            log.warning("retention not applied: %s", type(err).__name__)
            self._end()

        def done(result: Any) -> None:
            self._end()
            if result.snapshots_removed:
                log.info("retention: %d snapshots and %d older versions dropped (%s)",
                         result.snapshots_removed, result.versions_removed,
                         result.plan.policy.words())
            self.changed.emit()
            self._check_slice(folder)
            if result.versions_removed:
                self._clean_up()

        workers.start(workers.Call(forget), owner=self, succeeded=done, failed=failed)

    def _clean_up(self) -> None:
        """The stores' space back after a forget dropped old versions (gc: packs whose
        removed files passed its threshold are repacked, leftovers past the grace period
        removed), at most once a day: a clean-up reads and rewrites packs."""
        engine = self.ctx.engine
        if engine is None or time.time() - self._cleaned_at < CLEAN_EVERY:
            return
        self._cleaned_at = time.time()
        workers.start(workers.Call(engine.gc), owner=self,
                      succeeded=lambda report: log.info(
                          "clean-up after retention: %d packs repacked, %d leftovers "
                          "removed", sum(r.done for r in report.repacked), report.removed),
                      failed=lambda err: log.warning("clean-up not run: %s",
                                                     type(err).__name__))

    def _check_slice(self, folder: ProtectedFolder) -> None:
        """A rolling slice of everything stored read back and checked after each run,
        so all of it is read within a month (verify_slice keeps the place)."""
        engine = self.ctx.engine
        if engine is None:
            return
        share = min(1.0, folder.every_seconds / MONTH)

        def checked(rows: Any) -> None:
            bad = [e for e, r in rows if not getattr(r, "healthy", False)]
            if bad:
                self.unhealthy.emit(len(bad))

        workers.start(workers.Call(lambda: engine.verify_slice(share)), owner=self,
                      succeeded=checked,
                      failed=lambda err: log.warning("rolling check not run: %s",
                                                     type(err).__name__))


class BackupsPage(QWidget):
    """Protected folders above, the selected folder's snapshots below."""

    restore_requested = Signal(object)   # a Snapshot

    def __init__(self, ctx: AppContext, runner: BackupRunner,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.runner = runner
        self.snapshots: list[Snapshot] = []
        self.folders = _Table([self.tr("Folder"), self.tr("Every"), self.tr("Last backup"),
                               self.tr("Next"), self.tr("Keeps")],
                              self.tr("No protected folders yet.\nProtect a folder and it is "
                                      "backed up by itself: every hour and soon after it "
                                      "changes, every version kept."))
        self.folders.itemSelectionChanged.connect(self._show_snapshots)
        self.protect_button = QPushButton(self.tr("&Protect a folder…"))
        self.protect_button.clicked.connect(lambda: self.protect_folder())
        self.now_button = QPushButton(self.tr("&Back up now"))
        self.now_button.clicked.connect(self.back_up_now)
        self.unprotect_button = QPushButton(self.tr("Stop protecting"))
        self.unprotect_button.clicked.connect(self.unprotect)
        self.keep_button = QPushButton(self.tr("&What to keep…"))
        self.keep_button.clicked.connect(lambda: self.edit_retention())
        self.state = QLabel()
        self.state.setWordWrap(True)
        self.list = _Table([self.tr("Snapshot time"), self.tr("Files"), self.tr("Size"),
                            self.tr("Computer")],
                           self.tr("No snapshots of this folder yet."))
        self.list.activated.connect(lambda _i: self.restore_snapshot())
        self.restore_button = QPushButton(self.tr("Restore &as of this…"))
        self.restore_button.clicked.connect(self.restore_snapshot)
        self.at_login = QCheckBox(self.tr("Start CSSM Desktop at &login (in the tray; "
                                          "backups run once the vault is unlocked)"))
        self.at_login.setChecked(autostart.enabled())
        self.at_login.toggled.connect(self._at_login)

        top = QHBoxLayout()
        top.addWidget(QLabel("<b>" + self.tr("Protected folders") + "</b>"))
        top.addStretch(1)
        for b in (self.protect_button, self.now_button, self.keep_button,
                  self.unprotect_button):
            top.addWidget(b)
        mid = QHBoxLayout()
        mid.addWidget(QLabel("<b>" + self.tr("Snapshots") + "</b>"))
        mid.addStretch(1)
        mid.addWidget(self.restore_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.folders, 2)
        layout.addWidget(self.at_login)
        layout.addWidget(self.state)
        layout.addLayout(mid)
        layout.addWidget(self.list, 3)
        runner.changed.connect(self.refresh)
        runner.started.connect(lambda p: self._say(self.tr("Backing up %1…").replace(
            "%1", printable(p))))
        runner.progress.connect(self._progress)
        runner.finished.connect(self._finished)
        runner.finished.connect(lambda _p, _r: self.refresh())
        runner.failed.connect(lambda p, why: self._say(self.tr("Backup of %1 failed: %2")
                                                       .replace("%1", printable(p))
                                                       .replace("%2", why)))
        self.refresh()

    # -- what is shown
    def _say(self, text: str) -> None:
        self.state.setText(text)

    def _progress(self, path: str, done: object, total: object) -> None:
        self._say(self.tr("Backing up %1: %2 of %3").replace("%1", printable(path))
                  .replace("%2", str(done)).replace("%3", str(total)))

    def _finished(self, path: str, result: Any) -> None:
        snap = result.snapshot
        text = self.tr("Backed up %1 at %2: %3 files, %4 new, %5 unchanged.").replace(
            "%1", printable(path)).replace("%2", _when(snap.time_ns)).replace(
            "%3", str(snap.files)).replace("%4", str(result.new)).replace(
            "%5", str(result.unchanged))
        if result.failed:
            text += " " + self.tr("%1 could not be read (see the log).").replace(
                "%1", str(len(result.failed)))
        self._say(text)

    def refresh(self) -> None:
        engine = self.ctx.engine
        self.snapshots = engine.listed_snapshots() if engine is not None else []
        last: dict[str, int] = {}
        for s in self.snapshots:
            last[s.root] = s.time_ns
        folders = self.runner.folders()
        chosen = self._chosen_folder()
        self.folders.setRowCount(len(folders))
        for row, f in enumerate(folders):
            done = last.get(f.path)
            due = next_run(done, f.every_seconds, time.time())
            keeps = f.policy
            for col, (text, tip) in enumerate((
                    (printable(f.path), printable(f.path)), (f.every, None),
                    (_when(done), None),
                    (_when(int(due * 1e9)) if done else self.tr("now"), self.tr(
                        "Also soon after the folder changes")),
                    (self.tr("smart default") if keeps == SMART else keeps.words(),
                     self.tr("Keeps %1").replace("%1", keeps.words())))):
                self.folders.setItem(row, col, _item(text, f.path, tip))
        if chosen is not None and chosen in [f.path for f in folders]:
            self.folders.selectRow([f.path for f in folders].index(chosen))
        elif folders and not self.folders.selectedItems():
            self.folders.selectRow(0)
        waiting = self.tr("Backups wait for the vault to be unlocked (Ctrl+L).")
        if engine is not None and not engine.unlocked and folders:
            self._say(waiting)
        elif self.state.text() == waiting:   # unlocked since: the words no longer hold
            self._say(self.tr("Unlocked: backups run on schedule and after changes."))
        self._show_snapshots()
        has = bool(folders)
        self.now_button.setEnabled(has)
        self.unprotect_button.setEnabled(has)
        self.keep_button.setEnabled(has)

    def _chosen_folder(self) -> str | None:
        rows = self.folders.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.folders.item(rows[0].row(), 0)
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def _shown(self) -> list[Snapshot]:
        chosen = self._chosen_folder()
        return [s for s in reversed(self.snapshots) if chosen is None or s.root == chosen]

    def _show_snapshots(self) -> None:
        shown = self._shown()
        self.list.setRowCount(len(shown))
        for row, s in enumerate(shown):
            for col, text in enumerate((_when(s.time_ns), str(s.files), human(s.size),
                                        printable(s.host))):
                self.list.setItem(row, col, _item(text, s.id,
                                                  f"{s.id}\n{iso(s.time_ns)} UTC"))
        self.restore_button.setEnabled(bool(shown))

    def chosen_snapshot(self) -> Snapshot | None:
        rows = self.list.selectionModel().selectedRows() or (
            [self.list.currentIndex()] if self.list.currentIndex().isValid() else [])
        shown = self._shown()
        return shown[rows[0].row()] if rows and rows[0].row() < len(shown) else None

    # -- actions
    def _at_login(self, on: bool) -> None:
        try:
            autostart.set_enabled(on)
        except OSError as exc:
            self._say(self.tr("Could not change starting at login: %1").replace(
                "%1", exc.strerror or str(exc)))

    def protect_folder(self, path: str | None = None) -> bool:
        if path is None:
            path = QFileDialog.getExistingDirectory(self, self.tr("Protect a folder"))
        if not path or self.ctx.config is None:
            return False
        cfg = copy.deepcopy(self.ctx.config)
        if cfg.protected(path) is not None:
            QMessageBox.information(self, self.tr("Protect a folder"),
                                    self.tr("That folder is protected already."))
            return False
        cfg.protect.append(ProtectedFolder(str(Path(path).absolute())))
        self.ctx.save(cfg)
        self.runner.reconfigure()
        self.runner.tick()   # its first backup at once (while unlocked)
        return True

    def edit_retention(self) -> Any:
        from .retention_dialog import RetentionDialog

        chosen = self._chosen_folder()
        if chosen is None:
            return None
        dialog = RetentionDialog(self.ctx, chosen, self)
        dialog.accepted.connect(self.runner.reconfigure)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def unprotect(self) -> None:
        chosen = self._chosen_folder()
        if chosen is None or self.ctx.config is None:
            return
        answer = QMessageBox.question(
            self, self.tr("Stop protecting"),
            self.tr("Stop backing up %1? Its snapshots stay until they are forgotten.")
            .replace("%1", printable(chosen)))
        if answer != QMessageBox.StandardButton.Yes:
            return
        cfg = copy.deepcopy(self.ctx.config)
        cfg.protect = [f for f in cfg.protect if f.path != chosen]
        self.ctx.save(cfg)
        self.runner.reconfigure()

    def back_up_now(self) -> None:
        chosen = self._chosen_folder()
        folder = next((f for f in self.runner.folders() if f.path == chosen), None)
        if folder is None:
            return
        engine = self.ctx.engine
        if engine is None or not engine.unlocked:
            self._say(self.tr("Unlock the vault first (Ctrl+L): a backup needs the key."))
            return
        if not self.runner.run(folder):
            self._say(self.tr("Another backup is running; this one comes after it."))

    def restore_snapshot(self) -> None:
        snap = self.chosen_snapshot()
        if snap is not None:
            self.restore_requested.emit(snap)


class _Table(EmptyHint, QTableWidget):
    def __init__(self, headers: list[str], hint: str) -> None:
        super().__init__(0, len(headers))
        self._hint = hint
        self.setHorizontalHeaderLabels(headers)
        plain_rows(self)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.setWordWrap(False)

    def empty_hint(self) -> str:
        return self._hint


def _item(text: str, key: str, tip: str | None = None) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setData(Qt.ItemDataRole.UserRole, key)
    item.setToolTip(tip or text)
    return item
