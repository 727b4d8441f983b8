"""Restore one or more stored files into a folder, asking before anything is replaced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QStandardPaths, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..catalog import Entry
from ..errors import Cancelled
from ..paths import FOLDER, TAKEN, in_the_way
from ..units import Rate, human
from . import workers
from .job_dialog import JobDialog

SHOWN = 200   # files listed by name in the dialog; the rest are counted


class RestoreDialog(JobDialog):
    """Emits restored(paths) when every chosen file is written."""

    restored = Signal(list)

    def __init__(self, engine: Any, entries: list[Entry], parent: QWidget | None = None,
                 destination: Path | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.entries = entries
        self.worker: workers.RestoreWorker | None = None
        self.results: list[Path] = []
        self.skipped = 0       # files the user chose not to replace
        self.in_way: list[tuple[Entry, Path]] = []   # files a folder is in the way of
        self.folder: Path | None = None
        self.setWindowTitle(self.tr("Restore files"))
        self.setMinimumWidth(520)

        self.files = QListWidget()
        for e in entries[:SHOWN]:   # a whole folder may be thousands of files
            self.files.addItem(f"{e.name}    ({human(e.size)})")
        if len(entries) > SHOWN:
            self.files.addItem(self.tr("… and %n more", "", len(entries) - SHOWN))
        self.files.setMaximumHeight(120)
        self.files.setToolTip(self.tr("%n file(s), %1 in all", "", len(entries))
                              .replace("%1", human(sum(e.size for e in entries))))
        last = QSettings().value("restore/folder")
        default = destination or (Path(str(last)) if last and Path(str(last)).is_dir() else
                                  Path(QStandardPaths.writableLocation(
                                      QStandardPaths.StandardLocation.DownloadLocation)
                                      or Path.home()))
        self.dest = QLineEdit(str(default))
        browse = QPushButton(self.tr("&Browse…"))
        browse.clicked.connect(self._browse)
        dest_row = QHBoxLayout()
        dest_row.addWidget(self.dest, 1)
        dest_row.addWidget(browse)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText(self.tr("Vault password"))
        form = QFormLayout()
        form.addRow(self.tr("Files:") if len(entries) == 1 else
                    self.tr("%1 files,\n%2:").replace("%1", f"{len(entries):,}")
                    .replace("%2", human(sum(e.size for e in entries))), self.files)
        dest_label = QLabel(self.tr("Restore &into:"))
        dest_label.setBuddy(self.dest)
        form.addRow(dest_label, dest_row)
        self.password_label = QLabel(self.tr("&Password:"))
        self.password_label.setBuddy(self.password)
        form.addRow(self.password_label, self.password)
        self._show_password(not engine.unlocked)

        self.status = QLabel()
        self.status.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.hide()
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setMaximumHeight(90)
        self.report.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText(self.tr("&Restore"))
        self.buttons.accepted.connect(self.start)
        self.buttons.rejected.connect(self._cancel_or_close)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addWidget(self.bar)
        layout.addWidget(self.report)
        layout.addWidget(self.buttons)
        # Locked: the password is what the user types first.
        (self.password if not engine.unlocked else self.ok).setFocus()

    def _show_password(self, visible: bool) -> None:
        self.password.setVisible(visible)
        self.password_label.setVisible(visible)

    def _browse(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, self.tr("Restore into"), self.dest.text())
        if chosen:
            self.dest.setText(chosen)

    def _say(self, text: str) -> None:
        self.status.setText(text)

    # -- the restore, step by step: unlock if needed, ask about existing files, run
    def start(self) -> None:
        folder = Path(self.dest.text()).expanduser()
        if not folder.is_dir():
            if folder.exists():
                self._say("⚠ " + self.tr("%1 is a file; choose a folder to restore into.")
                          .replace("%1", str(folder)))
                return
            try:   # a folder the user typed (or Downloads on a fresh account): make it
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self._say("⚠ " + self.tr("Cannot create %1: %2").replace("%1", str(folder))
                          .replace("%2", exc.strerror or str(exc)))
                return
        self.ok.setEnabled(False)
        self.folder = folder
        QSettings().setValue("restore/folder", str(folder))
        if not self.engine.unlocked:
            password = self.password.text()
            if not password:
                self._say("⚠ " + self.tr("Enter the vault password."))
                self.ok.setEnabled(True)
                return
            self._say(self.tr("Unlocking…"))
            workers.start(workers.Call(lambda: self.engine.unlock(password)), owner=self,
                          succeeded=lambda _r: self._unlocked(folder),
                          failed=self._unlock_failed)
        else:
            self._unlocked(folder)

    def _unlock_failed(self, error: BaseException) -> None:
        self._say("⚠ " + workers.message(error))
        self.ok.setEnabled(True)
        self.password.selectAll()
        self.password.setFocus()

    def _unlocked(self, folder: Path) -> None:
        self._show_password(False)
        self.skipped = 0
        self.report.clear()   # a second try reports afresh
        self.report.hide()
        targets = list(zip(self.entries, self.engine.tree_targets(self.entries, folder),
                           strict=True))
        met = {e.id: in_the_way(t) for e, t in targets}
        # A restored file never replaces a folder: not asked about, left alone and said
        # (as `cssm get` does); the question counts only files it could replace.
        self.in_way = [(e, t) for e, t in targets if met[e.id] == FOLDER]
        way = {e.id for e, _ in self.in_way}
        present = [(e, t) for e, t in targets if met[e.id] == TAKEN]
        replace: set[str] = set()
        if len(present) == 1:
            question = self.tr("%1 already exists. Replace it with the stored copy?") \
                .replace("%1", str(present[0][1]))
        else:
            question = self.tr("%n file(s) already exist in %1. Replace them with the stored "
                               "copies? (No keeps them as they are.)", "", len(present)) \
                .replace("%1", str(folder))
        if present:
            answer = QMessageBox.question(
                self, self.tr("Replace files?"), question,
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
                | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.No)
            if answer == QMessageBox.StandardButton.Cancel:
                self._say(self.tr("Nothing was restored."))
                self.ok.setEnabled(True)
                return
            if answer == QMessageBox.StandardButton.Yes:
                replace = {e.id for e, _ in present}
            else:
                self.skipped = len(present)
        skip = ({e.id for e, _ in present} - replace) | way
        keep = [e for e, _ in targets if e.id not in skip and e.id not in replace]
        again = [e for e, _ in targets if e.id in replace]
        if not keep and not again:
            self._say(self.tr("Nothing to restore: every file was skipped."))
            self._report_in_the_way()
            self.ok.setEnabled(True)
            return
        self.bar.show()
        self.bar.setValue(0)
        self.bar.setFormat("%p%")
        self.rate = Rate()
        count = len(keep) + len(again)
        self._say(self.tr("Restoring %n file(s)…", "", count) if count > 1 else
                  self.tr("Restoring %1…").replace("%1", (keep or again)[0].name))
        self.worker = workers.RestoreWorker(self.engine, folder, keep, again)
        workers.start(self.worker, owner=self, progress=self._progress,
                      damaged=self._damaged, succeeded=self._done, failed=self._failed)

    def _progress(self, done: int, total: int) -> None:
        """Like an upload's row: how far, how fast, how long still."""
        self.bar.setValue(int(100 * done / total) if total else 100)
        rate = self.rate.text(done, total)
        self.bar.setFormat(f"%p%  ·  {human(done)} of {human(total)}"
                           + (f"  ·  {rate}" if rate else ""))

    def _damaged(self, store: str, reason: str) -> None:
        self.report.show()
        self.report.appendPlainText(self.tr("Store %1: %2 (restored from the others)")
                                    .replace("%1", store).replace("%2", reason))

    def _done(self, rows: list[tuple[Entry, Path | BaseException]]) -> None:
        self.worker = None
        paths = [got for _, got in rows if isinstance(got, Path)]
        failed = [(e, got) for e, got in rows if not isinstance(got, Path)]
        self.results = paths
        # The bar says what was done: full only when every file was restored (B8: a
        # failed restore showed 100%).
        if failed:
            self.bar.hide()
        else:
            self.bar.setValue(100)
            self.bar.setFormat("%p%")
        text = self.tr("%n restored", "", len(paths))
        if self.skipped:
            text += ", " + self.tr("%n skipped (kept as they were)", "", self.skipped)
        if self.in_way:
            text += ", " + self.tr("%n left alone (a folder is in the way)", "",
                                   len(self.in_way))
        if failed:
            text += ", " + self.tr("%n failed", "", len(failed))
            self.report.show()
            for e, err in failed:
                self.report.appendPlainText(f"{e.name}: {workers.message(err)}")
        self._say(("⚠ " if failed else "✔ ") + text + ".")
        self._report_in_the_way()
        self.buttons.clear()
        if paths:   # something to look at
            open_folder = self.buttons.addButton(self.tr("&Open folder"),
                                                 QDialogButtonBox.ButtonRole.ActionRole)
            open_folder.clicked.connect(self.open_folder)
        close = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        close.setDefault(True)
        close.setFocus()
        self.restored.emit(paths)

    def _report_in_the_way(self) -> None:
        """Which files a folder kept out, and where (in the report under the status)."""
        if self.in_way:
            self.report.show()
        for e, target in self.in_way:
            self.report.appendPlainText(
                self.tr("%1: %2 is a folder; a restored file never replaces a folder")
                .replace("%1", e.name).replace("%2", str(target)))

    def open_folder(self) -> bool:
        """Show the folder in the file manager; where none opens, say where it is."""
        if self.folder is None:
            return False
        if QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.folder))):
            return True
        self.report.show()
        self.report.appendPlainText(self.tr("No file manager could be opened. The files "
                                            "are in: %1").replace("%1", str(self.folder)))
        return False

    def _failed(self, error: BaseException) -> None:
        self.worker = None
        self.bar.hide()
        if isinstance(error, Cancelled):
            self._say(self.tr("Stopped. The file being restored was not written; files "
                              "restored before it are kept."))
        else:
            self._say("⚠ " + workers.message(error))
        self.ok.setEnabled(True)
        self.buttons.setEnabled(True)

    def _cancel_or_close(self) -> None:
        self.reject()

    def stopping(self) -> None:
        self._say(self.tr("Stopping…"))
