"""Verify, repair, gc, and faults: lost, emptied, unreachable, lying and flaky stores."""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import pytest

from cssm_desktop import durable
from cssm_desktop.catalog import AT_RISK, SAFE
from cssm_desktop.config import StoreConfig
from cssm_desktop.core.layout import data_key, meta_key
from cssm_desktop.core.progress import StoreDamaged
from cssm_desktop.engine import Engine
from cssm_desktop.errors import CssmError, NotEnoughStores, NotFound
from cssm_desktop.stores.factory import make_store
from cssm_desktop.stores.s3 import S3Store

from .conftest import FAST_KDF, PASSWORD, S3Server, free_port
from .faultproxy import FaultProxy
from .test_s3 import _s3_config


@pytest.fixture(autouse=True)
def _each_file_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests look at one file's own objects in the stores: every file is stored
    alone here (small files in packs are tested in test_packs.py)."""
    monkeypatch.setattr("cssm_desktop.engine.SMALL_FILE", 0)


B = 4096


def _put(engine: Engine, path: Path, data: bytes) -> str:
    path.write_bytes(data)
    (res,) = engine.put([path], block_size=B)
    assert res.stored is not None, res.error
    return res.stored.id_hex


def _fresh(engine: Engine, stores: list | None = None) -> Engine:
    other = Engine(engine.config, catalog_path=engine.catalog.path, stores=stores)
    other.unlock(PASSWORD)
    return other


def _dir(engine: Engine, i: int) -> Path:
    return Path(engine.config.stores[i].path or "")


def _obj(engine: Engine, i: int, kind: str, fid: str) -> Path:
    return _dir(engine, i) / engine.vault().id_hex / kind / fid


# ---------------------------------------------------------------- verify


def test_verify_reads_every_part_and_records_health(folder_engine: Engine,
                                                    tmp_path: Path) -> None:
    fid = _put(folder_engine, tmp_path / "f.bin", os.urandom(6 * 3 * B))
    ((_, report),) = folder_engine.verify()
    assert not isinstance(report, CssmError) and report.healthy
    part = _obj(folder_engine, 4, "data", fid)  # a parity part a restore would not read
    raw = bytearray(part.read_bytes())
    raw[-5] ^= 1
    part.write_bytes(bytes(raw))
    _obj(folder_engine, 2, "meta", fid).unlink()
    ((_, report),) = folder_engine.verify()
    assert not isinstance(report, CssmError)
    assert [c.ok for c in report.checks] == [True, True, False, True, False]
    assert report.checks[4].data == "block 5 failed authentication"
    assert report.checks[2].meta == "missing" and report.checks[2].data == "ok"
    entry = folder_engine.resolve(fid)
    assert (entry.health, entry.damaged) == (AT_RISK, "store3,store5")


@pytest.mark.parametrize("damage", ["truncate", "extend", "swap-header"])
def test_verify_catches_wrong_sizes_and_foreign_parts(folder_engine: Engine, tmp_path: Path,
                                                      damage: str) -> None:
    a = _put(folder_engine, tmp_path / "a", os.urandom(2 * 3 * B))
    b = _put(folder_engine, tmp_path / "b", os.urandom(2 * 3 * B))
    part = _obj(folder_engine, 0, "data", a)
    if damage == "truncate":
        part.write_bytes(part.read_bytes()[:-1])
    elif damage == "extend":
        part.write_bytes(part.read_bytes() + b"\0")
    else:
        part.write_bytes(_obj(folder_engine, 0, "data", b).read_bytes())
    (report,) = [r for e, r in folder_engine.verify() if e.id == a]
    assert not isinstance(report, CssmError)
    assert not report.checks[0].ok and all(c.ok for c in report.checks[1:])


# ---------------------------------------------------------------- repair


def test_repair_rebuilds_parts_and_shares_that_restore_on_their_own(
        folder_engine: Engine, tmp_path: Path) -> None:
    data = os.urandom(7 * 3 * B + 123)
    fid = _put(folder_engine, tmp_path / "f.bin", data)
    shutil.rmtree(_dir(folder_engine, 3))                      # a store lost entirely
    _obj(folder_engine, 4, "meta", fid).unlink()               # a lost metadata object
    part = _obj(folder_engine, 4, "data", fid)                 # and a rotten parity part
    raw = bytearray(part.read_bytes())
    raw[100] ^= 0xFF
    part.write_bytes(bytes(raw))
    _dir(folder_engine, 3).mkdir()                             # replaced by an empty disk
    engine = _fresh(folder_engine)
    adopted, results = engine.repair()
    assert adopted == ["store4"]
    ((_, result),) = results
    assert not isinstance(result, CssmError)
    assert set(result.rebuilt) == {"store4", "store5"} and result.after.healthy
    assert engine.resolve(fid).health == SAFE
    # The rebuilt parts and shares must stand on their own: lose two originals.
    for i in (1, 2):
        shutil.rmtree(_dir(folder_engine, i))
    engine = _fresh(folder_engine)
    assert engine.get(engine.resolve(fid), tmp_path / "out").read_bytes() == data


def test_repaired_stores_restore_without_the_originals(folder_engine: Engine,
                                                       tmp_path: Path) -> None:
    data = os.urandom(5 * 3 * B + 7)
    fid = _put(folder_engine, tmp_path / "f.bin", data)
    for i in (3, 4):
        shutil.rmtree(_dir(folder_engine, i))
        _dir(folder_engine, i).mkdir()
    engine = _fresh(folder_engine)
    adopted, _ = engine.repair()
    assert adopted == ["store4", "store5"]
    for i in (0, 1):  # now only one original data part and the two rebuilt ones remain
        shutil.rmtree(_dir(folder_engine, i))
    engine = _fresh(folder_engine)
    assert engine.get(engine.resolve(fid), tmp_path / "out").read_bytes() == data


def test_repair_refuses_with_fewer_than_k_good_parts(folder_engine: Engine,
                                                     tmp_path: Path) -> None:
    fid = _put(folder_engine, tmp_path / "f.bin", os.urandom(3 * B))
    for i in (0, 1, 2):
        _obj(folder_engine, i, "data", fid).unlink()
    before = {i: _obj(folder_engine, i, "data", fid).read_bytes() for i in (3, 4)}
    _, ((_, result),) = folder_engine.repair()
    assert isinstance(result, NotEnoughStores) and "cannot repair" in str(result)
    assert {i: _obj(folder_engine, i, "data", fid).read_bytes() for i in (3, 4)} == before


# ---------------------------------------------------------------- gc


def _orphan_upload(engine: Engine, tmp_path: Path, stores_with_meta: tuple[int, ...]) -> str:
    """What a crash after the data parts (and some metadata) leaves behind."""
    fid = _put(engine, tmp_path / "orphan.bin", os.urandom(2 * 3 * B))
    for i in range(5):
        if i not in stores_with_meta:
            _obj(engine, i, "meta", fid).unlink()
    engine.catalog.remove(engine.vault().id_hex, fid)
    return fid


@pytest.mark.parametrize("with_meta", [(), (0,), (0, 3)])
def test_gc_removes_what_can_never_be_restored(folder_engine: Engine, tmp_path: Path,
                                               with_meta: tuple[int, ...]) -> None:
    keep = _put(folder_engine, tmp_path / "keep.bin", os.urandom(3 * B))
    orphan = _orphan_upload(folder_engine, tmp_path, with_meta)
    temp = _dir(folder_engine, 1) / folder_engine.vault().id_hex / "data" / ".tmp-dead-x"
    temp.write_bytes(b"half an upload")
    young = folder_engine.gc(grace_seconds=3600)
    # Everything is listed, with its age, and nothing removed: it may still be running.
    assert young.found == [] and len(young.young) == 5 + len(with_meta) + 1
    assert all(0 <= g.age < 60 for g in young.young)
    assert sum(g.reason == "interrupted upload" for g in young.young) == 1
    dry = folder_engine.gc(grace_seconds=0, dry_run=True)
    assert len(dry.found) == 5 + len(with_meta) + 1
    assert _obj(folder_engine, 0, "data", orphan).exists()
    report = folder_engine.gc(grace_seconds=0)
    assert report.removed == len(dry.found) and not report.failed
    assert not list((tmp_path / "stores").rglob(orphan)) and not temp.exists()
    engine = _fresh(folder_engine)
    assert engine.get(engine.resolve(keep), tmp_path / "k").read_bytes() == \
        (tmp_path / "keep.bin").read_bytes()


def test_gc_keeps_restorable_files_and_counts_unreachable_stores(folder_engine: Engine,
                                                                 tmp_path: Path) -> None:
    restorable = _orphan_upload(folder_engine, tmp_path, (0, 1, 2))   # meta on k stores
    report = folder_engine.gc(grace_seconds=0)
    assert report.found == [] and report.incomplete == [restorable]
    doubtful = _orphan_upload(folder_engine, tmp_path, (0, 1))        # 2 + 1 unreachable
    shutil.move(_dir(folder_engine, 4), tmp_path / "away")
    engine = Engine(folder_engine.config, catalog_path=folder_engine.catalog.path)
    engine.unlock(PASSWORD)
    assert engine.gc(grace_seconds=0).found == []
    assert _obj(folder_engine, 0, "data", doubtful).exists()


def test_rm_with_a_store_down_then_gc_finishes(folder_engine: Engine, tmp_path: Path) -> None:
    fid = _put(folder_engine, tmp_path / "f", os.urandom(100))
    shutil.move(_dir(folder_engine, 2), tmp_path / "offline")
    engine = Engine(folder_engine.config, catalog_path=folder_engine.catalog.path)
    left = engine.remove(fid)
    assert list(left) == ["store3"]
    shutil.move(tmp_path / "offline", _dir(folder_engine, 2))
    back = Engine(folder_engine.config, catalog_path=folder_engine.catalog.path)
    back.unlock(PASSWORD)
    report = back.gc(grace_seconds=0)
    assert {g.store for g in report.found} == {"store3"} and report.removed == 2
    assert not list((tmp_path / "stores").rglob(fid))


def test_gc_aborts_stale_multipart_uploads(moto_server: S3Server, tmp_path: Path) -> None:
    cfg = _s3_config(moto_server, n=2, k=1)
    engine = Engine(cfg, catalog_path=tmp_path / "c.sqlite")
    engine.init(PASSWORD, kdf=FAST_KDF)
    client = moto_server.client()
    bucket = cfg.stores[0].bucket
    key = f"{engine.vault().id_hex}/data/{'ab' * 16}"
    client.create_multipart_upload(Bucket=bucket, Key=key)
    report = engine.gc(grace_seconds=0)
    assert [(g.store, g.reason) for g in report.found] == [("s3-1", "interrupted upload")]
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


# ---------------------------------------------------------------- lying stores


def test_replayed_metadata_of_another_file_is_rejected(folder_engine: Engine,
                                                       tmp_path: Path) -> None:
    a = _put(folder_engine, tmp_path / "a", b"A" * 5000)
    b = _put(folder_engine, tmp_path / "b", b"B" * 5000)
    for i in (0, 1):  # two stores serve a's metadata under b's name
        shutil.copy(_obj(folder_engine, i, "meta", a), _obj(folder_engine, i, "meta", b))
    out = folder_engine.get(folder_engine.resolve(b), tmp_path / "out")
    assert out.read_bytes() == b"B" * 5000
    entry = folder_engine.resolve(b)
    assert entry.damaged == "store1,store2"


def test_replayed_deleted_file_fails_clearly(folder_engine: Engine, tmp_path: Path) -> None:
    fid = _put(folder_engine, tmp_path / "gone", os.urandom(5000))
    saved = {i: _obj(folder_engine, i, "meta", fid).read_bytes() for i in range(5)}
    folder_engine.remove(fid)
    for i, blob in saved.items():  # stores bring back the old metadata, not the data
        _obj(folder_engine, i, "meta", fid).write_bytes(blob)
    engine = _fresh(folder_engine)
    count, _ = engine.rebuild_catalog()
    assert count == 1
    dest = tmp_path / "restore"
    dest.mkdir()
    with pytest.raises(NotEnoughStores, match="missing"):
        engine.get(engine.resolve(fid), dest)
    assert list(dest.iterdir()) == []


def test_named_temp_fallback_also_leaves_nothing(folder_engine: Engine, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Where O_TMPFILE is unavailable a hidden temp file is used, and removed on failure."""
    monkeypatch.setattr(durable, "_unnamed_file", lambda _folder: None)
    data = os.urandom(4 * 3 * B)
    fid = _put(folder_engine, tmp_path / "f", data)
    dest = tmp_path / "restore"
    dest.mkdir()
    assert folder_engine.get(folder_engine.resolve(fid), dest / "ok").read_bytes() == data
    for i in (0, 1, 2):
        _obj(folder_engine, i, "data", fid).write_bytes(b"junk")
    with pytest.raises(NotEnoughStores):
        folder_engine.get(folder_engine.resolve(fid), dest / "bad")
    assert sorted(p.name for p in dest.iterdir()) == ["ok"]


# ---------------------------------------------------------------- every n-k combination on S3

TWO_OF_FIVE = [c for r in (1, 2) for c in itertools.combinations(range(5), r)]


def _quick_store(sc: StoreConfig, server: S3Server) -> S3Store:
    return S3Store(sc.name, sc.bucket or "", endpoint_url=sc.endpoint_url, region="us-east-1",
                   access_key_id=server.access_key, secret_access_key=server.secret_key,
                   max_attempts=2, connect_timeout=1, read_timeout=5)


@pytest.mark.parametrize("mode", ["emptied", "unreachable", "bucket gone"])
@pytest.mark.parametrize("lost", TWO_OF_FIVE, ids=lambda c: "+".join(str(i + 1) for i in c))
def test_any_n_minus_k_s3_stores_may_fail(moto_server: S3Server, tmp_path: Path, mode: str,
                                          lost: tuple[int, ...]) -> None:
    cfg = _s3_config(moto_server)
    engine = Engine(cfg, catalog_path=tmp_path / "c.sqlite",
                    stores=[_quick_store(s, moto_server) for s in cfg.stores])
    engine.init(PASSWORD, kdf=FAST_KDF)
    data = os.urandom(4 * 3 * B + 11)
    fid = _put(engine, tmp_path / "f.bin", data)
    client = moto_server.client()
    for i in lost:
        sc = cfg.stores[i]
        if mode == "unreachable":
            sc.endpoint_url = f"http://127.0.0.1:{free_port()}"
            continue
        for obj in client.list_objects_v2(Bucket=sc.bucket).get("Contents", []):
            client.delete_object(Bucket=sc.bucket, Key=obj["Key"])
        if mode == "bucket gone":
            client.delete_bucket(Bucket=sc.bucket)
    fresh = Engine(cfg, catalog_path=tmp_path / "c.sqlite",
                   stores=[_quick_store(s, moto_server) for s in cfg.stores])
    fresh.unlock(PASSWORD)
    out = fresh.get(fresh.resolve(fid), tmp_path / "out.bin")
    assert out.read_bytes() == data


# ---------------------------------------------------------------- a flaky network


@pytest.mark.parametrize("fault", ["drop", "stall", "cut"])
def test_uploads_and_restores_survive_a_flaky_network(moto_server: S3Server, tmp_path: Path,
                                                      fault: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    port = int(moto_server.endpoint.rsplit(":", 1)[1])
    every = 7 if fault == "stall" else 3  # a stall costs a whole read timeout
    with FaultProxy(port, lambda i: fault if i % every == 2 else "ok") as proxy:
        cfg = _s3_config(moto_server)
        for sc in cfg.stores:
            sc.endpoint_url = f"http://127.0.0.1:{proxy.port}"
        stores = [S3Store(sc.name, sc.bucket or "", endpoint_url=sc.endpoint_url,
                          region="us-east-1", access_key_id="k", secret_access_key="s",
                          max_attempts=5, connect_timeout=1, read_timeout=1)
                  for sc in cfg.stores]
        engine = Engine(cfg, catalog_path=tmp_path / "c.sqlite", stores=stores)
        engine.init(PASSWORD, kdf=FAST_KDF)
        data = os.urandom(20 * 3 * B)
        fid = _put(engine, tmp_path / "f.bin", data)
        out = engine.get(engine.resolve(fid), tmp_path / "out.bin")
        assert out.read_bytes() == data
        assert proxy.counts[fault] >= 2  # faults really happened, and were ridden out
    logged = [r.getMessage() for r in caplog.records if "attempt" in r.getMessage()
              or "resuming" in r.getMessage()]
    assert logged and all("store s3-" in m for m in logged)  # each handled fault is logged


def _drop_bucket(server: S3Server, bucket: str | None) -> None:
    client = server.client()
    for obj in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        client.delete_object(Bucket=bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=bucket)


def test_a_store_that_fails_during_a_put_is_left_and_the_file_is_at_risk(
        moto_server: S3Server, tmp_path: Path) -> None:
    """The bucket is gone after the vault opened: the put finds out while writing, goes on
    with the other four, says so (event and health), and writes nothing to the gone one."""
    cfg = _s3_config(moto_server)
    stores = [_quick_store(s, moto_server) for s in cfg.stores]
    engine = Engine(cfg, catalog_path=tmp_path / "c.sqlite", stores=stores)
    engine.init(PASSWORD, kdf=FAST_KDF)
    _drop_bucket(moto_server, cfg.stores[2].bucket)
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(300_000))
    events: list[object] = []
    (res,) = engine.put([src], listener=events.append)
    assert res.stored is not None and res.stored.missing == ("s3-3",)
    (left,) = [e for e in events if isinstance(e, StoreDamaged)]
    assert left.store == "s3-3" and "no such bucket" in left.reason and "at risk" in left.reason
    entry = engine.resolve("f.bin")
    assert entry.health == AT_RISK and entry.damaged == "s3-3"
    assert "s3-3" in engine.down()
    out = tmp_path / "out.bin"
    engine.get(entry, out)
    assert out.read_bytes() == src.read_bytes()


def test_stores_failing_past_the_rule_fail_the_put_naming_them(moto_server: S3Server,
                                                               tmp_path: Path) -> None:
    cfg = _s3_config(moto_server)
    stores = [_quick_store(s, moto_server) for s in cfg.stores]
    engine = Engine(cfg, catalog_path=tmp_path / "c.sqlite", stores=stores)
    engine.init(PASSWORD, kdf=FAST_KDF)
    _drop_bucket(moto_server, cfg.stores[2].bucket)
    _drop_bucket(moto_server, cfg.stores[4].bucket)
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(1000))
    (res,) = engine.put([src])
    assert res.stored is None and isinstance(res.error, NotEnoughStores)
    assert set(res.error.failures) == {"s3-3", "s3-5"}
    assert "no such bucket" in res.error.failures["s3-3"]
    assert "only 3 of the 4 stores needed" in str(res.error)
    client = moto_server.client()
    for sc in cfg.stores[:2] + cfg.stores[3:4]:  # nothing of the failed upload stays behind
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=sc.bucket).get("Contents", [])]
        assert keys == [f"{engine.vault().id_hex}/vault"], keys


def test_restore_resumes_a_body_cut_mid_object(moto_server: S3Server, tmp_path: Path) -> None:
    """botocore retries requests, not bodies: a read that breaks half-way must resume."""
    port = int(moto_server.endpoint.rsplit(":", 1)[1])
    cfg = _s3_config(moto_server, n=2, k=1)
    data = os.urandom(400_000)
    direct = [_quick_store(s, moto_server) for s in cfg.stores]
    engine = Engine(cfg, catalog_path=tmp_path / "c.sqlite", stores=direct)
    engine.init(PASSWORD, kdf=FAST_KDF)
    fid = _put(engine, tmp_path / "f.bin", data)
    with FaultProxy(port, lambda i: "cut" if i == 1 else "ok") as proxy:
        flaky = [S3Store(sc.name, sc.bucket or "", endpoint_url=f"http://127.0.0.1:{proxy.port}",
                         region="us-east-1", access_key_id="k", secret_access_key="s",
                         max_attempts=1) for sc in cfg.stores]
        store = flaky[0]
        key = data_key(bytes.fromhex(engine.vault().id_hex), bytes.fromhex(fid))
        with store.open_read(key) as reader:  # connection 1 breaks after 600 bytes
            got = b""
            while chunk := reader.read(65536):
                got += chunk
        assert got == direct[0].get_bytes(key, limit=1 << 20)
        assert proxy.counts["cut"] == 1


# ---------------------------------------------------------------- misc


def test_unknown_ids_and_names_are_clear(folder_engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no stored file matches"):
        folder_engine.resolve("nothing-like-this")
    from cssm_desktop.core.get import open_file

    with pytest.raises(CssmError, match="no file with id"):
        open_file(folder_engine.vault(), os.urandom(16))
    assert meta_key(b"\x01" * 16, b"\x02" * 16).endswith("/meta/" + "02" * 16)


def test_make_store_builds_each_type(tmp_path: Path, memory_keyring: object) -> None:
    folder = make_store(StoreConfig("f", "folder", path=str(tmp_path)))
    assert folder.describe() == f"folder {tmp_path}"
    with pytest.raises(CssmError, match="no secret key in the keyring"):
        make_store(StoreConfig("s", "s3", bucket="my-bucket", access_key_id="AKIA"))
    from cssm_desktop.config import set_secret

    set_secret("s", "the-secret")
    s3 = make_store(StoreConfig("s", "s3", bucket="my-bucket", access_key_id="AKIA",
                                endpoint_url="http://127.0.0.1:9", prefix="/p/"))
    assert s3.describe() == "s3://my-bucket/p at http://127.0.0.1:9"


# ---------------------------------------------------------------- a store that trickles


def test_a_store_that_trickles_is_left_behind_like_a_dead_one(moto_server: S3Server,
                                                              tmp_path: Path) -> None:
    """One store answers a byte every 5 s (under every read timeout): `cssm ls`, `get` and
    `verify` go on with the others within 3x their honest time, measured here, plus the
    fixed grace (they took minutes); the file restores exactly and the store is named as
    too slow."""
    import subprocess
    import sys
    import time

    from cssm_desktop.config import save_config
    from cssm_desktop.core.parallel import MIN_GRACE

    from . import faultproxy

    assert faultproxy.TRICKLE_SECONDS >= 5
    port = int(moto_server.endpoint.rsplit(":", 1)[1])
    honest_cfg = tmp_path / "honest.toml"
    cfg = _s3_config(moto_server)
    for sc in cfg.stores:   # the keys from the environment (a child has no test keyring)
        sc.access_key_id = None
    save_config(cfg, honest_cfg)
    env = {**os.environ, "CSSM_PASSWORD": PASSWORD, "AWS_ACCESS_KEY_ID": "testing-key",
           "AWS_SECRET_ACCESS_KEY": "testing-secret"}

    def cssm(config: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "cssm_desktop.cli", "--config",
                               str(config), *args], env=env, capture_output=True, text=True,
                              timeout=300)
        return time.monotonic() - started, done

    assert cssm(honest_cfg, "init")[1].returncode == 0
    source = tmp_path / "f.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 4321))
    _, put = cssm(honest_cfg, "put", str(source))
    assert put.returncode == 0, put.stderr
    fid = put.stdout.split()[0]
    commands = {"ls": ("ls",), "get": ("get", fid, "-o", "OUT"), "verify": ("verify", fid)}
    honest = {}
    for name, args in commands.items():
        out = tmp_path / f"honest-{name}.bin"
        took, done = cssm(honest_cfg, *(str(out) if a == "OUT" else a for a in args))
        assert done.returncode == 0, done.stderr
        honest[name] = took
    with FaultProxy(port, lambda i: "trickle") as proxy:
        from cssm_desktop.config import load_config

        cfg = load_config(honest_cfg)   # the same vault, its first store behind the proxy
        cfg.stores[0].endpoint_url = f"http://127.0.0.1:{proxy.port}"
        slow_cfg = tmp_path / "slow.toml"
        save_config(cfg, slow_cfg)
        for name, args in commands.items():
            out = tmp_path / f"slow-{name}.bin"
            took, done = cssm(slow_cfg, *(str(out) if a == "OUT" else a for a in args))
            # a fixed grace (MIN_GRACE) is waited before the slow store is left behind, a
            # few times at most per command: on a fast machine it alone is more than 3x an
            # honest `ls`; waiting for the trickle would take TRICKLE_SECONDS a byte
            limit = 3 * honest[name] + 4 * MIN_GRACE
            assert took <= limit, (name, took, honest[name], done.stderr)
            if name == "get":
                assert done.returncode == 0, done.stderr
                assert out.read_bytes() == source.read_bytes()
            if name == "verify":   # restorable, but not every store answered: not healthy
                assert done.returncode != 0 and "slowly" in done.stdout + done.stderr
        assert proxy.counts["trickle"] >= 3
