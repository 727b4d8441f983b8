"""A protected folder's retention: the smart default or a rule of one's own, and a
preview of exactly which snapshots (and older versions) it would drop, before anything
is dropped."""

from __future__ import annotations

import copy
import time
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..errors import CssmError
from ..snapshots.retention import PERIODS, SMART, Policy
from .context import AppContext

SMART_ROW, CUSTOM_ROW = 0, 1


class RetentionDialog(QDialog):
    def __init__(self, ctx: AppContext, path: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.path = path
        self.setWindowTitle(self.tr("What to keep of %1").replace("%1", path))
        folder = ctx.config.protected(path) if ctx.config is not None else None
        current = folder.policy if folder is not None else SMART
        self.preset = QComboBox()
        self.preset.addItems([self.tr("Smart (the last 10, 48 hourly, 7 daily, 4 weekly, "
                                      "24 monthly, 3 yearly)"), self.tr("My own rule")])
        self.boxes: dict[str, QSpinBox] = {}
        form = QFormLayout()
        form.addRow(self.tr("&Keep:"), self.preset)
        for key, label in (("last", self.tr("The &last")), ("hourly", self.tr("&Hourly")),
                           ("daily", self.tr("&Daily")), ("weekly", self.tr("&Weekly")),
                           ("monthly", self.tr("&Monthly")), ("yearly", self.tr("&Yearly"))):
            box = QSpinBox()
            box.setRange(0, 100_000)
            box.setValue(current.count(key))
            box.valueChanged.connect(self.preview)
            self.boxes[key] = box
            form.addRow(label, box)
        self.within = QSpinBox()
        self.within.setRange(0, 36_500)
        self.within.setSuffix(self.tr(" days"))
        self.within.setValue(int(current.within_s // 86400))
        self.within.valueChanged.connect(self.preview)
        form.addRow(self.tr("All wi&thin"), self.within)
        self.preset.setCurrentIndex(SMART_ROW if current == SMART else CUSTOM_ROW)
        self.preset.currentIndexChanged.connect(self._preset)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.list = QListWidget()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        columns = QHBoxLayout()
        columns.addLayout(form)
        right = QVBoxLayout()
        right.addWidget(QLabel("<b>" + self.tr("Preview: what this rule keeps and drops now")
                               + "</b>"))
        right.addWidget(self.list, 1)
        right.addWidget(self.summary)
        columns.addLayout(right, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(columns)
        note = QLabel(self.tr("Saved, the rule is applied after each backup. A folder's "
                              "newest snapshot and the newest version of every file are "
                              "never dropped."))
        note.setWordWrap(True)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self._preset()
        self.resize(760, 420)

    def _preset(self) -> None:
        custom = self.preset.currentIndex() == CUSTOM_ROW
        if not custom:
            for key, box in self.boxes.items():
                box.blockSignals(True)
                box.setValue(SMART.count(key))
                box.blockSignals(False)
            self.within.setValue(0)
        for box in (*self.boxes.values(), self.within):
            box.setEnabled(custom)
        self.preview()

    def policy(self) -> Policy:
        return Policy(*(self.boxes[k].value() for k in ("last", *PERIODS)),
                      float(self.within.value() * 86400))

    def preview(self) -> Any:
        self.list.clear()
        policy = self.policy()
        engine = self.ctx.engine
        if policy.empty():
            self.summary.setText(self.tr("This rule keeps nothing: say what to keep."))
            return None
        if engine is None:
            return None
        try:
            plan = engine.plan_forget(policy, self.path)
        except CssmError as exc:
            self.summary.setText(str(exc))
            return None
        for d in plan.decisions:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(d.snapshot.time_ns / 1e9))
            text = (self.tr("keep  %1  (%2)").replace("%1", when).replace(
                "%2", ", ".join(d.reasons)) if d.keep else
                self.tr("drop  %1").replace("%1", when))
            self.list.addItem(text)
            if not d.keep:
                item = self.list.item(self.list.count() - 1)
                item.setForeground(Qt.GlobalColor.darkRed)
        self.summary.setText(self.tr("Drops %1 of %2 snapshots and %3 older versions no "
                                     "kept snapshot holds.").replace(
            "%1", str(len(plan.dropped))).replace("%2", str(len(plan.decisions))).replace(
            "%3", str(len(plan.versions))))
        return plan

    def save(self) -> None:
        if self.ctx.config is None or self.policy().empty():
            return
        cfg = copy.deepcopy(self.ctx.config)
        folder = cfg.protected(self.path)
        if folder is None:
            return
        if self.preset.currentIndex() == SMART_ROW:
            folder.set_policy(Policy())   # no rule of its own: the smart default
        else:
            folder.set_policy(self.policy())
        self.ctx.save(cfg)
        self.accept()
