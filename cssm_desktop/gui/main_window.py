"""The main window: drop zone, upload queue, stored files, menus, status bar."""

from __future__ import annotations

import logging
import time
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
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QStyle,
    QSystemTrayIcon,
    QVBoxLayout,
    QWidget,
)

from .. import __version__
from ..api.jobs import LOCK
from ..catalog import newest_per_name
from ..core.status import StoresLook, StoreState
from ..engine import Duplicate
from ..errors import CssmError, NoVault
from ..paths import list_sources
from ..units import human, seconds
from . import workers
from .api_activity import ApiJobsView, ApiWatch
from .ask import ask
from .backups import BackupRunner, BackupsPage
from .context import AppContext
from .controller import VaultController
from .dropzone import DropPage, DropZone
from .files_view import FilesView
from .folder_tree import FolderTree
from .gcguard import MainThreadGC
from .help import HelpDialog
from .jobs import JobQueue, State
from .kit_dialogs import ConnectKitDialog, KitDialog, kit_saved
from .logview import LogDialog
from .places import ActivityStrip, Places
from .queue_view import QueueView
from .restore_dialog import RestoreDialog
from .settings_dialog import SettingsDialog
from .stores_view import RiskBanner, StoresView
from .task_dialog import TaskDialog
from .unfinished_dialog import UnfinishedDialog
from .unlock_dialog import UnlockDialog
from .versions_dialog import VersionsDialog
from .welcome import NewPasswordDialog, WelcomePage

log = logging.getLogger(__name__)


def _section(title: str, head: list[tuple[QWidget | None, int]], body: QWidget) -> QWidget:
    """A titled part of the main page: a bold title, a row of controls (None: a stretch),
    and the table below."""
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    row = QHBoxLayout()
    row.addWidget(QLabel(f"<b>{title}</b>"))
    for widget, stretch in head:
        if widget is None:
            row.addStretch(stretch)
        else:
            row.addWidget(widget, stretch)
    layout.addLayout(row)
    layout.addWidget(body)
    return box


def _home_as_tilde(path: Path) -> str:
    """A path under the home folder as ~/… (the status bar cut the token's path)."""
    try:
        return "~/" + path.relative_to(Path.home()).as_posix()
    except ValueError:
        return str(path)


class MainWindow(QMainWindow):
    files_loaded = Signal()
    vault_ready = Signal()
    stores_checked = Signal()

    def __init__(self, ctx: AppContext, log_file: Path | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.log_file = log_file
        self.setWindowTitle(self.tr("CSSM Desktop"))
        # Room for the work, within the screen (a 720-line screen hid the status bar).
        room = self.screen().availableGeometry()
        self.resize(min(1000, int(room.width() * 0.9)), min(760, int(room.height() * 0.9)))
        self.queue = JobQueue(parent=self)
        self._offered_unfinished = False   # once per run, after the first unlock
        self._no_vault = False   # the last look found stores that hold no vault
        self._offer_create = False   # first run: offer the new vault when stores hold none
        self._settled = False   # long-lived objects moved out of the collector's way
        self._quit_box: QMessageBox | None = None   # the quit question, while it is up
        self._quit_agreed = False
        self.queue.job_finished.connect(self._job_finished)
        self.queue.all_finished.connect(self._all_finished)
        self._finished_batch: list[Any] = []
        self.controller = VaultController(ctx, self)
        self.controller.opened.connect(self._vault_opened)
        self.controller.open_failed.connect(self._vault_failed)
        self.controller.stores_checked.connect(self._show_stores)
        self.controller.files_loaded.connect(self._files_loaded)
        self.controller.message.connect(lambda text: self.statusBar().showMessage(text, 15000))
        self.controller.failed.connect(lambda title, text: QMessageBox.warning(self, title,
                                                                               text))
        self.controller.vault_created.connect(self.show_current_page)
        # Right after a vault is made: the kit, the day the computer is gone (skippable;
        # the status bar reminds until one is saved).
        self.controller.vault_created.connect(lambda: QTimer.singleShot(0, self.recovery_kit))
        self.backups = BackupRunner(ctx, self)
        self.backups.finished.connect(lambda _p, _r: self.refresh_files())
        self.backups.failed.connect(self._backup_failed)
        self.backups.followed.connect(lambda _r: self.refresh_files())
        self.backups.stale.connect(self._backup_stale)
        self.backups.unhealthy.connect(self._rolling_check_found)
        self._all_entries: list[Any] = []   # every version; the views show the newest
        self.api_server: Any = None   # api/server.py's ApiServer while the API is served

        self.pages = QStackedWidget()
        self.welcome = WelcomePage()
        self.welcome.add_buckets.connect(self._add_my_buckets)
        self.welcome.try_local.connect(self._try_local)
        self.welcome.connect_existing.connect(self._connect_existing)
        self.welcome.connect_kit.connect(self.connect_with_kit)
        self.pages.addWidget(self.welcome)
        self.pages.addWidget(self._main_page())
        self.setCentralWidget(self.pages)
        self._menus()
        self.stores_label = QLabel()
        self.lock_label = QLabel()
        self.held_label = QLabel(self.tr("Uploads paused"))
        self.held_label.hide()
        self.stalled_label = QLabel()
        self.stalled_label.hide()
        self.statusBar().addPermanentWidget(self.stalled_label)
        self.statusBar().addPermanentWidget(self.held_label)
        # While an upload waits for a store that stopped answering, the time counts up.
        self._stall_timer = QTimer(self, interval=1000)
        self._stall_timer.timeout.connect(self._tick_stalled)
        self._silent: set[str] = set()   # stores an upload waits for now
        self.kit_label = QLabel(self.tr("<a href='#'>No recovery kit saved yet</a>"))
        self.kit_label.setToolTip(self.tr("Vault > Recovery kit…: one page that, with the "
                                          "password, brings everything back on a new "
                                          "computer"))
        self.kit_label.linkActivated.connect(lambda _l: self.recovery_kit())
        self.kit_label.hide()
        self.statusBar().addPermanentWidget(self.kit_label)
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
        self.show_current_page()
        self.apply_api()

    # ---------------------------------------------------------------- layout
    def _main_page(self) -> QWidget:
        """A side bar of places, the banner, the place shown, and the strip of running
        work under every place. The whole page takes drops, whatever place is shown."""
        page = DropPage()
        page.dropped.connect(self.add_paths)
        self.activity = ActivityStrip(self.queue)
        self.activity.show_requested.connect(lambda: self.show_place("activity"))
        self.places = Places()
        self.sections = QStackedWidget()
        self.places.currentRowChanged.connect(self.sections.setCurrentIndex)
        self.places.currentRowChanged.connect(self._place_shown)
        for name, text, icon, tip, body in (
                ("files", self.tr("Files"), QStyle.StandardPixmap.SP_DirIcon,
                 self.tr("What is stored: restore or delete (Alt+1)"), self._files_page()),
                ("backups", self.tr("Backups"), QStyle.StandardPixmap.SP_BrowserReload,
                 self.tr("Protected folders, backed up by themselves, and their snapshots "
                         "(Alt+2)"), self._backups_page()),
                ("activity", self.tr("Activity"), QStyle.StandardPixmap.SP_ArrowUp,
                 self.tr("Uploads, and what other programs asked for, running and done "
                         "(Alt+3)"), self._activity_page()),
                ("stores", self.tr("Stores"), QStyle.StandardPixmap.SP_DriveNetIcon,
                 self.tr("Where the parts go, and how each store is (Alt+4)"),
                 self._stores_page())):
            self.places.add(name, text, icon, tip)
            self.sections.addWidget(body)
        page.zone = self.drop   # lit while anything is dragged over the page

        self.banner = RiskBanner()
        self.banner.check_requested.connect(self.check_stores)
        self.banner.repair_requested.connect(self.repair_all)
        self.banner.replace_requested.connect(self.open_settings)
        self.banner.create_requested.connect(self.create_vault_here)
        self.queue.added.connect(self._badge)
        self.queue.all_finished.connect(self._badge)
        self.queue.reset.connect(self._badge)

        right = QVBoxLayout()
        right.addWidget(self.banner)
        right.addWidget(self.sections, 1)
        right.addWidget(self.activity)
        layout = QHBoxLayout(page)
        layout.addWidget(self.places)
        layout.addLayout(right, 1)
        self.places.setCurrentRow(0)
        return page

    def _files_page(self) -> QWidget:
        self.drop = DropZone()
        self.drop.dropped.connect(self.add_paths)
        self.drop.browse_requested.connect(self.add_files)
        self.files = FilesView()
        # activated: a double click, and Enter on the selected row
        self.files.activated.connect(lambda _i: self.restore_selected())
        self.tree = FolderTree()
        # On a file: restore it; on a folder, Enter and double click open it as usual.
        self.tree.activated.connect(
            lambda i: self.restore_selected() if self.tree.source.node(i).entry else None)
        self.files_stack = QStackedWidget()
        self.files_stack.addWidget(self.tree)
        self.files_stack.addWidget(self.files)
        self.as_folders = QPushButton(self.tr("Fold&ers"))
        self.as_folders.setCheckable(True)
        self.as_folders.setToolTip(self.tr("Show stored files as folders; select a folder to "
                                           "restore or delete all of it"))
        self.as_folders.setChecked(QSettings().value("files/folders", True, type=bool))
        self.as_folders.toggled.connect(self._show_files_as)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText(self.tr("Filter by name (Ctrl+F)"))
        self.filter.setClearButtonEnabled(True)
        find = QAction(self.filter)
        find.setShortcuts(QKeySequence.keyBindings(QKeySequence.StandardKey.Find))
        find.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        find.triggered.connect(self._find)
        self.addAction(find)
        self.filter.textChanged.connect(self.files.set_filter)
        # Filtering is a search over every name: it shows the flat list.
        self.filter.textChanged.connect(lambda _t: self._show_files_as())
        self._show_files_as()
        restore = QPushButton(self.tr("&Restore…"))
        restore.clicked.connect(self.restore_selected)
        delete = QPushButton(self.tr("&Delete…"))
        delete.clicked.connect(self.delete_selected)
        history = QPushButton(self.tr("&History…"))
        history.setToolTip(self.tr("Every stored version of the selected file "
                                   "(Ctrl+Shift+H)"))
        history.clicked.connect(self.show_versions)
        files_box = _section(self.tr("Stored files"),
                             [(self.as_folders, 0), (self.filter, 1), (restore, 0),
                              (history, 0), (delete, 0)], self.files_stack)
        # Tab from the filter goes to what it filtered, then to what acts on it.
        for first, then in ((self.as_folders, self.filter), (self.filter, self.tree),
                            (self.tree, self.files), (self.files, restore),
                            (restore, history), (history, delete)):
            QWidget.setTabOrder(first, then)
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.drop)
        layout.addWidget(files_box, 1)
        return page

    def _backups_page(self) -> QWidget:
        self.backups_page = BackupsPage(self.ctx, self.backups)
        self.backups_page.restore_requested.connect(self.restore_snapshot)
        return self.backups_page

    def _activity_page(self) -> QWidget:
        self.queue_view = QueueView(self.queue)
        self.queue_model = self.queue_view.table
        pause = QPushButton(self.tr("&Pause"))
        pause.setCheckable(True)
        pause.toggled.connect(self.queue.hold)
        self.queue.held_changed.connect(pause.setChecked)
        clear = QPushButton(self.tr("C&lear finished"))
        clear.clicked.connect(self.queue.clear_finished)
        uploads = _section(self.tr("Uploads"), [(None, 1), (pause, 0), (clear, 0)],
                           self.queue_view)
        # Work other programs started through the local API (shown while it is served,
        # or while it lists anything).
        self.api_watch = ApiWatch(self)
        self.api_jobs = ApiJobsView()
        self.api_watch.changed.connect(self.api_jobs.table.show)
        self.api_watch.changed.connect(lambda _j: self._badge())
        # The list and the lock state follow what requests did (the window said "no
        # files stored yet" and "Vault locked" after a program stored and unlocked).
        self._api_files = QTimer(self, singleShot=True, interval=300)
        self._api_files.timeout.connect(self.refresh_files)
        self.api_watch.vault_changed.connect(
            lambda what: self._update_lock() if what == LOCK else self._api_files.start())
        cancel = QPushButton(self.tr("Cancel &work"))
        cancel.setToolTip(self.tr("Cancel the selected work (Delete)"))
        cancel.clicked.connect(self.api_jobs.cancel_chosen)
        clear_api = QPushButton(self.tr("Clear fi&nished"))
        clear_api.clicked.connect(self.api_jobs.table.clear_finished)
        self.api_where = QLabel()   # where it is served, and its token (selectable)
        self.api_where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.api_box = _section(self.tr("From other programs"),
                                [(self.api_where, 1), (cancel, 0), (clear_api, 0)],
                                self.api_jobs)
        self.api_box.setVisible(False)
        split = QSplitter(Qt.Orientation.Vertical)
        split.setChildrenCollapsible(False)
        split.addWidget(uploads)
        split.addWidget(self.api_box)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        return split

    def _stores_page(self) -> QWidget:
        self.stores_view = StoresView()
        check = QPushButton(self.tr("Chec&k stores"))
        check.clicked.connect(self.check_stores)
        edit = QPushButton(self.tr("&Settings…"))
        edit.clicked.connect(self.open_settings)
        self.stores_summary = QLabel()
        return _section(self.tr("Stores"), [(self.stores_summary, 1), (check, 0), (edit, 0)],
                        self.stores_view)

    def _find(self) -> None:
        """Ctrl+F: to the filter of stored files, from any place."""
        self.show_place("files")
        self.filter.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.filter.selectAll()

    def show_place(self, name: str) -> None:
        self.places.setCurrentRow(self.places.row_of(name))

    def place(self) -> str:
        """The section shown now."""
        return self.places.name(self.places.currentRow())

    def _place_shown(self, row: int) -> None:
        self.activity.button.setVisible(self.places.name(row) != "activity")
        self._badge()

    def _badge(self) -> None:
        pending = len(self.queue.pending()) + len(self.api_jobs.table.running())
        self.places.set_badge("activity", str(pending) if pending else "")

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
        action(m, self.tr("File &history…"), self.show_versions, "Ctrl+Shift+H")
        action(m, self.tr("Pro&tect a folder…"), lambda: (self.show_place("backups"),
                                                         self.backups_page.protect_folder()))
        m.addSeparator()
        self.pause_action = action(m, self.tr("&Pause uploads"), self.queue.hold, "Ctrl+P")
        self.pause_action.setCheckable(True)
        self.queue.held_changed.connect(self._held_changed)
        self.queue.stalled_changed.connect(self._tick_stalled)
        self.queue.store_silent.connect(self._store_silent)
        action(m, self.tr("&Unfinished uploads…"), self.offer_unfinished_now)
        m.addSeparator()
        action(m, self.tr("&Quit"), self.close, QKeySequence.StandardKey.Quit)
        m = bar.addMenu(self.tr("&Vault"))
        self.lock_action = action(m, self.tr("&Lock"), self.toggle_lock, "Ctrl+L")
        action(m, self.tr("&Verify all files"), self.verify_all)
        action(m, self.tr("Re&pair all files"), self.repair_all)
        action(m, self.tr("Re&build file list from the stores"), self.rebuild_catalog)
        action(m, self.tr("&Clean up (give back space)"), self.clean_up)
        action(m, self.tr("&Check stores now"), self.check_stores)
        m.addSeparator()
        action(m, self.tr("&New vault on these stores…"), self.create_vault_here)
        action(m, self.tr("Recovery &kit…"), self.recovery_kit)
        self.api_action = action(m, self.tr("Serve the local &API for other programs"),
                                 self.toggle_api)
        self.api_action.setCheckable(True)
        settings = action(m, self.tr("&Settings…"), self.open_settings)
        # Ctrl+, everywhere: Linux desktops define no standard Preferences key.
        settings.setShortcuts([*QKeySequence.keyBindings(QKeySequence.StandardKey.Preferences),
                               QKeySequence("Ctrl+,")])
        m = bar.addMenu(self.tr("V&iew"))
        for number, name, text in ((1, "files", self.tr("&Files")),
                                   (2, "backups", self.tr("&Backups")),
                                   (3, "activity", self.tr("&Activity")),
                                   (4, "stores", self.tr("&Stores"))):
            action(m, text, lambda _c=False, p=name: self.show_place(p), f"Alt+{number}")
        m.addSeparator()
        action(m, self.tr("&Refresh"), self.refresh, QKeySequence.StandardKey.Refresh)
        action(m, self.tr("&Log…"), self.show_log)
        m = bar.addMenu(self.tr("&Help"))
        action(m, self.tr("&How CSSM Desktop works"), self.show_help,
               QKeySequence.StandardKey.HelpContents)
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
        self._update_lock()
        self.stores_label.setText(self.tr("Checking stores…"))
        self.controller.open_vault()

    def _vault_opened(self, vault: Any) -> None:
        self._update_lock()   # unlocked again with the key saved settings handed over
        if not self._settled:   # the engine and the stores' clients are loaded now
            self._settled = True
            MainThreadGC.settle()
        # The vault's own n and k (its headers say them), not the settings' wish.
        self.drop.set_threshold(vault.k, vault.n)
        self._remind_kit()
        if not self.backups.timer.isActive():
            self.backups.start()   # protected folders: backed up while the app runs
        waiting = self.engine.unfinished_count() if self.engine is not None else 0
        if waiting and not self.engine.unlocked:
            self.statusBar().showMessage(self.tr(
                "%n upload(s) did not finish last time: unlock (Ctrl+L) to resume them.", "",
                waiting), 30000)
        self.vault_ready.emit()

    def _show_stores(self, checked: StoresLook) -> None:
        """Every word here follows from the check that just ran."""
        self.stores_view.set_reports(checked.reports)
        empty = [r.name for r in checked.reports if r.state is StoreState.EMPTY]
        # No vault, and at least one store answered to say so (none answering: the stores
        # are away, which the usual words say).
        self._no_vault = isinstance(checked.problem, NoVault) and bool(empty)
        if self._no_vault:
            away = {r.name: r.reason for r in checked.reports if r.state is not StoreState.EMPTY}
            text = self.tr("No vault yet") if not away else self.tr("No vault found")
            self.stores_label.setText(text)
            self.stores_summary.setText(text)
            self.banner.show_no_vault(empty, away)
            self.stores_checked.emit()
            if self._offer_create and not away:
                self._offer_create = False
                self.create_vault_here()
            return
        self._offer_create = False
        if checked.n:
            self.drop.set_threshold(checked.k, checked.n)
        n = checked.n or len(checked.reports)
        text = self.tr("%1 of %2 stores reachable").replace(
            "%1", str(n - len(checked.down))).replace("%2", str(n))
        self.stores_label.setText(text)
        self.stores_summary.setText(text)
        self.stores_label.setToolTip("\n".join(f"{s}: {r}" for s, r in checked.down.items()))
        self.banner.show_risk(checked.down, n, checked.k or n)
        self.stores_checked.emit()

    def _vault_failed(self, error: BaseException) -> None:
        text = workers.message(error)
        self.stores_label.setText(self.tr("Stores unavailable"))
        self.stores_label.setToolTip(text)
        self.statusBar().showMessage(text, 15000)
        self.controller.check_stores(count_bytes=False)   # each store's row says why

    def _update_lock(self) -> None:
        unlocked = bool(self.engine and self.engine.unlocked)
        self.lock_label.setText(self.tr("Vault unlocked") if unlocked
                                else self.tr("Vault locked"))
        self.lock_action.setText(self.tr("&Lock") if unlocked else self.tr("&Unlock…"))
        self.queue.paused = not unlocked
        self.backups_page.refresh()   # backups wait for the key, or run
        if unlocked:
            self.backups.tick()   # a backup due (missed while locked) runs now
            self.queue.pump()
            if not self._offered_unfinished:
                self._offered_unfinished = True
                QTimer.singleShot(0, self.offer_unfinished)

    def _store_silent(self, store: str, silent: bool) -> None:
        """An upload found a store silent, or heard it again: the stores' table and the
        count say so at once (not "reachable" from a look taken before)."""
        if self.engine is None or (store in self._silent) == silent:
            return
        if silent:
            self._silent.add(store)
            look = self.engine.note_silent(store)
        else:
            self._silent.discard(store)
            look = self.engine.note_answering(store)
        if look is not None:
            self._show_stores(look)
        self._refresh_timer.start()   # file health follows the stores (at risk, or not)

    def _tick_stalled(self) -> None:
        """Rows and status bar say which store uploads wait for, and for how long; the
        label goes once every store answers (or the waiting uploads ended)."""
        stalled = self.queue.stalled()
        if not stalled:
            self._stall_timer.stop()
            self.stalled_label.hide()
            return
        if not self._stall_timer.isActive():
            self._stall_timer.start()
        first = min(stalled, key=lambda j: j.stalled_since)
        gone = time.monotonic() - first.stalled_since
        self.stalled_label.setText(self.tr("Waiting for store “%1” (%2)").replace(
            "%1", first.stalled).replace("%2", seconds(gone)))
        self.stalled_label.setToolTip(self.tr(
            "It stopped answering. Uploads go on when it answers again, or without it "
            "after %1 (the file is then stored at risk, and repaired when it is back).")
            .replace("%1", seconds(first.stalled_limit)))
        self.stalled_label.show()
        self.queue.rows_changed.emit(min(j.row for j in stalled), max(j.row for j in stalled))

    def _held_changed(self, held: bool) -> None:
        self.pause_action.setChecked(held)
        self.held_label.setVisible(held)
        self.statusBar().showMessage(
            self.tr("Uploads paused; Ctrl+P goes on (large files from what S3 stores "
                    "already hold).") if held
            else self.tr("Uploads go on."), 10000)

    def offer_unfinished_now(self) -> None:
        if not self.ensure_unlocked():
            return
        if self.offer_unfinished() is None:
            self.statusBar().showMessage(self.tr("No unfinished uploads."), 8000)

    def offer_unfinished(self) -> UnfinishedDialog | None:
        """Uploads an earlier run left unfinished: resume them, discard them, or later."""
        engine = self.engine
        if engine is None or not engine.unlocked:
            return None
        try:
            journals = engine.unfinished()
        except CssmError as exc:
            self.statusBar().showMessage(workers.message(exc), 15000)
            return None
        # Not what the queue is about to take up (the engine leaves out only the uploads
        # a put has begun with).
        queued = {str(j.source.absolute()) for j in self.queue.pending()}
        journals = [j for j in journals if j.source not in queued]
        if not journals:
            return None
        dialog = UnfinishedDialog(journals, self)
        dialog.accepted.connect(lambda: self._act_on_unfinished(dialog))
        dialog.open()
        return dialog

    def _act_on_unfinished(self, dialog: UnfinishedDialog) -> None:
        if dialog.action == "resume":
            self.queue.add([(Path(j.source), j.name, j.identity.size) for j in dialog.chosen])
        elif dialog.action == "discard":
            self.controller.discard_unfinished(dialog.chosen)

    def refresh_files(self) -> None:
        self.controller.refresh_files()

    def refresh(self) -> None:
        """F5: look at the stores again; the file list follows from what is found."""
        self.check_stores()

    def check_stores(self) -> None:
        self.stores_label.setText(self.tr("Checking stores…"))
        self.controller.check_stores(count_bytes=True)

    def _files_loaded(self, entries: list[Any]) -> None:
        # One row a name, its newest version (History… shows the others).
        self._all_entries = entries
        newest = newest_per_name(entries)
        counts: dict[str, int] = {}
        for e in entries:
            counts[e.name] = counts.get(e.name, 0) + 1
        self.files.source.set_entries(newest, counts)
        self.tree.set_entries(newest)
        self.backups_page.refresh()
        self.files_loaded.emit()

    def _show_files_as(self, checked: bool | None = None) -> None:
        folders = self.as_folders.isChecked() and not self.filter.text()
        if checked is not None:   # the toggle, not a key typed in the filter: remembered
            QSettings().setValue("files/folders", checked)
        self.files_stack.setCurrentWidget(self.tree if folders else self.files)

    def shown_files(self) -> FilesView | FolderTree:
        """The view of the stored files the user sees now (the tree or the list)."""
        return self.tree if self.files_stack.currentWidget() is self.tree else self.files

    def ensure_unlocked(self) -> bool:
        if self.engine is None:
            return False
        if self._no_vault:   # nothing to unlock: the way on is to create the vault
            self.create_vault_here()
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

        engine = self.engine

        def listing() -> tuple[list[tuple[Path, str, int, str]], list[Any]]:
            files, skipped = list_sources(paths, engine.own_folders())
            return [(Path(f.path), f.name, f.size, f.kind) for f in files], skipped

        workers.start(workers.Call(listing), owner=self, succeeded=self._queue_files,
                      failed=lambda err: QMessageBox.warning(
                          self, self.tr("Add files"), workers.message(err)))

    def _queue_files(self, listed: tuple[list[tuple[Path, str, int, str]], list[Any]]
                     ) -> None:
        items, skipped = listed
        if skipped:
            self.statusBar().showMessage(
                self.tr("%n item(s) left out (links, special files, unreadable): ", "",
                        len(skipped))
                + "; ".join(f"{s.path.name}: {s.reason}" for s in skipped[:3]), 15000)
        if not items:
            return
        self.queue.add(items)
        self.show_place("activity")   # the user watches them go
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
        twins = [j for j in batch if j.state is State.SKIPPED]
        text = self.tr("%n file(s) stored", "", done)
        if twins:
            text += self.tr(", %1 already stored").replace("%1", str(len(twins)))
        if failed:
            text += self.tr(", %1 failed").replace("%1", str(failed))
        self.statusBar().showMessage(text, 10000)
        if self.tray is not None and not self.isActiveWindow():
            self.tray.show()
            self.tray.showMessage(self.tr("CSSM Desktop"), text)
        if done:   # what the stores hold now, for the panel's byte counts
            self.controller.check_stores(count_bytes=True)
        if twins:
            self.ask_about_duplicates(twins)
        self._quit_if_asked()

    def ask_about_duplicates(self, jobs: list[Any]) -> QMessageBox:
        """Same name, same content (keyed tag): nothing was uploaded; the user decides."""
        names = "\n".join(j.name for j in jobs[:10]) + ("\n…" if len(jobs) > 10 else "")
        box = QMessageBox(QMessageBox.Icon.Question, self.tr("Already stored"),
                          self.tr("%n file(s) are already stored with the same name and "
                                  "content, so nothing was uploaded for them:", "", len(jobs))
                          + "\n\n" + names, parent=self)
        skip = box.addButton(self.tr("&Skip"), QMessageBox.ButtonRole.RejectRole)
        again = box.addButton(self.tr("Store &again"), QMessageBox.ButtonRole.AcceptRole)
        again.setToolTip(self.tr("Keep the stored copy and store a second one"))
        replace = box.addButton(self.tr("&Replace"), QMessageBox.ButtonRole.AcceptRole)
        replace.setToolTip(self.tr("Store it anew, then delete the older copies"))
        box.setDefaultButton(skip)
        box.setEscapeButton(skip)

        def chosen(button: Any) -> None:
            mode = {again: Duplicate.AGAIN, replace: Duplicate.REPLACE}.get(button)
            if mode is not None:
                self.queue.add([(j.source, j.name, j.size, j.kind) for j in jobs],
                               duplicates=mode)

        box.buttonClicked.connect(chosen)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        return box

    # ---------------------------------------------------------------- files
    def restore_selected(self) -> RestoreDialog | None:
        # Copies of one name would land on one path: the newest is restored (as
        # `cssm get FOLDER` does); a folder's older copies are for restoring by id.
        entries = newest_per_name(self.shown_files().selected_entries())
        if not entries or self.engine is None:
            self.statusBar().showMessage(self.tr("Select the files to restore."), 5000)
            return None
        return self.open_restore(entries)

    def open_restore(self, entries: list[Any], destination: Path | None = None) -> RestoreDialog:
        dialog = RestoreDialog(self.engine, entries, self, destination)
        # A restore unlocks the vault; one that found damage (or failed) changes what the
        # list must say.
        dialog.restored.connect(lambda _p: self._update_lock())
        dialog.finished.connect(lambda _r: (self._update_lock(), self.refresh_files()))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def versions_of(self, name: str) -> list[Any]:
        same = [e for e in self._all_entries if e.name == name]
        return sorted(same, key=lambda e: (e.stored_at_ns, e.id), reverse=True)

    def show_versions(self) -> VersionsDialog | None:
        chosen = self.shown_files().selected_entries()
        if len({e.name for e in chosen}) != 1:
            self.statusBar().showMessage(self.tr("Select one file to see its history."), 5000)
            return None
        name = chosen[0].name
        dialog = VersionsDialog(name, self.versions_of(name), self)
        dialog.restore_requested.connect(lambda e: self.open_restore([e]))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def restore_snapshot(self, snap: Any, folder: str | None = None) -> TaskDialog | None:
        """A snapshot's tree into a folder the user picks, as it was then."""
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, self.tr("Restore into"))
        if not folder or not self.ensure_unlocked():
            return None
        return self.controller.restore_snapshot(self, snap, Path(folder))

    def _backup_failed(self, path: str, why: str) -> None:
        self.statusBar().showMessage(self.tr("Backup of %1 failed: %2").replace(
            "%1", path).replace("%2", why), 30000)
        if self.tray is not None:
            self.tray.show()
            self.tray.showMessage(self.tr("Backup failed"), why,
                                  QSystemTrayIcon.MessageIcon.Warning)

    def _rolling_check_found(self, bad: int) -> None:
        self.check_stores()
        self.statusBar().showMessage(self.tr(
            "The rolling check found %n stored object(s) not safe: Vault > Repair all "
            "files.", "", bad), 60000)

    def _backup_stale(self, path: str, hours: float) -> None:
        text = self.tr("%1 has not been backed up for %2 hours.").replace(
            "%1", path).replace("%2", str(int(hours)))
        self.statusBar().showMessage(text, 60000)
        if self.tray is not None:
            self.tray.show()
            self.tray.showMessage(self.tr("No recent backup"), text,
                                  QSystemTrayIcon.MessageIcon.Warning)

    def delete_selected(self) -> None:
        """Delete acts where the focus is: on uploads, or on work other programs asked for,
        it cancels them; on stored files it asks before deleting them from every store
        (every version of each name)."""
        if self.queue_view.hasFocus():
            self.cancel_selected_uploads()
            return
        if self.api_jobs.hasFocus():   # the window's Delete shortcut comes first
            self.api_jobs.cancel_chosen()
            return
        chosen = self.shown_files().selected_entries()
        entries = [v for name in dict.fromkeys(e.name for e in chosen)
                   for v in self.versions_of(name)] or chosen
        if not entries or self.engine is None:
            self.statusBar().showMessage(self.tr("Select the stored files to delete."), 5000)
            return
        names = "\n".join(e.name for e in entries[:10]) + ("\n…" if len(entries) > 10 else "")
        answer = QMessageBox.question(
            self, self.tr("Delete files"),
            self.tr("Delete %n file(s) (%1) from every store? This cannot be undone.\n\n", "",
                    len(entries)).replace("%1", human(sum(e.size for e in entries))) + names,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        # A small file's removal is recorded in its pack, sealed with the vault key.
        if answer == QMessageBox.StandardButton.Yes and (
                not any(e.pack for e in entries) or self.ensure_unlocked()):
            self.controller.delete(entries)

    def cancel_selected_uploads(self) -> None:
        cancelled = self.queue_view.cancel_selected()
        if cancelled:
            self.statusBar().showMessage(self.tr("%n upload(s) cancelled.", "", cancelled),
                                         5000)

    def verify_all(self) -> TaskDialog | None:
        if not self.ensure_unlocked():
            return None
        return self.controller.verify(self)

    def repair_all(self) -> TaskDialog | None:
        if not self.ensure_unlocked():
            return None
        return self.controller.repair(self)

    def clean_up(self) -> TaskDialog | None:
        if not self.ensure_unlocked():   # gc decides on authenticated data only
            return None
        return self.controller.clean_up(self)

    def rebuild_catalog(self) -> TaskDialog | None:
        if not self.ensure_unlocked():
            return None
        return self.controller.rebuild(self)

    # ---------------------------------------------------------------- settings, first run
    def _add_my_buckets(self) -> None:
        """First run: the provider step, then (once the stores answer, holding no vault)
        the new-vault dialog: the next step offered, not looked for."""
        self._offer_create = True
        if not self.open_settings(provider_first=True):
            self._offer_create = False

    def open_settings(self, provider_first: bool = False) -> bool:
        dialog = SettingsDialog(self.ctx.config, self, provider_first=provider_first)
        if dialog.exec() != SettingsDialog.DialogCode.Accepted or dialog.saved_config is None:
            return False
        if self.queue.active() and not self.ctx.retunes(dialog.saved_config):
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

    def create_vault_here(self) -> NewPasswordDialog | None:
        """A new vault on the configured stores (Vault > New vault on these stores…, or the
        banner when they hold none): how many a file needs, and the password twice."""
        config = self.ctx.config
        if config is None:
            self.open_settings()
            return None
        dialog = NewPasswordDialog(self.tr("New vault on your %1 stores")
                                   .replace("%1", str(len(config.stores))), self,
                                   stores=len(config.stores), needed=config.threshold)
        dialog.setObjectName("new-vault")
        dialog.accepted.connect(lambda: self.controller.create_vault(
            dialog.password(), dialog.needed.value() if dialog.needed else None))
        dialog.open()
        return dialog

    def _try_local(self) -> None:
        dialog = NewPasswordDialog(self.tr("Password for your new vault"), self)
        if dialog.exec() == NewPasswordDialog.DialogCode.Accepted:
            self.create_local_vault(dialog.password())

    def create_local_vault(self, password: str, root: Path | None = None) -> None:
        self.controller.create_local_vault(password, root)

    def _connect_existing(self) -> None:
        if self.open_settings() and self.ensure_unlocked():
            self.rebuild_catalog()

    # ---------------------------------------------------------------- misc
    def bring_to_front(self) -> None:
        """Another start of the app asked for this window."""
        if self.isMinimized():
            self.showNormal()
        self.show()
        self.raise_()
        self.activateWindow()

    def show_log(self) -> None:
        LogDialog(self.log_file, self).exec()

    def about(self) -> None:
        QMessageBox.about(self, self.tr("About CSSM Desktop"), self.tr(
            "<h3>CSSM Desktop %1</h3><p>Encrypted, erasure-coded storage across clouds: any "
            "k of your n stores restore a file; fewer reveal nothing.</p>"
            "<p>AES-256-GCM, Shamir's secret sharing, zfec, Argon2id.</p>"
            "<p>Help: <i>Help &gt; How CSSM Desktop works</i> (F1); in a terminal, "
            "<code>cssm --help</code>.</p>")
            .replace("%1", __version__))

    def show_help(self) -> HelpDialog:
        dialog = HelpDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def _ask_to_quit(self, count: int) -> QMessageBox:
        """Whether to quit with uploads running; asked without blocking, so the question
        goes away by itself (and the window quits) if they finish meanwhile (B6)."""
        if self._quit_box is not None:
            self._quit_box.raise_()
            return self._quit_box
        text = self.tr("%n upload(s) are not finished. Quit now? Large files going to S3 "
                       "stores go on from where they stopped after the next unlock; the "
                       "others start again when you add them.", "", count) \
            if self.engine is not None and self.engine.can_resume else \
            self.tr("%n upload(s) are not finished. Cancel them and quit? Nothing "
                    "half-stored is kept; add them again later.", "", count)

        def answered(quit_now: bool) -> None:
            self._quit_box = None
            if quit_now:
                self._quit_agreed = True
                self.close()

        self._quit_box = ask(self, self.tr("Uploads running"), text,
                             QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No,
                             answered)
        return self._quit_box

    def _quit_if_asked(self) -> None:
        """The uploads the quit question was about are done: nothing is left to ask."""
        box, self._quit_box = self._quit_box, None
        if box is None or self.queue.pending():
            self._quit_box = box
            return
        box.finished.disconnect()
        box.done(0)
        box.deleteLater()
        self._quit_agreed = True
        self.close()

    def _remind_kit(self) -> None:
        vault_id = self.ctx.config.vault if self.ctx.config is not None else None
        self.kit_label.setVisible(bool(vault_id) and not kit_saved(str(vault_id)))

    def recovery_kit(self) -> KitDialog | None:
        if self.engine is None:
            return None
        dialog = KitDialog(self.ctx, self)
        dialog.saved.connect(lambda _p: self._remind_kit())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def connect_with_kit(self) -> ConnectKitDialog:
        dialog = ConnectKitDialog(self.ctx, self)

        def connected(got: Any) -> None:
            self.ctx.reload()   # the settings the kit wrote; the vault opens (locked)
            self.show_current_page()
            self.statusBar().showMessage(self.tr(
                "Connected: %1 files and %2 snapshots listed; unlock (Ctrl+L) to restore.")
                .replace("%1", str(got.files)).replace("%2", str(got.snapshots)), 30000)

        dialog.connected.connect(connected)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def toggle_api(self, on: bool) -> None:
        """The local API on 127.0.0.1 (or where `api` in the settings says), over this
        window's engine: what it unlocks, the window sees unlocked."""
        import copy

        from ..api.server import DEFAULT_ADDRESS

        if self.ctx.config is None:
            self.api_action.setChecked(False)
            return
        cfg = copy.deepcopy(self.ctx.config)
        cfg.api = (cfg.api or DEFAULT_ADDRESS) if on else None
        self.ctx.save(cfg)
        self.apply_api()

    def apply_api(self) -> None:
        from ..api.server import ApiServer, token_file

        want = self.ctx.config.api if self.ctx.config is not None else None
        running = self.api_server
        if running is not None and (want is None or running.address != want):
            running.stop()
            self.api_server = None
        if want and self.api_server is None:
            try:
                server = ApiServer(lambda: self.ctx.engine, want, watch=self.api_watch,
                                   changed=self.api_watch.told)
                server.start()
            except CssmError as exc:
                self.api_action.setChecked(False)
                QMessageBox.warning(self, self.tr("Local API"), str(exc))
                return
            self.api_server = server
            self.api_jobs.table.source = server.jobs
            where = self.tr("Local API on %1 (token in %2)").replace(
                "%1", server.url).replace("%2", _home_as_tilde(token_file()))
            self.statusBar().showMessage(where, 30000)
            self.api_where.setText(where)
        self.api_action.setChecked(self.api_server is not None)
        if self.api_server is None:
            self.api_where.setText(self.tr(
                "Local API off (Vault › Serve the local API for other programs)"))  # noqa: RUF001
        self.api_box.setVisible(self.api_server is not None
                                or self.api_jobs.table.rowCount() > 0)

    def _tray_menu(self) -> None:
        """The tray icon while the window is closed: back to it, back up now, quit."""
        if self.tray is None or self.tray.contextMenu() is not None:
            return
        menu = QMenu(self)
        menu.addAction(self.tr("Show CSSM Desktop"), self.bring_to_front)
        menu.addAction(self.tr("Back up now"), lambda: [self.backups.run(f) for f in
                                                       self.backups.folders()[:1]])
        menu.addSeparator()
        menu.addAction(self.tr("Quit"), self.quit_for_good)
        self.tray.setContextMenu(menu)
        self.tray.activated.connect(lambda _r: self.bring_to_front())

    def start_in_tray(self) -> bool:
        """Started at login: only the tray icon, where there is one; the vault stays
        locked until the user unlocks it (backups wait for the key)."""
        if self.tray is None:
            return False
        self._tray_menu()
        self.tray.show()
        if self.backups.folders():
            self.tray.showMessage(self.tr("CSSM Desktop"), self.tr(
                "Open the window and unlock the vault (Ctrl+L): protected folders are "
                "backed up once it is unlocked."))
        return True

    def keeps_running(self) -> bool:
        """Closing the window leaves the app in the tray: protected folders are backed
        up while it runs (and there is a tray to come back from)."""
        return (self.tray is not None and bool(self.backups.folders())
                and not self._quit_agreed)

    def quit_for_good(self) -> None:
        self._quit_agreed = not self.queue.pending()
        self._closing_for_good = True
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.keeps_running() and not getattr(self, "_closing_for_good", False):
            event.ignore()
            self.hide()
            self._tray_menu()
            assert self.tray is not None
            self.tray.show()
            if not getattr(self, "_told_tray", False):
                self._told_tray = True
                self.tray.showMessage(self.tr("CSSM Desktop keeps backing up"), self.tr(
                    "Protected folders are backed up while CSSM Desktop runs. Quit from "
                    "this icon's menu."))
            return
        self._closing_for_good = False
        pending = self.queue.pending()
        if pending and not self._quit_agreed:
            event.ignore()
            self._ask_to_quit(len(pending))
            return
        self.queue.shut()
        self.backups.stop()
        if self.api_server is not None:
            self.api_server.stop()
            self.api_server = None
        workers.cancel_all()   # a verify or repair still running: stop it too
        workers.wait_all()
        settings = QSettings()
        settings.setValue("geometry", self.saveGeometry())
        settings.setValue("state", self.saveState())
        if self.engine is not None:
            self.engine.lock()
        event.accept()
        QApplication.instance().processEvents()
