"""The CLI's view of engine events: a one-line progress bar on a terminal, quiet otherwise."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import TextIO

from .core.progress import (
    Event,
    FileDone,
    FileFailed,
    FileProgress,
    FileStarted,
    Resumed,
    Step,
    StoreBack,
    StoreDamaged,
    StoreWaiting,
)
from .paths import printable
from .units import Rate, human, seconds


class ProgressBar:
    """Listener; redraws at most 10 times a second. Damage reports always go to stderr."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None,
                 report_damage: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.report_damage = report_damage
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._lock = threading.Lock()
        self._name = ""
        self._rate = Rate()
        self._last = 0.0
        self._drawn = False
        self._waiting: set[str] = set()   # stores we said we wait for
        self._warned: set[tuple[str, str]] = set()   # (store, reason) said already

    @classmethod
    def unless_quiet(cls, args: argparse.Namespace) -> ProgressBar:
        """For a command with --json and --quiet: off when either was asked for (a JSON
        reader or a script wants no bar), else on a terminal."""
        return cls(enabled=False if getattr(args, "json", False)
                   or getattr(args, "quiet", False) else None)

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, StoreDamaged) and self.report_damage:
                # Once per store and reason: with 2 of 5 stores down a put of 2,000 files
                # printed 4,000 lines (the summary at the end counts the files).
                if (event.store, event.reason) in self._warned:
                    return
                self._warned.add((event.store, event.reason))
                self._clear()
                print(f"warning: store {event.store!r}: {event.reason} "
                      f"(file {event.file_id[:12]}); continuing with the others",
                      file=self.stream)
            elif isinstance(event, Resumed):
                self._clear()
                done = "fetched" if event.download else "sent"
                print(f"resuming {printable(event.name)}: {human(event.held)} were {done} "
                      "before", file=self.stream)
            elif isinstance(event, StoreWaiting):
                self._wait(event)
            elif isinstance(event, StoreBack):
                if event.store in self._waiting:
                    self._waiting.discard(event.store)
                    self._clear()
                    print(f"store {event.store!r} answers again (after "
                          f"{seconds(event.after)}); going on", file=self.stream)
            elif isinstance(event, FileStarted):
                self._name, self._last, self._rate = event.name, 0.0, Rate()
            elif isinstance(event, FileProgress) and self.enabled:
                self._draw(event)
            elif isinstance(event, Step) and self.enabled and event.total:
                self._clear()
                self.stream.write(f"\r{event.what}: {event.done + 1} of {event.total} "
                                  if event.done < event.total else "")
                self.stream.flush()
                self._drawn = event.done < event.total
            elif isinstance(event, FileDone | FileFailed):
                self._clear()

    def _wait(self, ev: StoreWaiting) -> None:
        """Said once per outage; on a terminal the line counts the time up."""
        line = (f"waiting for store {ev.store!r}, which stopped answering (up to "
                f"{seconds(ev.limit)}, then the upload goes on without it)")
        if self.enabled:
            line += f"… {seconds(ev.since)}"
            self._clear()
            self.stream.write("\r" + line)
            self.stream.flush()
            self._drawn = True
        elif ev.store not in self._waiting:
            print(line, file=self.stream)
        self._waiting.add(ev.store)

    def _draw(self, ev: FileProgress) -> None:
        now = time.monotonic()
        if now - self._last < 0.1 and ev.done < ev.total:
            return
        self._last = now
        pct = 100 * ev.done / ev.total if ev.total else 100
        # Speed and time left once a second has been measured, in the words the window
        # uses: the first reading of a restore said "ETA 11359s".
        rate = self._rate.text(ev.done, ev.total)
        width = 24
        filled = int(width * pct / 100)
        name = self._name if len(self._name) <= 32 else "…" + self._name[-31:]
        line = (f"\r{name:<32} [{'#' * filled}{'.' * (width - filled)}] {pct:5.1f}% "
                f"{human(ev.done)}" + (f"  {rate}" if rate else ""))
        self.stream.write(line)
        self.stream.flush()
        self._drawn = True

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False
