"""What every table of the window shares: whole rows, read-only, and a keyboard that
gets out (Tab used to walk cell by cell inside a table and never leave it)."""

from __future__ import annotations

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
