"""When protected folders are backed up: on their interval, soon after they change, and
at once when a run was missed (the computer was off or asleep). Not Qt-bound: the
window runs it on a worker thread, `cssm backup --watch` in the foreground.

As Kopia's scheduler: `next_run` is a pure function, and the loop re-reads the wall
clock at least every 15 s (timers pause while a laptop sleeps; the clock does not)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import CssmError
from .protect import ProtectedFolder

if TYPE_CHECKING:
    from ..engine import Engine

log = logging.getLogger(__name__)
TICK = 15.0            # the longest sleep between two looks at the clock
SETTLE = 60.0          # a change is backed up once the folder was quiet this long
RETRY = 15 * 60.0      # a failed run is tried again after this


def next_run(last_ns: int | None, every_s: float, now_s: float) -> float:
    """When the next backup is due (seconds since the epoch): at once if there was none
    or one was missed, else one interval after the last."""
    if last_ns is None:
        return now_s
    due = last_ns / 1e9 + every_s
    return due if due > now_s else now_s


class Watcher:
    """Debounced changes under protected folders (watchdog): each event restarts the
    folder's quiet period; only the folder is remembered, never what changed."""

    def __init__(self, folders: list[str], settle: float = SETTLE) -> None:
        self.settle = settle
        self.changed: dict[str, float] = {}   # folder -> time of its latest change
        self._lock = threading.Lock()
        self._observer = None
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:   # pragma: no cover (a bundle without it: the interval only)
            return
        watcher = self

        class Handler(FileSystemEventHandler):
            def __init__(self, root: str) -> None:
                self.root = root

            def on_any_event(self, event: object) -> None:
                if getattr(event, "event_type", "") in ("opened", "closed_no_write"):
                    return
                with watcher._lock:
                    watcher.changed[self.root] = time.monotonic()

        observer = Observer()
        for folder in folders:
            if os.path.isdir(folder):
                try:
                    observer.schedule(Handler(folder), folder, recursive=True)
                except OSError as exc:   # too many folders to watch: the interval only
                    log.warning("cannot watch a protected folder: %s", exc.strerror)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def quiet(self) -> list[str]:
        """Folders that changed and have been quiet for `settle` since (taken out)."""
        now = time.monotonic()
        with self._lock:
            ready = [f for f, at in self.changed.items() if now - at >= self.settle]
            for f in ready:
                del self.changed[f]
        return ready

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)


class Scheduler:
    """Runs `backup(folder)` (0 on success) for each folder when it is due."""

    def __init__(self, folders: list[ProtectedFolder], backup: Callable[[ProtectedFolder], int],
                 engine: Engine | None = None, settle: float = SETTLE,
                 last: dict[str, int] | None = None, watch: bool = True) -> None:
        self.folders = folders
        self.backup = backup
        self.settle = settle
        self.last: dict[str, int] = dict(last or {})
        if engine is not None and not last:
            try:
                for snap in engine.listed_snapshots():
                    self.last[snap.root] = max(self.last.get(snap.root, 0), snap.time_ns)
            except CssmError:   # no vault yet: every folder is due
                pass
        self.failed_at: dict[str, float] = {}
        self.watch = watch

    def due(self, now_s: float, changed: list[str]) -> list[ProtectedFolder]:
        out = []
        for f in self.folders:
            if f.path in self.failed_at and now_s - self.failed_at[f.path] < RETRY:
                continue
            if f.path in changed or next_run(self.last.get(f.path), f.every_seconds,
                                             now_s) <= now_s:
                out.append(f)
        return out

    def run_due(self, changed: list[str] | None = None) -> int:
        """One pass: every due folder backed up; how many ran."""
        ran = 0
        for f in self.due(time.time(), changed or []):
            code = self.backup(f)
            ran += 1
            if code in (0, 3):   # 3: a snapshot, some files not read
                self.last[f.path] = time.time_ns()
                self.failed_at.pop(f.path, None)
            else:
                self.failed_at[f.path] = time.time()
        return ran

    def run(self, stop: threading.Event) -> None:
        watcher = Watcher([f.path for f in self.folders], self.settle) if self.watch \
            else None
        try:
            while not stop.is_set():
                self.run_due(watcher.quiet() if watcher else [])
                stop.wait(min(TICK, self.settle))
        finally:
            if watcher is not None:
                watcher.stop()
