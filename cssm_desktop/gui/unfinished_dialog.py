"""Uploads an earlier run did not finish (killed, quit, stores lost): go on, or drop them.

Shown once per run after the vault is unlocked, when the engine's upload journals list
any (core/journal.py). Resume puts the files back in the queue: each put finds its
journal and sends only what the stores lack. Discard removes what was sent, now.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..units import human


def _ago(started: float) -> str:
    minutes = max(0, int((time.time() - started) // 60))
    if minutes < 60:
        return f"{minutes} min ago"
    if minutes < 48 * 60:
        return f"{minutes // 60} h ago"
    return f"{minutes // (24 * 60)} days ago"


class UnfinishedDialog(QDialog):
    """accept() with `chosen` and `action` ("resume" or "discard") set; reject(): later."""

    def __init__(self, journals: list[Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Unfinished uploads"))
        self.journals = journals
        self.chosen: list[Any] = []
        self.action = ""
        layout = QVBoxLayout(self)
        intro = QLabel(self.tr(
            "%n upload(s) did not finish last time. Resume sends only what the stores do "
            "not have yet; Discard removes what was sent.", "", len(journals)))
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.table = QTableWidget(len(journals), 3, self)
        self.table.setHorizontalHeaderLabels([self.tr("File"), self.tr("Sent"),
                                              self.tr("Started")])
        for row, j in enumerate(journals):
            size = j.identity.size
            share = min(1.0, j.held / max(1, size * j.geometry[0] / j.geometry[1]))
            cells = [j.source, self.tr("%1 of %2").replace("%1", f"{share:.0%}")
                     .replace("%2", human(size)), _ago(j.started)]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.table.setItem(row, col, item)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)   # long paths: both ends
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setTabKeyNavigation(False)   # Tab leaves the table for the buttons
        self.table.selectAll()
        layout.addWidget(self.table)
        buttons = QDialogButtonBox(self)
        self.resume_button = QPushButton(self.tr("&Resume"), self)
        self.discard_button = QPushButton(self.tr("&Discard"), self)
        self.later_button = QPushButton(self.tr("&Later"), self)
        buttons.addButton(self.resume_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.discard_button, QDialogButtonBox.ButtonRole.DestructiveRole)
        buttons.addButton(self.later_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.resume_button.setDefault(True)
        self.resume_button.clicked.connect(lambda: self._choose("resume"))
        self.discard_button.clicked.connect(lambda: self._choose("discard"))
        self.later_button.clicked.connect(self.reject)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        layout.addWidget(buttons)
        self.resize(640, 260)

    def _selected(self) -> list[Any]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [self.journals[r] for r in rows]

    def _selection_changed(self) -> None:
        some = bool(self._selected())
        self.resume_button.setEnabled(some)
        self.discard_button.setEnabled(some)

    def _choose(self, action: str) -> None:
        self.chosen, self.action = self._selected(), action
        if self.chosen:
            self.accept()
