"""Run Python's cyclic garbage collector on the UI thread only.

The collector runs on whichever thread happens to allocate when a threshold is crossed.
If that is a worker thread and the garbage holds a Qt object (a closed dialog caught in
a reference cycle), Qt destroys it from the wrong thread and crashes. So automatic
collection is switched off while the app runs, and a timer collects on the UI thread.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

_settled = False


class MainThreadGC(QObject):
    def __init__(self, parent: QObject | None = None, interval_ms: int = 500) -> None:
        super().__init__(parent)
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.check)
        self._timer.start(interval_ms)

    @staticmethod
    def settle() -> None:
        """Once the app has loaded what it keeps for good (Qt, the engine, boto3's models):
        those objects move out of the collector's sight, so a full collection on the UI
        thread scans only what comes and goes (a key press waited 100-200 ms behind one
        during a large upload; bench/ui_lag.py)."""
        global _settled
        if _settled:   # once a process: what is frozen is never collected again
            return
        _settled = True
        gc.collect()
        gc.freeze()

    def check(self) -> None:
        counts, thresholds = gc.get_count(), gc.get_threshold()
        for generation in (2, 1, 0):
            if counts[generation] > thresholds[generation]:
                gc.collect(generation)
                return

    def stop(self) -> None:
        self._timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()
