"""Real networks (issue: fill slow links, keep going when a store is down, resume after
anything): real S3 servers on loopback, each bucket behind its own shaped link
(tests/netshape.py) that can go down and counts the bytes it carries."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cssm_desktop.catalog import AT_RISK, SAFE
from cssm_desktop.config import Config, StoreConfig
from cssm_desktop.core.progress import (
    CancelToken,
    Event,
    FileProgress,
    Listener,
    Resumed,
    StoreBack,
    StoreDamaged,
    StoreWaiting,
)
from cssm_desktop.engine import Engine
from cssm_desktop.errors import Cancelled, InputError, NotEnoughStores
from cssm_desktop.stores.s3 import S3Store

from .conftest import FAST_KDF, PASSWORD, S3Server, write_config
from .netshape import ShapedProxy

RATE = 8e6          # bytes/s per link and direction: a put of SIZE takes a few seconds
SIZE = 30 * 1024 * 1024


@dataclass
class World:
    server: S3Server
    proxies: list[ShapedProxy]
    cfg: Config
    cfg_file: Path
    root: Path

    @property
    def sent(self) -> int:
        return sum(p.sent for p in self.proxies)

    def engine(self, outage_wait: float = 0) -> Engine:
        # Stores that give up after two attempts: the default retries ride out a longer
        # outage (about 15 s of backoff per request), which only makes these tests slow.
        # And no wait for a store that stops answering, unless the test is about that.
        quick = [S3Store(sc.name, sc.bucket or "", endpoint_url=sc.endpoint_url,
                         region="us-east-1", profile=sc.profile, max_attempts=2,
                         connect_timeout=1, read_timeout=10, outage_wait=outage_wait)
                 for sc in self.cfg.stores]
        engine = Engine(self.cfg, catalog_path=self.root / "home/.local/share/cssm-desktop"
                        / "catalog.sqlite", stores=quick)
        engine.unlock(PASSWORD)
        return engine

    def uploads(self) -> list[str]:
        client = self.server.client()
        return [u["UploadId"] for sc in self.cfg.stores for u in
                client.list_multipart_uploads(Bucket=sc.bucket).get("Uploads", [])]

    def journals(self) -> list[Path]:
        return sorted((self.root / "home/.local/share/cssm-desktop/uploads").rglob("*.json"))


@pytest.fixture(params=["moto", "rclone"])
def world(request: pytest.FixtureRequest, tmp_path: Path, isolated_home: Path
          ) -> Iterator[World]:
    server: S3Server = request.getfixturevalue(f"{request.param}_server")
    buckets = server.make_buckets(f"net-{os.getpid()}-{time.time_ns() % 10**8}", 5)
    # Credentials from a profile: the CLI in a child process reads them as well.
    # One profile per server: sessions are kept per profile for the process.
    profile = f"cssm-{request.param}"
    (isolated_home / "aws-credentials").write_text(
        f"[{profile}]\naws_access_key_id = {server.access_key}\n"
        f"aws_secret_access_key = {server.secret_key}\n")
    port = int(server.endpoint.rsplit(":", 1)[1])
    proxies = [ShapedProxy(port, rtt=0.01, rate=RATE).__enter__() for _ in buckets]
    stores = [StoreConfig(name=f"net{i + 1}", type="s3", bucket=b, endpoint_url=p.endpoint,
                          region="us-east-1", profile=profile)
              for i, (b, p) in enumerate(zip(buckets, proxies, strict=True))]
    cfg = Config(stores=stores, threshold=3)
    w = World(server, proxies, cfg, write_config(tmp_path / "cssm.toml", cfg), tmp_path)
    Engine(cfg, catalog_path=w.root / "home/.local/share/cssm-desktop/catalog.sqlite"
           ).init(PASSWORD, kdf=FAST_KDF)
    yield w
    for p in proxies:
        p.__exit__(None, None, None)


def _cli_env(w: World) -> dict[str, str]:
    return dict(os.environ, CSSM_CONFIG=str(w.cfg_file), CSSM_PASSWORD=PASSWORD)


def _cssm(w: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cssm_desktop.cli", *args], env=_cli_env(w),
                          capture_output=True, text=True, timeout=120)


def _when(listener_test: object, action: object) -> object:
    """A listener that runs `action` once, at the first event `listener_test` accepts."""
    fired = []

    def listen(event: Event) -> None:
        if not fired and listener_test(event):  # type: ignore[operator]
            fired.append(event)
            action()  # type: ignore[operator]
    return listen


def _past(share: float) -> object:
    return lambda e: isinstance(e, FileProgress) and e.total and e.done >= share * e.total


def _outage(proxy: ShapedProxy, back_after: float | None = None
            ) -> tuple[list[Event], Listener]:
    """A listener that cuts `proxy`'s link at 30% of a put and (with `back_after`) brings
    it back once the put has waited that many seconds for it; and the events it heard."""
    events: list[Event] = []
    down = _when(_past(0.3), proxy.down)
    up = _when(lambda e: isinstance(e, StoreWaiting) and e.since >= (back_after or 0),
               proxy.up)

    def listen(event: Event) -> None:
        events.append(event)
        down(event)  # type: ignore[operator]
        if back_after is not None:
            up(event)  # type: ignore[operator]
    return events, listen


def test_a_put_killed_at_60_percent_resumes_sending_only_what_is_missing(
        world: World, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    data = os.urandom(SIZE)
    src.write_bytes(data)
    full = 5 * SIZE // 3
    proc = subprocess.Popen([sys.executable, "-m", "cssm_desktop.cli", "put", str(src)],
                            env=_cli_env(world), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while world.sent < 0.6 * full and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)   # polling the proxies' byte count: the moment to kill
    assert proc.poll() is None, "the put ended before 60% were sent: nothing to resume"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (journal_file,) = world.journals()
    assert stat.S_IMODE(journal_file.stat().st_mode) == 0o600
    journal = json.loads(journal_file.read_text())
    held = sum(size for u in journal["uploads"].values() for _, _, size in u["parts"])
    assert held > 0.3 * full, held
    import hashlib
    assert hashlib.sha256(data).hexdigest() not in journal_file.read_text()
    gc = _cssm(world, "gc", "--dry-run", "--grace-hours", "0")
    assert gc.returncode == 0 and "kept  net1:" in gc.stdout, gc.stdout
    assert "unfinished upload of " + str(src) in gc.stdout
    assert "would remove 0 objects" in gc.stdout, gc.stdout
    before = world.sent
    again = _cssm(world, "put", str(src))
    assert again.returncode == 0, again.stderr
    assert "resuming big.bin" in again.stderr
    second = world.sent - before
    client = world.server.client()
    stored = sum(o["Size"] for sc in world.cfg.stores for o in
                 client.list_objects_v2(Bucket=sc.bucket).get("Contents", [])
                 if "/data/" in o["Key"])
    missing = stored - held
    assert second <= 1.1 * missing, (second, missing, stored)
    assert world.journals() == [] and world.uploads() == []
    out = tmp_path / "out.bin"
    got = _cssm(world, "get", "big.bin", "-o", str(out))
    assert got.returncode == 0, got.stderr
    assert out.read_bytes() == data


def _interrupted(world: World, src: Path) -> Engine:
    """A put that loses two of five stores half-way: it fails (only 3 of the 4 needed
    stores left), and keeps what was sent for a resume."""
    engine = world.engine()
    before = len(world.journals())

    def two_down() -> None:
        world.proxies[1].down()
        world.proxies[3].down()

    (res,) = engine.put([src], listener=_when(_past(0.5), two_down))  # type: ignore[arg-type]
    assert isinstance(res.error, NotEnoughStores), res
    assert len(world.journals()) == before + 1 and world.uploads()
    for p in world.proxies:
        p.up()
    return engine


def test_a_put_that_lost_its_stores_goes_on_when_they_are_back(world: World,
                                                              tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(SIZE))
    engine = _interrupted(world, src)
    assert engine.entries() == []     # nothing listed while unfinished
    (journal,) = engine.unfinished()
    assert journal.source == str(src) and journal.held > 0
    events: list[Event] = []
    (res,) = engine.put([src], listener=events.append)
    assert res.stored is not None and res.stored.missing == ()
    assert [e.held for e in events if isinstance(e, Resumed)] == [journal.held]
    assert engine.unfinished() == [] and world.uploads() == []
    out = tmp_path / "out.bin"
    engine.get(engine.resolve("f.bin"), out)
    assert out.read_bytes() == src.read_bytes()


def test_a_running_upload_is_not_offered_as_unfinished_nor_discarded(
        world: World, tmp_path: Path) -> None:
    """While a put runs, its journal is its own: not listed as left over (the window
    offered the running upload as "did not finish last time", and its Discard would have
    aborted it), not discarded, not taken up by a second put of the same file; after an
    interrupted put it is offered again."""
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(SIZE))
    engine = world.engine()
    seen: list[object] = []

    def meanwhile() -> None:
        seen.append(engine.unfinished())
        (busy,) = engine.journals().all(busy=True)   # never its temporary rewrite too
        with pytest.raises(InputError, match="running"):
            engine.discard_unfinished(busy)
        seen.append(busy)

    (res,) = engine.put([src], listener=_when(_past(0.3), meanwhile))  # type: ignore[arg-type]
    assert res.stored is not None and res.stored.missing == ()
    assert seen[0] == [] and len(seen) == 2, seen
    assert engine.unfinished() == [] and world.journals() == []
    src2 = tmp_path / "g.bin"
    src2.write_bytes(os.urandom(SIZE))
    _interrupted(world, src2)
    journals = world.engine().journals()
    (left,) = journals.all()
    assert left.source == str(src2)
    # Taken up again: gc still knows its upload as one a put here goes on with.
    assert journals.claim(left) and not journals.claim(left)
    try:
        assert journals.all() == [] and set(journals.upload_ids().values()) == {str(src2)}
    finally:
        journals.release(left)


def test_a_changed_file_starts_over_with_new_keys(world: World, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(SIZE))
    engine = _interrupted(world, src)
    (old,) = engine.unfinished()
    old_uploads = set(world.uploads())
    # The same size and, as far as the journal can tell, the same file (identity copied
    # over, as a file system that keeps no ctime would show it): the digest tells.
    new = bytearray(src.read_bytes())
    new[100] ^= 1
    src.write_bytes(bytes(new))
    raw = json.loads(old.path.read_text())
    st = src.stat()
    raw["identity"] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                       "ctime_ns": st.st_ctime_ns, "ino": st.st_ino, "dev": st.st_dev}
    old.path.write_text(json.dumps(raw))
    events: list[Event] = []
    (res,) = engine.put([src], listener=events.append)
    assert res.stored is not None and res.stored.file_id != old.file_id
    assert not any(isinstance(e, Resumed) for e in events)
    assert not old_uploads & set(world.uploads())    # the old upload was discarded
    out = tmp_path / "out.bin"
    engine.get(engine.resolve("f.bin"), out)
    assert out.read_bytes() == bytes(new)


def test_put_discard_drops_an_unfinished_upload_at_once(world: World, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(SIZE))
    _interrupted(world, src)
    r = _cssm(world, "put", "--discard", str(src))
    assert r.returncode == 0 and r.stdout.startswith(f"discarded  {src}"), r
    assert world.uploads() == [] and world.journals() == []
    r = _cssm(world, "put", "--discard", str(src))
    assert r.returncode == 1 and r.stderr.strip() == f"cssm: error: no unfinished upload of {src}"


def test_a_store_going_down_during_a_put_does_not_fail_it(world: World,
                                                          tmp_path: Path) -> None:
    """One store's link goes down at 30% (and stays down past the put): the put waits
    for it as long as it is told (2 s here), then goes on with four, the file is at risk
    naming it; back up, repair completes it."""
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(SIZE))
    engine = world.engine(outage_wait=2)
    events, listen = _outage(world.proxies[2])
    (res,) = engine.put([src], listener=listen)
    waits = [e for e in events if isinstance(e, StoreWaiting)]
    assert waits and {e.store for e in waits} == {"net3"} and waits[0].limit == 2
    assert not any(isinstance(e, StoreBack) for e in events)
    assert res.stored is not None and res.stored.missing == ("net3",)
    entry = engine.resolve("f.bin")
    assert entry.health == AT_RISK and entry.damaged == "net3"
    assert world.journals() == []
    world.proxies[2].up()
    _, repaired = engine.repair()
    assert [r.rebuilt for _, r in repaired] == [("net3",)]
    assert engine.resolve("f.bin").health == SAFE
    assert all(report.healthy for _, report in engine.verify())


@pytest.mark.parametrize("limit", [None, 512 * 1024 * 1024], ids=["", "paced"])
def test_a_store_silent_for_a_while_is_waited_for_and_the_put_goes_on(
        world: World, tmp_path: Path, limit: int | None) -> None:
    """A store's link goes down at 30% and comes back after a few seconds: the put waits
    (saying so, with the time since), then stores every part: the file is safe, with
    nothing left for repair. Also with an upload limit (paced request bodies), which
    the link cares nothing about."""
    src = tmp_path / "f.bin"
    data = os.urandom(SIZE)
    src.write_bytes(data)
    world.cfg.upload_limit = limit
    engine = world.engine(outage_wait=120)
    events, listen = _outage(world.proxies[1], back_after=2)
    (res,) = engine.put([src], listener=listen)
    assert res.error is None and res.stored is not None
    assert res.stored.missing == () and res.stored.left == ()
    waits = [e for e in events if isinstance(e, StoreWaiting)]
    assert waits and {e.store for e in waits} == {"net2"} and waits[-1].since >= 2
    (back,) = [e for e in events if isinstance(e, StoreBack)]
    assert back.store == "net2" and back.after >= 2
    assert engine.resolve("f.bin").health == SAFE
    out = tmp_path / "out.bin"
    engine.get(engine.resolve("f.bin"), out)
    assert out.read_bytes() == data
    assert world.uploads() == []


def test_the_cli_says_it_waits_for_a_store_and_when_it_is_back(world: World,
                                                                tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(SIZE))
    world.cfg.outage_wait = 60
    write_config(world.cfg_file, world.cfg)
    proc = subprocess.Popen([sys.executable, "-m", "cssm_desktop.cli", "put", str(src)],
                            env=_cli_env(world), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while world.sent < SIZE and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)   # polling the proxies' byte count: the moment to cut the link
    world.proxies[3].down()
    assert proc.stderr is not None
    first = proc.stderr.readline()
    world.proxies[3].up()
    out, rest = proc.communicate(timeout=120)
    assert first == ("waiting for store 'net4', which stopped answering (up to 1 min, "
                     "then the upload goes on without it)\n"), first
    assert proc.returncode == 0, rest
    assert "store 'net4' answers again (after " in rest and "going on" in rest
    assert out.strip().endswith(f"  {src}") and "at risk" not in out + rest, out


def test_bandwidth_limits_hold_for_all_stores_together(world: World, tmp_path: Path) -> None:
    """2 MiB/s each way for the five links together (each could carry 8 MB/s): the put
    and the restore keep to it, on average over the whole transfer; a new setting applies
    to the running engine."""
    limit = 2 * 1024 * 1024
    src = tmp_path / "f.bin"
    data = os.urandom(4 * 1024 * 1024)
    src.write_bytes(data)
    world.cfg.upload_limit = world.cfg.download_limit = limit
    engine = world.engine()
    from cssm_desktop.stores import ratelimit
    saved = limit * ratelimit.BURST    # what an idle link may send at once
    before, started = world.sent, time.monotonic()
    (res,) = engine.put([src])
    up_rate = (world.sent - before - saved) / (time.monotonic() - started)
    assert res.stored is not None
    # ~6.7 MiB went up: unlimited, it takes a fifth of a second here.
    assert 0.5 * limit < up_rate <= 1.05 * limit, up_rate / limit
    # Downloads are paced as we read: the link may still fill socket buffers ahead of
    # that, so the proxy's count is no measure here; the bytes the file needs are.
    started = time.monotonic()
    out = tmp_path / "out.bin"
    engine.get(engine.resolve("f.bin"), out)
    down_rate = (len(data) - saved) / (time.monotonic() - started)
    assert out.read_bytes() == data
    assert 0.5 * limit < down_rate <= 1.05 * limit, down_rate / limit
    engine.retune(dataclasses.replace(world.cfg, upload_limit=None, outage_wait=7))
    assert not ratelimit.UPLOAD.on and ratelimit.DOWNLOAD.rate == limit
    assert {s.outage.wait for s in engine.stores} == {7}  # type: ignore[attr-defined]


def _downloaded(w: World) -> int:
    return sum(p.download.bytes for p in w.proxies)


def test_a_restore_killed_at_60_percent_fetches_only_what_it_lacks(world: World,
                                                                    tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    data = os.urandom(SIZE)
    src.write_bytes(data)
    assert _cssm(world, "put", str(src)).returncode == 0
    out = tmp_path / "out.bin"
    before = _downloaded(world)
    proc = subprocess.Popen([sys.executable, "-m", "cssm_desktop.cli", "get", "big.bin",
                             "-o", str(out)], env=_cli_env(world),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while _downloaded(world) - before < 0.6 * SIZE and proc.poll() is None and \
            time.monotonic() < deadline:
        time.sleep(0.02)   # polling the proxies' byte count: the moment to kill
    assert proc.poll() is None, "the restore ended before 60%: nothing to resume"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    cache = world.root / "home/.local/share/cssm-desktop/downloads"
    parts = sorted(cache.rglob("*.blocks"))
    assert len(parts) == 3
    for part in parts:    # sealed blocks only: owner-only, and no run of the plaintext
        assert stat.S_IMODE(part.stat().st_mode) == 0o600
        assert data[4096:4096 + 64] not in part.read_bytes()
    held = sum(p.stat().st_size for p in parts)
    assert held > 0.3 * SIZE, held
    lacking = SIZE - held          # ~: the three systematic parts hold the file's bytes
    before = _downloaded(world)
    again = _cssm(world, "get", "big.bin", "-o", str(out))
    assert again.returncode == 0, again.stderr
    assert "were fetched before" in again.stderr or held == 0
    fetched = _downloaded(world) - before
    assert fetched <= 1.1 * lacking + 256 * 1024, (fetched, lacking)
    assert out.read_bytes() == data
    assert list(cache.rglob("*.blocks")) == []


def test_a_damaged_download_cache_is_cut_where_it_fails_and_blames_no_store(
        world: World, tmp_path: Path) -> None:
    """The cache is this machine's, yet read like a store: a block that fails to open
    there is fetched again from its store, which is not reported damaged."""
    src = tmp_path / "big.bin"
    data = os.urandom(SIZE)
    src.write_bytes(data)
    engine = world.engine()
    engine.put([src])
    entry = engine.resolve("big.bin")
    out = tmp_path / "out.bin"
    with pytest.raises(Cancelled):   # stopped to go on later: the cache is kept
        engine.get(entry, out, listener=_when(_past(0.5), lambda: token.cancel(keep=True)),  # type: ignore[arg-type]
                   cancel=(token := CancelToken()))
    parts = sorted((world.root / "home/.local/share/cssm-desktop/downloads").rglob("*.blocks"))
    assert parts and all(p.stat().st_size > 0 for p in parts)
    raw = bytearray(parts[0].read_bytes())
    raw[len(raw) // 2] ^= 1
    parts[0].write_bytes(bytes(raw))
    events: list[Event] = []
    engine.get(entry, out, listener=events.append)
    assert out.read_bytes() == data
    assert not [e for e in events if isinstance(e, StoreDamaged)]
    assert [e.download for e in events if isinstance(e, Resumed)] == [True]
    assert engine.resolve("big.bin").health == SAFE
    assert not parts[0].parent.exists()
    # A cancel that does not mean "later" drops what was kept.
    out.unlink()
    with pytest.raises(Cancelled):
        engine.get(entry, out, listener=_when(_past(0.5), lambda: token2.cancel()),  # type: ignore[arg-type]
                   cancel=(token2 := CancelToken()))
    assert not parts[0].parent.exists()


@pytest.mark.parametrize("world", ["moto"], indirect=True)
def test_a_30_second_outage_of_one_store_does_not_fail_a_put(world: World,
                                                              tmp_path: Path) -> None:
    """The issue's own figure, with the default wait (5 min) and botocore's retries as
    shipped: one link down for 30 s in the middle of a put."""
    src = tmp_path / "f.bin"
    data = os.urandom(SIZE)
    src.write_bytes(data)
    engine = Engine(world.cfg, catalog_path=world.root / "home/.local/share/cssm-desktop"
                    / "catalog.sqlite")
    engine.unlock(PASSWORD)
    events, listen = _outage(world.proxies[4], back_after=30)
    (res,) = engine.put([src], listener=listen)
    assert res.error is None and res.stored is not None and res.stored.missing == ()
    assert [e.store for e in events if isinstance(e, StoreBack)] == ["net5"]
    assert max(e.since for e in events if isinstance(e, StoreWaiting)) >= 30
    assert engine.resolve("f.bin").health == SAFE
    out = tmp_path / "out.bin"
    engine.get(engine.resolve("f.bin"), out)
    assert out.read_bytes() == data

