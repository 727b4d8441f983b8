"""The stores panel: one row per store as the last check found it, and a banner that says
what the losses mean for the files, with the action that helps."""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from ..core.status import StoreReport, StoreState, risk_text
from ..units import human
from .tables import plain_rows

STATE_TEXT = {
    StoreState.REACHABLE: "✔ reachable",
    StoreState.UNREACHABLE: "✖ unreachable",
    StoreState.DAMAGED: "⚠ damaged",
    StoreState.FOREIGN: "✖ foreign (not used)",
    StoreState.EMPTY: "○ empty",
}
COLUMNS = ("Store", "#", "Where", "State", "Why", "Checked", "Holds")


class StoresView(QTableWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels([self.tr(c) for c in COLUMNS])
        plain_rows(self)   # one line per store: five fit without scrolling
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)   # long paths keep both ends
        self.setWordWrap(False)
        header = self.horizontalHeader()
        for col in range(len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        self.setColumnWidth(2, 260)
        # Bytes held as last counted: timer checks do not count, and a count stands only
        # while its store is still there.
        self._held: dict[str, int] = {}

    def set_reports(self, reports: list[StoreReport]) -> None:
        self.setRowCount(len(reports))
        for row, r in enumerate(reports):
            if r.state is not StoreState.REACHABLE:
                self._held.pop(r.name, None)
            elif r.held is not None:
                self._held[r.name] = r.held
            held = self._held.get(r.name)
            cells = (r.name, f"{r.index + 1}" if r.index is not None else "-",
                     r.kind, self.tr(STATE_TEXT[r.state]), r.reason,
                     datetime.fromtimestamp(r.checked_at).strftime("%H:%M:%S"),
                     human(held) if held is not None else "")
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(r.reason or text)
                if col == 6:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                self.setItem(row, col, item)


class RiskBanner(QFrame):
    """Shown while any of the vault's stores is not usable."""

    repair_requested = Signal()
    replace_requested = Signal()
    check_requested = Signal()
    create_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        check = QPushButton(self.tr("Check a&gain"))
        check.clicked.connect(self.check_requested)
        self.replace = QPushButton(self.tr("Re&place a store…"))
        self.replace.clicked.connect(self.replace_requested)
        self.repair = QPushButton(self.tr("Rep&air"))
        self.repair.clicked.connect(self.repair_requested)
        self.create = QPushButton(self.tr("&Create the vault here…"))
        self.create.clicked.connect(self.create_requested)
        layout = QHBoxLayout(self)
        layout.addWidget(self.text, 1)
        for b in (check, self.create, self.replace, self.repair):
            layout.addWidget(b)
        self.hide()

    def _paint(self, color: str) -> None:
        palette = self.palette()
        palette.setColor(QPalette.ColorRole.Window, QColor(color))
        palette.setColor(QPalette.ColorRole.WindowText, QColor("#212529"))
        self.setPalette(palette)
        self.text.setPalette(palette)

    def show_no_vault(self, empty: list[str], away: dict[str, str]) -> None:
        """The stores hold no vault yet: say so, and offer to create it once every store
        answers (a vault is created on all of them at once)."""
        self.replace.hide()
        self.repair.hide()
        self.create.setVisible(not away and bool(empty))
        if away:
            names = ", ".join(f"{name} ({why})" for name, why in sorted(away.items()))
            text = self.tr("No vault found. %1 of %2 stores could not be reached: %3. A "
                           "new vault is created on every store at once: check them, "
                           "then Check again.")
            self.text.setText("⚠ " + text.replace("%1", str(len(away)))
                              .replace("%2", str(len(away) + len(empty))).replace("%3", names))
            self._paint("#fff3cd")
        else:
            text = self.tr("Your %1 stores are reachable and hold no vault yet. Create the "
                           "vault on them to start storing files (or, if your vault lives "
                           "elsewhere, check the stores in Settings).")
            self.text.setText(text.replace("%1", str(len(empty))))
            self._paint("#d1ecf1")
        self.show()

    def show_risk(self, down: dict[str, str], n: int, k: int) -> None:
        self.create.hide()
        self.replace.show()
        self.repair.show()
        if not down:
            self.hide()
            return
        names = ", ".join(sorted(down))
        self.text.setText("⚠ " + risk_text(len(down), n, k).capitalize() + f" ({names}).")
        # Amber while every file is still restorable, red when one more loss costs files.
        self._paint("#fff3cd" if n - k - len(down) > 0 else "#f8d7da")
        self.show()
