"""What the dialogs' forms share."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QWidget


def buddy_label(text: str, buddy: QWidget) -> QLabel:
    """A form label whose mnemonic moves to `buddy`: without a buddy Qt shows the "&"."""
    label = QLabel(text)
    label.setBuddy(buddy)
    return label
