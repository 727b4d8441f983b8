"""The first-run page, and the dialog that creates a vault of local folders."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)


def strength(password: str) -> tuple[int, str]:
    """A rough hint (0-3), not a guarantee: length counts most, then variety.

    Written here to avoid a dependency for a hint; the real protection is Argon2id.
    """
    classes = sum(any(f(c) for c in password) for f in (str.islower, str.isupper, str.isdigit,
                                                        lambda c: not c.isalnum()))
    score = (len(password) >= 8) + (len(password) >= 12) + (len(password) >= 16 or
                                                          (len(password) >= 10 and classes >= 3))
    return score, ("too weak", "weak", "fair", "strong")[score]


ADVICE = (
    "needs at least 8 characters",
    "accepted; 12 or more characters (or four unrelated words) are much harder to guess",
    "good; 16 or more characters would be better still",
    "",
)


class NewPasswordDialog(QDialog):
    """Asks for a new password twice and shows a strength hint."""

    def __init__(self, title: str, parent: QWidget | None = None,
                 stores: int | None = None, needed: int = 3) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.first = QLineEdit()
        self.second = QLineEdit()
        for edit in (self.first, self.second):
            edit.setEchoMode(QLineEdit.EchoMode.Password)
            edit.textChanged.connect(self._check)
        self.hint = QLabel()
        intro = QLabel(self.tr("This password unlocks your vault on any computer. It cannot "
                               "be recovered: keep it somewhere safe."))
        intro.setWordWrap(True)
        form = QFormLayout()
        self.needed: QSpinBox | None = None
        if stores is not None:   # a new vault on the configured stores: how many a file needs
            self.needed = QSpinBox()
            self.needed.setRange(1, stores)
            self.needed.setValue(max(1, min(needed, stores)))
            self.needed.setSuffix(self.tr(" of %1 stores").replace("%1", str(stores)))
            self.meaning = QLabel()
            self.meaning.setWordWrap(True)
            self.needed.valueChanged.connect(lambda _v: self._explain(stores))
            form.addRow(self.tr("A file &needs:"), self.needed)
            form.addRow("", self.meaning)
            self._explain(stores)
        form.addRow(self.tr("&Password:"), self.first)
        form.addRow(self.tr("&Repeat:"), self.second)
        form.addRow("", self.hint)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self._check()

    def _explain(self, stores: int) -> None:
        assert self.needed is not None
        k = self.needed.value()
        text = self.tr("Any %1 of the %2 stores bring a file back, so up to %3 may be lost. "
                       "Fewer than %1 reveal nothing, even with your password. This is "
                       "fixed once the vault exists.")
        self.meaning.setText(text.replace("%1", str(k)).replace("%2", str(stores))
                             .replace("%3", str(stores - k)))

    def showEvent(self, event: object) -> None:
        super().showEvent(event)   # type: ignore[arg-type]
        (self.needed or self.first).setFocus()   # the first field has focus

    def _check(self) -> None:
        pw = self.first.text()
        score, word = strength(pw)
        text = self.tr("Strength: ") + self.tr(word)
        if ADVICE[score] and pw:
            text += " — " + self.tr(ADVICE[score])
        elif not pw:
            text = self.tr("At least 8 characters; a few unrelated words make a strong one.")
        if self.second.text() and self.second.text() != pw:
            text = "⚠ " + self.tr("The passwords differ.")
        self.hint.setText(text)
        ok = bool(pw) and pw == self.second.text() and score >= 1
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)

    def password(self) -> str:
        return self.first.text()


class WelcomePage(QWidget):
    add_buckets = Signal()
    try_local = Signal()
    connect_existing = Signal()
    connect_kit = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        title = QLabel(self.tr("Welcome to CSSM Desktop"))
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.8)
        font.setBold(True)
        title.setFont(font)
        text = QLabel(self.tr(
            "Your files are encrypted on this computer, cut into parts, and spread over "
            "several buckets or folders. Any few of them bring a file back; fewer reveal "
            "nothing, even with your password."))
        text.setWordWrap(True)
        buttons = []
        for label, detail, signal in (
                (self.tr("&Add my buckets"),
                 self.tr("S3, Backblaze B2, Wasabi, R2, MinIO… or folders on other disks."),
                 self.add_buckets),
                (self.tr("&Try it with local folders"),
                 self.tr("Five folders on this computer, to see how it works in a minute."),
                 self.try_local),
                (self.tr("Connect with a &recovery kit…"),
                 self.tr("New computer? Open the kit you saved (or paste its text block) "
                         "and type your password: stores, keys and files come back."),
                 self.connect_kit),
                (self.tr("&Connect to an existing vault"),
                 self.tr("No kit? Add the same stores, enter your password, and your "
                         "files are listed again."), self.connect_existing)):
            button = QPushButton(label)
            button.setMinimumHeight(44)
            button.clicked.connect(signal)
            hint = QLabel(detail)
            hint.setWordWrap(True)
            buttons += [button, hint]
        column = QWidget()
        column.setMaximumWidth(640)
        inner = QVBoxLayout(column)
        inner.addWidget(title)
        inner.addWidget(text)
        inner.addSpacing(20)
        for i, w in enumerate(buttons):
            inner.addWidget(w)
            if i % 2:
                inner.addSpacing(14)
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        box = QVBoxLayout()
        box.addSpacing(36)
        box.addWidget(column)
        box.addStretch(1)
        outer.addLayout(box, 4)
        outer.addStretch(1)
