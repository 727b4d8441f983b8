"""Long work (verify, repair, gc) as jobs: started at once (202), followed by id, cancelled
by id; each keeps its last events so a client can long-poll them. As Kopia's uitask:
RUNNING -> CANCELLING -> CANCELLED, or SUCCEEDED / FAILED."""

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


class Jobs:
    def __init__(self) -> None:
        self._jobs: dict[str, ApiJob] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, kind: str, work: Callable[[Callable[[Event], None], CancelToken], Any],
              render: Callable[[Any], Any]) -> ApiJob:
        job = ApiJob(f"{kind}-{next(self._ids)}", kind)
        with self._lock:
            self._jobs[job.id] = job
            for old in list(self._jobs)[:-KEEP_JOBS]:
                if self._jobs[old].ended is not None:
                    del self._jobs[old]

        def listen(event: Event) -> None:
            if isinstance(event, Step):
                self._note(job, {"type": "step", "done": event.done, "total": event.total,
                                 "item": event.item}, event.done, event.total, event.item)
            elif isinstance(event, FileProgress) and event.done == event.total:
                self._note(job, {"type": "file", "name": event.name, "bytes": event.total})

        def run() -> None:
            try:
                result = render(work(listen, job.token))
                self._end(job, SUCCEEDED, result=result)
            except Cancelled:
                self._end(job, CANCELLED)
            except CssmError as exc:
                from .errors import engine_error

                self._end(job, FAILED, error={"code": engine_error(exc)[1],
                                              "message": str(exc)})
            except Exception as exc:   # a bug: said, and in the log
                import logging

                logging.getLogger(__name__).error("api job crashed: %s", log_text(exc))
                self._end(job, FAILED, error={"code": "internal",
                                              "message": "unexpected error (the log has "
                                                         "the details)"})

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

    def _end(self, job: ApiJob, state: str, result: Any = None,
             error: dict[str, str] | None = None) -> None:
        with job.changed:
            job.state, job.result, job.error, job.ended = state, result, error, time.time()
            job.events.append({"type": "end", "state": state})
            job.changed.notify_all()

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
