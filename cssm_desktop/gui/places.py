"""The window's places (a side bar of sections) and the strip that keeps running work in
view from every one of them.

Sections are added here, once: protected folders, versions and the like come as rows of
the side bar, not as more panes crammed onto one page.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon, QKeyEvent, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QStyle,
    QWidget,
)

from ..units import human, seconds
from .jobs import FINAL, JobQueue, State


class Places(QListWidget):
    """One row a section; arrows move between them, the page follows at once."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("places")
        self.setIconSize(QSize(20, 20))
        self.setSpacing(2)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.Shape.NoFrame)
        # The side bar's own colour, a shade off the page's, from the palette (no style
        # sheet: those freeze colours when the system theme changes).
        self.viewport().setBackgroundRole(QPalette.ColorRole.Window)
        self._names: list[str] = []

    def add(self, name: str, text: str, icon: QStyle.StandardPixmap, tip: str) -> None:
        item = QListWidgetItem(QIcon(self.style().standardIcon(icon)), text)
        item.setToolTip(tip)
        item.setData(Qt.ItemDataRole.UserRole, text)
        self.addItem(item)
        self._names.append(name)
        width = max(self.sizeHintForColumn(0) + 24, 140)
        self.setFixedWidth(width)

    def name(self, row: int) -> str:
        return self._names[row]

    def row_of(self, name: str) -> int:
        return self._names.index(name)

    def set_badge(self, name: str, badge: str) -> None:
        """A count after the section's name (uploads running), or nothing."""
        item = self.item(self.row_of(name))
        text = item.data(Qt.ItemDataRole.UserRole)
        item.setText(f"{text}  ({badge})" if badge else text)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        # Enter goes into the page: the side bar is only a way there.
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.focusNextChild()
            return
        super().keyPressEvent(event)


class ActivityStrip(QFrame):
    """What runs now, in one line under every section: how many uploads, how far, how
    fast, how long still. Gone when nothing runs. Updated on a timer, not per event:
    a queue of 20,000 small files must not keep the window busy."""

    show_requested = Signal()

    def __init__(self, queue: JobQueue, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.queue = queue
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.label = QLabel()
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setMaximumWidth(220)
        self.button = QPushButton(self.tr("Show &activity"))
        self.button.clicked.connect(self.show_requested)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 4, 8, 4)
        row.addWidget(self.label, 1)
        row.addWidget(self.bar)
        row.addWidget(self.button)
        self._first_open = 0   # jobs before this one have all ended (they end in order)
        self._timer = QTimer(self, interval=500)
        self._timer.timeout.connect(self.update_now)
        queue.added.connect(self._started)
        queue.reset.connect(self._reset)
        queue.all_finished.connect(self.update_now)
        queue.held_changed.connect(lambda _h: self.update_now())
        self.hide()

    def _started(self) -> None:
        if not self._timer.isActive():
            self._timer.start()
        self.update_now()

    def _reset(self) -> None:
        self._first_open = 0
        self.update_now()

    def totals(self) -> tuple[int, int, int, int, float]:
        """Uploads not finished, running, bytes done and bytes in all of them, and the
        speed of those running. Starts from the first job not ended, so it costs what is
        left, not what the queue ever held."""
        jobs = self.queue.jobs
        while self._first_open < len(jobs) and jobs[self._first_open].state in FINAL:
            self._first_open += 1
        left = running = done = total = 0
        speed = 0.0
        speeds: set[int] = set()   # a pack's files share one worker: its speed once
        for job in jobs[self._first_open:]:
            if job.state in FINAL:
                continue
            left += 1
            done += job.shown
            total += job.size
            if job.state is State.RUNNING:
                running += 1
                if id(job.worker) not in speeds:
                    speeds.add(id(job.worker))
                    speed += job.speed
        return left, running, done, total, speed

    def update_now(self) -> None:
        left, running, done, total, speed = self.totals()
        if not left:
            self._timer.stop()
            self.hide()
            return
        if self.queue.held:
            text = self.tr("%n upload(s) paused", "", left)
        elif self.queue.paused:
            text = self.tr("%n upload(s) wait for the vault to be unlocked", "", left)
        else:
            text = self.tr("Uploading %n file(s)", "", left) + f": {human(done)} of " \
                f"{human(total)}"
            if running and speed > 0:
                text += f" · {human(speed)}/s · " + self.tr("%1 left").replace(
                    "%1", seconds((total - done) / speed))
        self.label.setText(text)
        self.bar.setValue(int(1000 * done / total) if total else 0)
        self.show()

