"""Long work (verify, repair, gc) as jobs: started at once (202), followed by id, cancelled
by id; each keeps its last events so a client can long-poll them. As Kopia's uitask:
RUNNING -> CANCELLING -> CANCELLED, or SUCCEEDED / FAILED. Uploads and downloads are
jobs too (run by their request, not a thread), so whoever runs the service (the window's
Activity) sees every piece of work other programs started, and can cancel it."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.progress import CancelToken, Event, FileProgress, Step
from ..errors import Cancelled, CssmError, log_text

RUNNING, CANCELLING, CANCELLED, SUCCEEDED, FAILED = (
    "running", "cancelling", "cancelled", "succeeded", "failed")
UPLOAD, DOWNLOAD = "upload", "download"
TRANSFERS = {UPLOAD, DOWNLOAD}   # their progress is bytes
KEEP_EVENTS = 500
KEEP_JOBS = 100


@dataclass
class ApiJob:
    id: str
    kind: str
    state: str = RUNNING
    started: float = field(default_factory=time.time)
    ended: float | None = None
    done: int = 0
    total: int = 0
    item: str = ""
    result: Any = None
    error: dict[str, str] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    first_event: int = 0   # the number of events[0] (older ones were dropped)
    token: CancelToken = field(default_factory=CancelToken)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "state": self.state,
                "started": self.started, "ended": self.ended,
                "progress": {"done": self.done, "total": self.total, "item": self.item},
                "result": self.result, "error": self.error,
                "events": self.first_event + len(self.events)}


Watch = Callable[["ApiJob"], None]
FILES, LOCK = "files", "lock"   # what else a request changed, told to `changed`


class Jobs:
    def __init__(self, watch: Watch | None = None,
                 changed: Callable[[str], None] | None = None) -> None:
        self._jobs: dict[str, ApiJob] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        # Told (from any thread) when a job starts, moves on or ends, and when a request
        # changed the files (FILES) or locked or unlocked the vault (LOCK): the window,
        # whose list and lock state must follow. Each must be quick and must not raise.
        self._watch = watch
        self._changed = changed

    def tell(self, what: str) -> None:
        if self._changed is not None:
            self._changed(what)

    def _told(self, job: ApiJob) -> None:
        if self._watch is not None:
            self._watch(job)

    def track(self, kind: str, item: str, total: int = 0) -> ApiJob:
        """A job its request runs itself (an upload, a download): ended by `finish`."""
        job = ApiJob(f"{kind}-{next(self._ids)}", kind, item=item, total=total)
        with self._lock:
            self._jobs[job.id] = job
            for old in list(self._jobs)[:-KEEP_JOBS]:
                if self._jobs[old].ended is not None:
                    del self._jobs[old]
        self._told(job)
        return job

    def listener(self, job: ApiJob) -> Callable[[Event], None]:
        """The engine's events as the job's progress: steps and whole files as events,
        a file's bytes as progress only (they would crowd the events out)."""
        def listen(event: Event) -> None:
            if isinstance(event, Step):
                self._note(job, {"type": "step", "done": event.done, "total": event.total,
                                 "item": event.item}, event.done, event.total, event.item)
            elif isinstance(event, FileProgress):
                if event.done == event.total:
                    self._note(job, {"type": "file", "name": event.name,
                                     "bytes": event.total})
                elif job.kind in TRANSFERS:
                    self.progress(job, event.done)
        return listen

    def progress(self, job: ApiJob, done: int) -> None:
        with job.changed:
            job.done = done
        self._told(job)

    def finish(self, job: ApiJob, state: str, result: Any = None,
               error: dict[str, str] | None = None) -> None:
        if job.ended is None:
            self._end(job, state, result, error)

    def failed(self, job: ApiJob, exc: BaseException) -> None:
        """The job ended by `exc`, in the words and code a request would get."""
        from .errors import ApiError, engine_error

        if isinstance(exc, Cancelled) or job.token.cancelled:
            self.finish(job, CANCELLED)
        elif isinstance(exc, ApiError):
            self.finish(job, FAILED, error={"code": exc.code, "message": str(exc.detail)})
        elif isinstance(exc, CssmError):
            self.finish(job, FAILED, error={"code": engine_error(exc)[1],
                                            "message": str(exc)})
        else:   # a bug: said, and in the log
            import logging

            if isinstance(exc, Exception):
                logging.getLogger(__name__).error("api job crashed: %s", log_text(exc))
            self.finish(job, FAILED, error={"code": "internal",
                                            "message": "unexpected error (the log has "
                                                       "the details)"})

    def start(self, kind: str, work: Callable[[Callable[[Event], None], CancelToken], Any],
              render: Callable[[Any], Any]) -> ApiJob:
        job = self.track(kind, "")
        listen = self.listener(job)

        def run() -> None:
            try:
                result = render(work(listen, job.token))
                self._end(job, SUCCEEDED, result=result)
            except BaseException as exc:
                self.failed(job, exc)

        threading.Thread(target=run, name=f"cssm-api-{job.id}", daemon=True).start()
        return job

    def _note(self, job: ApiJob, event: dict[str, Any], done: int | None = None,
              total: int | None = None, item: str | None = None) -> None:
        with job.changed:
            if done is not None:
                job.done, job.total, job.item = done, total or 0, item or ""
            job.events.append(event)
            if len(job.events) > KEEP_EVENTS:
                drop = len(job.events) - KEEP_EVENTS
                del job.events[:drop]
                job.first_event += drop
            job.changed.notify_all()
        self._told(job)

    def _end(self, job: ApiJob, state: str, result: Any = None,
             error: dict[str, str] | None = None) -> None:
        with job.changed:
            job.state, job.result, job.error, job.ended = state, result, error, time.time()
            job.events.append({"type": "end", "state": state})
            job.changed.notify_all()
        self._told(job)
        if job.kind != DOWNLOAD:   # what it stored, repaired or removed is listed anew
            self.tell(FILES)

    def get(self, job_id: str) -> ApiJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[ApiJob]:
        with self._lock:
            return list(self._jobs.values())

    def cancel(self, job: ApiJob) -> None:
        with job.changed:
            if job.ended is None:
                job.state = CANCELLING
                job.token.cancel()
                job.changed.notify_all()
        self._told(job)

    @staticmethod
    def events(job: ApiJob, after: int, wait: float) -> tuple[list[dict[str, Any]], int]:
        """Events numbered from `after` on, waiting up to `wait` s for one (long-poll)."""
        deadline = time.monotonic() + wait
        with job.changed:
            while job.first_event + len(job.events) <= after and job.ended is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                job.changed.wait(left)
            start = max(0, after - job.first_event)
            got = job.events[start:]
            return got, job.first_event + len(job.events)
