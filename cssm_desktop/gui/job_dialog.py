"""A dialog that runs a job (a restore, a verify): it never goes away under its job."""

from __future__ import annotations

from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QDialog

from . import workers


class JobDialog(QDialog):
    """Esc, Cancel and the window's close button stop a running job first (the engine
    keeps what is finished and leaves nothing half-written); the dialog closes once
    nothing runs. Closing it under the job used to leave the job writing on."""

    worker: workers.Worker | None = None

    def stopping(self) -> None:
        """Say that the job is stopping (subclasses show it their way)."""

    def reject(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.stopping()
            return
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.worker is not None:
            event.ignore()
            self.reject()
            return
        super().closeEvent(event)
