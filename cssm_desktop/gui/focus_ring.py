"""A clear focus ring around whatever has the keyboard focus, on every page and dialog.

Fusion's own focus marks are faint and some widgets (item views, check boxes on some
themes) show none: a person using Tab could not see where they were. The ring is drawn
by one overlay widget that follows the focus; it takes no clicks and changes no layout.
It shows after keyboard moves (Tab, shortcuts, a window that opens) and not after a
click, as desktop platforms do.
"""

from __future__ import annotations

import shiboken6
from PySide6.QtCore import QEvent, QObject, QPoint, QRect, Qt, QTimer
from PySide6.QtGui import QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QAbstractScrollArea, QApplication, QWidget

WIDTH = 2
MARGIN = 2


class _Ring(QWidget):
    def __init__(self) -> None:
        super().__init__(None)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.target: QWidget | None = None

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        colour = (self.target or self).palette().color(QPalette.ColorRole.Highlight)
        painter.setPen(QPen(colour, WIDTH))
        half = WIDTH / 2
        painter.drawRoundedRect(self.rect().toRectF().adjusted(half, half, -half, -half),
                                3, 3)
        painter.end()


class FocusRing(QObject):
    """Installed once on the application (install())."""

    def __init__(self, app: QApplication) -> None:
        super().__init__(app)
        self._ring: _Ring | None = None
        self.target: QWidget | None = None
        self.window: QWidget | None = None
        # Only the focus widget and its window are watched: a filter on the whole
        # application would run Python for every event (paints, timers) of the app.
        app.focusChanged.connect(self._moved)

    @property
    def ring(self) -> _Ring:
        """The overlay; a new one when the window it was drawn in has gone."""
        if self._ring is None or not shiboken6.isValid(self._ring):
            self._ring = _Ring()
        return self._ring

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in (QEvent.Type.Resize, QEvent.Type.Move, QEvent.Type.Show,
                            QEvent.Type.Hide, QEvent.Type.LayoutRequest):
            # After the layout has placed the widgets, not before.
            QTimer.singleShot(0, self._place)
        return False

    def _watch(self, widget: QWidget | None, old: QWidget | None) -> QWidget | None:
        if old is not None and old is not widget and shiboken6.isValid(old):
            old.removeEventFilter(self)
        if widget is not None and widget is not old:
            widget.installEventFilter(self)
        return widget

    def _moved(self, _old: QWidget | None, new: QWidget | None) -> None:
        # A click moved it (a button is down) or the keyboard did: rings for the keyboard
        # only, as desktop platforms do.
        keyboard = QApplication.mouseButtons() == Qt.MouseButton.NoButton
        if new is not None and not keyboard:
            new = None
        self.target = self._watch(new, self.target)
        self.window = self._watch(new.window() if new is not None else None, self.window)
        self._place()

    def _place(self) -> None:
        target = self.target
        if target is None or not shiboken6.isValid(target) or not target.isVisible() \
                or target.window() is target:
            self.ring.hide()
            return
        # A viewport's owner (a table) gets the ring, around its frame.
        owner = target.parentWidget()
        if isinstance(owner, QAbstractScrollArea) and target is owner.viewport():
            target = owner
        window = target.window()
        ring = self.ring
        if ring.parentWidget() is not window:
            ring.setParent(window)
        ring.target = target
        box = QRect(target.mapTo(window, QPoint(0, 0)), target.size())
        ring.setGeometry(box.adjusted(-MARGIN, -MARGIN, MARGIN, MARGIN))
        ring.show()
        ring.raise_()
        ring.update()


def install(app: QApplication) -> FocusRing:
    return FocusRing(app)
