"""The engine on real S3 servers on 127.0.0.1: moto, and `rclone serve s3` (checks signatures)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from cssm_desktop.config import Config, StoreConfig, set_secret
from cssm_desktop.core.progress import Event, StoreDamaged
from cssm_desktop.engine import Engine
from cssm_desktop.errors import NotEnoughStores
from cssm_desktop.stores.s3 import MAX_PARTS, PART_SIZE, S3Store, part_size

from .conftest import FAST_KDF, PASSWORD, S3Server, free_port


def _s3_config(server: S3Server, n: int = 5, k: int = 3, prefix: str = "") -> Config:
    tag = secrets.token_hex(4)
    buckets = server.make_buckets(f"cssm-{tag}", n)
    stores = []
    for i, bucket in enumerate(buckets):
        name = f"s3-{i + 1}"
        stores.append(StoreConfig(name=name, type="s3", bucket=bucket,
                                  endpoint_url=server.endpoint, region="us-east-1",
                                  prefix=prefix or None, access_key_id=server.access_key))
        set_secret(name, server.secret_key)
    return Config(stores=stores, threshold=k)


@pytest.fixture(params=["moto", "rclone"])
def s3(request: pytest.FixtureRequest) -> S3Server:
    return request.getfixturevalue(f"{request.param}_server")


def _engine(cfg: Config, tmp_path: Path) -> Engine:
    engine = Engine(cfg, catalog_path=tmp_path / "catalog.sqlite")
    engine.init(PASSWORD, kdf=FAST_KDF)
    return engine


@pytest.mark.parametrize("size", [0, 1, 3 * 65536 + 1])
def test_round_trip(s3: S3Server, tmp_path: Path, size: int) -> None:
    engine = _engine(_s3_config(s3, prefix="backups/cssm"), tmp_path)
    src = tmp_path / "f.bin"
    data = os.urandom(size)
    src.write_bytes(data)
    (res,) = engine.put([src], block_size=65536)
    assert res.stored is not None, res.error
    out = engine.get(engine.resolve(res.stored.id_hex), tmp_path / "out.bin")
    assert out.read_bytes() == data


def test_multipart_upload_and_two_lost_buckets(s3: S3Server, tmp_path: Path) -> None:
    """Parts larger than one S3 part go up as multipart uploads; any two buckets may go."""
    cfg = _s3_config(s3)
    engine = _engine(cfg, tmp_path)
    src = tmp_path / "big.bin"
    data = os.urandom(3 * PART_SIZE + 12345)  # each data part is > one S3 part
    src.write_bytes(data)
    (res,) = engine.put([src])
    assert res.stored is not None, res.error
    client = s3.client()
    for store in (cfg.stores[0], cfg.stores[3]):  # a systematic and a parity part
        for obj in client.list_objects_v2(Bucket=store.bucket).get("Contents", []):
            client.delete_object(Bucket=store.bucket, Key=obj["Key"])
    fresh = Engine(cfg, catalog_path=tmp_path / "catalog.sqlite")
    fresh.unlock(PASSWORD)
    events: list[Event] = []
    out = fresh.get(fresh.resolve("big.bin"), tmp_path / "out.bin", listener=events.append)
    assert out.read_bytes() == data
    assert {e.store for e in events if isinstance(e, StoreDamaged)} == {"s3-1", "s3-4"}


def test_three_lost_buckets_is_a_clear_error(moto_server: S3Server, tmp_path: Path) -> None:
    cfg = _s3_config(moto_server)
    engine = _engine(cfg, tmp_path)
    src = tmp_path / "f.bin"
    src.write_bytes(b"payload" * 100)
    (res,) = engine.put([src])
    assert res.stored is not None
    cfg.stores[1].endpoint_url = f"http://127.0.0.1:{free_port()}"  # now unreachable
    cfg.stores[2].bucket = "no-such-bucket-here"
    cfg.stores[4].endpoint_url = f"http://127.0.0.1:{free_port()}"
    fresh = Engine(cfg, catalog_path=tmp_path / "catalog.sqlite")
    fresh.unlock(PASSWORD)
    with pytest.raises(NotEnoughStores, match="only 2 of the 3"):
        fresh.get(fresh.resolve("f.bin"), tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()


def _store(server: S3Server, **kw: object) -> S3Store:
    args: dict[str, object] = {"endpoint_url": server.endpoint, "region": "us-east-1",
                               "access_key_id": server.access_key,
                               "secret_access_key": server.secret_key, "max_attempts": 2,
                               "connect_timeout": 2, "read_timeout": 5}
    args.update(kw)
    bucket = str(args.pop("bucket"))
    return S3Store("probe", bucket, **args)  # type: ignore[arg-type]


def test_connection_test_ok(s3: S3Server) -> None:
    (bucket,) = s3.make_buckets(f"ok-{secrets.token_hex(3)}", 1)
    _store(s3, bucket=bucket).check()
    assert s3.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0  # probe removed


def test_connection_test_names_a_missing_bucket(s3: S3Server) -> None:
    with pytest.raises(Exception, match="no such bucket 'absent-bucket-x'"):
        _store(s3, bucket="absent-bucket-x").check()


def test_connection_test_names_bad_credentials(rclone_server: S3Server) -> None:
    (bucket,) = rclone_server.make_buckets(f"cred-{secrets.token_hex(3)}", 1)
    with pytest.raises(Exception, match="bad credentials"):
        _store(rclone_server, bucket=bucket, secret_access_key="wrong-secret").check()


def test_connection_test_names_an_unreachable_endpoint() -> None:
    server = S3Server(f"http://127.0.0.1:{free_port()}", "k", "s")
    with pytest.raises(Exception, match=r"cannot reach endpoint http://127\.0\.0\.1"):
        _store(server, bucket="some-bucket").check()


def test_missing_secret_in_keyring_is_explained(moto_server: S3Server, tmp_path: Path) -> None:
    cfg = _s3_config(moto_server, n=2, k=1)
    cfg.stores[1].name = "never-saved"
    engine = Engine(cfg, catalog_path=tmp_path / "c.sqlite")
    results = {name: err for name, _desc, err in engine.test_stores()}
    assert results["s3-1"] is None
    assert "no secret key in the keyring" in (results["never-saved"] or "")


def test_part_sizes_keep_small_buffers_and_allow_large_files() -> None:
    """5 MiB parts (n writers buffer one each) until S3's 10,000-part limit would bite."""
    assert part_size(1) == part_size(1000) == PART_SIZE == 5 * 1024 * 1024
    assert part_size(1001) == 2 * PART_SIZE
    assert part_size(MAX_PARTS) == 10 * PART_SIZE
    total = sum(part_size(i) for i in range(1, MAX_PARTS + 1))
    assert total > 250 * 1024**3  # one part object; the file is k times that


def test_too_many_parts_fails_clearly_and_leaves_nothing(
        s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cssm_desktop.stores import s3 as s3_module

    monkeypatch.setattr(s3_module, "MAX_PARTS", 2)  # S3's limit is 10,000: same path, smaller
    cfg = _s3_config(s3)
    engine = _engine(cfg, tmp_path)
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(3 * 3 * PART_SIZE))  # each part object needs 3 S3 parts
    (res,) = engine.put([src])
    assert res.stored is None
    assert res.error is not None and "too large for S3" in str(res.error)
    client = s3.client()
    for store in cfg.stores:
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=store.bucket).get("Contents", [])]
        assert all(k.endswith("/vault") for k in keys), keys
        uploads = client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
        assert uploads == []


def test_an_attempt_the_outage_wait_repeats_sends_the_whole_paced_body(
        moto_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """With an upload limit, bodies are paced file-like objects. An attempt cut off
    mid-send has read part of its body; the wait's next attempt must send it from its
    first byte (botocore takes a stream's length from where it stands: reused, the body
    sent only the rest, and the object was short)."""
    import os

    from cssm_desktop.core.progress import CancelToken, waiting_for_stores
    from cssm_desktop.errors import UNREACHABLE, StoreError
    from cssm_desktop.stores import ratelimit

    (bucket,) = moto_server.make_buckets(f"paced-{secrets.token_hex(3)}", 1)
    store = _store(moto_server, bucket=bucket)
    ratelimit.configure(512 * 1024 * 1024, None)   # paced, never limiting here
    data = os.urandom(3 * 1024 * 1024)              # one put_object, at commit
    real = store._call_once
    attempts: list[str] = []

    def first_cut_half_sent(op: str, kw: dict) -> object:
        attempts.append(op)
        if op == "put_object" and attempts.count(op) == 1:
            body = kw["Body"]
            if hasattr(body, "read"):
                body.read(len(data) // 2)   # what the cut connection had taken
            raise StoreError(store.name, "connection reset", UNREACHABLE)
        return real(op, kw)
    monkeypatch.setattr(store, "_call_once", first_cut_half_sent)
    token = CancelToken()
    token.sleep = lambda _s: False  # type: ignore[method-assign]
    with waiting_for_stores(lambda _e: None, token):
        store.put_bytes("obj", data)
    assert attempts.count("put_object") == 2
    assert moto_server.client().get_object(Bucket=bucket, Key="obj")["Body"].read() == data
