"""How the engine talks back while it works: plain event objects and a cancel token.

The job contract. Every long operation of the engine (put, get, verify, repair, gc,
catalog rebuild) is a job:

- it takes `listener` and `cancel` keyword arguments, and the face that runs it (the
  CLI's progress bar, the GUI's worker) always passes both;
- it reports progress as events: FileStarted / FileProgress for the bytes of the file at
  hand, Step for "n of m items" of a job over many files, StoreDamaged when a store let
  it down and it went on without it;
- it checks `cancel` at least once per stripe or item, and on cancel (or any failure)
  undoes what it started before raising Cancelled: no object of an unfinished upload or
  repair stays visible, no partial output file is left;
- it returns a typed result or raises a CssmError subclass; anything else is a bug.

The engine never knows who listens. Callbacks may run on worker threads, so listeners
must be thread-safe.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import Cancelled
from ..stores.outage import Watch, watching


@dataclass(frozen=True)
class FileStarted:
    name: str
    size: int


@dataclass(frozen=True)
class FileProgress:
    """Plaintext bytes of one file done so far."""

    name: str
    done: int
    total: int


@dataclass(frozen=True)
class Checking:
    """Bytes of a file read so far to tell whether the vault holds it already (a put
    of a name stored before): nothing is sent meanwhile."""

    name: str
    done: int
    total: int


@dataclass(frozen=True)
class StoreProgress:
    """Bytes written to or read from one store so far, for this file."""

    name: str
    store: str
    done: int


@dataclass(slots=True)   # one per file: not frozen, whose __init__ costs ~3 us more
class FileDone:
    name: str
    file_id: str
    size: int


@dataclass(frozen=True)
class FileFailed:
    name: str
    error: str


@dataclass(frozen=True)
class Step:
    """A job over many items (files to verify, repair, read back): `done` of `total`."""

    what: str
    done: int
    total: int
    item: str = ""    # what is being worked on now (a file's name), for the faces to show


@dataclass(frozen=True)
class StoreDamaged:
    """A store returned a damaged, missing or unreadable piece; the work went on without it."""

    store: str
    file_id: str
    reason: str


@dataclass(frozen=True)
class Resumed:
    """A put goes on with an upload an earlier run left (the stores hold `held` bytes),
    or a restore with the blocks an earlier run fetched (`download`: this machine holds
    `held` bytes of them)."""

    name: str
    held: int
    download: bool = False
    plain: int = 0   # of the file's own bytes, what that much covers (a put's progress)


@dataclass(frozen=True)
class StoreWaiting:
    """A store stopped answering; the job waits for it (stores/outage.py) up to `limit`
    seconds, then goes on without it."""

    store: str
    since: float    # seconds it has not answered
    limit: float


@dataclass(frozen=True)
class StoreBack:
    """A store the job waited for answers again."""

    store: str
    after: float    # seconds it was gone


Event = (FileStarted | FileProgress | StoreProgress | FileDone | FileFailed | StoreDamaged
         | Step | Resumed | StoreWaiting | StoreBack | Checking)
Listener = Callable[[Event], None]


def ignore(_event: Event) -> None:
    """The listener for callers that don't watch."""


class CancelToken:
    """Set from any thread; the pipelines check it between stripes, and stages waiting on
    a channel are woken by it (on_cancel)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.keep = False

    def cancel(self, keep: bool = False) -> None:
        """`keep`: the work is to go on later (see errors.Cancelled)."""
        self.keep = self.keep or keep
        self._event.set()
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` when cancelled (now, if already); returns what unregisters it."""
        with self._lock:
            self._callbacks.append(callback)
        if self._event.is_set():
            callback()

        def forget() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)
        return forget

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def sleep(self, seconds: float) -> bool:
        """Wait up to `seconds`, woken early by a cancel; True when cancelled."""
        return self._event.wait(seconds)

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled(self.keep)


def waiting_for_stores(listener: Listener,
                       cancel: CancelToken) -> contextlib.AbstractContextManager[None]:
    """Inside, a store that stops answering is waited for (stores/outage.py): the listener
    hears StoreWaiting and StoreBack, and a cancel ends the wait."""
    return watching(Watch(lambda store, since, limit: listener(StoreWaiting(store, since, limit)),
                          lambda store, after: listener(StoreBack(store, after)),
                          cancel.sleep))


class TreeProgress:
    """One progress line for many files: the files' own byte events become steps of one
    total ("n files"), a finished file adds its size; damage reports pass through."""

    def __init__(self, listener: Listener, label: str, total: int) -> None:
        self._listener, self.label, self.total = listener, label, total
        self._done = 0
        self._lock = threading.Lock()
        listener(FileStarted(label, total))

    def __call__(self, event: Event) -> None:
        """The listener for one file's restore at a time (its bytes count as they come)."""
        if isinstance(event, FileProgress):
            with self._lock:
                done = self._done + event.done
            self._listener(FileProgress(self.label, min(done, self.total), self.total))
        elif isinstance(event, StoreDamaged | Step | StoreWaiting | StoreBack):
            self._listener(event)

    def finished(self, size: int) -> None:
        with self._lock:
            self._done += size
            done = self._done
        self._listener(FileProgress(self.label, min(done, self.total), self.total))

    def close(self) -> None:
        self._listener(FileDone(self.label, "", self.total))
