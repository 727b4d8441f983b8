"""The upload queue: jobs, their states, and the scheduler that runs them.

Cancel contract (as in Vorta's job manager): a job that has not started is simply
marked cancelled and never runs; a running job is asked to stop through its cancel
token, and the engine removes whatever it had written. Pausing the queue, or quitting,
stops running jobs with `keep`: they wait again (or at the next start), and a large
file's upload goes on from where it stopped (core/journal.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from ..core.journal import RESUMABLE
from ..core.pack import PACK_TARGET
from ..errors import Cancelled
from ..paths import FILE, Source
from . import workers

BATCH_FILES = 5000   # at most this many files in one upload of small files (its progress)


class State(Enum):
    WAITING = "waiting"
    RUNNING = "encrypting & uploading"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "already stored"   # same name and content: nothing uploaded


FINAL = {State.DONE, State.FAILED, State.CANCELLED, State.SKIPPED}


@dataclass
class Job:
    source: Path
    name: str
    size: int
    state: State = State.WAITING
    done: int = 0
    error: str = ""
    started: float = 0.0
    ended: float = 0.0
    worker: Any = field(default=None, repr=False)
    duplicates: Any = None     # engine.Duplicate; None: the engine's default (skip)
    result: Any = field(default=None, repr=False)   # the engine's PutResult when done
    cancel_asked: bool = False   # this job itself was cancelled (not only its pack)
    row: int = -1                # its place in the queue (kept by JobQueue)
    kind: str = FILE             # paths.FILE; LINK or DIR go up in a pack, never opened
    # A store that stopped answering, which the upload waits for: its name, since when
    # (time.monotonic()) and how long it waits; "" while every store answers.
    stalled: str = ""
    stalled_since: float = 0.0
    stalled_limit: float = 0.0

    # Bytes the stores kept of an upload stopped to go on later (pause, quit): shown as
    # done, and not counted as speed when the upload goes on (B5).
    kept: int = 0
    # While it reads the file to tell whether it is stored already: bytes read; else -1.
    checked: int = -1

    @property
    def shown(self) -> int:
        """Bytes to show as done: a resumed upload starts from what was kept."""
        return max(self.done, self.kept)

    @property
    def speed(self) -> float:
        elapsed = (self.ended or time.monotonic()) - self.started
        sent = max(0, self.done - self.kept)
        return sent / elapsed if self.started and elapsed > 0 and self.checked < 0 else 0.0

    @property
    def eta(self) -> float | None:
        s = self.speed
        return (self.size - self.shown) / s if s > 0 and self.state is State.RUNNING \
            else None


class JobQueue(QObject):
    """Runs at most `parallel` uploads at once; small files overtake nothing, they just
    flow through the free slots. The table the window shows is QueueModel (queue_model.py),
    which follows these signals: scheduling knows nothing of rows and columns."""

    about_to_add = Signal(int, int)  # first row, count: before the jobs are appended
    added = Signal()
    changed = Signal(int)            # a job's row: state or progress moved
    rows_changed = Signal(int, int)  # first and last row of many that moved at once
    about_to_reset = Signal()        # finished jobs are about to be cleared
    reset = Signal()
    job_finished = Signal(object)    # Job
    all_finished = Signal()
    held_changed = Signal(bool)      # the user paused (True) or resumed the queue
    stalled_changed = Signal()       # an upload began or stopped waiting for a store
    store_silent = Signal(str, bool)  # a store stopped (True) or went on (False) answering

    def __init__(self, parallel: int = 3, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.jobs: list[Job] = []
        self.parallel = parallel
        self.engine: Any = None
        self.paused = True  # until the vault is unlocked
        self.held = False    # paused by the user: nothing runs until resumed
        self.closed = False  # at quit: nothing starts any more, whatever arrives late

    def add(self, items: list[tuple[Path, str, int]] | list[tuple[Path, str, int, str]],
            duplicates: Any = None) -> None:
        """Items: (path, stored name, size), and the kind (paths.FILE, LINK, DIR)."""
        if not items:
            return
        self.about_to_add.emit(len(self.jobs), len(items))
        first = len(self.jobs)
        self.jobs += [Job(item[0], item[1], item[2], duplicates=duplicates, row=first + i,
                          kind=item[3] if len(item) > 3 else FILE)  # type: ignore[misc]
                      for i, item in enumerate(items)]
        self.added.emit()
        self.pump()

    def active(self) -> list[Job]:
        return [j for j in self.jobs if j.state is State.RUNNING]

    def _workers(self) -> int:
        """Uploads running: a pack of small files is one, however many files it holds."""
        return len({id(j.worker) for j in self.active()})

    def pending(self) -> list[Job]:
        return [j for j in self.jobs if j.state in (State.WAITING, State.RUNNING)]

    def hold(self, on: bool) -> None:
        """Pause (on) or resume the whole queue. Pausing stops what runs, keeping it:
        those jobs wait again, and their uploads go on from where they stopped."""
        if on == self.held:
            return
        self.held = on
        self.held_changed.emit(on)
        if on:
            self._stop_running()
        else:
            self.pump()

    def _stop_running(self) -> None:
        for worker in {id(j.worker): j.worker for j in self.active() if j.worker}.values():
            worker.cancel(keep=True)

    def pump(self) -> None:
        if self.paused or self.held or self.closed or self.engine is None:
            return
        # Counted once, not per job: a queue of 20,000 files must not pump in O(n^2).
        running = self._workers()
        for job in self.jobs:
            if running >= self.parallel:
                return
            if job.state is State.WAITING:
                self._start(job)
                running += 1

    def _start(self, job: Job) -> None:
        small = getattr(self.engine, "small_file", 0)
        if job.size < small or job.kind != FILE:   # a link is never opened: its pack
            self._start_pack(job, small)
            return
        job.state, job.started = State.RUNNING, time.monotonic()
        worker = workers.PutWorker(self.engine, job.source, job.name, job.duplicates)
        job.worker = worker
        workers.start(
            worker,
            progress=lambda done, _total, j=job: self._progress(j, done),
            checking=lambda done, _total, j=job: self._checking(j, done),
            resumed=lambda plain, j=job: self._resumed(j, plain),
            waiting=lambda store, since, limit, j=job: self._stalled([j], store, since, limit),
            back=lambda store, j=job: self._back([j], store),
            succeeded=lambda r, j=job: self._stored(j, r),
            failed=lambda err, j=job: self._failed(j, err))
        self._changed(job)

    def _failed(self, job: Job, err: BaseException) -> None:
        if isinstance(err, Cancelled) and err.keep and not job.cancel_asked:
            self._wait_again([job])   # paused or quitting: it goes on later
            self._settle()
            return
        self._end(job, State.CANCELLED if isinstance(err, Cancelled) else State.FAILED,
                  workers.message(err))

    def _wait_again(self, jobs: list[Job]) -> None:
        """Stopped to go on later: a large upload to stores that keep unfinished uploads
        keeps what it sent (it goes on from there); anything else starts over."""
        resumable = bool(getattr(self.engine, "can_resume", False))
        for job in jobs:
            job.kept = job.shown if resumable and job.size >= RESUMABLE else 0
            job.state, job.done, job.worker, job.result = State.WAITING, 0, None, None
            job.stalled, job.checked = "", -1
            self._changed(job)

    def _start_pack(self, first: Job, small: int) -> None:
        """Small files waiting in the queue go up together, as one pack (core/pack.py):
        one upload, a handful of objects, instead of ten objects per file."""
        batch, size = [first], first.size
        for job in self.jobs:
            if size >= PACK_TARGET or len(batch) >= BATCH_FILES:
                break
            if (job is not first and job.state is State.WAITING
                    and (job.size < small or job.kind != FILE)
                    and job.duplicates == first.duplicates):
                batch.append(job)
                size += job.size
        now = time.monotonic()
        worker = workers.PackWorker(self.engine, [Source(str(j.source), j.name, j.size, j.kind)
                                                  for j in batch], first.duplicates)
        for job in batch:
            job.state, job.started, job.worker = State.RUNNING, now, worker
        workers.start(
            worker,
            progress=lambda done, total, b=batch: self._pack_progress(b, done, total),
            waiting=lambda store, since, limit, b=batch: self._stalled(b, store, since, limit),
            back=lambda store, b=batch: self._back(b, store),
            succeeded=lambda results, b=batch: self._pack_stored(b, results),
            failed=lambda err, b=batch: [self._failed(j, err) for j in b])
        for job in batch:
            self._changed(job)

    def _pack_progress(self, batch: list[Job], done: int, total: int) -> None:
        """One signal for the rows of the pack, not one per file (thousands, 20 times a
        second, would keep the window busy)."""
        moved = [j for j in batch if j.state is State.RUNNING]
        for job in moved:
            job.done = job.size * done // total if total else 0
        if moved:
            self.rows_changed.emit(min(j.row for j in moved), max(j.row for j in moved))

    def _pack_stored(self, batch: list[Job], results: list[Any]) -> None:
        # Cancelling one file stopped its pack: the others go up again, as one pack
        # (all are put back before any ending starts the next upload).
        requeue = [(j, r) for j, r in zip(batch, results, strict=True)
                   if isinstance(r.error, Cancelled) and not j.cancel_asked
                   and not self.closed]
        self._wait_again([j for j, _ in requeue])
        again = {id(j) for j, _ in requeue}
        for job, result in zip(batch, results, strict=True):
            if id(job) in again:
                continue
            job.result = result
            if result.error is not None:
                self._end(job, State.CANCELLED if isinstance(result.error, Cancelled)
                          else State.FAILED, workers.message(result.error), settle=False)
            else:
                self._end(job, State.SKIPPED if result.duplicate_of is not None
                          else State.DONE, settle=False)
        self._settle()   # once for the whole pack, not once per file

    def _stored(self, job: Job, result: Any) -> None:
        job.result = result
        self._end(job, State.SKIPPED if result.duplicate_of is not None else State.DONE)

    def _back(self, jobs: list[Job], store: str) -> None:
        self.store_silent.emit(store, False)
        self._stalled(jobs, "", 0.0, 0.0)

    def _stalled(self, jobs: list[Job], store: str, since: float, limit: float) -> None:
        """A store the upload waits for (or "", it answers again): the rows say so."""
        if store:
            self.store_silent.emit(store, True)
        now = time.monotonic()
        moved = [j for j in jobs if j.state is State.RUNNING]
        for job in moved:
            job.stalled, job.stalled_since, job.stalled_limit = store, now - since, limit
        if moved:
            self.stalled_changed.emit()
            self.rows_changed.emit(min(j.row for j in moved), max(j.row for j in moved))

    def stalled(self) -> list[Job]:
        return [j for j in self.jobs if j.stalled and j.state is State.RUNNING]

    def _progress(self, job: Job, done: int) -> None:
        if job.checked >= 0:   # read to compare, not stored: the upload starts now
            job.checked, job.started = -1, time.monotonic()
        job.done = done
        self._changed(job)

    def _checking(self, job: Job, done: int) -> None:
        job.checked = done
        self._changed(job)

    def _resumed(self, job: Job, plain: int) -> None:
        """The stores hold this much of it from before: the bar starts there."""
        job.kept, job.started = plain, time.monotonic()
        self._changed(job)

    def _end(self, job: Job, state: State, error: str = "", settle: bool = True) -> None:
        job.state, job.error, job.ended, job.worker = state, error, time.monotonic(), None
        job.stalled, job.checked = "", -1
        if state is State.DONE:
            job.done = job.size
        self._changed(job)
        self.job_finished.emit(job)
        if settle:
            self._settle()

    def _settle(self) -> None:
        """After jobs ended: start what may start, and say when nothing is left."""
        self.pump()
        if not self.pending():
            self.all_finished.emit()

    def cancel(self, row: int) -> None:
        job = self.jobs[row]
        if job.state is State.WAITING:
            job.state = State.CANCELLED
            self._changed(job)
            self.job_finished.emit(job)
            if not self.pending():
                self.all_finished.emit()
        elif job.state is State.RUNNING and job.worker is not None:
            job.cancel_asked = True
            job.worker.cancel()

    def cancel_all(self) -> None:
        for row in range(len(self.jobs)):
            self.cancel(row)

    def shut(self) -> None:
        """At quit: stop everything (keeping what large uploads sent, for the next start),
        and start nothing that a late listing still adds."""
        self.closed = True
        self._stop_running()

    def clear_finished(self) -> None:
        self.replace_jobs([j for j in self.jobs if j.state not in FINAL])

    def replace_jobs(self, jobs: list[Job]) -> None:
        self.about_to_reset.emit()
        self.jobs = jobs
        for row, job in enumerate(jobs):
            job.row = row
        self.reset.emit()

    def _changed(self, job: Job) -> None:
        self.changed.emit(job.row)
