"""Restore one or more stored files into a folder, asking before anything is replaced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QStandardPaths, Signal
from PySide6.QtWidgets import (
    QDialog,
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
from ..units import human
from . import workers


class RestoreDialog(QDialog):
    """Emits restored(paths) when every chosen file is written."""

    restored = Signal(list)

    def __init__(self, engine: Any, entries: list[Entry], parent: QWidget | None = None,
                 destination: Path | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.entries = entries
        self.worker: workers.RestoreWorker | None = None
        self.results: list[Path] = []
        self.setWindowTitle(self.tr("Restore files"))
        self.setMinimumWidth(520)

        self.files = QListWidget()
        for e in entries:
            self.files.addItem(f"{e.name}    ({human(e.size)})")
        self.files.setMaximumHeight(120)
        default = destination or Path(QStandardPaths.writableLocation(
            QStandardPaths.StandardLocation.DownloadLocation) or Path.home())
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
        form.addRow(self.tr("Files:"), self.files)
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
            self._say("⚠ " + self.tr("Choose an existing folder to restore into."))
            return
        self.ok.setEnabled(False)
        if not self.engine.unlocked:
            password = self.password.text()
            if not password:
                self._say("⚠ " + self.tr("Enter the vault password."))
                self.ok.setEnabled(True)
                return
            self._say(self.tr("Unlocking…"))
            workers.start(workers.Call(lambda: self.engine.unlock(password)),
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
        jobs = []
        for entry in self.entries:
            target = self.engine.destination(entry.name, folder)
            force = False
            if target.exists():
                answer = QMessageBox.question(
                    self, self.tr("Replace file?"),
                    self.tr("%1 already exists. Replace it with the stored copy?")
                    .replace("%1", str(target)),
                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
                    | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.No)
                if answer == QMessageBox.StandardButton.Cancel:
                    self._say(self.tr("Nothing was restored."))
                    self.ok.setEnabled(True)
                    return
                if answer == QMessageBox.StandardButton.No:
                    continue
                force = True
            jobs.append((entry, target, force))
        if not jobs:
            self._say(self.tr("Nothing to restore: every file was skipped."))
            self.ok.setEnabled(True)
            return
        self.bar.show()
        self.bar.setValue(0)
        self.worker = workers.RestoreWorker(self.engine, jobs)
        workers.start(self.worker, current=self._current, progress=self._progress,
                      damaged=self._damaged, succeeded=self._done, failed=self._failed)

    def _current(self, index: int, name: str) -> None:
        self._say(self.tr("Restoring %1 (%2 of %3)…").replace("%1", name)
                  .replace("%2", str(index + 1)).replace("%3", str(len(self.entries))))

    def _progress(self, done: int, total: int) -> None:
        self.bar.setValue(int(100 * done / total) if total else 100)

    def _damaged(self, store: str, reason: str) -> None:
        self.report.show()
        self.report.appendPlainText(self.tr("Store %1: %2 (restored from the others)")
                                    .replace("%1", store).replace("%2", reason))

    def _done(self, paths: list[Path]) -> None:
        self.worker = None
        self.results = paths
        self.bar.setValue(100)
        self._say("✔ " + self.tr("Restored %n file(s).", "", len(paths)))
        self.buttons.clear()
        self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.restored.emit(paths)

    def _failed(self, error: BaseException) -> None:
        self.worker = None
        self.bar.hide()
        self._say("⚠ " + workers.message(error))
        self.ok.setEnabled(True)

    def _cancel_or_close(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self._say(self.tr("Cancelling…"))
            return
        self.reject()
