"""The local API against a real uvicorn server on loopback, with a real HTTP client
(httpx): every endpoint, every refusal, and a property-based run of its own OpenAPI."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cssm_desktop.api.server import ApiServer
from cssm_desktop.engine import Engine

from .conftest import PASSWORD


@pytest.fixture
def api(folder_engine: Engine, tmp_path: Path) -> Iterator[tuple[ApiServer, httpx.Client]]:
    server = ApiServer(lambda: folder_engine, "127.0.0.1:0", token_path=tmp_path / "token")
    server.start()
    client = httpx.Client(base_url=server.url, timeout=60,
                          headers={"Authorization": f"Bearer {server.token}"})
    yield server, client
    client.close()
    server.stop()


def _code(resp: httpx.Response) -> str:
    return resp.json()["error"]["code"]


def test_a_file_goes_in_comes_back_whole_and_in_ranges_and_goes_away(api, tmp_path) -> None:
    _server, client = api
    data = os.urandom(3 * 1024 * 1024 + 17)   # stored alone (not in a pack)
    got = client.post("/v1/files", params={"name": "scans/page 1.pdf"}, content=data)
    assert got.status_code == 201, got.text
    entry = got.json()
    assert entry["name"] == "scans/page 1.pdf" and entry["size"] == len(data)
    assert entry["health"] == "safe"
    listed = client.get("/v1/files", params={"prefix": "scans/"}).json()
    assert [f["id"] for f in listed["files"]] == [entry["id"]] and listed["total"] == 1
    assert client.get(f"/v1/files/{entry['id'][:8]}").json()["id"] == entry["id"]
    whole = client.get(f"/v1/files/{entry['id']}/content")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["x-content-sha256"] == hashlib.sha256(data).hexdigest()
    assert whole.headers["content-length"] == str(len(data))
    part = client.get(f"/v1/files/{entry['id']}/content",
                      headers={"Range": "bytes=1000000-1999999"})
    assert part.status_code == 206 and part.content == data[1_000_000:2_000_000]
    assert part.headers["content-range"] == f"bytes 1000000-1999999/{len(data)}"
    tail = client.get(f"/v1/files/{entry['id']}/content", headers={"Range": "bytes=-10"})
    assert tail.content == data[-10:]
    bad = client.get(f"/v1/files/{entry['id']}/content",
                     headers={"Range": f"bytes={len(data)}-"})
    assert bad.status_code == 416 and _code(bad) == "bad_range"
    # A small file (a pack member) the same way, and a multipart one as /upload took it.
    small = client.put("/v1/files", params={"name": "notes/a.txt"}, content=b"hello")   # curl -T
    assert small.status_code == 201
    assert client.get(f"/v1/files/{small.json()['id']}/content").content == b"hello"
    multi = client.post("/v1/files", files={"file": ("report.txt", b"multi part body")})
    assert multi.status_code == 201 and multi.json()["name"] == "report.txt"
    assert client.get(f"/v1/files/{multi.json()['id']}/content").content == b"multi part body"
    # A second version of a name.
    again = client.post("/v1/files", params={"name": "notes/a.txt"}, content=b"hello 2")
    assert again.json()["versions"] == 2
    versions = client.get("/v1/versions", params={"name": "notes/a.txt"}).json()
    assert [v["size"] for v in versions] == [7, 5]
    gone = client.delete(f"/v1/files/{entry['id']}")
    assert gone.status_code == 200 and gone.json()["removed"] is True
    assert client.get(f"/v1/files/{entry['id']}").status_code == 404


def test_every_refusal_is_json_with_a_code_and_stores_nothing(api, folder_engine) -> None:
    server, client = api
    plain = httpx.Client(base_url=server.url, timeout=30)
    assert plain.get("/v1/files").status_code == 401
    wrong = plain.get("/v1/files", headers={"Authorization": "Bearer " + "x" * 43})
    assert wrong.status_code == 401 and _code(wrong) == "unauthorized"
    assert wrong.headers["www-authenticate"] == "Bearer"
    rebinding = client.get("/v1/files", headers={"Host": "evil.example:80"})
    assert rebinding.status_code == 403 and _code(rebinding) == "bad_host"
    page = client.post("/v1/files", params={"name": "x"}, content=b"x",
                       headers={"Origin": "https://evil.example"})
    assert page.status_code == 403 and _code(page) == "browser_refused"
    for name in ("../escape", "/abs", "a//b", "a/./b", "", "x" * 5000, "a\\b"):
        got = client.post("/v1/files", params={"name": name}, content=b"data")
        assert got.status_code in (400, 422), (name, got.text)
    assert client.post("/v1/files", content=b"no name").status_code == 400

    def chunks() -> Iterator[bytes]:
        yield b"no length"

    chunked = client.post("/v1/files", params={"name": "c.bin"}, content=chunks())
    assert chunked.status_code == 411 and _code(chunked) == "length_required"
    assert client.get("/v1/files/zz").status_code == 422
    assert client.get("/v1/files/abcdef").status_code == 404
    assert client.get("/v1/nothing").status_code == 404
    # A body cut off mid-stream (the client says 1 MiB and sends 1 KiB, then goes).
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        raw.sendall(f"POST /v1/files?name=cut.bin HTTP/1.1\r\nHost: 127.0.0.1:{server.port}"
                    f"\r\nAuthorization: Bearer {server.token}\r\nContent-Length: 1048576"
                    "\r\n\r\n".encode() + b"x" * 1024)
    cut = _wait_job(client, "upload", "cut.bin")
    assert cut["state"] == "failed" and cut["error"]["code"] == "client_gone"
    assert not [e for e in client.get("/v1/files").json()["files"] if e["name"] == "cut.bin"]
    assert not [e for e in folder_engine.entries() if e.name == "cut.bin"]
    # Locked: 423; a wrong password: 401; the right one unlocks the same engine.
    assert client.post("/v1/lock").json() == {"unlocked": False}
    locked = client.post("/v1/files", params={"name": "l.bin"}, content=b"x")
    assert locked.status_code == 423 and _code(locked) == "locked"
    bad = client.post("/v1/unlock", json={"password": "not it"})
    assert bad.status_code == 401 and _code(bad) == "wrong_password"
    assert client.post("/v1/unlock", json={"password": PASSWORD}).json() == {"unlocked": True}
    assert folder_engine.unlocked
    assert client.post("/v1/unlock", json={"pass": 1}).status_code == 422


def _wait_job(client: httpx.Client, kind: str, item: str, ended: bool = True,
              seconds: float = 30) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        for job in client.get("/v1/jobs").json():
            if (job["kind"], job["progress"]["item"]) == (kind, item) and (
                    job["ended"] is not None or not ended):
                return job
        assert time.monotonic() < deadline, f"no {kind} job of {item}"


def test_uploads_and_downloads_are_jobs_others_see_and_can_cancel(folder_engine,
                                                                  tmp_path) -> None:
    """What the window's Activity shows: every transfer as a job, told to a watcher, with
    its bytes; a stalled upload cancelled by its job answers 409 and stores nothing."""
    told: list[tuple[str, str, int]] = []
    server = ApiServer(lambda: folder_engine, "127.0.0.1:0", token_path=tmp_path / "token",
                       watch=lambda j: told.append((j.id, j.state, j.done)))
    server.start()
    client = httpx.Client(base_url=server.url, timeout=60,
                          headers={"Authorization": f"Bearer {server.token}"})
    try:
        data = os.urandom(5 << 20)
        entry = client.post("/v1/files", params={"name": "big.bin"}, content=data).json()
        up = _wait_job(client, "upload", "big.bin")
        assert up["state"] == "succeeded" and up["result"] == {"id": entry["id"]}
        assert up["progress"]["done"] == up["progress"]["total"] == len(data)
        assert (up["id"], "running", 0) in told and (up["id"], "succeeded", len(data)) in told
        assert client.get(f"/v1/files/{entry['id']}/content").content == data
        down = _wait_job(client, "download", "big.bin")
        assert down["state"] == "succeeded" and down["progress"]["done"] == len(data)
        form = client.post("/v1/files", files={"file": ("form.txt", b"from a form")}).json()
        multi = _wait_job(client, "upload", "form.txt")   # a multipart upload too
        assert multi["state"] == "succeeded" and multi["result"] == {"id": form["id"]}
        assert multi["progress"]["done"] == len(b"from a form")
        # A client that sends 1 KiB of 1 MiB and stalls: cancelled, it is answered.
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            raw.settimeout(30)
            raw.sendall(f"POST /v1/files?name=stalled.bin HTTP/1.1\r\nHost: 127.0.0.1:"
                        f"{server.port}\r\nAuthorization: Bearer {server.token}\r\n"
                        "Content-Length: 1048576\r\n\r\n".encode() + b"x" * 1024)
            running = _wait_job(client, "upload", "stalled.bin", ended=False)
            assert running["state"] == "running"
            gone = client.delete(f"/v1/jobs/{running['id']}")
            assert gone.status_code == 200 and gone.json()["state"] == "cancelling"
            answer = raw.recv(65536).decode("latin-1")
        assert answer.startswith("HTTP/1.1 409") and '"code":"cancelled"' in answer
        assert _wait_job(client, "upload", "stalled.bin")["state"] == "cancelled"
        assert not [e for e in folder_engine.entries() if e.name == "stalled.bin"]
        assert client.get("/v1/health").status_code == 200   # the server goes on
        # Turned off with work running (the window's switch): the work is cancelled,
        # and the stop does not wait for a client that stalls.
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            raw.sendall(f"POST /v1/files?name=left.bin HTTP/1.1\r\nHost: 127.0.0.1:"
                        f"{server.port}\r\nAuthorization: Bearer {server.token}\r\n"
                        "Content-Length: 1048576\r\n\r\n".encode() + b"x" * 1024)
            running = _wait_job(client, "upload", "left.bin", ended=False)
            assert server.jobs is not None
            job = server.jobs.get(running["id"])
            started = time.monotonic()
            server.stop()
            assert time.monotonic() - started < 5
            assert job is not None and job.token.cancelled
        assert not [e for e in folder_engine.entries() if e.name == "left.bin"]
    finally:
        client.close()
        server.stop()


def test_long_work_runs_as_jobs_with_events_and_cancel(api) -> None:
    _server, client = api
    for i in range(3):
        client.post("/v1/files", params={"name": f"f{i}.bin"}, content=os.urandom(2 << 20))
    job = client.post("/v1/verify")
    assert job.status_code == 202
    job_id = job.json()["id"]
    seen, after = [], 0
    while True:
        got = client.get(f"/v1/jobs/{job_id}/events", params={"after": after, "wait": 10})
        body = got.json()
        seen += body["events"]
        after = body["next"]
        if body["state"] not in ("running", "cancelling"):
            break
    final = client.get(f"/v1/jobs/{job_id}").json()
    assert final["state"] == "succeeded" and final["result"]["checked"] == 3
    assert final["result"]["not_safe"] == [] and seen[-1] == {"type": "end",
                                                              "state": "succeeded"}
    for kind in ("repair", "gc"):
        started = client.post(f"/v1/{kind}").json()
        deadline = time.monotonic() + 60
        while client.get(f"/v1/jobs/{started['id']}").json()["state"] == "running":
            assert time.monotonic() < deadline
            client.get(f"/v1/jobs/{started['id']}/events", params={"wait": 1})
        assert client.get(f"/v1/jobs/{started['id']}").json()["state"] == "succeeded"
    cancelled = client.delete(f"/v1/jobs/{client.post('/v1/verify').json()['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["state"] in (
        "cancelling", "succeeded")
    assert client.get("/v1/jobs/nope").status_code == 404


def test_stores_and_health_say_what_the_cli_says(api, folder_engine, tmp_path) -> None:
    import shutil

    _server, client = api
    stores = client.get("/v1/stores").json()
    assert [s["state"] for s in stores["stores"]] == ["ok"] * 5
    assert stores["sentence"].startswith("all 5 stores reachable")
    shutil.rmtree(tmp_path / "stores" / "store2")
    after = client.get("/v1/stores").json()
    assert after["down"] == ["store2"] and "1 of 5" in after["sentence"]
    health = client.get("/v1/health").json()
    assert health["stores_down"] == ["store2"] and health["sentence"] == after["sentence"]
    assert health["unlocked"] is True


def test_the_openapi_document_is_made_from_the_code_and_holds_under_generated_requests(
        api) -> None:
    """schemathesis: requests made from the document; no 5xx on any, every answer
    matching its schema (a few examples per operation: it runs on every CI)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import checks

    server, client = api
    doc = client.get("/v1/openapi.json").json()
    paths = set(doc["paths"])
    assert {"/v1/files", "/v1/files/{file_id}", "/v1/files/{file_id}/content", "/v1/stores",
            "/v1/health", "/v1/verify", "/v1/repair", "/v1/gc", "/v1/jobs/{job_id}",
            "/v1/unlock", "/v1/lock", "/v1/snapshots", "/v1/versions"} <= paths
    schema = schemathesis.openapi.from_dict(doc)
    schema.config.base_url = server.url   # (schemathesis 4)
    headers = {"Authorization": f"Bearer {server.token}", "Host": f"127.0.0.1:{server.port}"}
    failures = []
    calls = []
    for op in schema.get_all_operations():
        operation = op.ok()
        if operation.path in ("/v1/lock", "/v1/unlock"):
            continue   # they would lock the vault under the other requests

        @settings(max_examples=8, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case) -> None:  # type: ignore[no-untyped-def]
            resp = case.call(headers=headers, base_url=server.url)
            calls.append(resp.status_code)
            try:
                case.validate_response(resp, checks=[checks.not_a_server_error,
                                                     checks.response_schema_conformance])
            except Exception as exc:   # schemathesis's failure kinds
                failures.append(f"{case.method} {case.path}: "
                                f"{' '.join(str(exc).split())[:300]}")

        check()
    assert failures == []
    assert len(calls) >= 50 and any(c < 300 for c in calls)   # it did run, and got through


def test_cssm_serve_prints_where_and_answers_with_the_token(tmp_path: Path) -> None:
    from cssm_desktop.config import Config

    from .conftest import FAST_KDF, folder_stores, write_config

    cfg = write_config(tmp_path / "c.toml", Config(stores=folder_stores(tmp_path / "s"),
                                                   threshold=3))
    Engine(Config(stores=folder_stores(tmp_path / "s"), threshold=3,
                  path=cfg), tmp_path / "init.sqlite").init(PASSWORD, kdf=FAST_KDF)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSSM_")}
    env.update(CSSM_CONFIG=str(cfg), CSSM_PASSWORD=PASSWORD, HOME=str(tmp_path / "h"),
               XDG_DATA_HOME=str(tmp_path / "data"), XDG_STATE_HOME=str(tmp_path / "state"))
    proc = subprocess.Popen([sys.executable, "-m", "cssm_desktop.cli", "serve", "--address",
                             "127.0.0.1:0"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline() if proc.stderr else ""
        assert "serving the CSSM API on http://127.0.0.1:" in line and "unlocked" in line
        url = line.split(" on ")[1].split(" ")[0]
        token_path = Path(line.split("token in ")[1].split(";")[0])
        assert token_path.stat().st_mode & 0o077 == 0   # owner-only
        token = token_path.read_text().strip()
        deadline = time.monotonic() + 20
        while True:
            try:
                got = httpx.post(f"{url}/v1/files", params={"name": "hi.txt"},
                                 content=b"hi", headers={"Authorization": f"Bearer {token}"})
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
        assert got.status_code == 201, got.text
        assert json.loads(got.text)["size"] == 2
    finally:
        proc.terminate()
        proc.wait(10)
    bad = subprocess.run([sys.executable, "-m", "cssm_desktop.cli", "serve", "--address",
                          "0.0.0.0:0"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "needs TLS" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_bodies_in_many_pieces_and_pipelined_requests_arrive_whole(api, folder_engine) -> None:
    """A body written in small pieces, and two requests pipelined in one connection,
    go through the body pipe and are stored exactly."""
    server, client = api

    def request(name: str, body: bytes) -> bytes:
        return (f"POST /v1/files?name={name} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                f"Authorization: Bearer {server.token}\r\nContent-Length: {len(body)}\r\n"
                "\r\n").encode() + body

    first, second = os.urandom(300_000), os.urandom(5000)
    data = request("pieces/a.bin", first) + request("pieces/b.bin", second)
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cut = 200_000 // 997 * 997
        for at in range(0, cut, 997):   # the first 200 kB in small writes, the rest at once
            raw.sendall(data[at:at + 997])
        raw.sendall(data[cut:])
        raw.settimeout(60)
        answers = b""
        while answers.count(b"HTTP/1.1 201") < 2:
            got = raw.recv(65536)
            assert got, answers
            answers += got
    stored = {e.name: e for e in folder_engine.entries() if e.name.startswith("pieces/")}
    assert set(stored) == {"pieces/a.bin", "pieces/b.bin"}
    assert client.get(f"/v1/files/{stored['pieces/a.bin'].id}/content").content == first
    assert client.get(f"/v1/files/{stored['pieces/b.bin'].id}/content").content == second
