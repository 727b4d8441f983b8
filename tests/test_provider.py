"""Several buckets at one S3 provider (stores/provider.py): keys typed once, buckets made
where the keys allow it, each tested; on two real S3 servers."""

from __future__ import annotations

import pytest

from cssm_desktop.errors import ConfigError
from cssm_desktop.stores.provider import (
    Provider,
    parse_buckets,
    prepare,
    stores_for,
    suggested_buckets,
)

from .conftest import S3Server


def test_bucket_names_as_typed_and_stores_named_after_them() -> None:
    assert parse_buckets(" a-1\nb-2, c-3  a-1\n\n") == ["a-1", "b-2", "c-3"]
    names = suggested_buckets()
    assert len(names) == 5 and len(set(names)) == 5 and all(n.startswith("cssm-") for n in names)
    assert suggested_buckets()[0] != names[0]   # another user, another name
    stores = stores_for(Provider("http://127.0.0.1:9", "eu-1", "KEY"), ["b-1", "b-2"], {"b-1"})
    assert [s.name for s in stores] == ["b-1-2", "b-2"]
    assert {(s.endpoint_url, s.region, s.access_key_id, s.type) for s in stores} == {
        ("http://127.0.0.1:9", "eu-1", "KEY", "s3")}
    with pytest.raises(ConfigError, match="not a valid bucket name"):
        stores_for(Provider(None, None, "KEY"), ["Bad_Name"], set())
    with pytest.raises(ConfigError, match="enter the names"):
        stores_for(Provider(None, None, "KEY"), [], set())


@pytest.mark.parametrize("server", ["moto_server", "rclone_server"])
def test_buckets_are_made_once_and_tested_with_the_keys_typed_once(
        request: pytest.FixtureRequest, server: str) -> None:
    s3: S3Server = request.getfixturevalue(server)
    tag = server.split("_")[0]
    wanted = [f"prov-{tag}-{i}" for i in range(1, 6)]
    stores = stores_for(Provider(s3.endpoint, "us-east-1", s3.access_key), wanted, set())
    heard: list[tuple[str, str | None]] = []
    assert prepare(stores, s3.secret_key, make=True,
                   told=lambda b, why: heard.append((b, why))) == {}
    assert heard == [(b, None) for b in wanted]
    made = {b["Name"] for b in s3.client().list_buckets()["Buckets"]}
    assert set(wanted) <= made
    # Again: buckets that exist and are ours are fine; nothing is left in them.
    assert prepare(stores, s3.secret_key, make=True) == {}
    assert all(s3.client().list_objects_v2(Bucket=b).get("KeyCount", 0) == 0 for b in wanted)
    # Without making them, a missing bucket says so; a wrong secret says that.
    missing = stores_for(Provider(s3.endpoint, "us-east-1", s3.access_key),
                         [f"prov-{tag}-none"], set())
    assert "no such bucket" in prepare(missing, s3.secret_key, make=False)[missing[0].bucket]
    if server != "rclone_server":   # moto takes any signature
        return
    failed = prepare(stores[:2], "not-the-secret", make=True)
    assert set(failed) == set(wanted[:2])
    assert all("credentials" in why or "signature" in why.lower() for why in failed.values()), \
        failed
