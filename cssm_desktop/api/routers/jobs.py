"""Verify, repair and gc as jobs (202 and a job to follow), and the jobs themselves."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from ...catalog import Entry
from ...core.verify import FileReport
from ...errors import CssmError, NotFound
from ..deps import EngineDep
from ..jobs import ApiJob, Jobs
from ..models import ErrorOut, GcRequest, JobEvents, JobOut

router = APIRouter(prefix="/v1", tags=["jobs"])
ERRORS = {401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 423: {"model": ErrorOut}}


def _jobs(request: Request) -> Jobs:
    return request.app.state.jobs


def _out(job: ApiJob) -> JobOut:
    return JobOut(**job.as_json())


def _checked(rows: list[tuple[Entry, FileReport | CssmError]]) -> dict[str, Any]:
    bad = []
    for entry, report in rows:
        if not isinstance(report, FileReport):
            bad.append({"id": entry.id, "name": entry.name, "health": "lost",
                        "error": str(report)})
        elif not report.healthy:
            bad.append({"id": entry.id, "name": entry.name,
                        "health": "at risk" if report.restorable else "lost",
                        "error": "; ".join(f"{c.store}: {c.problem}" for c in report.checks
                                           if not c.ok)})
    return {"checked": len(rows), "not_safe": bad}


@router.post("/verify", status_code=202, response_model=JobOut, responses=ERRORS)
def verify(engine: EngineDep, request: Request) -> JobOut:
    engine.vault().require_key()
    return _out(_jobs(request).start(
        "verify", lambda listen, cancel: engine.verify(None, listen, cancel), _checked))


@router.post("/repair", status_code=202, response_model=JobOut, responses=ERRORS)
def repair(engine: EngineDep, request: Request) -> JobOut:
    engine.vault().require_key()

    def render(result: tuple[list[str], list[tuple[Entry, Any]]]) -> dict[str, Any]:
        adopted, rows = result
        out = []
        for entry, res in rows:
            if isinstance(res, CssmError):
                out.append({"id": entry.id, "safe": False, "error": str(res)})
            else:
                out.append({"id": entry.id, "safe": res.after.healthy,
                            "rebuilt": list(res.rebuilt)})
        return {"headers_written": adopted, "files": out}

    return _out(_jobs(request).start(
        "repair", lambda listen, cancel: engine.repair(None, listen, cancel), render))


@router.post("/gc", status_code=202, response_model=JobOut, responses=ERRORS)
def gc(engine: EngineDep, request: Request, body: GcRequest | None = None) -> JobOut:
    engine.vault().require_key()
    opts = body or GcRequest()

    def render(report: Any) -> dict[str, Any]:
        return {"removed": report.removed, "found": len(report.found),
                "young": len(report.young), "failed": report.failed}

    return _out(_jobs(request).start(
        "gc", lambda listen, cancel: engine.gc(opts.grace_hours * 3600, opts.dry_run,
                                               listener=listen, cancel=cancel), render))


def _job(request: Request, job_id: str) -> ApiJob:
    job = _jobs(request).get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


@router.get("/jobs", response_model=list[JobOut])
def jobs(request: Request) -> list[JobOut]:
    return [_out(j) for j in _jobs(request).all()]


@router.get("/jobs/{job_id}", response_model=JobOut, responses=ERRORS)
def job(request: Request, job_id: str) -> JobOut:
    return _out(_job(request, job_id))


@router.delete("/jobs/{job_id}", response_model=JobOut, responses=ERRORS)
def cancel(request: Request, job_id: str) -> JobOut:
    found = _job(request, job_id)
    _jobs(request).cancel(found)
    return _out(found)


@router.get("/jobs/{job_id}/events", response_model=JobEvents, responses=ERRORS)
def events(request: Request, job_id: str,
           after: Annotated[int, Query(ge=0, description="the `next` of the last answer")] = 0,
           wait: Annotated[float, Query(ge=0, le=60, description="seconds to wait for "
                                                                 "one (long-poll)")] = 0
           ) -> JobEvents:
    found = _job(request, job_id)
    got, nxt = Jobs.events(found, after, wait)
    return JobEvents(events=got, next=nxt, state=found.state)
