"""How the engine talks back while it works: plain event objects and a cancel token.

The engine never knows who listens; the CLI draws a bar, the GUI turns events into
Qt signals. Callbacks may run on worker threads, so listeners must be thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from .errors import Cancelled


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
class StoreProgress:
    """Bytes written to or read from one store so far, for this file."""

    name: str
    store: str
    done: int


@dataclass(frozen=True)
class FileDone:
    name: str
    file_id: str
    size: int


@dataclass(frozen=True)
class FileFailed:
    name: str
    error: str


@dataclass(frozen=True)
class StoreDamaged:
    """A store returned a damaged, missing or unreadable piece; the work went on without it."""

    store: str
    file_id: str
    reason: str


Event = FileStarted | FileProgress | StoreProgress | FileDone | FileFailed | StoreDamaged
Listener = Callable[[Event], None]


def ignore(_event: Event) -> None:
    """The listener for callers that don't watch."""


class CancelToken:
    """Set from any thread; the pipelines check it between stripes."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()
