"""The upload queue: one row per job with a progress bar and a cancel button."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, QTimer
from PySide6.QtGui import QKeyEvent, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHeaderView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTableView,
    QToolButton,
    QWidget,
)

from .jobs import FINAL, JobQueue, State
from .queue_model import CANCEL_COLUMN, PROGRESS_COLUMN, QueueModel
from .tables import EmptyHint, plain_rows


class ProgressDelegate(QStyledItemDelegate):
    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 3, -2, -3)  # type: ignore[attr-defined]
        bar.minimum, bar.maximum = 0, 100
        bar.progress = int(index.data(Qt.ItemDataRole.UserRole) or 0)
        bar.text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        bar.textVisible = True
        bar.state = option.state | QStyle.StateFlag.State_Horizontal  # type: ignore[attr-defined]
        bar.textAlignment = Qt.AlignmentFlag.AlignCenter
        bar.palette = option.palette  # type: ignore[attr-defined]
        QApplication.style().drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)


class QueueView(EmptyHint, QTableView):
    """Delete or Backspace cancels the selected jobs."""

    def __init__(self, queue: JobQueue, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.queue = queue
        self.table = model = QueueModel(queue, self)
        self.setModel(model)
        self.setItemDelegateForColumn(PROGRESS_COLUMN, ProgressDelegate(self))
        plain_rows(self, compact=False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(PROGRESS_COLUMN, QHeaderView.ResizeMode.Fixed)
        self.setColumnWidth(PROGRESS_COLUMN, 220)
        for col in (1, 3, 4, CANCEL_COLUMN):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        # Sized by the rows in view: by default the header asks up to 1,000 rows for
        # their text at every row's change, and a pack of 3,000 files ending changes
        # 3,000 rows (minutes of a frozen window, found timing the test of it).
        header.setResizeContentsPrecision(0)
        model.rowsInserted.connect(self._add_buttons)
        model.modelReset.connect(lambda: self._add_buttons(QModelIndex(), 0,
                                                           model.rowCount() - 1))
        model.dataChanged.connect(self._refresh_button)
        # Keep the work in view (B3: new uploads were added below the fold, and the one
        # running was never seen in the default window).
        self._shown_running: int | None = None
        # After the view has laid the new rows out (its scroll range follows a layout).
        model.rowsInserted.connect(lambda *_a: QTimer.singleShot(
            0, lambda: self.follow(added=True)))
        self._follow_due = False
        model.dataChanged.connect(self._follow_soon)

    def empty_hint(self) -> str:
        return self.tr("No uploads. Files dropped on the window are listed here as they go "
                       "up; Clear finished empties the list.")

    def _follow_soon(self, *_args: object) -> None:
        """Once after a burst of changed rows, not once per row: each look goes over the
        whole queue, and a pack's end changes every row of it at once."""
        if not self._follow_due:
            self._follow_due = True
            QTimer.singleShot(0, self._follow_now)

    def _follow_now(self) -> None:
        self._follow_due = False
        self.follow()

    def follow(self, added: bool = False) -> None:
        """The first running upload at the top; with none running, the newest in view.
        Not while the user is in the list (it has the focus): they scroll themselves."""
        if self.hasFocus() or not self.queue.jobs:
            return
        running = next((i for i, j in enumerate(self.queue.jobs)
                        if j.state is State.RUNNING), None)
        if running is not None:
            if running != self._shown_running or added:
                self._shown_running = running
                self.updateGeometries()   # the scroll range of rows just added
                self.scrollTo(self.table.index(running, 0),
                              QAbstractItemView.ScrollHint.PositionAtTop)
            return
        self._shown_running = None
        if added:
            self.updateGeometries()
            self.scrollTo(self.table.index(len(self.queue.jobs) - 1, 0),
                          QAbstractItemView.ScrollHint.EnsureVisible)

    def _add_buttons(self, _parent: QModelIndex, first: int, last: int) -> None:
        for row in range(first, last + 1):
            if self.queue.jobs[row].state in FINAL:
                continue
            button = QToolButton(self)
            button.setText("✕")
            button.setAutoRaise(True)
            button.setToolTip(self.tr("Cancel this upload"))
            button.clicked.connect(lambda _c=False, job=self.queue.jobs[row]:
                                   self.queue.cancel(self.queue.jobs.index(job)))
            self.setIndexWidget(self._cancel_index(row), button)

    def _cancel_index(self, row: int) -> QModelIndex:
        return self.table.index(row, CANCEL_COLUMN)

    def _refresh_button(self, top_left: QModelIndex, *_args: object) -> None:
        """A finished job has nothing left to cancel: its button goes."""
        row = top_left.row()
        if 0 <= row < len(self.queue.jobs) and self.queue.jobs[row].state in FINAL \
                and self.indexWidget(self._cancel_index(row)) is not None:
            self.setIndexWidget(self._cancel_index(row), None)

    def cancel_selected(self) -> int:
        """Cancel the selected uploads; how many rows were selected."""
        rows = sorted({index.row() for index in self.selectionModel().selectedRows()})
        for row in rows:
            self.queue.cancel(row)
        return len(rows)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.cancel_selected()
            return
        super().keyPressEvent(event)
