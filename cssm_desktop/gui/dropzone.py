"""The area files are dropped on; also a big button for those who don't drag."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QFrame, QLabel, QPushButton, QVBoxLayout, QWidget


class DropZone(QFrame):
    """Emits the local paths of whatever files and folders are dropped on it."""

    dropped = Signal(list)        # list[Path]
    browse_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setObjectName("dropZone")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setMinimumHeight(120)
        layout = QVBoxLayout(self)
        self.title = QLabel(self.tr("Drop files or folders here"))
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        self.title.setFont(font)
        self.hint = QLabel(self.tr("Each file is encrypted on this computer, split across "
                                   "your stores, and can be restored from any %1 of them."))
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
        self._set_active(False)

    def set_threshold(self, k: int, n: int) -> None:
        self.hint.setText(self.tr("Each file is encrypted on this computer, split across your "
                                  "%1 stores, and can be restored from any %2 of them.")
                          .replace("%1", str(n)).replace("%2", str(k)))

    def _set_active(self, active: bool) -> None:
        # Palette roles only, so a dark system theme looks right too.
        role = "Highlight" if active else "Mid"
        self.setStyleSheet(f"#dropZone {{ border: 2px dashed palette({role}); "
                           "border-radius: 10px; }")

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
            self._set_active(True)

    def dragLeaveEvent(self, event: object) -> None:
        self._set_active(False)

    def dropEvent(self, event: QDropEvent) -> None:
        self._set_active(False)
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.dropped.emit(paths)
