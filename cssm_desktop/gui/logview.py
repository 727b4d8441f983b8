"""Shows the end of the app's log file (which never holds secrets)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

TAIL_BYTES = 256 * 1024


class LogDialog(QDialog):
    def __init__(self, log_file: Path | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.log_file = log_file
        self.setWindowTitle(self.tr("Log"))
        self.resize(820, 480)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        refresh = QPushButton(self.tr("&Refresh"))
        buttons.addButton(refresh, QDialogButtonBox.ButtonRole.ActionRole)
        refresh.clicked.connect(self.load)
        buttons.rejected.connect(self.reject)
        # Where the file is, to attach to a report or read with other tools (B12).
        where = QLabel(self.tr("Log file: %1").replace(
            "%1", str(log_file) if log_file is not None else self.tr("none (logging is off)")))
        where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        where.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(where)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
        self.load()

    def load(self) -> None:
        if self.log_file is None or not self.log_file.exists():
            self.text.setPlainText(self.tr("No log yet."))
            return
        with open(self.log_file, "rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(max(0, size - TAIL_BYTES))
            self.text.setPlainText(fh.read().decode("utf-8", "replace"))
        self.text.verticalScrollBar().setValue(self.text.verticalScrollBar().maximum())
