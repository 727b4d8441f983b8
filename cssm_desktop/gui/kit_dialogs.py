"""The recovery kit in the window: saving one (PDF and JSON, credentials only when asked,
sealed), and connecting a new computer with one (its file, or its text block pasted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..errors import CssmError
from ..recovery.kit import Kit, make_kit, parse_kit, save_json
from . import workers
from .context import AppContext


def kit_saved(vault_id: str) -> bool:
    return bool(QSettings().value(f"kit/{vault_id}", False, type=bool))


def mark_kit_saved(vault_id: str) -> None:
    QSettings().setValue(f"kit/{vault_id}", True)


class KitDialog(QDialog):
    """Vault > Recovery kit…: the password (a kit is made by someone who knows it), then
    Save PDF… and Save JSON…."""

    saved = Signal(str)   # the path written

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle(self.tr("Recovery kit"))
        intro = QLabel(self.tr(
            "One page that, with your password, brings every file back on a new "
            "computer: where each store is, how to tell it from an impostor, and what to "
            "do. Print it or keep the file somewhere other than this computer."))
        intro.setWordWrap(True)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.with_keys = QCheckBox(self.tr("Include the S3 &keys, sealed under the password"))
        self.with_keys.setToolTip(self.tr(
            "Then the kit and the password are all a new computer needs. Keep such a kit "
            "as safe as the password itself."))
        self.status = QLabel()
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow(self.tr("&Password:"), self.password)
        form.addRow("", self.with_keys)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        # Alt+P is the password's; Enter saves the PDF (Close was the default: the box
        # makes its accept button the default when shown).
        self.pdf_button = buttons.addButton(self.tr("Save P&DF…"),
                                            QDialogButtonBox.ButtonRole.AcceptRole)
        self.json_button = buttons.addButton(self.tr("Save &JSON…"),
                                             QDialogButtonBox.ButtonRole.ActionRole)
        self.pdf_button.clicked.connect(lambda: self.save("pdf"))
        self.json_button.clicked.connect(lambda: self.save("json"))
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self.resize(520, 240)

    def make(self) -> Kit:
        engine = self.ctx.engine
        if engine is None:
            raise CssmError("no vault is configured")
        password = self.password.text()
        engine.unlock(password)   # proves it; the kit's credentials are sealed with it
        vault = engine.vault()
        kdf = next(iter(vault.headers.values())).kdf
        return make_kit(engine.config, vault.vault_id, vault.n, vault.k, kdf, password,
                        with_credentials=self.with_keys.isChecked())

    def save(self, kind: str, path: str | None = None) -> None:
        if path is None:
            suffix = "PDF (*.pdf)" if kind == "pdf" else "JSON (*.json)"
            path, _ = QFileDialog.getSaveFileName(self, self.tr("Save the recovery kit"),
                                                  f"cssm-recovery-kit.{kind}", suffix)
        if not path:
            return
        self.status.setText(self.tr("Making the kit…"))

        def write() -> str:
            kit = self.make()
            if kind == "pdf":
                from .recovery_print import write_pdf

                write_pdf(kit, Path(path))
            else:
                save_json(kit, Path(path))
            return kit.vault_id

        def done(vault_id: Any) -> None:
            mark_kit_saved(str(vault_id))
            self.status.setText(self.tr("Saved %1. Keep it away from this computer.")
                                .replace("%1", path))
            self.saved.emit(path)

        workers.start(workers.Call(write), owner=self, succeeded=done,
                      failed=lambda err: self.status.setText(workers.message(err)))


class ConnectKitDialog(QDialog):
    """The first page's Connect with a recovery kit…: the kit's file or its text block,
    and the password; Test checks without changing anything."""

    connected = Signal(object)   # recovery.connect.Connected

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle(self.tr("Connect with a recovery kit"))
        self.text = QPlainTextEdit()
        self.text.setPlaceholderText(self.tr("Paste the kit's text block here "
                                             "(CSSM-KIT-1 … END), or open its file."))
        self.text.setTabChangesFocus(True)
        open_button = QPushButton(self.tr("&Open kit file…"))
        open_button.clicked.connect(self.open_file)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.status = QLabel()
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow(self.tr("&Kit:"), self.text)
        form.addRow("", open_button)
        form.addRow(self.tr("&Password:"), self.password)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.connect_button = buttons.addButton(self.tr("Co&nnect"),
                                                QDialogButtonBox.ButtonRole.AcceptRole)
        self.test_button = buttons.addButton(self.tr("&Test"),
                                             QDialogButtonBox.ButtonRole.ActionRole)
        self.connect_button.setDefault(True)
        self.connect_button.clicked.connect(lambda: self.run(test_only=False))
        self.test_button.clicked.connect(lambda: self.run(test_only=True))
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self.resize(560, 380)

    def open_file(self, path: str | None = None) -> None:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, self.tr("Open a recovery kit"), "",
                                                  "Kit (*.json *.txt);;All files (*)")
        if not path:
            return
        try:
            self.text.setPlainText(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            self.status.setText(self.tr("Cannot read %1: %2").replace("%1", path)
                                .replace("%2", str(exc)))

    def run(self, test_only: bool) -> None:
        from ..recovery.connect import connect

        try:
            kit = parse_kit(self.text.toPlainText())
        except CssmError as exc:
            self.status.setText(str(exc))
            return
        password = self.password.text()
        self.connect_button.setEnabled(False)
        self.test_button.setEnabled(False)
        self.status.setText(self.tr("Checking the stores…") if test_only else
                            self.tr("Connecting and reading the file list…"))
        target = self.ctx.config_file

        def done(got: Any) -> None:
            self.connect_button.setEnabled(True)
            self.test_button.setEnabled(True)
            flagged = "".join(f"\n{name}: {why}" for name, why in got.flagged.items())
            if test_only:
                self.status.setText(self.tr("The kit and the password open the vault: %1 of "
                                            "%2 stores match.").replace(
                    "%1", str(len(got.good))).replace("%2", str(kit.n)) + flagged)
                return
            mark_kit_saved(kit.vault_id)   # the user has one
            self.connected.emit(got)
            self.accept()

        def failed(err: BaseException) -> None:
            self.connect_button.setEnabled(True)
            self.test_button.setEnabled(True)
            self.status.setText(workers.message(err))

        workers.start(workers.Call(lambda: connect(kit, password, None if test_only else
                                                   target, self.ctx.catalog_file,
                                                   test_only=test_only)),
                      owner=self, succeeded=done, failed=failed)
