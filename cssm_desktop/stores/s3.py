"""A store in an S3-compatible bucket (AWS, B2, Wasabi, R2, MinIO, Ceph, rclone, ...)."""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import urllib3.exceptions

from ..errors import SLOW, TOO_LARGE, UNREACHABLE, MissingSecret, ObjectNotFound, StoreError
from . import ratelimit
from .base import ObjectInfo, ObjectReader, ObjectWriter, Progress, Store, UploadState
from .outage import DEFAULT_WAIT, Outage, submit

log = logging.getLogger(__name__)

# S3 parts must be >= 5 MiB except the last, and an upload has at most 10,000 of them.
PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 10_000
PARTS_PER_STEP = 1_000
# A listing page holds up to 1,000 keys: 100,000 pages is 100 million objects.
MAX_LIST_PAGES = 100_000
# A page that says "more follows" holds a full page of entries on every S3 we know (the
# last page is the short one). More than this many thin ones (under half a page) and the
# listing is a store error: the pages read stay proportional to what the store holds, not
# to how long a hostile server keeps saying "truncated".
MAX_THIN_PAGES = 16


def part_size(number: int) -> int:
    """Size of part `number` (1-based): 5 MiB for the first thousand, then 5 MiB more per
    thousand. Small files keep each writer's buffer at 5 MiB (there are n writers at once);
    an object of up to ~268 GiB (a file of ~800 GiB at k=3) still fits in 10,000 parts."""
    return PART_SIZE * (1 + (number - 1) // PARTS_PER_STEP)

_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
                     "ExpiredToken", "AuthorizationHeaderMalformed", "InvalidClientTokenId"}


# Failures that say "not now" rather than "no": the store may answer in a while.
_SILENT = (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)
_BUSY_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout",
               "RequestTimeTooSkewed"}


def unreachable_code(exc: BaseException) -> str | None:
    """UNREACHABLE for a failure that may pass (no connection, a timeout, a 5xx or
    "slow down" left after botocore's own retries), else None."""
    if isinstance(exc, _SILENT):
        return UNREACHABLE
    if isinstance(exc, botocore.exceptions.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code in _BUSY_CODES or int(status) >= 500:
            return UNREACHABLE
    return None


def explain(exc: BaseException, bucket: str, endpoint: str | None) -> str:
    """Turn a botocore failure into the sentence a user can act on."""
    where = endpoint or "AWS S3"
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _CREDENTIAL_CODES:
            return f"bad credentials: the endpoint rejected the access key or secret ({code})"
        if code in ("NoSuchBucket",) or (code == "404" and status == 404):
            return f"no such bucket {bucket!r} at {where}"
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            return f"no permission for this operation on bucket {bucket!r} ({code})"
        return f"{code or status}: {err.get('Message', exc)}"
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return "no credentials: set an access key id (secret in the keyring) or a profile"
    if isinstance(exc, botocore.exceptions.EndpointConnectionError
                  | botocore.exceptions.ConnectTimeoutError):
        return f"cannot reach endpoint {where}"
    if isinstance(exc, botocore.exceptions.ConnectionClosedError):
        return f"{where} closed the connection before answering"
    if isinstance(exc, botocore.exceptions.ReadTimeoutError):
        return (f"{where} accepted the connection but did not answer in time (server "
                "overloaded, or not an S3 endpoint?)")
    if isinstance(exc, botocore.exceptions.ProfileNotFound):
        return str(exc)
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return f"{type(exc).__name__}: {exc}"
    return str(exc)


class _S3Writer(ObjectWriter):
    """Small objects go up in one PUT on commit; larger ones as multipart parts, one part
    sent in the background while the next fills. On a link with latency, sending parts
    one after another leaves the link idle for a round trip and the time to fill the
    next part, once per part (~20% at 4 MB/s and 40 ms, measured: bench/shaped.py); two
    buffers keep it busy. At most two parts per writer are held in memory."""

    def __init__(self, store: S3Store, key: str, resume: UploadState | None = None,
                 on_progress: Progress | None = None) -> None:
        self._store = store
        self._key = key
        self._buf = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._sizes: list[int] = []
        self._numbered = 0                      # parts handed out (sent or in flight)
        self._sending: Future[tuple[dict[str, Any], int]] | None = None
        self._on_progress = on_progress
        self._skip = 0                          # bytes the store holds from a past run
        self.resumed = 0
        if resume is not None:
            held = store.held_parts(key, resume)
            if held is None:   # gone, or not as we left it: send this part again
                with contextlib.suppress(StoreError):
                    store._call("abort_multipart_upload", Key=key, UploadId=resume.upload_id)
            else:
                self._upload_id = resume.upload_id
                self._parts = [{"PartNumber": n, "ETag": e} for n, e, _ in held]
                self._sizes = [size for _, _, size in held]
                self._numbered = len(held)
                self._skip = self.resumed = sum(self._sizes)

    def _call(self, op: str, **kw: Any) -> Any:
        return self._store._call(op, **kw)

    def _send(self, number: int, body: bytearray) -> tuple[dict[str, Any], int]:
        # The bytearray itself, not bytes(body): one copy less of every part in flight.
        resp = self._call("upload_part", Key=self._key, UploadId=self._upload_id,
                          PartNumber=number, Body=body)
        return {"PartNumber": number, "ETag": resp["ETag"]}, len(body)

    def _report(self) -> None:
        if self._on_progress is not None and self._upload_id is not None:
            self._on_progress(UploadState(self._upload_id, tuple(
                (p["PartNumber"], p["ETag"], size)
                for p, size in zip(self._parts, self._sizes, strict=True))))

    def _settle(self) -> None:
        """Wait for the part in flight; its failure is raised here."""
        if self._sending is not None:
            sending, self._sending = self._sending, None
            part, size = sending.result()
            self._parts.append(part)
            self._sizes.append(size)
            self._report()

    def _flush_part(self) -> None:
        self._settle()
        if self._upload_id is None:
            resp = self._call("create_multipart_upload", Key=self._key)
            self._upload_id = resp["UploadId"]
            self._report()
        number = self._numbered + 1
        if number > MAX_PARTS:
            raise StoreError(self._store.name, f"{self._key} needs more than {MAX_PARTS} "
                                                f"S3 parts: the file is too large for S3",
                             TOO_LARGE)
        body, self._buf = self._buf, bytearray()
        self._numbered = number
        self._sending = submit(_uploads(), self._send, number, body)

    def write(self, data: bytes | memoryview) -> None:
        if self._skip:
            skipped = min(self._skip, len(data))
            self._skip -= skipped
            data = memoryview(data)[skipped:]
            if not data:
                return
        self._buf += data
        if len(self._buf) >= part_size(self._numbered + 1):
            try:
                self._flush_part()
            except BaseException:
                self._stop()
                raise

    def suspend(self) -> None:
        self._stop()

    def _stop(self) -> None:
        """After a failure: a journaled upload stays for a later run (abort() discards
        it); any other is aborted at once."""
        if self._on_progress is None:
            self.abort()
            return
        self._buf = bytearray()
        with contextlib.suppress(Exception):
            self._settle()

    def commit(self) -> None:
        try:
            if self._upload_id is None:
                self._call("put_object", Key=self._key, Body=self._buf)
            else:
                if self._buf:
                    self._flush_part()
                self._settle()
                self._call("complete_multipart_upload", Key=self._key, UploadId=self._upload_id,
                           MultipartUpload={"Parts": self._parts})
                self._upload_id = None
            self._buf = bytearray()
        except BaseException:
            self._stop()
            raise

    def abort(self) -> None:
        self._buf = bytearray()
        with contextlib.suppress(Exception):   # its failure is what got us here
            self._settle()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            # On failure the upload is left for `cssm gc`, which aborts stale ones.
            with contextlib.suppress(StoreError):
                self._call("abort_multipart_upload", Key=self._key, UploadId=upload_id)


class _PacedBody:
    """A request body sent no faster than the upload limit (stores/ratelimit.py).

    botocore reads a body twice: once whole to sign its SHA-256, then in 8 KiB blocks as
    it sends. Only the sending is paced: the body is armed just before the request goes
    out (the before-send event) and disarmed by the seek back that starts a retry."""

    def __init__(self, data: bytearray) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self.armed = False

    def __len__(self) -> int:
        return len(self._data) - self._pos

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size is None or size < 0 else min(len(self._data),
                                                                    self._pos + size)
        chunk = bytes(self._data[self._pos:end])
        self._pos = end
        if self.armed:
            for i in range(0, len(chunk), ratelimit.CHUNK):
                ratelimit.UPLOAD.take(min(ratelimit.CHUNK, len(chunk) - i))
        return chunk

    def seek(self, pos: int, whence: int = 0) -> int:
        self.armed = False
        base = {0: 0, 1: self._pos, 2: len(self._data)}[whence]
        self._pos = max(0, min(len(self._data), base + pos))
        return self._pos

    def tell(self) -> int:
        return self._pos


def _arm(request: Any = None, **_kw: Any) -> None:
    """before-send: what goes out now is paced (returns None: the request goes on)."""
    body = getattr(request, "body", None)
    if isinstance(body, _PacedBody):
        body.armed = True


_upload_pool: ThreadPoolExecutor | None = None
_upload_lock = threading.Lock()


def _uploads() -> ThreadPoolExecutor:
    """Threads for parts in flight: one per writer at a time, so 5 stores x a few files
    at once fit; a part waiting for a free thread only waits, it never deadlocks (the
    pool's tasks never wait on each other)."""
    global _upload_pool
    with _upload_lock:
        if _upload_pool is None:
            _upload_pool = ThreadPoolExecutor(16, thread_name_prefix="cssm-s3-part")
        return _upload_pool


# A read of a GET body must bring at least this many bytes a second, and may take at
# least READ_DEADLINE seconds: a store that answers a byte every few seconds stays under
# every read timeout, and would hold a thread (and the job) for hours.
MIN_READ_RATE = 16 * 1024
READ_DEADLINE = 30.0


class _Watchdog:
    """Ends body reads that run past their deadline: shutting the socket down wakes the
    thread blocked in it (urllib3's HTTPResponse.shutdown), which then sees the deadline
    passed. One thread for every reader, woken only while reads are running."""

    def __init__(self) -> None:
        self._reads: dict[int, tuple[float, Any]] = {}
        self._expired: set[int] = set()
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._next = 0

    def enter(self, deadline: float, body: Any) -> int:
        with self._lock:
            self._next += 1
            earliest = min((d for d, _ in self._reads.values()), default=None)
            self._reads[self._next] = (deadline, body)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cssm-s3-watchdog",
                                                daemon=True)
                self._thread.start()
            if earliest is None or deadline < earliest:   # it sleeps until the earliest
                self._lock.notify()
            return self._next

    def leave(self, token: int) -> bool:
        """Whether the read ran past its deadline (and was cut)."""
        with self._lock:
            self._reads.pop(token, None)
            if token in self._expired:
                self._expired.discard(token)
                return True
            return False

    def expire(self, token: int) -> None:
        """Cut a running read now (a caller that no longer needs it)."""
        with self._lock:
            entry = self._reads.get(token)
            if entry is not None:
                self._reads[token] = (0.0, entry[1])
                self._lock.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._reads:
                    self._lock.wait()
                now = time.monotonic()
                due = [(t, body) for t, (deadline, body) in self._reads.items()
                       if deadline <= now and t not in self._expired]
                self._expired.update(t for t, _ in due)
                wait = min((d for t, (d, _) in self._reads.items() if t not in self._expired),
                           default=None)
            for _t, body in due:
                _shutdown(body)
            with self._lock:
                if wait is not None and not due:
                    self._lock.wait(max(0.05, wait - time.monotonic()))
                elif not due:
                    self._lock.wait(1.0)


def _shutdown(body: Any) -> None:
    """Wake a thread blocked reading `body` (a botocore StreamingBody over urllib3)."""
    raw = getattr(body, "_raw_stream", body)
    with contextlib.suppress(Exception):
        raw.shutdown()
        return
    with contextlib.suppress(Exception):
        body.close()


_WATCH = _Watchdog()


class _S3Reader(ObjectReader):
    """A GET body that resumes with a ranged GET when the connection breaks mid-object.

    botocore retries whole requests, not a body that fails half-way through reading.
    Each read has a deadline (MIN_READ_RATE, READ_DEADLINE): past it, a StoreError with
    code SLOW, never a resume.
    """

    RESUMES = 4

    def __init__(self, store: S3Store, key: str, offset: int, body: Any) -> None:
        self._store = store
        self._key = key
        self._offset = offset
        self._body = body
        self._resumed = 0
        self._token: int | None = None
        self._aborted = False

    def read(self, size: int) -> bytes:
        if not ratelimit.DOWNLOAD.on:
            return self._read(size)
        chunks, left = [], size
        while left > 0:   # in small pieces, each waiting for its share of the limit
            chunk = self._read(min(left, ratelimit.CHUNK))
            if not chunk:
                break
            ratelimit.DOWNLOAD.take(len(chunk))
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _timed_read(self, size: int) -> bytes:
        want = size if size and size > 0 else 1 << 20
        token = self._token = _WATCH.enter(
            time.monotonic() + max(READ_DEADLINE, want / MIN_READ_RATE), self._body)
        try:
            data = self._body.read(size)
        except BaseException:
            if _WATCH.leave(token) or self._aborted:
                raise self._slow() from None
            raise
        else:
            if _WATCH.leave(token) or self._aborted:
                raise self._slow()
        finally:
            self._token = None
        return data

    def _slow(self) -> StoreError:
        if self._aborted:
            return StoreError(self._store.name, f"read of {self._key} was left behind", SLOW)
        return StoreError(self._store.name, f"read of {self._key} is far too slow (under "
                                            f"{MIN_READ_RATE // 1024} KiB/s); left behind",
                          SLOW)

    def abort(self) -> None:
        """From another thread: end a read in progress now (the reader is not needed)."""
        self._aborted = True
        token = self._token
        if token is not None:
            _WATCH.expire(token)

    def _read(self, size: int) -> bytes:
        while True:
            try:
                data = self._timed_read(size)
                self._offset += len(data)
                return data
            except (botocore.exceptions.BotoCoreError, urllib3.exceptions.HTTPError,
                    OSError) as exc:
                if self._resumed >= self.RESUMES:
                    raise StoreError(self._store.name, f"read of {self._key} failed: "
                                                       f"{exc}") from exc
                self._resumed += 1
                log.warning("store %s: read of %s broke at byte %d (%s); resuming",
                            self._store.name, self._key, self._offset, exc)
                time.sleep(0.2 * 2 ** self._resumed)  # back off before asking again
                with contextlib.suppress(Exception):
                    self._body.close()
                self._body = self._store._open_body(self._key, self._offset)

    def close(self) -> None:
        self._body.close()


_sessions: dict[str | None, boto3.session.Session] = {}
_sessions_lock = threading.Lock()


def _session(profile: str | None) -> boto3.session.Session:
    """One session per profile: clients made from it share the loaded service model,
    which makes each further client ~10x cheaper to create."""
    with _sessions_lock:
        if profile not in _sessions:
            _sessions[profile] = boto3.session.Session(profile_name=profile)
        return _sessions[profile]


class S3Store(Store):
    # Each writer holds a part filling and one in flight already (10 MiB at first);
    # more stripes queued in front of it only add memory (measured: peak RSS of a put
    # over five shaped links 169 MiB at 8, 149 MiB at 2, same time).
    write_slack = 2
    resumable = True   # multipart uploads outlive the process: list_parts, go on
    remote = True

    def __init__(self, name: str, bucket: str, *, endpoint_url: str | None = None,
                 region: str | None = None, prefix: str = "", access_key_id: str | None = None,
                 secret_access_key: str | None = None, profile: str | None = None,
                 max_attempts: int = 5, connect_timeout: float = 10, read_timeout: float = 60,
                 outage_wait: float = DEFAULT_WAIT) -> None:
        self.name = name
        self.outage = Outage(name, outage_wait)
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.prefix = prefix.strip("/")
        try:
            session = _session(profile or None)
        except botocore.exceptions.BotoCoreError as exc:
            raise StoreError(name, explain(exc, bucket, endpoint_url)) from exc
        config = botocore.config.Config(
            region_name=region,
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=16,
            # Custom endpoints (MinIO, rclone, Ceph) are safest with path-style URLs.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            # Every stored byte is already authenticated by AES-GCM; the newer default
            # CRC checksums are refused by several S3-compatible servers.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        creds: dict[str, str] = {}
        if access_key_id:
            if not secret_access_key:
                raise MissingSecret(name)
            creds = {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key}
        self._client = session.client("s3", endpoint_url=endpoint_url, config=config, **creds)
        self._client.meta.events.register("needs-retry.s3", self._log_attempt)
        self._client.meta.events.register("before-send.s3", _arm)

    def _log_attempt(self, attempts: int = 0, response: Any = None,
                     caught_exception: BaseException | None = None, operation: Any = None,
                     **_kw: Any) -> None:
        """Log every failed attempt botocore is about to judge for a retry, with the store
        and operation. Returns None so botocore's own retry decision stands."""
        status = None
        if response is not None:
            status = getattr(response[0], "status_code", None)
        if caught_exception is None and (status is None or (status < 500 and status != 429)):
            return None
        what = type(caught_exception).__name__ if caught_exception else f"HTTP {status}"
        name = getattr(operation, "name", "request")
        log.warning("store %s: S3 %s attempt %d failed (%s)", self.name, name, attempts, what)
        if caught_exception is not None and unreachable_code(caught_exception):
            self.outage.note()
        return None

    def describe(self) -> str:
        where = self.endpoint_url or "AWS"
        return f"s3://{self.bucket}/{self.prefix} at {where}" if self.prefix else \
            f"s3://{self.bucket} at {where}"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, op: str, **kw: Any) -> Any:
        """One S3 operation; inside a job that waits for stores (stores/outage.py), tried
        again while the store does not answer, up to the outage wait."""
        if "Key" in kw:
            kw["Key"] = self._key(kw["Key"])
        return self.outage.ride(lambda: self._call_once(op, kw))

    def _call_once(self, op: str, kw: dict[str, Any]) -> Any:
        if isinstance(kw.get("Body"), bytearray) and ratelimit.UPLOAD.on:
            # Paced, and a fresh body for each attempt: one that an attempt cut off
            # mid-send had read part of would send only the rest (botocore takes a
            # stream's length from where it stands).
            kw = {**kw, "Body": _PacedBody(kw["Body"])}
        try:
            return getattr(self._client, op)(Bucket=self.bucket, **kw)
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404", "NoSuchUpload") and "Key" in kw:
                raise ObjectNotFound(self.name, kw["Key"]) from None
            raise StoreError(self.name, explain(exc, self.bucket, self.endpoint_url),
                             unreachable_code(exc) or (str(code) if code else None)) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise StoreError(self.name, explain(exc, self.bucket, self.endpoint_url),
                             unreachable_code(exc)) from exc

    def open_write(self, key: str, resume: UploadState | None = None,
                   on_progress: Progress | None = None) -> ObjectWriter:
        return _S3Writer(self, key, resume, on_progress)

    def held_parts(self, key: str, resume: UploadState, every: bool = False
                   ) -> list[tuple[int, str, int]] | None:
        """The parts of `resume` the store still holds as they were sent (same number,
        ETag and size, from the first on); None when the upload is gone. The store's
        word decides only what we send again: every byte is authenticated on reading."""
        kw: dict[str, Any] = {"Key": key, "UploadId": resume.upload_id}
        have: dict[int, tuple[str, int]] = {}
        try:
            for resp in self._pages("list_parts", kw, ("PartNumberMarker",),
                                    ("NextPartNumberMarker",)):
                for part in resp.get("Parts", []):
                    have[int(part["PartNumber"])] = (str(part["ETag"]).strip('"'),
                                                     int(part["Size"]))
        except ObjectNotFound:
            return None
        if every:   # all it holds (gc: how large an interrupted upload is)
            return [(n, e, size) for n, (e, size) in sorted(have.items())]
        held = []
        for number, etag, size in resume.parts:
            if number != len(held) + 1 or have.get(number) != (etag.strip('"'), size):
                break
            held.append((number, etag, size))
        return held

    def _open_body(self, key: str, offset: int) -> Any:
        kw: dict[str, Any] = {"Key": key}
        if offset:
            kw["Range"] = f"bytes={offset}-"
        try:
            return self._call("get_object", **kw)["Body"]
        except StoreError as exc:
            if exc.code == "InvalidRange":  # offset at or past the end: nothing to read
                return _Empty()
            raise

    def open_read(self, key: str, offset: int = 0) -> ObjectReader:
        return _S3Reader(self, key, offset, self._open_body(key, offset))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        full = self._key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        kw: dict[str, Any] = {"Prefix": full}
        for resp in self._pages("list_objects_v2", kw, ("ContinuationToken",),
                                ("NextContinuationToken",)):
            for obj in resp.get("Contents", []):
                yield ObjectInfo(obj["Key"][strip:], obj["Size"], obj["LastModified"].timestamp())

    def _pages(self, op: str, kw: dict[str, Any], fields: tuple[str, ...],
               next_fields: tuple[str, ...]) -> Iterator[dict[str, Any]]:
        """Every page of a listing. A server that never ends one (IsTruncated forever, or a
        marker it already gave) is a store error, not a loop with growing memory."""
        seen: set[tuple[Any, ...]] = set()
        thin = 0
        for _page in range(MAX_LIST_PAGES):
            resp = self._call(op, **kw)
            yield resp
            if not resp.get("IsTruncated"):
                return
            entries = sum(len(resp.get(f) or ()) for f in
                          ("Contents", "CommonPrefixes", "Uploads", "Parts"))
            if entries < 500:
                thin += 1
                if thin > MAX_THIN_PAGES:
                    raise StoreError(self.name, f"the listing of {kw.get('Prefix') or '/'} "
                                                "goes on with nearly empty pages (a server "
                                                "that does not end it)")
            marker = tuple(resp.get(f) for f in next_fields)
            if not any(marker) or marker in seen:
                raise StoreError(self.name, f"the listing of {kw.get('Prefix') or '/'} does "
                                            "not end (the server repeats itself)")
            seen.add(marker)
            for name, value in zip(fields, marker, strict=True):
                if value is None:
                    kw.pop(name, None)
                else:
                    kw[name] = value
        raise StoreError(self.name, f"the listing of {kw.get('Prefix') or '/'} has more than "
                                    f"{MAX_LIST_PAGES} pages")

    def children(self, prefix: str) -> list[str]:
        full = self._key(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        names: list[str] = []
        kw: dict[str, Any] = {"Prefix": full, "Delimiter": "/"}
        for resp in self._pages("list_objects_v2", kw, ("ContinuationToken",),
                                ("NextContinuationToken",)):
            names += [p["Prefix"][len(full):].rstrip("/") for p in resp.get("CommonPrefixes", [])]
        return names

    def incomplete_uploads(self, prefix: str) -> Iterator[ObjectInfo]:
        full = self._key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        kw: dict[str, Any] = {"Prefix": full}
        for resp in self._pages("list_multipart_uploads", kw, ("KeyMarker", "UploadIdMarker"),
                                ("NextKeyMarker", "NextUploadIdMarker")):
            for up in resp.get("Uploads", []):
                key = up["Key"][strip:]
                held = self.held_parts(key, UploadState(up["UploadId"]), every=True) or []
                yield ObjectInfo(key, sum(size for _, _, size in held),
                                 up["Initiated"].timestamp(), up["UploadId"])

    def discard_upload(self, info: ObjectInfo) -> None:
        with contextlib.suppress(ObjectNotFound):
            self._call("abort_multipart_upload", Key=info.key, UploadId=info.upload_id)

    def delete(self, key: str) -> None:
        with contextlib.suppress(ObjectNotFound):
            self._call("delete_object", Key=key)

    def make_bucket(self, region: str | None = None) -> bool:
        """Create the bucket; False when it exists and is ours already. A name another
        account holds, or keys without the right, is a StoreError saying so."""
        kw: dict[str, Any] = {}
        if region and region != "us-east-1" and not self.endpoint_url:
            # AWS outside us-east-1 wants the region named; other providers take it from
            # the endpoint, and some refuse the field.
            kw["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._client.create_bucket(Bucket=self.bucket, **kw)
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "BucketAlreadyOwnedByYou":
                return False
            if code == "BucketAlreadyExists":
                # Some servers (rclone) say so of a bucket of one's own too: if these keys
                # can list it, it is ours to use.
                try:
                    self._client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
                    return False
                except (botocore.exceptions.ClientError,
                        botocore.exceptions.BotoCoreError):
                    raise StoreError(self.name, f"the bucket name {self.bucket!r} is taken "
                                     "by another account: choose another") from exc
            raise StoreError(self.name, f"cannot make bucket {self.bucket!r}: "
                             + explain(exc, self.bucket, self.endpoint_url)) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise StoreError(self.name, explain(exc, self.bucket, self.endpoint_url)) from exc
        return True

    def check(self) -> None:
        try:
            # A GET, not HEAD: HEAD answers carry no body, so a bad signature and a
            # missing permission would both read as a bare 403.
            self._client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise StoreError(self.name, explain(exc, self.bucket, self.endpoint_url)) from exc
        probe = f"cssm-probe-{secrets.token_hex(6)}"
        data = secrets.token_bytes(32)
        try:
            self.put_bytes(probe, data)
        except StoreError as exc:
            raise StoreError(self.name, f"cannot write to bucket {self.bucket!r}: {exc.reason}") \
                from exc
        try:
            if self.get_bytes(probe) != data:
                raise StoreError(self.name, "a probe written could not be read back intact")
        finally:
            self.delete(probe)


class _Empty:
    def read(self, _size: int) -> bytes:
        return b""

    def close(self) -> None:
        pass
