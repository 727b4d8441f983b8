"""What every table of the window shares: whole rows, read-only, and a keyboard that
gets out (Tab used to walk cell by cell inside a table and never leave it)."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QAbstractItemView, QTableView


def plain_rows(view: QTableView, compact: bool = True) -> None:
    """Rows selected whole, never edited; Tab leaves the table, arrows move inside it.
    `compact`: one line of text per row (the upload list needs room for its bars)."""
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setTabKeyNavigation(False)
    view.verticalHeader().hide()
    if compact:
        view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 8)


class EmptyHint:
    """For item views: says what an empty list means and how to fill it, in the view
    itself (an empty white table told a newcomer nothing)."""

    def empty_hint(self) -> str:
        return ""

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)  # type: ignore[misc]
        view: QAbstractItemView = self  # type: ignore[assignment]
        model = view.model()
        text = self.empty_hint() if model is not None and model.rowCount() == 0 else ""
        if not text:
            return
        painter = QPainter(view.viewport())
        painter.setPen(view.palette().color(QPalette.ColorRole.PlaceholderText))
        painter.drawText(view.viewport().rect().adjusted(16, 24, -16, -16),
                         int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop
                             | Qt.TextFlag.TextWordWrap), text)
        painter.end()


def chosen_rows(view: QAbstractItemView) -> list[QModelIndex]:
    """The selected rows; with none selected, the row the keyboard is on (Tab into a list
    puts the cursor on a row without selecting it, and Enter there did nothing)."""
    rows = view.selectionModel().selectedRows()
    if rows:
        return rows
    current = view.currentIndex()
    return [current.siblingAtColumn(0)] if current.isValid() else []
