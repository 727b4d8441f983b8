"""The upload queue: jobs, their states, and a table model the queue view shows.

Cancel contract (as in Vorta's job manager): a job that has not started is simply
marked cancelled and never runs; a running job is asked to stop through its cancel
token, and the engine removes whatever it had written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)

from ..errors import Cancelled
from ..units import human
from . import workers


class State(Enum):
    WAITING = "waiting"
    RUNNING = "encrypting & uploading"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL = {State.DONE, State.FAILED, State.CANCELLED}


@dataclass
class Job:
    source: Path
    name: str
    size: int
    state: State = State.WAITING
    done: int = 0
    error: str = ""
    started: float = 0.0
    ended: float = 0.0
    worker: Any = field(default=None, repr=False)

    @property
    def speed(self) -> float:
        elapsed = (self.ended or time.monotonic()) - self.started
        return self.done / elapsed if self.started and elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        s = self.speed
        return (self.size - self.done) / s if s > 0 and self.state is State.RUNNING else None


COLUMNS = ("Name", "Size", "Progress", "Speed", "Status", "")
PROGRESS_COLUMN = 2
CANCEL_COLUMN = 5  # holds the per-row cancel button


class JobQueue(QAbstractTableModel):
    """Runs at most `parallel` uploads at once; small files overtake nothing, they just
    flow through the free slots."""

    job_finished = Signal(object)   # Job
    all_finished = Signal()

    def __init__(self, parallel: int = 3, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.jobs: list[Job] = []
        self.parallel = parallel
        self.engine: Any = None
        self.paused = True  # until the vault is unlocked
        self.closed = False  # at quit: nothing starts any more, whatever arrives late

    # -- model
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.jobs)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.tr(COLUMNS[section]) if COLUMNS[section] else ""
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        job = self.jobs[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return job.name
            if col == 1:
                return human(job.size)
            if col == PROGRESS_COLUMN:
                return f"{human(job.done)} / {human(job.size)}"
            if col == 3:
                return f"{human(job.speed)}/s" if job.state is State.RUNNING else ""
            if col == 4:
                return self._status(job)
        if role == Qt.ItemDataRole.UserRole and col == PROGRESS_COLUMN:
            return 100 if job.state is State.DONE else (
                int(100 * job.done / job.size) if job.size else 0)
        if role == Qt.ItemDataRole.ToolTipRole:
            return job.error or str(job.source)
        return None

    def _status(self, job: Job) -> str:
        if job.state is State.RUNNING and job.eta is not None:
            return self.tr("uploading, %n s left", "", max(1, round(job.eta)))
        if job.state is State.FAILED:
            return self.tr("failed: ") + job.error
        return self.tr(job.state.value)

    # -- queue
    def add(self, items: list[tuple[Path, str, int]]) -> None:
        first = len(self.jobs)
        self.beginInsertRows(QModelIndex(), first, first + len(items) - 1)
        self.jobs += [Job(src, name, size) for src, name, size in items]
        self.endInsertRows()
        self.pump()

    def active(self) -> list[Job]:
        return [j for j in self.jobs if j.state is State.RUNNING]

    def pending(self) -> list[Job]:
        return [j for j in self.jobs if j.state in (State.WAITING, State.RUNNING)]

    def pump(self) -> None:
        if self.paused or self.closed or self.engine is None:
            return
        for job in self.jobs:
            if len(self.active()) >= self.parallel:
                return
            if job.state is State.WAITING:
                self._start(job)

    def _start(self, job: Job) -> None:
        job.state, job.started = State.RUNNING, time.monotonic()
        worker = workers.PutWorker(self.engine, job.source, job.name)
        job.worker = worker
        workers.start(
            worker,
            progress=lambda done, _total, j=job: self._progress(j, done),
            succeeded=lambda _r, j=job: self._end(j, State.DONE),
            failed=lambda err, j=job: self._end(
                j, State.CANCELLED if isinstance(err, Cancelled) else State.FAILED,
                workers.message(err)))
        self._changed(job)

    def _progress(self, job: Job, done: int) -> None:
        job.done = done
        self._changed(job)

    def _end(self, job: Job, state: State, error: str = "") -> None:
        job.state, job.error, job.ended, job.worker = state, error, time.monotonic(), None
        if state is State.DONE:
            job.done = job.size
        self._changed(job)
        self.job_finished.emit(job)
        self.pump()
        if not self.pending():
            self.all_finished.emit()

    def cancel(self, row: int) -> None:
        job = self.jobs[row]
        if job.state is State.WAITING:
            job.state = State.CANCELLED
            self._changed(job)
            self.job_finished.emit(job)
            if not self.pending():
                self.all_finished.emit()
        elif job.state is State.RUNNING and job.worker is not None:
            job.worker.cancel()

    def cancel_all(self) -> None:
        for row in range(len(self.jobs)):
            self.cancel(row)

    def shut(self) -> None:
        """At quit: cancel everything, and start nothing that a late listing still adds."""
        self.closed = True
        self.cancel_all()

    def clear_finished(self) -> None:
        keep = [j for j in self.jobs if j.state not in FINAL]
        self.beginResetModel()
        self.jobs = keep
        self.endResetModel()

    def _changed(self, job: Job) -> None:
        row = self.jobs.index(job)
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))
