"""A 3-of-5 vault made by the real `cssm init`, with raw access to each store as its
operator has it: the world of the hostile-store and insider tests (the `world` fixture is
registered in conftest.py)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from cssm_desktop.config import Config, load_config, save_config
from cssm_desktop.core.format import VaultHeader
from cssm_desktop.core.keys import password_key
from cssm_desktop.core.layout import vault_key
from cssm_desktop.stores.base import Store
from cssm_desktop.stores.factory import make_store

from .conftest import PASSWORD, S3Server, folder_stores, write_config
from .test_cli import Cli
from .test_s3 import _s3_config

BLOCK = 256 * 1024   # the CLI's block size


class World:
    """A 3-of-5 vault made by `cssm init`, and raw access to each store as its operator."""

    def __init__(self, cli: Cli, kind: str, moto: S3Server | None) -> None:
        self.cli, self.kind, self.moto = cli, kind, moto

    @property
    def config(self) -> Config:
        return load_config(self.cli.config)

    def store(self, i: int) -> Store:
        return make_store(self.config.stores[i])

    def name(self, i: int) -> str:
        return self.config.stores[i].name

    @property
    def vault_id(self) -> bytes:
        vid = self.config.vault
        assert vid is not None, "init records the vault id in the config"
        return bytes.fromhex(vid)

    def header(self, i: int) -> VaultHeader:
        return VaultHeader.parse(self.store(i).get_bytes(vault_key(self.vault_id)))

    def steal(self, i: int) -> tuple[bytes, bytes, VaultHeader]:
        """What store i's operator gets from its own header and the password."""
        header = self.header(i)
        pk = password_key(PASSWORD, header.salt, header.kdf)
        return header.open_with_key(pk), pk, header

    def put(self, path: Path) -> str:
        code, out, err = self.cli("put", str(path))
        assert code == 0, err
        return out.split()[0]

    def objects(self, i: int) -> dict[str, bytes]:
        store = self.store(i)
        return {o.key: store.get_bytes(o.key) for o in store.list(self.vault_id.hex() + "/")}

    def take_down(self, i: int) -> None:
        """The store is gone: a folder unplugged, a bucket deleted."""
        sc = self.config.stores[i]
        if self.kind == "folder":
            shutil.move(sc.path or "", f"{sc.path}-away")
            return
        assert self.moto is not None
        client = self.moto.client()
        for obj in client.list_objects_v2(Bucket=sc.bucket).get("Contents", []):
            client.delete_object(Bucket=sc.bucket, Key=obj["Key"])
        client.delete_bucket(Bucket=sc.bucket)

    def forget_binding(self) -> None:
        """A config as the first release wrote it: no vault id, no indexes, no n and k."""
        cfg = self.config
        cfg.vault = cfg.vault_n = cfg.vault_k = None
        for sc in cfg.stores:
            sc.index = None
        save_config(cfg, self.cli.config)


@pytest.fixture(params=["folder", "s3"])
def world(request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str],
          monkeypatch: pytest.MonkeyPatch) -> World:
    moto = None
    if request.param == "folder":
        cfg = Config(stores=folder_stores(tmp_path / "stores"), threshold=3)
    else:
        moto = request.getfixturevalue("moto_server")
        cfg = _s3_config(moto)
    path = write_config(tmp_path / "cssm.toml", cfg)
    monkeypatch.setenv("CSSM_PASSWORD", PASSWORD)
    cli = Cli(capsys, monkeypatch, path)
    code, _, err = cli("init")
    assert code == 0, err
    return World(cli, request.param, moto)


def _file(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def _restores(world: World, fid: str, source: Path, tmp_path: Path) -> str:
    """`cssm get` gives the exact bytes; returns what it said on stderr."""
    out = tmp_path / f"restored-{fid[:8]}-{time.monotonic_ns()}"
    code, _, err = world.cli("get", fid, "-o", str(out))
    assert code == 0, err
    assert out.read_bytes() == source.read_bytes()
    return err


