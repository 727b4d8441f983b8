"""Stores and threshold. Secrets go to the OS keyring, never into the config file."""

from __future__ import annotations

import copy
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from ..config import (
    MAX_OUTAGE_WAIT,
    Config,
    StoreConfig,
    get_secret,
    keep_secret_for_session,
    set_secret,
)
from ..core.put import put_needs
from ..errors import ConfigError, StoreError
from ..keyring_setup import keyring_usable
from ..stores.factory import make_store
from . import workers
from .ask import ask
from .forms import buddy_label
from .provider_dialog import ProviderDialog

# Mnemonics are unique within the dialog: Alt+B is "Add S3 bucket", Alt+R "restore",
# Alt+S the Save button.
S3_FIELDS = (("name", "&Name:"), ("endpoint_url", "&Endpoint URL:"), ("region", "Re&gion:"),
             ("bucket", "B&ucket:"), ("prefix", "&Prefix:"),
             ("access_key_id", "&Access key ID:"))


class SettingsDialog(QDialog):
    def __init__(self, config: Config | None, parent: QWidget | None = None,
                 provider_first: bool = False) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Settings"))
        self.setMinimumSize(720, 440)
        base = config or Config(stores=[], threshold=3)
        # The binding (vault id, n and k) is kept as it is; Settings never edits it.
        self._vault, self._shape = base.vault, (base.vault_n, base.vault_k)
        self._put_min = base.put_min_stores   # kept as the config says (no field for it)
        self.stores: list[StoreConfig] = copy.deepcopy(base.stores)
        self.original_names = [s.name for s in self.stores]
        self.secrets: dict[int, str] = {}   # row -> secret typed in this dialog
        self.saved_config: Config | None = None
        self._loading = False
        self._testing: object | None = None   # the test running now, if any
        self.finished.connect(self._forget_test)

        self.list = QListWidget()
        self.list.currentRowChanged.connect(self._select)
        self.add_provider_button = QPushButton(self.tr("Add S3 pro&vider…"))
        self.add_provider_button.setToolTip(self.tr(
            "Several buckets at one provider: endpoint and keys typed once"))
        self.add_provider_button.clicked.connect(self.add_provider)
        self.add_s3_button = add_s3 = QPushButton(self.tr("Add S3 &bucket"))
        add_s3.clicked.connect(lambda: self._add("s3"))
        self.add_folder_button = add_folder = QPushButton(self.tr("Add &folder"))
        add_folder.clicked.connect(lambda: self._add("folder"))
        self.remove_button = QPushButton(self.tr("Re&move"))
        self.remove_button.clicked.connect(self._remove)
        self.replace_button = QPushButton(self.tr("Rep&lace…"))
        self.replace_button.setToolTip(self.tr(
            "Give this store a new, empty folder or bucket when its disk or bucket is lost "
            "or failing; Vault › Repair then writes there what belongs to it."))  # noqa: RUF001
        self.replace_button.clicked.connect(self._replace)
        self.replaced: list[str] = []   # stores given a new place: repair fills them
        left = QVBoxLayout()
        left.addWidget(QLabel(self.tr("Stores (each part of a file goes to a different one):")))
        left.addWidget(self.list, 1)
        for buttons in ((self.add_provider_button, add_s3, add_folder),
                        (self.replace_button, self.remove_button)):
            row = QHBoxLayout()
            for b in buttons:
                row.addWidget(b)
            row.addStretch(1)
            left.addLayout(row)

        self.stack = QStackedWidget()
        empty = QLabel(self.tr("Buckets at an S3-compatible provider (AWS, Backblaze B2, "
                               "Wasabi, Cloudflare R2, MinIO, …): Add S3 provider… takes "
                               "the keys once for all of them. Folders (a USB disk, a NAS "
                               "mount): Add folder. Five stores with 3 needed is a good "
                               "start."))
        empty.setWordWrap(True)
        empty.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.stack.addWidget(empty)
        self.s3_fields: dict[str, QLineEdit] = {}
        s3_page = QWidget()
        s3_form = QFormLayout(s3_page)
        for key, label in S3_FIELDS:
            edit = QLineEdit()
            edit.textEdited.connect(lambda text, k=key: self._edited(k, text))
            self.s3_fields[key] = edit
            s3_form.addRow(buddy_label(self.tr(label), edit), edit)
        self.s3_fields["endpoint_url"].setPlaceholderText(self.tr("empty for AWS S3"))
        self.s3_fields["prefix"].setPlaceholderText(self.tr("optional"))
        self.secret = QLineEdit()
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret.textEdited.connect(self._secret_edited)
        s3_form.addRow(buddy_label(self.tr("Secret &key:"), self.secret), self.secret)
        # One short line, true on this computer: it was cut in half, and said "kept in
        # the keyring" above a warning that there is none (B9).
        note = QLabel(self.tr("Kept in the keyring, never in the settings file.")
                      if keyring_usable() else
                      self.tr("No keyring here: kept for this session only."))
        s3_form.addRow("", note)
        self.stack.addWidget(s3_page)
        folder_page = QWidget()
        folder_form = QFormLayout(folder_page)
        self.folder_name = QLineEdit()
        self.folder_name.textEdited.connect(lambda t: self._edited("name", t))
        self.folder_path = QLineEdit()
        self.folder_path.textEdited.connect(lambda t: self._edited("path", t))
        pick = QPushButton(self.tr("Choose…"))
        pick.clicked.connect(self._pick_folder)
        path_row = QHBoxLayout()
        path_row.addWidget(self.folder_path, 1)
        path_row.addWidget(pick)
        folder_form.addRow(buddy_label(self.tr("&Name:"), self.folder_name), self.folder_name)
        folder_form.addRow(buddy_label(self.tr("F&older:"), self.folder_path), path_row)
        self.stack.addWidget(folder_page)

        self.test_button = QPushButton(self.tr("&Test connection"))
        self.test_button.clicked.connect(self._test)
        self.test_result = QLabel()
        self.test_result.setWordWrap(True)
        self.test_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        right = QVBoxLayout()
        right.addWidget(self.stack, 1)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addWidget(self.test_result, 1)
        right.addLayout(test_row)

        columns = QHBoxLayout()
        columns.addLayout(left, 2)
        columns.addLayout(right, 3)

        self.threshold = QSpinBox()
        self.threshold.setRange(1, 16)
        # What the user asked for (the vault's own k once it exists); the spin box only
        # narrows it while there are fewer stores.
        self._wanted_k = base.vault_k or base.threshold
        self.threshold.setValue(self._wanted_k)
        self.threshold.valueChanged.connect(self._k_changed)
        self.of_n = QLabel()
        if self._vault is not None:
            # k and n are the vault's, sealed in its headers when it was created; every file
            # is cut for them. Changing them is not a setting but a new vault.
            self.threshold.setEnabled(False)
            self.threshold.setToolTip(self.tr("Set when the vault was created; every stored "
                                              "file is cut for it."))
        k_row = QHBoxLayout()
        k_label = QLabel(self.tr("Stores needed to &restore a file:"))
        k_label.setBuddy(self.threshold)
        k_row.addWidget(k_label)
        k_row.addWidget(self.threshold)
        k_row.addWidget(self.of_n)
        k_row.addStretch(1)

        self.error = QLabel()
        self.error.setWordWrap(True)
        if not keyring_usable():
            self.error.setText("⚠ " + self.tr("This computer's password store (keyring) is not "
                                              "available: secret keys can be kept for this "
                                              "session only, and are asked again after a "
                                              "restart."))
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                        | QDialogButtonBox.StandardButton.Cancel)
        # Qt's own "Save" carries no mnemonic on every platform: Alt+S is ours to give.
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setText(self.tr("&Save"))
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(columns, 1)
        layout.addLayout(k_row)
        self.put_rule = QLabel()
        self.put_rule.setWordWrap(True)
        layout.addWidget(self.put_rule)
        self._say_put_rule()
        layout.addLayout(self._network_row(base))
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self._refresh_list()
        if self.stores:
            self.list.setCurrentRow(0)
        else:
            self._select(-1)
        self._as_loaded = self._state()
        self._discarding = False
        self.discard_question: QMessageBox | None = None
        self.provider: ProviderDialog | None = None
        if provider_first:   # "Add my buckets" on the first page: the provider step at once
            QTimer.singleShot(0, self.add_provider)

    def _state(self) -> tuple[object, ...]:
        """What Save would write, to tell whether anything was changed here."""
        return (copy.deepcopy(self.stores), self.threshold.value(), self._network(),
                dict(self.secrets))

    def reject(self) -> None:
        """Esc or Cancel: unsaved changes are not thrown away without asking (B10). The
        question does not block: Discard closes, Cancel goes back to editing."""
        if self._discarding or self.saved_config is not None \
                or self._state() == self._as_loaded:
            super().reject()
            return
        def answered(discard: bool) -> None:
            self.discard_question = None
            if discard:
                self._discarding = True
                super(SettingsDialog, self).reject()

        self.discard_question = ask(self, self.tr("Settings"),
                                    self.tr("Discard your changes to the settings?"),
                                    QMessageBox.StandardButton.Discard,
                                    QMessageBox.StandardButton.Cancel, answered)

    # -- list and forms
    def _label(self, s: StoreConfig) -> str:
        where = s.path if s.type == "folder" else f"s3://{s.bucket or '?'}"
        return f"{s.name or self.tr('(unnamed)')}  —  {where or '?'}"

    def _refresh_list(self) -> None:
        row = self.list.currentRow()
        self.list.blockSignals(True)
        self.list.clear()
        for s in self.stores:
            self.list.addItem(self._label(s))
        self.list.blockSignals(False)
        if 0 <= row < len(self.stores):
            self.list.setCurrentRow(row)
        n = self._shape[0] or len(self.stores)
        self._loading = True
        self.threshold.setMaximum(max(1, n))
        self.threshold.setValue(min(self._wanted_k, max(1, n)))
        self._loading = False
        self.of_n.setText(self.tr("of %1 stores").replace("%1", str(n)) + (
            self.tr(" (fixed when the vault was created)") if self._vault is not None else ""))
        self.remove_button.setEnabled(bool(self.stores))
        self._say_put_rule()

    def _network_row(self, base: Config) -> QHBoxLayout:
        """Bandwidth limits (S3 stores, both ways) and how long an upload waits for a
        store that stops answering; all three apply at once, uploads go on."""
        def limit(value: int | None) -> QSpinBox:
            box = QSpinBox()
            box.setRange(0, 10_000_000)
            box.setSingleStep(128)
            box.setSuffix(self.tr(" KiB/s"))
            box.setSpecialValueText(self.tr("no limit"))
            box.setValue((value or 0) // 1024)
            box.setToolTip(self.tr("For all S3 stores together (folders are not limited); "
                                   "0 is no limit."))
            return box
        self.upload_limit = limit(base.upload_limit)
        self.download_limit = limit(base.download_limit)
        self.outage_wait = QSpinBox()
        self.outage_wait.setRange(0, MAX_OUTAGE_WAIT // 60)
        self.outage_wait.setSuffix(self.tr(" min"))
        self.outage_wait.setValue(round(base.outage_seconds / 60))
        # Config key -> (its box, the value as loaded, the box's unit in the config's,
        # what the box showed): a box left alone keeps the loaded value exactly.
        self._network_boxes = {
            key: (box, getattr(base, key), unit, box.value())
            for key, box, unit in (("upload_limit", self.upload_limit, 1024),
                                   ("download_limit", self.download_limit, 1024),
                                   ("outage_wait", self.outage_wait, 60))}
        self.outage_wait.setToolTip(self.tr(
            "An upload waits this long for a store that stops answering (a router "
            "restarting, Wi-Fi changing), then goes on without it: the file is stored at "
            "risk and repaired when the store is back."))
        row = QHBoxLayout()
        for text, box in ((self.tr("Upload l&imit:"), self.upload_limit),
                          (self.tr("&Download limit:"), self.download_limit),
                          (self.tr("&Wait for a silent store:"), self.outage_wait)):
            row.addWidget(buddy_label(text, box))
            row.addWidget(box)
            row.addSpacing(12)
        row.addStretch(1)
        return row

    def _network(self) -> dict[str, int | None]:
        """The three settings as the config keeps them; each left exactly as it was
        unless changed here (the boxes show whole KiB/s and minutes)."""
        out: dict[str, int | None] = {}
        for key, (box, loaded, unit, shown) in self._network_boxes.items():
            if box.value() == shown:
                out[key] = loaded
            elif key == "outage_wait":
                out[key] = box.value() * unit           # a wait of 0 is 0
            else:
                out[key] = box.value() * unit or None   # a limit of 0 is none
        return out

    def _say_put_rule(self) -> None:
        """The rule for storing while a store is down, and what it means (core/put.py)."""
        if not hasattr(self, "put_rule"):   # the store list is filled before it exists
            return
        n, k = len(self.stores), self.threshold.value()
        if n < 2:
            self.put_rule.clear()
            return
        need = put_needs(n, k, self._put_min)
        self.put_rule.setText(
            self.tr("New files are stored only when all %1 stores are reachable.")
            .replace("%1", str(n)) if need >= n else
            self.tr("New files are stored while at least %1 of the %2 stores are reachable. "
                    "A file stored while a store is down is at risk until Repair writes its "
                    "part there, once the store is back.")
            .replace("%1", str(need)).replace("%2", str(n)))

    def _k_changed(self, value: int) -> None:
        self._say_put_rule()
        if not self._loading:
            self._wanted_k = value

    def current(self) -> StoreConfig | None:
        row = self.list.currentRow()
        return self.stores[row] if 0 <= row < len(self.stores) else None

    def _select(self, row: int) -> None:
        self.test_result.clear()
        if self._testing is not None:   # a test of the store left behind: not this one's
            self._testing = None
            self._test_idle()
        store = self.current()
        self.test_button.setEnabled(store is not None)
        # Only a store that holds a part of the vault can be replaced.
        self.replace_button.setEnabled(store is not None and store.index is not None)
        self._loading = True
        if store is None:
            self.stack.setCurrentIndex(0)
        elif store.type == "s3":
            self.stack.setCurrentIndex(1)
            for key, edit in self.s3_fields.items():
                edit.setText(getattr(store, key) or "")
            has_saved = row < len(self.original_names) and bool(self._saved_secret(store))
            self.secret.setText(self.secrets.get(row, ""))
            self.secret.setPlaceholderText(
                self.tr("saved in the keyring; type to replace") if has_saved
                else self.tr("required with an access key ID"))
        else:
            self.stack.setCurrentIndex(2)
            self.folder_name.setText(store.name)
            self.folder_path.setText(store.path or "")
        self._loading = False

    def _saved_secret(self, store: StoreConfig) -> str | None:
        row = self.stores.index(store)
        original = self.original_names[row] if row < len(self.original_names) else None
        if not original:
            return None
        try:
            return get_secret(original)
        except StoreError:
            return None

    def _edited(self, key: str, text: str) -> None:
        store = self.current()
        if store is None or self._loading:
            return
        setattr(store, key, text.strip() or None if key != "name" else text.strip())
        self.list.currentItem().setText(self._label(store))

    def _secret_edited(self, text: str) -> None:
        if not self._loading:
            self.secrets[self.list.currentRow()] = text

    def _unique_name(self, base: str) -> str:
        names = {s.name for s in self.stores}
        i = 1
        while f"{base}{i}" in names:
            i += 1
        return f"{base}{i}"

    def _add(self, kind: str) -> None:
        name = self._unique_name("bucket" if kind == "s3" else "folder")
        self.stores.append(StoreConfig(name=name, type=kind))
        self._refresh_list()
        self.list.setCurrentRow(len(self.stores) - 1)
        (self.s3_fields["name"] if kind == "s3" else self.folder_name).setFocus()
        if kind == "folder":
            self._pick_folder()

    def add_provider(self) -> ProviderDialog:
        """The provider step: its tested stores join the list, the one secret typed
        there goes with each (saved once, at Save)."""
        dialog = ProviderDialog({s.name for s in self.stores}, self)
        self.provider = dialog
        dialog.accepted.connect(lambda: self._add_provider_stores(dialog))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def _add_provider_stores(self, dialog: ProviderDialog) -> None:
        first = len(self.stores)
        for store in dialog.stores:
            self.stores.append(store)
            if dialog.secret:
                self.secrets[len(self.stores) - 1] = dialog.secret
        self._refresh_list()
        self.list.setCurrentRow(first)
        self.test_result.setText("✔ " + self.tr("%n bucket(s) added and tested: each took a "
                                               "probe, gave it back and deleted it.", "",
                                               len(dialog.stores)))
        self.list.setFocus()

    def _remove(self) -> None:
        row = self.list.currentRow()
        if row < 0:
            return
        store = self.stores[row]
        if store.index is not None and QMessageBox.question(
                self, self.tr("Remove store"),
                self.tr("“%1” holds part %2 of every stored file. Without it every file is at "
                        "risk: one store fewer can be lost before files are.\n\nTo move it "
                        "to a new disk or bucket, use Replace… instead.\n\nRemove it anyway?")
                .replace("%1", store.name).replace("%2", str(store.index + 1)),
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No) != QMessageBox.StandardButton.Yes:
            return
        del self.stores[row]
        if row < len(self.original_names):
            del self.original_names[row]
        self.secrets = {(r if r < row else r - 1): v for r, v in self.secrets.items() if r != row}
        self._refresh_list()
        self.list.setCurrentRow(min(row, len(self.stores) - 1))

    def _replace(self) -> None:
        """Same name, same index in the vault, a new place. The engine writes nothing
        there until repair, which puts only this store's own parts and shares there."""
        store = self.current()
        if store is None or store.index is None:
            return
        text = (self.tr("Give “%1” (store %2 of the vault) a new, empty %3?\n\nUse this when "
                        "its disk or bucket is lost or failing. After you save, "
                        "Vault › Repair "  # noqa: RUF001
                        "rebuilds there, from the other stores, everything this store held.")
                .replace("%1", store.name).replace("%2", str(store.index + 1))
                .replace("%3", self.tr("folder") if store.type == "folder"
                         else self.tr("bucket")))
        if QMessageBox.question(self, self.tr("Replace store"), text) \
                != QMessageBox.StandardButton.Yes:
            return
        if store.type == "folder":
            start = str(Path(store.path).parent) if store.path else ""
            chosen = QFileDialog.getExistingDirectory(
                self, self.tr("New, empty folder for “%1”").replace("%1", store.name), start)
            if not chosen:
                return
            problem = self._replacement_problem(store, chosen)
            if problem:   # said now, not at Save (B10)
                self.test_result.setText("✖ " + problem)
                return
            store.path = chosen
            self.folder_path.setText(chosen)
        else:
            store.bucket = None
            self.s3_fields["bucket"].clear()
            self.s3_fields["bucket"].setFocus()
        self.list.currentItem().setText(self._label(store))
        if store.name not in self.replaced:
            self.replaced.append(store.name)
        self.test_result.setText(
            self.tr("New place set: once saved, repair rebuilds what belongs there."))

    def _replacement_problem(self, store: StoreConfig, chosen: str) -> str:
        """Why `chosen` cannot be the new folder of `store`: another store's folder
        (inside it, or holding it), or one that is not empty."""
        new = Path(chosen).resolve()
        for other in self.stores:
            if other is store or other.type != "folder" or not other.path:
                continue
            theirs = Path(other.path).expanduser().resolve()
            if new == theirs or theirs in new.parents or new in theirs.parents:
                return self.tr("%1 is (or holds, or lies in) the folder of store “%2”: "
                               "losing one disk would lose both.").replace(
                    "%1", chosen).replace("%2", other.name)
        try:
            if any(Path(chosen).iterdir()):
                return self.tr("%1 is not empty: a replaced store starts in an empty folder "
                               "(repair fills it).").replace("%1", chosen)
        except OSError as exc:
            return self.tr("cannot read %1: %2").replace("%1", chosen).replace(
                "%2", exc.strerror or str(exc))
        return ""

    def _pick_folder(self) -> None:
        store = self.current()
        if store is None:
            return
        chosen = QFileDialog.getExistingDirectory(self, self.tr("Folder for this store"),
                                                  store.path or "")
        if chosen:
            store.path = chosen
            self.folder_path.setText(chosen)
            self.list.currentItem().setText(self._label(store))

    # -- test connection
    def secret_for(self, row: int) -> str | None:
        if self.secrets.get(row):
            return self.secrets[row]
        return self._saved_secret(self.stores[row])

    def _test(self) -> None:
        if self._testing is not None:   # the button reads "Stop test" meanwhile
            self._testing = None
            self._test_idle()
            self.test_result.setText(self.tr("Test stopped."))
            return
        row = self.list.currentRow()
        store = self.current()
        if store is None:
            return
        try:
            store.validate()
            cfg = Config(stores=[store])
            target = make_store(store, secret=self.secret_for(row) if store.type == "s3"
                                else None, quick=True,
                                folder=cfg.folder(store) if store.type == "folder" else None)
        except (ConfigError, StoreError) as exc:
            self._tested(row, exc)
            return
        # A server that accepts and never answers must not hold the user: the button
        # stops the wait at once (the probe's thread ends at its own short timeout).
        token = object()
        self._testing = token
        self.test_button.setText(self.tr("S&top test"))
        self.test_result.setText(self.tr("Testing… (gives up after about 10 seconds)"))

        def answered(error: BaseException | None) -> None:
            if self._testing is token:
                self._testing = None
                self._test_idle()
                self._tested(row, error)

        workers.start(workers.Call(target.check), owner=self, succeeded=lambda _r: answered(None),
                      failed=answered)

    def _test_idle(self) -> None:
        self.test_button.setText(self.tr("&Test connection"))
        self.test_button.setEnabled(self.current() is not None)

    def _tested(self, row: int, error: BaseException | None) -> None:
        if row != self.list.currentRow():
            return
        if error is None:
            self.test_result.setText("✔ " + self.tr("Works: a probe was written, read back and "
                                                    "deleted."))
        else:   # the store is the one selected: say what it answered, not its name again
            text = error.reason if isinstance(error, StoreError) else workers.message(error)
            self.test_result.setText("✖ " + text)

    def _forget_test(self) -> None:
        self._testing = None   # a test still waiting answers no one

    # -- save
    def save(self) -> None:
        cfg = Config(stores=copy.deepcopy(self.stores), threshold=self.threshold.value(),
                     vault=self._vault, vault_n=self._shape[0], vault_k=self._shape[1],
                     put_min_stores=self._put_min, **self._network())
        try:
            cfg.validate()
            newcomers = [s.name for s in cfg.stores if s.index is None]
            if self._vault is not None and newcomers:
                bound = len([s for s in cfg.stores if s.index is not None])
                raise ConfigError(
                    f"{', '.join(newcomers)} cannot join this vault: its files are cut into "
                    "a fixed number of parts when stored, one per store it was created with, "
                    "so a new store would hold nothing. Use Replace… to move a store to a "
                    f"new place ({bound} of the vault's stores are configured).")
            for row, store in enumerate(cfg.stores):
                if store.type == "s3" and store.access_key_id and not self.secret_for(row):
                    raise ConfigError(f"store {store.name!r}: enter its secret key")
        except ConfigError as exc:
            self.error.setText("⚠ " + str(exc).removeprefix("config: "))
            return
        to_keep: list[tuple[str, str]] = []
        for row, store in enumerate(cfg.stores):
            secret = self.secrets.get(row)
            renamed = row < len(self.original_names) and self.original_names[row] != store.name
            if not secret and renamed and store.type == "s3":
                secret = self._saved_secret(self.stores[row])
            if secret and store.type == "s3":
                to_keep.append((store.name, secret))
        self._store_secrets(to_keep)
        self.saved_config = cfg
        self.accept()

    def _store_secrets(self, secrets: list[tuple[str, str]]) -> None:
        """Into the keyring; where there is none, asked once for all of them (B11: five
        buckets of one provider asked five times)."""
        for at, (name, secret) in enumerate(secrets):
            try:
                set_secret(name, secret)
            except StoreError as exc:
                left = secrets[at:]
                names = "”, “".join(n for n, _ in left)
                box = QMessageBox(
                    QMessageBox.Icon.Warning, self.tr("Secret keys not saved"),
                    self.tr("This computer's password store (the keyring) is not available, "
                            "so the secret key of “%1” cannot be saved.\n\nOn Linux the "
                            "keyring comes with the desktop (GNOME Keyring, KWallet); it may "
                            "be locked or missing.\n\nKeep the keys for this session only? "
                            "They are never written to a file; you will be asked for them "
                            "again after a restart.").replace("%1", names),
                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
                box.setDetailedText(exc.reason)   # what the keyring library said, for support
                if box.exec() == QMessageBox.StandardButton.Yes:
                    for left_name, left_secret in left:
                        keep_secret_for_session(left_name, left_secret)
                return
