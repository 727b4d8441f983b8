"""Files: store (streamed), list, look up, remove, and restore ("decrypt") as a stream."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from ...catalog import Entry, newest_per_name
from ...errors import CssmError, NotFound, SourceChanged
from ...paths import check_stored_name
from ..body import BodyPipe
from ..deps import EngineDep
from ..errors import ApiError
from ..jobs import CANCELLED, DOWNLOAD, FAILED, FILES, SUCCEEDED, UPLOAD, ApiJob, Jobs
from ..models import ErrorOut, FileList, FileOut, Removed, VersionOut

router = APIRouter(prefix="/v1", tags=["files"])
FileId = Annotated[str, Path(pattern=r"^[0-9a-f]{6,32}$",
                             description="a file id, or 6+ of its first hex digits")]
ERRORS = {401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 423: {"model": ErrorOut}}
GONE = "the client went away before the whole body arrived"
MULTIPART_LIMIT = 256 * 1024 * 1024   # held in memory (never on disk); larger: a raw body


def _out(e: Entry, versions: int = 1) -> FileOut:
    return FileOut(**{**e.as_json(), "versions": versions})  # type: ignore[arg-type]


def _entry(engine: EngineDep, file_id: str) -> Entry:
    vault = engine.vault()
    found = {e.id: e for e in engine.catalog.find(vault.id_hex, file_id)
             if e.id.startswith(file_id)}
    if not found:
        raise NotFound(f"no stored file has the id {file_id}")
    if len(found) > 1:
        raise ApiError(409, "ambiguous", f"{file_id} begins {len(found)} ids; give more")
    return engine._as_now(vault, list(found.values()))[0]


@router.get("/files", response_model=FileList, responses=ERRORS)
def list_files(engine: EngineDep,
               prefix: Annotated[str, Query(max_length=4096)] = "",
               every: Annotated[bool, Query(description="every version, not only the "
                                                        "newest of each name")] = False,
               offset: Annotated[int, Query(ge=0)] = 0,
               limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> FileList:
    entries = [e for e in engine.entries() if e.name.startswith(prefix)]
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.name] = counts.get(e.name, 0) + 1
    rows = entries if every else newest_per_name(entries)
    page = rows[offset:offset + limit]
    return FileList(files=[_out(e, counts[e.name]) for e in page], total=len(rows),
                    offset=offset, limit=limit)


@router.get("/files/{file_id}", response_model=FileOut, responses=ERRORS)
def get_file(engine: EngineDep, file_id: FileId) -> FileOut:
    e = _entry(engine, file_id)
    return _out(e, len(engine.versions(e.name)))


@router.get("/versions", response_model=list[VersionOut], responses=ERRORS)
def versions(engine: EngineDep, name: Annotated[str, Query(min_length=1, max_length=4096)]
             ) -> list[VersionOut]:
    found = engine.versions(name)
    if not found:
        raise NotFound("no stored file has that name")
    return [VersionOut(id=e.id, time=str(e.as_json()["stored_at"]), size=e.size,
                       health=e.health) for e in found]


@router.delete("/files/{file_id}", response_model=Removed, responses=ERRORS)
def delete_file(engine: EngineDep, file_id: FileId, request: Request) -> Removed:
    e = _entry(engine, file_id)
    engine.vault().require_key()   # a removal proves the password, whatever the file
    left = engine.remove_many([e.id])[e.id]
    request.app.state.jobs.tell(FILES)
    return Removed(id=e.id, removed=len(left) < e.k, not_cleaned=left)


@router.post("/files", status_code=201, response_model=FileOut,
             responses={**ERRORS, 400: {"model": ErrorOut}, 411: {"model": ErrorOut},
                        413: {"model": ErrorOut}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/octet-stream": {"schema": {"type": "string",
                                                         "format": "binary"}},
                 "multipart/form-data": {"schema": {
                     "type": "object", "required": ["file"],
                     "properties": {"file": {"type": "string", "format": "binary"}}}}}}})
async def upload(request: Request, engine: EngineDep,
                 name: Annotated[str | None, Query(max_length=4096, description=(
                     "the stored name (needed for a raw body; a multipart upload takes "
                     "the file's own name when absent)"))] = None,
                 mtime_ns: Annotated[int | None, Query(ge=0, lt=2**63)] = None) -> FileOut:
    """The file's bytes as the raw body (`curl -T FILE`, Content-Length needed), or as a
    multipart form's `file` field (as the original project's /upload took it). Streamed:
    nothing is written to disk; a body cut off stores nothing."""
    engine.vault().require_key()
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        data, got_name = await _multipart(request)
        name = name or got_name
        check_stored_name(name or "")
        entry = await _store_held(request, engine, data, name or "", mtime_ns)
        return _out(entry, len(engine.versions(entry.name)))
    if not name:
        raise ApiError(400, "bad_input", "give the stored name: ?name=folder/file.txt")
    check_stored_name(name)
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        raise ApiError(411, "length_required", "a raw body needs a Content-Length "
                       "(curl -T sends one)")
    entry = await _store_body(request, engine, name, int(length), mtime_ns)
    return _out(entry, len(engine.versions(entry.name)))


async def _store_body(request: Request, engine: EngineDep, name: str, size: int,
                      mtime_ns: int | None) -> Entry:
    """The body through a pipe to the engine's reading thread, as an upload job: its
    progress is seen and it can be cancelled (DELETE /v1/jobs/ID, the window's
    Activity), also while its client stalls mid-body."""
    jobs: Jobs = request.app.state.jobs
    job = jobs.track(UPLOAD, name, size)
    loop = asyncio.get_running_loop()
    pipe = BodyPipe(loop)
    task = asyncio.current_task()
    reading = True
    gone = False   # the client went away mid-body (said to the job, nobody else hears)

    def interrupt() -> None:   # in the loop's thread, as `reading` is changed
        if reading and task is not None:
            task.cancel()

    def on_cancel() -> None:
        pipe.fail("the upload was cancelled")
        loop.call_soon_threadsafe(interrupt)

    forget = job.token.on_cancel(on_cancel)
    stored = asyncio.ensure_future(asyncio.to_thread(
        engine.put_stream, pipe, name, size, mtime_ns, jobs.listener(job), job.token))
    stored.add_done_callback(lambda _t: pipe.abandon())
    try:
        try:
            async for chunk in request.stream():
                if stored.done():
                    break   # the engine stopped early (a store error): its error is said
                await pipe.feed(chunk)
            pipe.end()
        except ClientDisconnect:
            gone = True
            pipe.fail(GONE)
        except asyncio.CancelledError:
            pipe.fail("the upload was stopped")
            if not job.token.cancelled or task is None:
                raise
            task.uncancel()   # our own cancel: answered below
        except BaseException:
            pipe.fail("the upload was stopped")
            raise
        finally:
            reading = False
        try:
            entry = await stored
        except SourceChanged:
            raise ApiError(400, "body_incomplete", f"the body did not hold the {size} "
                           "bytes its Content-Length says; nothing was stored") from None
        except CssmError as exc:
            if job.token.cancelled:
                raise ApiError(409, "cancelled", "the upload was cancelled; nothing was "
                               "stored") from None
            if gone:
                raise ApiError(400, "client_gone", f"{GONE}; nothing was stored") from exc
            raise
    except BaseException as exc:
        jobs.failed(job, exc)
        raise
    finally:
        forget()
    return _uploaded(jobs, job, entry)


async def _store_held(request: Request, engine: EngineDep, data: bytes, name: str,
                      mtime_ns: int | None) -> Entry:
    """A multipart upload's file, held in memory, stored as an upload job like a raw
    body (seen in the window's Activity, cancellable)."""
    import io

    jobs: Jobs = request.app.state.jobs
    job = jobs.track(UPLOAD, name, len(data))
    try:
        entry = await asyncio.to_thread(engine.put_stream, io.BytesIO(data), name,
                                        len(data), mtime_ns, jobs.listener(job), job.token)
    except BaseException as exc:
        jobs.failed(job, exc)
        raise
    return _uploaded(jobs, job, entry)


def _uploaded(jobs: Jobs, job: ApiJob, entry: Entry) -> Entry:
    jobs.progress(job, job.total)
    jobs.finish(job, SUCCEEDED, result={"id": entry.id})
    return entry


@router.put("/files", status_code=201, response_model=FileOut,
            responses={**ERRORS, 400: {"model": ErrorOut}, 411: {"model": ErrorOut}},
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/octet-stream": {"schema": {"type": "string",
                                                        "format": "binary"}}}}})
async def upload_put(request: Request, engine: EngineDep,
                     name: Annotated[str | None, Query(max_length=4096)] = None,
                     mtime_ns: Annotated[int | None, Query(ge=0, lt=2**63)] = None
                     ) -> FileOut:
    """As POST with a raw body: what `curl -T FILE URL` sends."""
    return await upload(request, engine, name, mtime_ns)


async def _multipart(request: Request) -> tuple[bytes, str]:
    """The `file` field held in memory (up to MULTIPART_LIMIT), never spooled to disk as
    Starlette's form parser would."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    _ctype, params = parse_options_header(request.headers["content-type"])
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "bad_input", "multipart body without a boundary")
    parts: list[dict[str, object]] = []
    header: list[bytes] = [b"", b""]

    def on_part_begin() -> None:
        parts.append({"headers": {}, "data": bytearray()})

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header[0] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header[1] += data[start:end]

    def on_header_end() -> None:
        parts[-1]["headers"][header[0].lower()] = header[1]  # type: ignore[index]
        header[0], header[1] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        buf = parts[-1]["data"]
        assert isinstance(buf, bytearray)
        if len(buf) + end - start > MULTIPART_LIMIT:
            raise ApiError(413, "too_large", "a multipart file is held in memory up to "
                           "256 MiB; send larger files as the raw body (curl -T)")
        buf += data[start:end]

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_part_data": on_part_data})
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except ClientDisconnect:
        raise ApiError(400, "body_incomplete", "the client went away mid-upload; nothing "
                       "was stored") from None
    except ApiError:
        raise
    except Exception:   # the parser's own errors: a malformed body
        raise ApiError(400, "bad_input", "malformed multipart body") from None
    for part in parts:
        disposition = part["headers"].get(b"content-disposition", b"")  # type: ignore[union-attr]
        _v, opts = parse_options_header(disposition)
        if opts.get(b"name") == b"file":
            filename = opts.get(b"filename", b"").decode("utf-8", "replace")
            return bytes(part["data"]), filename.replace("\\", "/").rsplit("/", 1)[-1]  # type: ignore[arg-type]
    raise ApiError(400, "bad_input", "the multipart body has no `file` field")


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@router.get("/files/{file_id}/content", responses={
    **ERRORS, 416: {"model": ErrorOut},
    200: {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                              "format": "binary"}}},
          "description": "the file's bytes; Content-Length, Digest (sha-256) and "
                         "X-Content-SHA256 headers"}},
            response_class=StreamingResponse)
def content(engine: EngineDep, file_id: FileId, request: Request) -> StreamingResponse:
    """The restore ("decrypt") endpoint: the plaintext, checked block by block as it is
    read from any k stores; HTTP Range (one range) for a part of it."""
    e = _entry(engine, file_id)
    got = engine.open_content(e)
    size = got.size
    start, end, status = 0, size, 200
    asked = request.headers.get("range")
    if asked:
        m = _RANGE.match(asked.strip())
        if m is None or (not m.group(1) and not m.group(2)):
            raise ApiError(416, "bad_range", "one range as bytes=START-END",
                           {"Content-Range": f"bytes */{size}"})
        if m.group(1):
            start = int(m.group(1))
            end = min(size, int(m.group(2)) + 1) if m.group(2) else size
        else:   # the last N bytes
            start = max(0, size - int(m.group(2)))
        if start >= size or start >= end:
            raise ApiError(416, "bad_range", f"the file has {size} bytes",
                           {"Content-Range": f"bytes */{size}"})
        status = 206
    headers = {"Content-Length": str(end - start), "Accept-Ranges": "bytes",
               "Digest": "sha-256=" + base64.b64encode(got.sha256).decode(),
               "X-Content-SHA256": got.sha256.hex(),
               "Content-Disposition": "attachment"}
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"

    jobs: Jobs = request.app.state.jobs
    job = jobs.track(DOWNLOAD, e.name, end - start)

    def body() -> Iterator[bytes]:
        sent = 0
        try:
            for chunk in got.chunks(start, end, job.token):
                yield chunk
                sent += len(chunk)
                jobs.progress(job, sent)
        except GeneratorExit:   # the client went away
            jobs.finish(job, CANCELLED if job.token.cancelled else FAILED,
                        error={"code": "client_gone",
                               "message": "the client went away mid-download"})
            raise
        except BaseException as exc:
            jobs.failed(job, exc)
            raise
        jobs.finish(job, SUCCEEDED, result={"id": e.id, "bytes": sent})

    return StreamingResponse(body(), status_code=status, headers=headers,
                             media_type="application/octet-stream")
