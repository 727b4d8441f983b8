"""Asks for the vault password once per session; Argon2id runs off the UI thread."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from . import workers


class UnlockDialog(QDialog):
    def __init__(self, engine: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.setWindowTitle(self.tr("Unlock vault"))
        self.setMinimumWidth(440)   # the wrapped lines below read as sentences
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText(self.tr("Vault password"))
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.hide()
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setTextVisible(False)
        self.busy.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText(self.tr("&Unlock"))
        self.buttons.accepted.connect(self.try_unlock)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        intro = QLabel(self.tr("Enter the vault password. It stays in memory until you lock "
                               "the vault or quit."))
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        form.addRow(self.tr("&Password:"), self.password)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.busy)
        layout.addWidget(self.buttons)
        self.password.setFocus()

    def try_unlock(self) -> None:
        password = self.password.text()
        if not password:
            self._show_error(self.tr("Enter the password."))
            return
        self._set_busy(True)
        workers.start(workers.Call(lambda: self.engine.unlock(password)), owner=self,
                      succeeded=lambda _r: self.accept(), failed=self._failed)

    def _failed(self, error: BaseException) -> None:
        self._set_busy(False)
        self._show_error(workers.message(error))
        self.password.selectAll()
        self.password.setFocus()

    def _show_error(self, message: str) -> None:
        self.error.setText("⚠ " + message)
        self.error.show()
        # Room for the new line: the dialog kept its height, and cut it and the text
        # above in half (B9).
        self.adjustSize()

    def _set_busy(self, busy: bool) -> None:
        self.busy.setVisible(busy)
        self.password.setEnabled(not busy)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not busy)
        if busy:
            self.error.hide()
