"""The main window: drop zone, upload queue, stored files, menus, status bar."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QProgressDialog,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QSystemTrayIcon,
    QVBoxLayout,
    QWidget,
)

from .. import __version__
from ..config import Config, StoreConfig, data_dir
from ..engine import expand_paths
from ..errors import Cancelled
from . import workers
from .context import AppContext
from .dropzone import DropZone
from .files_view import FilesView
from .jobs import JobQueue, State
from .logview import LogDialog
from .queue_view import QueueView
from .restore_dialog import RestoreDialog
from .settings_dialog import SettingsDialog
from .unlock_dialog import UnlockDialog
from .welcome import NewPasswordDialog, WelcomePage

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    files_loaded = Signal()
    vault_ready = Signal()

    def __init__(self, ctx: AppContext, log_file: Path | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.log_file = log_file
        self.setWindowTitle(self.tr("CSSM Desktop"))
        self.resize(980, 700)
        self.queue = JobQueue(parent=self)
        self.queue.job_finished.connect(self._job_finished)
        self.queue.all_finished.connect(self._all_finished)
        self._finished_batch: list[Any] = []

        self.pages = QStackedWidget()
        self.welcome = WelcomePage()
        self.welcome.add_buckets.connect(self.open_settings)
        self.welcome.try_local.connect(self._try_local)
        self.welcome.connect_existing.connect(self._connect_existing)
        self.pages.addWidget(self.welcome)
        self.pages.addWidget(self._main_page())
        self.setCentralWidget(self.pages)
        self._menus()
        self.stores_label = QLabel()
        self.lock_label = QLabel()
        self.statusBar().addPermanentWidget(self.lock_label)
        self.statusBar().addPermanentWidget(self.stores_label)
        self.tray = QSystemTrayIcon(self.windowIcon(), self) \
            if QSystemTrayIcon.isSystemTrayAvailable() else None
        self._refresh_timer = QTimer(self, singleShot=True, interval=300)
        self._refresh_timer.timeout.connect(self.refresh_files)
        settings = QSettings()
        if settings.value("geometry"):
            self.restoreGeometry(settings.value("geometry"))
            self.restoreState(settings.value("state"))
            self.splitter.restoreState(settings.value("splitter"))
        self.show_current_page()

    # ---------------------------------------------------------------- layout
    def _main_page(self) -> QWidget:
        page = QWidget()
        self.drop = DropZone()
        self.drop.dropped.connect(self.add_paths)
        self.drop.browse_requested.connect(self.add_files)
        self.queue_view = QueueView(self.queue)
        clear = QPushButton(self.tr("C&lear finished"))
        clear.clicked.connect(self.queue.clear_finished)
        queue_box = QWidget()
        qlay = QVBoxLayout(queue_box)
        qlay.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        head.addWidget(QLabel("<b>" + self.tr("Uploads") + "</b>"))
        head.addStretch(1)
        head.addWidget(clear)
        qlay.addLayout(head)
        qlay.addWidget(self.queue_view)

        self.files = FilesView()
        self.files.doubleClicked.connect(lambda _i: self.restore_selected())
        self.filter = QLineEdit()
        self.filter.setPlaceholderText(self.tr("Filter by name"))
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.files.proxy.setFilterFixedString)
        restore = QPushButton(self.tr("&Restore…"))
        restore.clicked.connect(self.restore_selected)
        delete = QPushButton(self.tr("&Delete…"))
        delete.clicked.connect(self.delete_selected)
        files_box = QWidget()
        flay = QVBoxLayout(files_box)
        flay.setContentsMargins(0, 0, 0, 0)
        fhead = QHBoxLayout()
        fhead.addWidget(QLabel("<b>" + self.tr("Stored files") + "</b>"))
        fhead.addWidget(self.filter, 1)
        fhead.addWidget(restore)
        fhead.addWidget(delete)
        flay.addLayout(fhead)
        flay.addWidget(self.files)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(queue_box)
        self.splitter.addWidget(files_box)
        self.splitter.setSizes([220, 380])
        layout = QVBoxLayout(page)
        layout.addWidget(self.drop)
        layout.addWidget(self.splitter, 1)
        return page

    def _menus(self) -> None:
        def action(menu: Any, text: str, slot: Any, shortcut: Any = None) -> QAction:
            act = QAction(text, self)
            if shortcut is not None:
                act.setShortcut(QKeySequence(shortcut))
            act.triggered.connect(slot)
            menu.addAction(act)
            return act

        bar = self.menuBar()
        m = bar.addMenu(self.tr("&File"))
        action(m, self.tr("&Add files…"), self.add_files, QKeySequence.StandardKey.Open)
        action(m, self.tr("Add &folder…"), self.add_folder, "Ctrl+Shift+O")
        action(m, self.tr("&Restore selected…"), self.restore_selected, "Ctrl+R")
        action(m, self.tr("&Delete selected…"), self.delete_selected,
               QKeySequence.StandardKey.Delete)
        m.addSeparator()
        action(m, self.tr("&Quit"), self.close, QKeySequence.StandardKey.Quit)
        m = bar.addMenu(self.tr("&Vault"))
        self.lock_action = action(m, self.tr("&Lock"), self.toggle_lock, "Ctrl+L")
        action(m, self.tr("&Verify all files"), self.verify_all)
        action(m, self.tr("Re&pair all files"), self.repair_all)
        action(m, self.tr("Re&build file list from the stores"), self.rebuild_catalog)
        m.addSeparator()
        action(m, self.tr("&Settings…"), self.open_settings, QKeySequence.StandardKey.Preferences)
        m = bar.addMenu(self.tr("V&iew"))
        action(m, self.tr("&Refresh"), self.refresh_files, QKeySequence.StandardKey.Refresh)
        action(m, self.tr("&Log…"), self.show_log)
        m = bar.addMenu(self.tr("&Help"))
        action(m, self.tr("&About CSSM Desktop"), self.about)

    # ---------------------------------------------------------------- state
    @property
    def engine(self) -> Any:
        return self.ctx.engine

    def show_current_page(self) -> None:
        if self.ctx.config_error:
            QTimer.singleShot(0, lambda: QMessageBox.warning(
                self, self.tr("Settings"), self.tr("The settings file has a problem:\n\n")
                + (self.ctx.config_error or "")))
        if self.engine is None:
            self.pages.setCurrentIndex(0)
            self.stores_label.setText(self.tr("No stores configured"))
            return
        self.pages.setCurrentIndex(1)
        self.queue.engine = self.engine
        cfg = self.engine.config
        self.drop.set_threshold(cfg.threshold, len(cfg.stores))
        self._update_lock()
        self.stores_label.setText(self.tr("Checking stores…"))
        workers.start(workers.Call(self.engine.vault), succeeded=self._vault_opened,
                      failed=self._vault_failed)

    def _vault_opened(self, vault: Any) -> None:
        self._show_stores(vault)
        self.refresh_files()
        self.vault_ready.emit()

    def _show_stores(self, vault: Any) -> None:
        reachable = len(vault.stores)
        self.stores_label.setText(self.tr("%1 of %2 stores reachable")
                                  .replace("%1", str(reachable)).replace("%2", str(vault.n)))
        self.stores_label.setToolTip("\n".join(f"{s}: {r}" for s, r in
                                               vault.unavailable.items()))

    def _vault_failed(self, error: BaseException) -> None:
        text = workers.message(error)
        self.stores_label.setText(self.tr("Stores unavailable"))
        self.stores_label.setToolTip(text)
        self.statusBar().showMessage(text, 15000)

    def _update_lock(self) -> None:
        unlocked = bool(self.engine and self.engine.unlocked)
        self.lock_label.setText(self.tr("Vault unlocked") if unlocked
                                else self.tr("Vault locked"))
        self.lock_action.setText(self.tr("&Lock") if unlocked else self.tr("&Unlock…"))
        self.queue.paused = not unlocked
        if unlocked:
            self.queue.pump()

    def refresh_files(self) -> None:
        if self.engine is None:
            return
        workers.start(workers.Call(self.engine.entries), succeeded=self._files_loaded,
                      failed=lambda err: self.statusBar().showMessage(
                          workers.message(err), 10000))

    def _files_loaded(self, entries: list[Any]) -> None:
        self.files.source.set_entries(entries)
        self.files_loaded.emit()

    def ensure_unlocked(self) -> bool:
        if self.engine is None:
            return False
        if not self.engine.unlocked and \
                UnlockDialog(self.engine, self).exec() != UnlockDialog.DialogCode.Accepted:
            return False
        self._update_lock()
        return True

    def toggle_lock(self) -> None:
        if self.engine is None:
            return
        if self.engine.unlocked:
            if self.queue.active():
                self.statusBar().showMessage(self.tr("Uploads are running; lock when they "
                                                     "are done."), 5000)
                return
            self.engine.lock()
            self._update_lock()
        else:
            self.ensure_unlocked()

    # ---------------------------------------------------------------- uploads
    def add_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, self.tr("Add files"))
        if paths:
            self.add_paths([Path(p) for p in paths])

    def add_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, self.tr("Add folder"))
        if path:
            self.add_paths([Path(path)])

    def add_paths(self, paths: list[Path]) -> None:
        """What a drop does: list the files (off the UI thread), queue them, unlock."""
        if self.engine is None:
            QMessageBox.information(self, self.tr("No stores yet"),
                                    self.tr("Set up your stores first."))
            return

        def listing() -> list[tuple[Path, str, int]]:
            out = []
            for src, name in expand_paths(paths):
                try:
                    size = src.stat().st_size
                except OSError:
                    size = 0  # the upload will fail with the reason
                out.append((src, name, size))
            return out

        workers.start(workers.Call(listing), succeeded=self._queue_files,
                      failed=lambda err: QMessageBox.warning(
                          self, self.tr("Add files"), workers.message(err)))

    def _queue_files(self, items: list[tuple[Path, str, int]]) -> None:
        if not items:
            return
        self.queue.add(items)
        if not self.engine.unlocked and not self.ensure_unlocked():
            self.statusBar().showMessage(self.tr("Uploads wait until the vault is unlocked."),
                                         8000)
            return
        self._update_lock()

    def _job_finished(self, job: Any) -> None:
        self._finished_batch.append(job)
        if job.state is State.DONE:
            self._refresh_timer.start()
        elif job.state is State.FAILED:
            self.statusBar().showMessage(f"{job.name}: {job.error}", 15000)

    def _all_finished(self) -> None:
        batch, self._finished_batch = self._finished_batch, []
        done = sum(j.state is State.DONE for j in batch)
        failed = sum(j.state is State.FAILED for j in batch)
        text = self.tr("%1 file(s) stored").replace("%1", str(done))
        if failed:
            text += self.tr(", %1 failed").replace("%1", str(failed))
        self.statusBar().showMessage(text, 10000)
        if self.tray is not None and not self.isActiveWindow():
            self.tray.show()
            self.tray.showMessage(self.tr("CSSM Desktop"), text)

    # ---------------------------------------------------------------- files
    def restore_selected(self) -> RestoreDialog | None:
        entries = self.files.selected_entries()
        if not entries or self.engine is None:
            self.statusBar().showMessage(self.tr("Select the files to restore."), 5000)
            return None
        return self.open_restore(entries)

    def open_restore(self, entries: list[Any], destination: Path | None = None) -> RestoreDialog:
        dialog = RestoreDialog(self.engine, entries, self, destination)
        dialog.restored.connect(lambda _p: (self._update_lock(), self.refresh_files()))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def delete_selected(self) -> None:
        entries = self.files.selected_entries()
        if not entries or self.engine is None:
            return
        names = "\n".join(e.name for e in entries[:10]) + ("\n…" if len(entries) > 10 else "")
        answer = QMessageBox.question(
            self, self.tr("Delete files"),
            self.tr("Delete these files from every store? This cannot be undone.\n\n") + names,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return

        def remove() -> list[str]:
            return [f"{e.name}: {', '.join(left)}" for e in entries
                    if (left := self.engine.remove(e.id))]

        workers.start(workers.Call(remove), succeeded=self._removed,
                      failed=lambda err: QMessageBox.warning(
                          self, self.tr("Delete"), workers.message(err)))

    def _removed(self, leftovers: list[str]) -> None:
        self.refresh_files()
        if leftovers:
            self.statusBar().showMessage(self.tr("Some stores were down; the rest is cleaned "
                                                 "by a later garbage collection."), 10000)

    def verify_all(self) -> None:
        if not self.ensure_unlocked():
            return
        self._long_task(self.tr("Verifying every part on every store…"),
                        workers.Job(self.engine.verify), self._verified)

    def _verified(self, results: list[Any]) -> None:
        bad = [e.name for e, r in results if isinstance(r, str) or not r.healthy]
        self.refresh_files()
        if bad:
            QMessageBox.warning(self, self.tr("Verify"), self.tr("%1 of %2 files need repair:\n\n")
                                .replace("%1", str(len(bad))).replace("%2", str(len(results)))
                                + "\n".join(bad[:20]))
        else:
            self.statusBar().showMessage(self.tr("All %1 files are healthy.")
                                         .replace("%1", str(len(results))), 10000)

    def repair_all(self) -> None:
        if not self.ensure_unlocked():
            return
        self._long_task(self.tr("Repairing…"), workers.Job(self.engine.repair),
                        self._repaired)

    def _repaired(self, result: tuple[list[str], list[Any]]) -> None:
        """Say what the repair's own final check found, never just "finished"."""
        _healed, results = result
        self.refresh_files()
        if self.engine is not None:   # repair may have written headers to new stores
            self._show_stores(self.engine.vault())
        at_risk = []
        for entry, res in results:
            if isinstance(res, str):
                at_risk.append(f"{entry.name}: {res}")
            elif not res.after.healthy:
                left = "; ".join(f"{c.store}: {c.problem}" for c in res.after.checks if not c.ok)
                at_risk.append(f"{entry.name}: {left}")
        if at_risk:
            QMessageBox.warning(self, self.tr("Repair"),
                                self.tr("%1 of %2 files are still at risk:\n\n")
                                .replace("%1", str(len(at_risk)))
                                .replace("%2", str(len(results))) + "\n".join(at_risk[:20]))
            return
        rebuilt = sum(1 for _, res in results if res.rebuilt)
        self.statusBar().showMessage(self.tr("Repair done: all %1 files are healthy (%2 "
                                             "rebuilt).").replace("%1", str(len(results)))
                                     .replace("%2", str(rebuilt)), 10000)

    def rebuild_catalog(self) -> None:
        if not self.ensure_unlocked():
            return
        self._long_task(self.tr("Reading the file list from the stores…"),
                        workers.Job(self.engine.rebuild_catalog), self._rebuilt)

    def _rebuilt(self, result: tuple[int, dict[str, str]]) -> None:
        count, unreadable = result
        self.refresh_files()
        msg = self.tr("%1 files found in the stores.").replace("%1", str(count))
        if unreadable:
            msg += " " + self.tr("%1 could not be read.").replace("%1", str(len(unreadable)))
        self.statusBar().showMessage(msg, 15000)

    def _long_task(self, label: str, worker: workers.Worker, on_done: Any) -> QProgressDialog:
        dialog = QProgressDialog(label, self.tr("Cancel"), 0, 0, self)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(300)
        # Direct: the worker's thread is busy in the job and runs no event loop, so a
        # queued call would never arrive; cancel() only sets a thread-safe flag.
        dialog.canceled.connect(worker.cancel, Qt.ConnectionType.DirectConnection)

        def progress(done: int, total: int) -> None:
            dialog.setMaximum(total)
            dialog.setValue(done)

        def finished() -> None:
            dialog.reset()
            dialog.deleteLater()

        def failed(error: BaseException) -> None:
            if isinstance(error, Cancelled):   # what was done before Cancel stays done
                self.refresh_files()
                self.statusBar().showMessage(self.tr("Stopped."), 10000)
            else:
                QMessageBox.warning(self, self.tr("CSSM Desktop"), workers.message(error))

        workers.start(worker, step=progress, succeeded=on_done, finished=finished,
                      failed=failed)
        return dialog

    # ---------------------------------------------------------------- settings, first run
    def open_settings(self) -> bool:
        dialog = SettingsDialog(self.ctx.config, self)
        if dialog.exec() != SettingsDialog.DialogCode.Accepted or dialog.saved_config is None:
            return False
        if self.queue.active():
            self.queue.cancel_all()
        self.ctx.save(dialog.saved_config)
        self.show_current_page()
        if dialog.replaced and QMessageBox.question(
                self, self.tr("Replace store"),
                self.tr("Rebuild what belongs on %1 now? Repair reads every file from the "
                        "other stores.").replace("%1", ", ".join(dialog.replaced))) \
                == QMessageBox.StandardButton.Yes:
            self.repair_all()
        return True

    def _try_local(self) -> None:
        dialog = NewPasswordDialog(self.tr("Password for your new vault"), self)
        if dialog.exec() == NewPasswordDialog.DialogCode.Accepted:
            self.create_local_vault(dialog.password())

    def create_local_vault(self, password: str, root: Path | None = None) -> None:
        """Five folder stores under the user data dir, 3 needed: a vault in seconds."""
        root = root or data_dir() / "local-vault"
        stores = [StoreConfig(name=f"local-{i}", type="folder", path=str(root / f"store-{i}"))
                  for i in range(1, 6)]
        self.ctx.save(Config(stores=stores, threshold=3))
        self.statusBar().showMessage(self.tr("Creating the vault…"))
        engine = self.engine
        workers.start(workers.Call(lambda: engine.init(password)),
                      succeeded=lambda _v: self.show_current_page(),
                      failed=lambda err: QMessageBox.warning(
                          self, self.tr("New vault"), workers.message(err)))

    def _connect_existing(self) -> None:
        if self.open_settings() and self.ensure_unlocked():
            self.rebuild_catalog()

    # ---------------------------------------------------------------- misc
    def show_log(self) -> None:
        LogDialog(self.log_file, self).exec()

    def about(self) -> None:
        QMessageBox.about(self, self.tr("About CSSM Desktop"), self.tr(
            "<h3>CSSM Desktop %1</h3><p>Encrypted, erasure-coded storage across clouds: any "
            "k of your n stores restore a file; fewer reveal nothing.</p>"
            "<p>AES-256-GCM, Shamir's secret sharing, zfec, Argon2id.</p>")
            .replace("%1", __version__))

    def closeEvent(self, event: QCloseEvent) -> None:
        pending = self.queue.pending()
        if pending:
            answer = QMessageBox.question(
                self, self.tr("Uploads running"),
                self.tr("%1 upload(s) are not finished. Cancel them and quit? Nothing "
                        "half-stored is kept.").replace("%1", str(len(pending))),
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self.queue.shut()
        workers.cancel_all()   # a verify or repair still running: stop it too
        workers.wait_all()
        settings = QSettings()
        settings.setValue("geometry", self.saveGeometry())
        settings.setValue("state", self.saveState())
        settings.setValue("splitter", self.splitter.saveState())
        if self.engine is not None:
            self.engine.lock()
        event.accept()
        QApplication.instance().processEvents()
