"""Settings > Add S3 provider…: the endpoint, region and keys once, then the bucket
names; the buckets are made where the keys allow it and each is tested before it is added.

Five buckets at one provider took the same four fields typed five times (B11).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from ..config import StoreConfig
from ..errors import ConfigError
from ..stores.provider import (
    ENDPOINTS,
    Provider,
    parse_buckets,
    prepare,
    stores_for,
    suggested_buckets,
)
from . import workers
from .forms import buddy_label


class ProviderDialog(QDialog):
    """On accept: `stores` (one per bucket, tested) and `secret` (for all of them)."""

    def __init__(self, taken: set[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Add buckets at one S3 provider"))
        self.setMinimumWidth(560)
        self.taken = taken
        self.stores: list[StoreConfig] = []
        self.secret: str | None = None
        self._running: workers.Call | None = None

        self.kind = QComboBox()
        self.kind.addItems(list(ENDPOINTS))
        self.kind.currentTextChanged.connect(self._kind_changed)
        self.endpoint = QLineEdit()
        self.region = QLineEdit()
        self.region.setPlaceholderText(self.tr("e.g. us-east-1, eu-central-003, auto"))
        self.key_id = QLineEdit()
        self.secret_edit = QLineEdit()
        self.secret_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.buckets = QPlainTextEdit()
        self.buckets.setTabChangesFocus(True)   # Tab leaves the box, as in every field
        self.buckets.setPlainText("\n".join(suggested_buckets()))
        self.buckets.setFixedHeight(self.fontMetrics().lineSpacing() * 6 + 12)
        self.make = QCheckBox(self.tr("&Make the buckets that do not exist yet"))
        self.make.setChecked(True)
        self.result = QLabel()
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        intro = QLabel(self.tr("One store per bucket: each part of a file goes to a different "
                               "bucket. Buckets at one provider fail together if the "
                               "provider does; mixing providers (or adding a folder) keeps "
                               "files safe from that too."))
        intro.setWordWrap(True)
        form = QFormLayout()
        form.addRow(buddy_label(self.tr("&Provider:"), self.kind), self.kind)
        form.addRow(buddy_label(self.tr("&Endpoint URL:"), self.endpoint), self.endpoint)
        form.addRow(buddy_label(self.tr("Re&gion:"), self.region), self.region)
        form.addRow(buddy_label(self.tr("&Access key ID:"), self.key_id), self.key_id)
        form.addRow(buddy_label(self.tr("Secret &key:"), self.secret_edit), self.secret_edit)
        form.addRow(buddy_label(self.tr("&Buckets:"), self.buckets), self.buckets)
        form.addRow("", QLabel(self.tr("one a line; new names must be unused on the "
                                       "provider")))
        form.addRow("", self.make)
        self.button_box = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                           | QDialogButtonBox.StandardButton.Cancel)
        self.ok = self.button_box.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText(self.tr("Add &stores"))
        self.button_box.accepted.connect(self._add)
        self.button_box.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.result)
        layout.addWidget(self.button_box)
        self._kind_changed(self.kind.currentText())
        self.kind.setFocus()

    def _kind_changed(self, kind: str) -> None:
        example = ENDPOINTS.get(kind, "")
        self.endpoint.setPlaceholderText(example or self.tr("empty for Amazon S3"))

    def provider(self) -> Provider:
        return Provider(self.endpoint.text().strip() or None,
                        self.region.text().strip() or None,
                        self.key_id.text().strip() or None)

    def _add(self) -> None:
        if self._running is not None:
            return
        try:
            stores = stores_for(self.provider(), parse_buckets(self.buckets.toPlainText()),
                                self.taken)
            secret = self.secret_edit.text() or None
            if stores[0].access_key_id and not secret:
                raise ConfigError("enter the secret key that goes with the access key ID")
        except ConfigError as exc:
            self.result.setText("⚠ " + str(exc).removeprefix("config: "))
            return
        make = self.make.isChecked()
        self.result.setText(self.tr("Making and testing %n bucket(s)…", "", len(stores))
                            if make else
                            self.tr("Testing %n bucket(s)…", "", len(stores)))
        self.ok.setEnabled(False)
        self._running = workers.Call(lambda: prepare(stores, secret, make))
        workers.start(self._running, owner=self,
                      succeeded=lambda failed: self._prepared(stores, secret, failed),
                      failed=self._failed)

    def _prepared(self, stores: list[StoreConfig], secret: str | None,
                  failed: dict[str, str]) -> None:
        self._running = None
        if not self.isVisible():   # closed meanwhile: nothing is added
            return
        self.ok.setEnabled(True)
        if failed:
            lines = [f"✖ {bucket}: {why}" for bucket, why in failed.items()]
            ready = len(stores) - len(failed)
            self.result.setText(self.tr("%n bucket(s) not ready; nothing was added:", "",
                                        len(failed)) + "\n" + "\n".join(lines)
                                + ("\n" + self.tr("%n other(s) work.", "", ready)
                                   if ready else ""))
            return
        self.stores, self.secret = stores, secret
        self.accept()

    def _failed(self, error: BaseException) -> None:
        self._running = None
        self.ok.setEnabled(True)
        self.result.setText("✖ " + workers.message(error))
