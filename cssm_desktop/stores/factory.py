"""The one place a configured store becomes a Store object (the engine and Settings' Test
connection both build them here)."""

from __future__ import annotations

from pathlib import Path

from ..config import StoreConfig, get_secret
from .base import Store


def make_store(cfg: StoreConfig, *, secret: str | None = None, quick: bool = False,
               folder: Path | None = None, outage_wait: float | None = None) -> Store:
    """`secret`: one typed but not saved yet (else the keyring's). `quick`: few retries
    and short timeouts, for a connection test a person waits for. `folder`: the folder
    store's path as Config.folder() resolves it. `outage_wait`: how long a put waits for
    the store when it stops answering (stores/outage.py)."""
    if cfg.type == "folder":
        from .folder import FolderStore

        assert cfg.path is not None
        return FolderStore(cfg.name, folder or cfg.path)
    from .s3 import S3Store

    assert cfg.bucket is not None
    if cfg.access_key_id and secret is None:
        secret = get_secret(cfg.name)
    # A person waits for a connection test: no retry (botocore's max_attempts counts
    # retries), an answer within 10 s.
    timeouts: dict[str, float] = {"max_attempts": 0, "connect_timeout": 5,
                                  "read_timeout": 10} if quick else {}
    if outage_wait is not None:
        timeouts["outage_wait"] = outage_wait
    return S3Store(cfg.name, cfg.bucket, endpoint_url=cfg.endpoint_url, region=cfg.region,
                   prefix=cfg.prefix or "", access_key_id=cfg.access_key_id,
                   secret_access_key=secret if cfg.access_key_id else None,
                   profile=cfg.profile, **timeouts)
