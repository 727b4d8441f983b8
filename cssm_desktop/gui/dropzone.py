"""The area files are dropped on; also a big button for those who don't drag."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import (
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
)
from PySide6.QtWidgets import QFrame, QLabel, QPushButton, QVBoxLayout, QWidget


def _as_copy(event: QDragEnterEvent | QDragMoveEvent | QDropEvent) -> bool:
    """Take a drop only as a copy: a source asked to move would delete the user's files
    once we said yes. One that offers no copy is refused."""
    if not event.possibleActions() & Qt.DropAction.CopyAction:
        event.ignore()
        return False
    event.setDropAction(Qt.DropAction.CopyAction)
    event.accept()
    return True


def _local_paths(event: QDragEnterEvent | QDropEvent) -> list[Path]:
    data = event.mimeData()
    return [Path(u.toLocalFile()) for u in data.urls() if u.isLocalFile()] \
        if data.hasUrls() else []


class DropTarget:
    """What takes drops of local files, as copies: the zone, and the page around it."""

    dropped: Signal

    def _lit(self, on: bool) -> None:
        """Show (or stop showing) that a drop would be taken."""

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _local_paths(event) and _as_copy(event):
            self._lit(True)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if event.mimeData().hasUrls():
            _as_copy(event)

    def dragLeaveEvent(self, event: object) -> None:
        self._lit(False)

    def dropEvent(self, event: QDropEvent) -> None:
        self._lit(False)
        paths = _local_paths(event)
        if paths and _as_copy(event):
            self.dropped.emit(paths)


class DropPage(DropTarget, QWidget):
    """A page that takes drops anywhere on it; its drop zone lights up meanwhile."""

    dropped = Signal(list)        # list[Path]

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.zone: DropZone | None = None

    def _lit(self, on: bool) -> None:
        if self.zone is not None:
            self.zone._lit(on)


class DropZone(DropTarget, QFrame):
    """Emits the local paths of whatever files and folders are dropped on it."""

    dropped = Signal(list)        # list[Path]
    browse_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self._active = False
        self.setMinimumHeight(96)
        layout = QVBoxLayout(self)
        self.title = QLabel(self.tr("Drop files or folders here"))
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        self.title.setFont(font)
        # Until the vault says its k and n (set_threshold): no number is known yet.
        self.hint = QLabel(self.tr("Each file is encrypted on this computer and split across "
                                   "your stores; enough of them restore it, fewer reveal "
                                   "nothing."))
        self.hint.setWordWrap(True)
        self.button = QPushButton(self.tr("&Add files…"))
        self.button.clicked.connect(self.browse_requested)
        for w in (self.title, self.hint):
            w.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addStretch(1)
        layout.addWidget(self.title)
        layout.addWidget(self.hint)
        layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignCenter)
        layout.addStretch(1)
        self._lit(False)

    def set_threshold(self, k: int, n: int) -> None:
        self.hint.setText(self.tr("Each file is encrypted on this computer, split across your "
                                  "%1 stores, and can be restored from any %2 of them.")
                          .replace("%1", str(n)).replace("%2", str(k)))

    def _lit(self, active: bool) -> None:
        self._active = active
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        """A dashed frame drawn from the current palette (no style sheet: those cascade
        to the children and freeze their colours when the system theme changes)."""
        super().paintEvent(event)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        role = QPalette.ColorRole.Highlight if self._active else QPalette.ColorRole.Mid
        pen = QPen(self.palette().color(role), 2, Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.drawRoundedRect(self.rect().adjusted(2, 2, -2, -2), 10, 10)
        painter.end()
