"""Work other programs started through the local API, in the window's Activity: uploads,
downloads, verify, repair and gc, each with its progress and end, cancellable here as
through `DELETE /v1/jobs/{id}`. The service tells of its jobs from its own threads; this
passes them to the GUI thread, at most a few times a second per job."""

from __future__ import annotations

import threading
import time
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtWidgets import QHeaderView, QTableView, QWidget

from ..api.jobs import (
    CANCELLED,
    CANCELLING,
    DOWNLOAD,
    FAILED,
    RUNNING,
    SUCCEEDED,
    TRANSFERS,
    UPLOAD,
    ApiJob,
    Jobs,
)
from ..text import printable
from ..units import human
from .queue_view import ProgressDelegate
from .tables import EmptyHint, chosen_rows, plain_rows

SHOW_EVERY = 0.25   # seconds between two progress updates of one job
KEEP_ROWS = 200
PROGRESS_COLUMN = 1


class ApiWatch(QObject):
    """Given to the service as its jobs' watcher; `changed` arrives in the GUI thread."""

    changed = Signal(object)   # ApiJob
    vault_changed = Signal(str)   # api.jobs.FILES or LOCK: a request changed them

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._shown: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def told(self, what: str) -> None:
        self.vault_changed.emit(what)

    def __call__(self, job: ApiJob) -> None:
        now = time.monotonic()
        with self._lock:
            last, state = self._shown.get(job.id, (0.0, ""))
            if state == job.state and job.ended is None and now - last < SHOW_EVERY:
                return   # progress only, and shown a moment ago
            self._shown[job.id] = (now, job.state)
            if len(self._shown) > 4 * KEEP_ROWS:
                self._shown.clear()
        self.changed.emit(job)


class ApiJobsModel(QAbstractTableModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.jobs: list[ApiJob] = []
        self.source: Jobs | None = None   # the running service's, for cancelling

    def show(self, job: ApiJob) -> None:
        for row, known in enumerate(self.jobs):
            if known is job:
                self.dataChanged.emit(self.index(row, 0), self.index(row, 3))
                return
        self.beginInsertRows(QModelIndex(), len(self.jobs), len(self.jobs))
        self.jobs.append(job)
        self.endInsertRows()
        finished = [j for j in self.jobs if j.ended is not None]
        for old in finished[:max(0, len(self.jobs) - KEEP_ROWS)]:
            row = self.jobs.index(old)
            self.beginRemoveRows(QModelIndex(), row, row)
            del self.jobs[row]
            self.endRemoveRows()

    def clear_finished(self) -> None:
        self.beginResetModel()
        self.jobs = [j for j in self.jobs if j.ended is None]
        self.endResetModel()

    def running(self) -> list[ApiJob]:
        return [j for j in self.jobs if j.ended is None]

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.jobs)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else 4

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return [self.tr("Work"), self.tr("Progress"), self.tr("Status"),
                    self.tr("Started")][section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        job = self.jobs[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return [self.what, self.progress_text, self.status,
                    lambda j: time.strftime("%H:%M:%S", time.localtime(j.started))][col](job)
        if role == Qt.ItemDataRole.UserRole and col == PROGRESS_COLUMN:
            if job.state == SUCCEEDED:
                return 100
            return int(100 * job.done / job.total) if job.total else 0
        if role == Qt.ItemDataRole.ToolTipRole and col in (0, 2):
            return f"{self.what(job)}\n{self.status(job)}"
        return None

    def what(self, job: ApiJob) -> str:
        return {UPLOAD: self.tr("Store %1"), DOWNLOAD: self.tr("Restore %1"),
                "verify": self.tr("Verify every file"), "repair": self.tr("Repair"),
                "gc": self.tr("Clean up the stores")}.get(
            job.kind, job.kind).replace("%1", printable(job.item))

    def progress_text(self, job: ApiJob) -> str:
        if job.kind in TRANSFERS:
            done = job.total if job.state == SUCCEEDED else job.done
            return f"{human(done)} of {human(job.total)}"
        if job.total:
            return self.tr("%1 of %2").replace("%1", str(job.done)).replace(
                "%2", str(job.total))
        return ""

    def status(self, job: ApiJob) -> str:
        if job.state == FAILED and job.error:
            return self.tr("failed: %1").replace("%1", job.error.get("message", ""))
        return {RUNNING: self.tr("running"), CANCELLING: self.tr("cancelling"),
                CANCELLED: self.tr("cancelled"), SUCCEEDED: self.tr("done"),
                FAILED: self.tr("failed")}.get(job.state, job.state)


class ApiJobsView(EmptyHint, QTableView):
    """Delete or Backspace cancels the selected running work, as in the upload list."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = ApiJobsModel(self)
        self.setModel(self.table)
        self.setItemDelegateForColumn(PROGRESS_COLUMN, ProgressDelegate(self))
        plain_rows(self)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(PROGRESS_COLUMN, QHeaderView.ResizeMode.Fixed)
        self.setColumnWidth(PROGRESS_COLUMN, 220)
        for col in (2, 3):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.setAccessibleName(self.tr("Work from other programs"))

    def empty_hint(self) -> str:
        return self.tr("Nothing yet. What programs on this computer store, restore or check "
                       "through the local API shows here.")

    def cancel_chosen(self) -> int:
        """Cancels the chosen running work; how many."""
        jobs = self.table.source
        if jobs is None:
            return 0
        asked = 0
        for index in chosen_rows(self):
            job = self.table.jobs[index.row()]
            if job.ended is None:
                jobs.cancel(job)
                asked += 1
        return asked

    def keyPressEvent(self, event: Any) -> None:
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.cancel_chosen()
            return
        super().keyPressEvent(event)
