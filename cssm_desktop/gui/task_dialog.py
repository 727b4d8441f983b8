"""A long vault job (verify, repair, rebuild the list) as a dialog a person can follow:
file N of M and its bytes while it runs, a working Cancel, then what it found, file by file.

Esc or closing the window while the job runs asks it to stop (the engine keeps what is
finished and leaves nothing half-written); the dialog stays until the job has ended.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QProgressBar,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..errors import Cancelled
from ..units import human
from . import workers
from .job_dialog import JobDialog


@dataclass(frozen=True)
class Row:
    """One line of the result list."""

    name: str
    outcome: str      # "safe", "repaired", "at risk", "lost"
    why: str = ""
    files: int = 1    # a pack's row stands for every file in it


MARKS = {"safe": "✔", "repaired": "✔", "at risk": "⚠", "lost": "✖", "foreign": "⊘"}


class TaskDialog(JobDialog):
    """`ended(result or None)` once the job is over (None: stopped or failed)."""

    ended = Signal(object)

    def __init__(self, title: str, doing: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(560)
        self.worker: workers.Worker | None = None
        self._doing = doing
        self.label = QLabel(doing)
        self.label.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)
        self.bytes = QLabel()
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.hide()
        self.rows = QTreeWidget()
        self.rows.setHeaderLabels([self.tr("File"), self.tr("Result"), self.tr("Why")])
        self.rows.setRootIsDecorated(False)
        self.rows.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.rows.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.rows.header().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.rows.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for w in (self.label, self.bar, self.bytes, self.summary, self.rows, self.buttons):
            layout.addWidget(w)

    @property
    def running(self) -> bool:
        return self.worker is not None

    def run(self, worker: workers.Worker) -> None:
        self.worker = worker
        workers.start(worker, owner=self, step=self._step, progress=self._bytes,
                      succeeded=self._succeeded, failed=self._failed)
        self.show()

    # -- while it runs
    def _step(self, done: int, total: int, item: str) -> None:
        if total:
            self.bar.setRange(0, total)
            self.bar.setValue(done)
        if item and done < total:
            self.label.setText(self.tr("%1 file %2 of %3: %4").replace("%1", self._doing)
                               .replace("%2", str(done + 1)).replace("%3", str(total))
                               .replace("%4", item))
        self.bytes.clear()

    def _bytes(self, done: int, total: int) -> None:
        self.bytes.setText(self.tr("%1 of %2").replace("%1", human(done))
                           .replace("%2", human(total)))

    def stopping(self) -> None:
        self.label.setText(self.tr("Stopping… (what is finished stays done)"))
        self.buttons.setEnabled(False)

    # -- at the end
    def _succeeded(self, result: object) -> None:
        self.worker = None
        self.ended.emit(result)

    def _failed(self, error: BaseException) -> None:
        self.worker = None
        stopped = isinstance(error, Cancelled)
        self.show_result(self.tr("Stopped. What was finished before stays done.") if stopped
                         else "✖ " + workers.message(error), [])
        self.ended.emit(None)

    def show_result(self, summary: str, rows: list[Row]) -> None:
        """The outcome: a summary line, and the files the user should know about."""
        self.bar.hide()
        self.bytes.hide()
        self.label.hide()
        self.summary.setText(summary)
        self.summary.show()
        for row in rows:
            item = QTreeWidgetItem([row.name, f"{MARKS.get(row.outcome, '')} "
                                              f"{self.tr(row.outcome)}", row.why])
            item.setToolTip(2, row.why)
            self.rows.addTopLevelItem(item)
        self.rows.setVisible(bool(rows))
        self.buttons.setEnabled(True)
        self.buttons.clear()
        close = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        close.setDefault(True)
        close.setFocus(Qt.FocusReason.OtherFocusReason)
        if rows:
            self.resize(max(self.width(), 720), max(self.height(), 420))
