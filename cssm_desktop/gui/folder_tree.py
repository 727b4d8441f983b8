"""The stored files as folders (names split at '/'): select a folder to restore all of it.

A folder shows how many files it holds, their total size, the newest time stored, and
the worst health among them, so a damaged file deep inside is seen from the top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTreeView, QWidget

from ..catalog import SAFE, Entry, worst
from ..text import printable
from ..units import human
from .files_view import COLUMNS, HEALTH_TEXT
from .tables import EmptyHint, chosen_rows


@dataclass(eq=False)
class Node:
    name: str
    parent: Node | None = None
    entry: Entry | None = None                 # a file; None for a folder
    children: list[Node] = field(default_factory=list)
    size: int = 0
    count: int = 0
    stored_at_ns: int = 0
    health: str = SAFE

    def entries(self) -> list[Entry]:
        if self.entry is not None:
            return [self.entry]
        return [e for child in self.children for e in child.entries()]


def build(entries: list[Entry]) -> Node:
    root = Node("")
    folders: dict[str, Node] = {"": root}
    for e in sorted(entries, key=lambda e: e.name.lower()):
        parts = e.name.split("/")
        path = ""
        parent = root
        for part in parts[:-1]:
            path = f"{path}/{part}" if path else part
            node = folders.get(path)
            if node is None:
                node = Node(part, parent)
                parent.children.append(node)
                folders[path] = node
            parent = node
        parent.children.append(Node(parts[-1], parent, e, size=e.size, count=1,
                                    stored_at_ns=e.stored_at_ns, health=e.health))
    _total(root)
    _order(root)
    return root


def _total(node: Node) -> None:
    if node.entry is not None:
        return
    for child in node.children:
        _total(child)
    node.size = sum(c.size for c in node.children)
    node.count = sum(c.count for c in node.children)
    node.stored_at_ns = max((c.stored_at_ns for c in node.children), default=0)
    node.health = worst(SAFE, *(c.health for c in node.children))


def _order(node: Node) -> None:
    """Folders first, then files, each by name (as file managers show them)."""
    node.children.sort(key=lambda c: (c.entry is not None, c.name.lower()))
    for child in node.children:
        _order(child)


class FolderModel(QAbstractItemModel):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.root = Node("")

    def set_entries(self, entries: list[Entry]) -> None:
        self.beginResetModel()
        self.root = build(entries)
        self.endResetModel()

    def node(self, index: QModelIndex | QPersistentModelIndex) -> Node:
        return index.internalPointer() if index.isValid() else self.root

    def index(self, row: int, column: int,
              parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> QModelIndex:  # noqa: B008
        node = self.node(parent)
        if not 0 <= row < len(node.children):
            return QModelIndex()
        return self.createIndex(row, column, node.children[row])

    def parent(self, index: QModelIndex | QPersistentModelIndex = QModelIndex()  # noqa: B008
               ) -> QModelIndex:  # type: ignore[override]
        if not index.isValid():
            return QModelIndex()
        up = self.node(index).parent
        if up is None or up is self.root or up.parent is None:
            return QModelIndex()
        return self.createIndex(up.parent.children.index(up), 0, up)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid() and parent.column() != 0:
            return 0
        return len(self.node(parent).children)

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
        n = self.node(index)
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            count = self.tr("1 file") if n.count == 1 else \
                self.tr("%1 files").replace("%1", f"{n.count:,}")
            # Escaped where a name holds a newline or bytes that are not UTF-8 (as in
            # the terminal): one line, and no character Qt would turn into "?".
            name = printable(n.name) if n.entry is not None else \
                f"{printable(n.name)}/  ({count})"
            when = datetime.fromtimestamp(n.stored_at_ns / 1e9).strftime("%Y-%m-%d %H:%M")
            return (name, human(n.size), when, self.tr(HEALTH_TEXT.get(n.health, n.health)))[col]
        if role == Qt.ItemDataRole.ToolTipRole and col == 0 and n.entry is not None:
            return f"{n.entry.name}\n{n.entry.id}"
        if role == Qt.ItemDataRole.TextAlignmentRole and col == 1:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class FolderTree(EmptyHint, QTreeView):
    """Restore and Delete act on every file under the selected folders."""

    def empty_hint(self) -> str:
        return self.tr("No files stored yet.\nDrop files or folders anywhere on this window, "
                       "or press Ctrl+O.")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source = FolderModel(self)
        self.setModel(self.source)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setAlternatingRowColors(True)
        self.setUniformRowHeights(True)   # thousands of rows stay quick
        header = self.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2, 3):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)

    def set_entries(self, entries: list[Entry]) -> None:
        """A new list (after an upload, a restore, a check) keeps what was open, what was
        selected and the current row, by path."""
        expanded = self._expanded()
        selected = {self._path(i) for i in self.selectionModel().selectedRows()}
        current = self._path(self.currentIndex()) if self.currentIndex().isValid() else None
        self.source.set_entries(entries)
        self._expand(expanded)
        if not expanded and len(self.source.root.children) == 1:
            self.expand(self.source.index(0, 0))   # one top folder: show what is in it
        flags = (QItemSelectionModel.SelectionFlag.Select
                 | QItemSelectionModel.SelectionFlag.Rows)
        for index in self._indexes() if selected or current else []:
            path = self._path(index)
            if path in selected:
                self.selectionModel().select(index, flags)
            if path == current:
                self.selectionModel().setCurrentIndex(index,
                                                      QItemSelectionModel.SelectionFlag.NoUpdate)

    def _path(self, index: QModelIndex | QPersistentModelIndex) -> str:
        parts = []
        node: Node | None = self.source.node(index)
        while node is not None and node.parent is not None:
            parts.append(node.name + ("" if node.entry else "/"))
            node = node.parent
        return "/".join(reversed(parts))

    def _indexes(self, parent: QModelIndex | None = None) -> list[QModelIndex]:
        """Every row shown or hidden under `parent` (the tree is small enough: the list of
        a vault, built anyway)."""
        parent = parent or QModelIndex()
        out = []
        for row in range(self.source.rowCount(parent)):
            index = self.source.index(row, 0, parent)
            out.append(index)
            if self.source.node(index).entry is None:
                out += self._indexes(index)
        return out

    def _expanded(self, parent: QModelIndex | None = None, path: str = "") -> set[str]:
        parent = parent or QModelIndex()
        out = set()
        for row in range(self.source.rowCount(parent)):
            index = self.source.index(row, 0, parent)
            node = self.source.node(index)
            if node.entry is None and self.isExpanded(index):
                sub = f"{path}/{node.name}"
                out.add(sub)
                out |= self._expanded(index, sub)
        return out

    def _expand(self, paths: set[str], parent: QModelIndex | None = None,
                path: str = "") -> None:
        parent = parent or QModelIndex()
        for row in range(self.source.rowCount(parent)):
            index = self.source.index(row, 0, parent)
            node = self.source.node(index)
            sub = f"{path}/{node.name}"
            if node.entry is None and sub in paths:
                self.expand(index)
                self._expand(paths, index, sub)

    def selected_entries(self) -> list[Entry]:
        seen: dict[str, Entry] = {}
        for index in chosen_rows(self):
            for e in self.source.node(index).entries():
                seen[e.id] = e
        return sorted(seen.values(), key=lambda e: e.name)
