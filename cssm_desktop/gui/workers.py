"""QThread workers: each wraps one engine call and reports through typed Qt signals.

The engine knows nothing of Qt; a worker turns its listener events into signals (at
most ~20 a second, so a fast pipeline cannot flood the event loop) and its cancel
token into a `cancel()` slot.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from ..core import parallel
from ..core.progress import (
    CancelToken,
    Checking,
    Event,
    FileProgress,
    Resumed,
    Step,
    StoreBack,
    StoreDamaged,
    StoreWaiting,
)
from ..errors import CssmError, MissingSecret

log = logging.getLogger(__name__)

# Threads, their workers and relays, kept referenced until done: a QObject without a
# parent is deleted with its last Python reference, connections and all.
_running: dict[QThread, tuple[QObject, QObject]] = {}
# Finished ones kept alive while store calls they left behind still run (thread_done).
_retired: list[tuple[QThread, tuple[QObject, QObject]]] = []


class Worker(QObject):
    """Subclasses implement work(); exactly one of succeeded/failed, then finished."""

    # object, not int: Qt's int is 32 bits, and files pass 2 GiB.
    progress = Signal(object, object)    # bytes done, bytes total (current file)
    step = Signal(object, object, str)   # items done, items total, the item now (a name)
    damaged = Signal(str, str)           # store, reason
    # A store stopped answering: store, seconds since, seconds the job waits; it answers
    # again: store, "" (stores/outage.py).
    waiting = Signal(str, float, float)
    back = Signal(str)
    resumed = Signal(object)             # file bytes an earlier run already sent
    checking = Signal(object, object)    # bytes read, bytes in all: is it stored already?
    succeeded = Signal(object)
    failed = Signal(object)              # the exception itself; faces render it
    finished = Signal()

    EMIT_EVERY = 0.05  # seconds between progress signals

    def __init__(self) -> None:
        super().__init__()
        self.token = CancelToken()
        self._last_emit = 0.0
        self._lock = threading.Lock()

    def work(self) -> Any:
        raise NotImplementedError

    @Slot()
    def run(self) -> None:
        try:
            result = self.work()
        except CssmError as exc:
            self.failed.emit(exc)
        except Exception as exc:  # a bug must end up in the log and the UI, not vanish
            # The stack and the error's kind, not its message: that may name a user's file.
            log.error("worker %s crashed: %s\n%s", type(self).__name__, type(exc).__name__,
                      "".join(traceback.format_tb(exc.__traceback__)))
            self.failed.emit(exc)
        else:
            self.succeeded.emit(result)
        finally:
            self.finished.emit()

    def cancel(self, keep: bool = False) -> None:
        """`keep`: stopped to go on later (pause, quit), see errors.Cancelled."""
        self.token.cancel(keep)

    def listen(self, event: Event) -> None:
        """Engine listener: called on pipeline threads; signals are queued to the UI."""
        if isinstance(event, StoreDamaged):
            self.damaged.emit(event.store, event.reason)
        elif isinstance(event, Step):
            self.step.emit(event.done, event.total, event.item)
        elif isinstance(event, StoreWaiting):
            self.waiting.emit(event.store, event.since, event.limit)
        elif isinstance(event, StoreBack):
            self.back.emit(event.store)
        elif isinstance(event, Resumed) and not event.download:
            self.resumed.emit(event.plain)
        elif isinstance(event, FileProgress | Checking):
            now = time.monotonic()
            with self._lock:
                if now - self._last_emit < self.EMIT_EVERY and event.done < event.total:
                    return
                self._last_emit = now
            signal = self.progress if isinstance(event, FileProgress) else self.checking
            signal.emit(event.done, event.total)


class _Relay(QObject):
    """Lives on the calling (UI) thread, so the callbacks run there too.

    A plain Python callable connected to a worker's signal would run on the worker's
    thread (PySide6 has no receiver to queue to); slots of a QObject are queued.
    """

    def __init__(self, callbacks: dict[str, Callable[..., None]],
                 owner: QObject | None = None) -> None:
        super().__init__()
        self._callbacks = callbacks
        self._owner = owner

    @Slot(object)
    def succeeded(self, result: object) -> None:
        self._call("succeeded", result)

    @Slot(object)
    def failed(self, error: BaseException) -> None:
        self._call("failed", error)

    @Slot(object, object)
    def progress(self, done: int, total: int) -> None:
        self._call("progress", done, total)

    @Slot(object, object, str)
    def step(self, done: int, total: int, item: str) -> None:
        self._call("step", done, total, item)

    @Slot(str, str)
    def damaged(self, store: str, reason: str) -> None:
        self._call("damaged", store, reason)

    @Slot(str, float, float)
    def waiting(self, store: str, since: float, limit: float) -> None:
        self._call("waiting", store, since, limit)

    @Slot(str)
    def back(self, store: str) -> None:
        self._call("back", store)

    @Slot(object)
    def resumed(self, plain: int) -> None:
        self._call("resumed", plain)

    @Slot(object, object)
    def checking(self, done: int, total: int) -> None:
        self._call("checking", done, total)

    @Slot(int, str)
    def current(self, index: int, name: str) -> None:
        self._call("current", index, name)

    @Slot()
    def finished(self) -> None:
        self._call("finished")

    @Slot()
    def thread_done(self) -> None:
        """The QThread has stopped (not just been asked to): only now may it be released,
        on the UI thread, after every result slot above has run."""
        for thread, (_worker, relay) in list(_running.items()):
            if relay is self:
                # `finished` is sent from the thread just before it ends: wait for the
                # end (at once, in practice) before the last reference goes, or the
                # QThread may be destroyed while still running (a segfault seen in CI).
                with contextlib.suppress(RuntimeError):   # already deleted by Qt
                    thread.wait()
                pair = _running.pop(thread)
                # A store call this job left behind (too slow) still holds the job's
                # context, and with it the worker: keep them here until no such call
                # runs, so that the last reference goes on this thread, not a pool's.
                if parallel.lingering():
                    _retired.append((thread, pair))
                else:
                    _retired.clear()

    def _call(self, name: str, *args: object) -> None:
        if self._owner is not None and not shiboken6.isValid(self._owner):
            return   # the window that asked has gone (closed while this ran): nobody to tell
        callback = self._callbacks.get(name)
        if callback is not None:
            callback(*args)


def message(error: BaseException) -> str:
    """What a window says of a failure: our errors as they are, anything else as a bug."""
    if isinstance(error, MissingSecret):
        return f"{error}: enter it in Settings"
    if isinstance(error, CssmError):
        return str(error)
    return f"unexpected error ({type(error).__name__}: {error}); the log has the details"


def start(worker: Worker, owner: QObject | None = None,
          **callbacks: Callable[..., None]) -> QThread:
    """Run the worker on a new QThread. Callbacks (succeeded, failed, progress, step,
    damaged, waiting, back, current, finished) run on the thread that called start: the UI thread;
    `failed` gets the exception itself. With an `owner`, they are skipped once it has
    been deleted (a result arriving after its window closed)."""
    relay = _Relay(callbacks, owner)
    for name in {*callbacks, "finished"}:
        getattr(worker, name).connect(getattr(relay, name))
    thread = QThread()
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    # Direct: the QThread object lives on the UI thread, so a queued quit would wait for
    # the UI's event loop, and a UI blocked in wait_all() would never deliver it.
    worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
    thread.finished.connect(relay.thread_done)
    _running[thread] = (worker, relay)
    thread.start()
    return thread


def running() -> int:
    """Threads started and not yet released."""
    return len(_running)


def cancel_all() -> None:
    """At exit: ask every running job to stop, all at once, before waiting for any."""
    for worker, _relay in list(_running.values()):
        worker.cancel(keep=True)   # an upload stopped by quitting goes on at next start


def wait_all(timeout_ms: int = 30_000) -> None:
    """Let running threads end, within one overall bound (not one per thread)."""
    deadline = time.monotonic() + timeout_ms / 1000
    for thread in list(_running):
        left = int(max(0.0, deadline - time.monotonic()) * 1000)
        with contextlib.suppress(RuntimeError):  # already deleted by Qt
            thread.wait(left)



class Call(Worker):
    """Any engine call that needs no progress: unlock, open the vault, list files, ..."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__()
        self._fn = fn

    def work(self) -> Any:
        return self._fn()


class Job(Worker):
    """A long engine operation run under the job contract (core/progress.py): it gets this
    worker's listener and cancel token, so progress shows and Cancel works."""

    def __init__(self, fn: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__()
        self._fn, self._kwargs = fn, kwargs

    def work(self) -> Any:
        return self._fn(listener=self.listen, cancel=self.token, **self._kwargs)


class PutWorker(Worker):
    def __init__(self, engine: Any, source: Path, name: str, duplicates: Any = None) -> None:
        super().__init__()
        self.engine, self.source, self.name = engine, source, name
        self.duplicates = duplicates

    def work(self) -> Any:
        kwargs = {"duplicates": self.duplicates} if self.duplicates is not None else {}
        result = self.engine.put_one(self.source, self.name, self.listen, self.token, **kwargs)
        if result.error is not None:
            raise result.error
        return result


class PackWorker(Worker):
    """Small files as one upload (engine.put_small); a result per file, in order."""

    def __init__(self, engine: Any, sources: list[Any], duplicates: Any = None) -> None:
        super().__init__()
        self.engine, self.sources, self.duplicates = engine, sources, duplicates

    def work(self) -> Any:
        kwargs = {"duplicates": self.duplicates} if self.duplicates is not None else {}
        return self.engine.put_small(self.sources, self.listen, self.token, **kwargs)


class RestoreWorker(Worker):
    """Restores files into a folder as one job (engine.get_many): `keep` without
    replacing anything, `replace` over the files already there. The result is a row per
    file: its path, or why it failed."""

    def __init__(self, engine: Any, folder: Path, keep: list[Any], replace: list[Any]
                 ) -> None:
        super().__init__()
        self.engine, self.folder, self.keep, self.replace = engine, folder, keep, replace

    def work(self) -> list[tuple[Any, Any]]:
        rows = []
        for entries, force in ((self.keep, False), (self.replace, True)):
            if entries:
                rows += self.engine.get_many(entries, self.folder, force=force,
                                             listener=self.listen, cancel=self.token)
        return rows
