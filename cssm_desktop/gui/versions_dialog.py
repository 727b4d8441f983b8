"""A file's history: every stored version of its name, newest first; restore any."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..paths import printable
from ..units import human
from .files_view import HEALTH_TEXT
from .tables import chosen_rows, plain_rows


class VersionsDialog(QDialog):
    restore_requested = Signal(object)   # the Entry of the chosen version

    def __init__(self, name: str, versions: list[Any], parent: QWidget | None = None
                 ) -> None:
        super().__init__(parent)
        self.versions = versions
        self.setWindowTitle(self.tr("History of %1").replace("%1", printable(name)))
        head = QLabel(self.tr("%n version(s) of %1, newest first. The newest is the one "
                              "a restore takes; restore an older one here.", "",
                              len(versions)).replace("%1", printable(name)))
        head.setWordWrap(True)
        self.table = QTableWidget(len(versions), 3)
        self.table.setHorizontalHeaderLabels([self.tr("Stored at"), self.tr("Size"),
                                              self.tr("Health")])
        plain_rows(self.table)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for row, e in enumerate(versions):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.stored_at_ns / 1e9))
            for col, text in enumerate((stamp, human(e.size),
                                        self.tr(HEALTH_TEXT.get(e.health, e.health)))):
                item = QTableWidgetItem(text)
                item.setToolTip(e.id)
                self.table.setItem(row, col, item)
        self.table.selectRow(0)
        self.table.activated.connect(lambda _i: self.restore())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.restore_button = buttons.addButton(self.tr("&Restore this version…"),
                                                QDialogButtonBox.ButtonRole.ActionRole)
        self.restore_button.clicked.connect(self.restore)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(head)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.table.setFocus(Qt.FocusReason.OtherFocusReason)
        self.resize(520, 320)

    def chosen(self) -> Any | None:
        rows = chosen_rows(self.table)
        return self.versions[rows[0].row()] if rows else None

    def restore(self) -> None:
        entry = self.chosen()
        if entry is not None:
            self.restore_requested.emit(entry)
