"""How long a key press or a scroll waits before the window has answered it, measured in
the app while real X events arrive (bench/ui_lag.py drives it). Off unless the
environment names a file: CSSM_LAG_PROBE=/path/lag.jsonl.

For each key press and wheel event: the gap between its X server time stamp and when
the UI thread took it (the bench subtracts the smallest gap of the run, the clocks'
offset: what is left is time spent waiting in the queue), and how long until the UI
thread was free again after it (handling, the repaint it asked for, whatever else was
queued). Their sum is what a person waits. Only kinds and milliseconds are written,
never a key or text. The filter runs for every event of the app: off unless asked for.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtGui import QInputEvent
from PySide6.QtWidgets import QApplication

KINDS = {QEvent.Type.KeyPress: "key", QEvent.Type.Wheel: "wheel"}


class LagProbe(QObject):
    def __init__(self, app: QApplication, path: Path) -> None:
        super().__init__(app)
        self.path = path
        self._seen: set[int] = set()        # an event passes the filter once per widget
        app.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = KINDS.get(event.type())
        if kind is None or not isinstance(event, QInputEvent):
            return False
        stamp = event.timestamp()
        if stamp in self._seen:      # the same event, offered to a parent widget
            return False
        self._seen.add(stamp)
        arrived = time.monotonic() * 1000
        QTimer.singleShot(0, lambda: self._write(kind, arrived - stamp,
                                                 time.monotonic() * 1000 - arrived))
        return False

    def _write(self, kind: str, gap: float, busy: float) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps({"kind": kind, "gap_ms": round(gap, 2),
                                 "busy_ms": round(busy, 2)}) + "\n")


def install(app: QApplication) -> LagProbe | None:
    where = os.environ.get("CSSM_LAG_PROBE")
    return LagProbe(app, Path(where)) if where else None
