"""A question that does not block: the window goes on (a job may end meanwhile) and the
answer comes back through a callback."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QMessageBox, QWidget

Button = QMessageBox.StandardButton


def ask(parent: QWidget, title: str, text: str, act: Button, keep: Button,
        answered: Callable[[bool], None]) -> QMessageBox:
    """Show `text` with the buttons `act` and `keep` (the default); `answered(True)` when
    `act` was chosen, `answered(False)` for anything else (`keep`, Esc, closed)."""
    box = QMessageBox(QMessageBox.Icon.Question, title, text, act | keep, parent)
    box.setDefaultButton(keep)
    box.finished.connect(lambda _r: answered(box.clickedButton() is box.button(act)))
    box.open()
    return box
