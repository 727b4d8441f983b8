"""The stored files (from the catalog): a sortable, filterable table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from ..catalog import AT_RISK, LOST, SAFE, Entry
from ..text import printable
from ..units import human
from .tables import EmptyHint, chosen_rows, plain_rows

COLUMNS = ("Name", "Size", "Stored at", "Health")
HEALTH_TEXT = {SAFE: "✔ safe", AT_RISK: "⚠ at risk", LOST: "✖ lost"}
SORT_ROLE = Qt.ItemDataRole.UserRole + 1


class FilesModel(QAbstractTableModel):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.entries: list[Entry] = []
        self.versions: dict[str, int] = {}   # name -> stored versions (1 when absent)

    def set_entries(self, entries: list[Entry], versions: dict[str, int] | None = None
                    ) -> None:
        self.beginResetModel()
        self.entries = list(entries)
        self.versions = versions or {}
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.entries)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.tr(COLUMNS[section])
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        e = self.entries[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            stored = datetime.fromtimestamp(e.stored_at_ns / 1e9).strftime("%Y-%m-%d %H:%M")
            many = self.versions.get(e.name, 1)
            if many > 1:
                stored += "  " + self.tr("(%n version(s))", "", many)
            return (printable(e.name), human(e.size), stored,
                    self.tr(HEALTH_TEXT.get(e.health, e.health)))[col]
        if role == SORT_ROLE:
            return (e.name.lower(), e.size, e.stored_at_ns, e.health)[col]
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = f"{e.name}\n{e.id}\n{e.k} of {e.n} stores needed"
            if e.health == AT_RISK:
                tip += "\n" + self.tr("Restorable; Repair (or bringing the stores back) makes "
                                      "it safe again.")
            if e.damaged:
                tip += "\n" + self.tr("Not usable on: ") + e.damaged.replace(",", ", ")
            return tip
        if role == Qt.ItemDataRole.TextAlignmentRole and col == 1:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class FilesView(EmptyHint, QTableView):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source = FilesModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.source)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(0)
        self.setModel(self.proxy)
        self.setSortingEnabled(True)
        self.sortByColumn(2, Qt.SortOrder.DescendingOrder)
        plain_rows(self)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setAlternatingRowColors(True)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2, 3):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)

    filter_text = ""

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self.proxy.setFilterFixedString(text)

    def empty_hint(self) -> str:
        if self.source.entries:   # all filtered out
            return self.tr("No stored file's name contains “%1”.").replace(
                "%1", self.filter_text)
        return self.tr("No files stored yet.\nDrop files or folders anywhere on this window, "
                       "or press Ctrl+O.")

    def selected_entries(self) -> list[Entry]:
        rows = {self.proxy.mapToSource(i).row() for i in chosen_rows(self)}
        return [self.source.entries[r] for r in sorted(rows)]
