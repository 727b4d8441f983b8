"""Several buckets at one S3 provider: the endpoint, region and keys typed once, a store
for each bucket, the buckets made where the keys allow it, each one tested.

The faces (Settings' provider step, and later the CLI) call this; none re-implements it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from ..config import StoreConfig
from ..errors import ConfigError, StoreError
from .factory import make_store


@dataclass(frozen=True)
class Provider:
    endpoint_url: str | None
    region: str | None
    access_key_id: str | None
    profile: str | None = None


# Shown as examples beside the endpoint field: the user's provider tells the real one.
ENDPOINTS = {
    "Amazon S3": "",
    "Backblaze B2": "https://s3.<region>.backblazeb2.com",
    "Wasabi": "https://s3.<region>.wasabisys.com",
    "Cloudflare R2": "https://<account id>.r2.cloudflarestorage.com",
    "MinIO or other S3-compatible": "https://minio.example.org:9000",
}


def suggested_buckets(count: int = 5) -> list[str]:
    """Names for new buckets: unique enough on a provider where every name is global."""
    tag = secrets.token_hex(3)
    return [f"cssm-{tag}-{i}" for i in range(1, count + 1)]


def parse_buckets(text: str) -> list[str]:
    """Bucket names as typed: one a line, or separated by commas or spaces; each once."""
    names: list[str] = []
    for name in re.split(r"[\s,]+", text.strip()):
        if name and name not in names:
            names.append(name)
    return names


def stores_for(provider: Provider, buckets: list[str], taken: set[str]) -> list[StoreConfig]:
    """A store a bucket, named after it (made unique against `taken`), all with the
    provider's endpoint, region and key id. Checked as Settings' Save checks them."""
    out = []
    names = set(taken)
    for bucket in buckets:
        name = bucket[:64]
        i = 2
        while name in names:
            name = f"{bucket[:60]}-{i}"
            i += 1
        names.add(name)
        store = StoreConfig(name=name, type="s3", bucket=bucket,
                            endpoint_url=provider.endpoint_url or None,
                            region=provider.region or None,
                            access_key_id=provider.access_key_id or None,
                            profile=provider.profile or None)
        store.validate()
        out.append(store)
    if not out:
        raise ConfigError("enter the names of your buckets, one a line")
    return out


Outcome = Callable[[str, str | None], None]   # bucket, None (ready) or why not


def prepare(stores: list[StoreConfig], secret: str | None, make: bool,
            told: Outcome | None = None) -> dict[str, str]:
    """Make each bucket (with `make`; one that exists and is ours is fine) and test it
    as Settings' Test does (write, read back, delete a probe). Bucket -> why it is not
    ready; empty when all are. `told` hears each bucket as it is done."""
    failed: dict[str, str] = {}
    for store in stores:
        assert store.bucket is not None
        try:
            s3 = make_store(store, secret=secret if store.access_key_id else None, quick=True)
            if make:
                s3.make_bucket(store.region)   # type: ignore[attr-defined]
            s3.check()
        except StoreError as exc:
            failed[store.bucket] = exc.reason
        if told is not None:
            told(store.bucket, failed.get(store.bucket))
    return failed
