"""Hostile stores: each attack of docs/SECURITY.md's table, run as a store would run it.

Real folder stores and real S3 (moto), the real `cssm` command. A store "with the
password" is played by code that reads that store's own vault header, derives the
password key and unwraps the master key, exactly as its operator could; then it forges
whatever that knowledge lets it seal. The promise under test: up to k-1 stores learn
nothing even with the password, and up to n-k lying stores cannot destroy a file or lock
the user out.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cssm_desktop.config import Config, load_config
from cssm_desktop.core import erasure
from cssm_desktop.core.format import (
    META_MAGIC,
    FileHeader,
    MetaObject,
    VaultHeader,
    stripe_offset,
)
from cssm_desktop.core.keys import KdfParams, password_key
from cssm_desktop.core.layout import data_key, meta_key, vault_key
from cssm_desktop.engine import Engine
from cssm_desktop.errors import CssmError, IntegrityError, ObjectNotFound, StoreError
from cssm_desktop.stores.s3 import S3Store

from .conftest import PASSWORD, folder_stores, write_config
from .worlds import BLOCK, World, _file, _restores


@pytest.fixture(autouse=True)
def _each_file_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests look at one file's own objects in the stores: every file is stored
    alone here (small files in packs are tested in test_packs.py)."""
    monkeypatch.setattr("cssm_desktop.engine.SMALL_FILE", 0)


# ---------------------------------------------------------------- 1. share harvesting


def test_a_store_claiming_another_index_never_receives_its_share(world: World,
                                                                 tmp_path: Path) -> None:
    files = [_file(tmp_path, f"f{i}.bin", 70_000 * (i + 1)) for i in range(2)]
    ids = [world.put(f) for f in files]
    vmk, pk, header = world.steal(0)
    forged = VaultHeader.seal(vmk, pk, header.vault_id, header.n, header.k, 3, header.kdf,
                              header.salt)
    world.store(0).put_bytes(vault_key(world.vault_id), forged.to_bytes())
    world.take_down(3)
    before = world.objects(0)
    for _ in range(2):   # the attack needed two rounds to collect k shares
        code, _, err = world.cli("repair")
        # Store 4 is gone: no file can end whole, and repair says so.
        assert code != 0 and "still at risk" in err
    assert world.objects(0) == before   # not one byte written to the foreign store
    code, out, _ = world.cli("verify")
    assert code != 0 and world.name(0) in out
    assert out.splitlines()[1].split()[1] == "FOREIGN"   # store 1's column, by its state
    for fid, source in zip(ids, files, strict=True):
        _restores(world, fid, source, tmp_path)


def test_first_connection_binds_by_authenticated_headers_and_refuses_duplicates(
        world: World, tmp_path: Path) -> None:
    source = _file(tmp_path, "a.bin", 50_000)
    fid = world.put(source)
    # Store 2 copies store 3's (authentic) header: on a new machine neither is trusted.
    world.store(1).put_bytes(vault_key(world.vault_id),
                             world.store(2).get_bytes(vault_key(world.vault_id)))
    world.forget_binding()
    err = _restores(world, fid, source, tmp_path)
    assert world.name(1) in err and world.name(2) in err
    cfg = world.config
    assert cfg.vault == world.vault_id.hex()
    assert {s.name: s.index for s in cfg.stores} == {
        world.name(0): 0, world.name(1): None, world.name(2): None, world.name(3): 3,
        world.name(4): 4}


# ---------------------------------------------------------------- 2. gc


@pytest.mark.parametrize("forge", ["edited n = k = 16", "sealed k = 5 with the password"])
def test_gc_never_deletes_a_restorable_file(world: World, tmp_path: Path, forge: str) -> None:
    source = _file(tmp_path, "keep.bin", 90_000)
    fid = world.put(source)
    key = meta_key(world.vault_id, bytes.fromhex(fid))
    world.store(1).delete(key)                 # one store lacks the metadata
    if forge.startswith("edited"):             # another claims n = k = 16 in plain bytes
        raw = bytearray(world.store(2).get_bytes(key))
        raw[37:39] = bytes([16, 16])
        world.store(2).put_bytes(key, bytes(raw))
    else:                                      # or seals metadata that authenticates
        vmk, _, _ = world.steal(2)
        meta = MetaObject.parse(world.store(2).get_bytes(key))
        h = meta.header
        forged = MetaObject.seal(FileHeader(META_MAGIC, h.vault_id, h.file_id, h.n, 5,
                                            h.block_size, 2),
                                 vmk, os.urandom(32), meta.box_nonce, meta.sealed_box)
        world.store(2).put_bytes(key, forged.to_bytes())
    code, out, err = world.cli("gc", "--grace-hours", "0")
    assert code == 0, err
    assert "would remove" not in out and "removed 0 objects" in out
    for i in range(5):
        assert world.store(i).get_bytes(data_key(world.vault_id, bytes.fromhex(fid)))
    _restores(world, fid, source, tmp_path)


def test_gc_dry_run_lists_young_partial_uploads_with_their_age(world: World,
                                                               tmp_path: Path) -> None:
    fid = world.put(_file(tmp_path, "gone.bin", 10_000))
    for i in range(5):   # a crash after the data parts: no metadata anywhere
        world.store(i).delete(meta_key(world.vault_id, bytes.fromhex(fid)))
    code, out, _ = world.cli("gc", "--dry-run")
    assert code == 0
    lines = [line for line in out.splitlines() if fid in line]
    assert len(lines) == 5 and all(line.startswith("left alone") and " min old" in line
                                   for line in lines)
    code, out, _ = world.cli("gc", "--grace-hours", "0")
    assert code == 0 and "removed 5 objects" in out


# ---------------------------------------------------------------- 3. KDF downgrade


@pytest.mark.parametrize("with_password", [False, True])
def test_a_password_change_never_lowers_the_kdf_cost(world: World, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     with_password: bool) -> None:
    source = _file(tmp_path, "a.bin", 1000)
    fid = world.put(source)
    weak = KdfParams(memory_kib=8, iterations=1, lanes=1)
    header = world.header(0)
    if with_password:   # a weak header that authenticates
        vmk, _, _ = world.steal(0)
        salt = os.urandom(16)
        forged = VaultHeader.seal(vmk, password_key(PASSWORD, salt, weak), header.vault_id,
                                  header.n, header.k, 0, weak, salt)
    else:               # the same bytes edited: the header no longer authenticates
        forged = VaultHeader(header.vault_id, header.n, header.k, 0, weak, header.salt,
                             header.nonce, header.wrapped_vmk, header.version)
    world.store(0).put_bytes(vault_key(world.vault_id), forged.to_bytes())
    monkeypatch.setenv("CSSM_NEW_PASSWORD", "a new password")
    code, _, err = world.cli("passwd")
    assert code == 0, err
    kdfs = {world.header(i).kdf for i in range(5)}
    assert kdfs == {KdfParams()}
    monkeypatch.setenv("CSSM_PASSWORD", "a new password")
    _restores(world, fid, source, tmp_path)


# ---------------------------------------------------------------- 4. one store locks


def _other_vault_header(world: World, index: int) -> bytes:
    salt = os.urandom(16)
    kdf = KdfParams(memory_kib=1024, iterations=1, lanes=1)
    return VaultHeader.seal(os.urandom(32), password_key("x", salt, kdf), os.urandom(16), 5, 3,
                            index, kdf, salt).to_bytes()


LOCKS = ["extra vault", "duplicate index", "edited n and k", "another vault's header"]


@pytest.mark.parametrize("bound", [True, False], ids=["bound", "first-release config"])
@pytest.mark.parametrize("attack", LOCKS)
def test_one_store_cannot_lock_the_vault(world: World, tmp_path: Path, attack: str,
                                         bound: bool) -> None:
    source = _file(tmp_path, "a.bin", 300_000)
    fid = world.put(source)
    key = vault_key(world.vault_id)
    store = world.store(0)   # the first in the config: its header is the first one tried
    if attack == "extra vault":
        other = VaultHeader.parse(_other_vault_header(world, 0))
        store.put_bytes(vault_key(other.vault_id), other.to_bytes())
    elif attack == "duplicate index":
        store.put_bytes(key, world.store(2).get_bytes(key))
    elif attack == "edited n and k":
        raw = bytearray(store.get_bytes(key))
        raw[21:23] = bytes([4, 2])
        store.put_bytes(key, bytes(raw))
    else:
        store.put_bytes(key, _other_vault_header(world, 0))
    if not bound:
        world.forget_binding()
    err = _restores(world, fid, source, tmp_path)
    if attack != "extra vault":
        assert world.name(0) in err   # the bad store is named
    code, out, _ = world.cli("ls")
    assert code == 0 and "a.bin" in out


# ---------------------------------------------------------------- 5. KDF bomb


def _bomb(world: World, i: int) -> None:
    h = world.header(i)
    bomb = VaultHeader(h.vault_id, h.n, h.k, h.index,
                       KdfParams(memory_kib=4 * 1024 * 1024, iterations=64, lanes=1), h.salt,
                       h.nonce, h.wrapped_vmk, h.version)
    world.store(i).put_bytes(vault_key(world.vault_id), bomb.to_bytes())


@pytest.mark.parametrize("bound", [True, False], ids=["bound", "first-release config"])
def test_a_kdf_bomb_costs_nothing(world: World, tmp_path: Path, bound: bool) -> None:
    source = _file(tmp_path, "a.bin", 5000)
    fid = world.put(source)
    _bomb(world, 0)   # first in the config: the old code tried it first
    if not bound:
        world.forget_binding()
    started = time.monotonic()
    err = _restores(world, fid, source, tmp_path)
    assert time.monotonic() - started < 20
    assert world.name(0) in err


def test_every_header_a_bomb_is_a_clear_error(world: World, tmp_path: Path) -> None:
    fid = world.put(_file(tmp_path, "a.bin", 5000))
    for i in range(5):
        _bomb(world, i)
    started = time.monotonic()
    code, _, err = world.cli("get", fid, "-o", str(tmp_path / "out"))
    assert code == 1 and "beyond what this version accepts" in err
    assert err.count("\n") == 1 and time.monotonic() - started < 20
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- 6. per-block failover


def test_scattered_bad_blocks_restore_exactly_and_repair(world: World, tmp_path: Path) -> None:
    source = _file(tmp_path, "big.bin", 4 * 3 * BLOCK - 1000)   # four stripes
    fid = world.put(source)
    key = data_key(world.vault_id, bytes.fromhex(fid))
    for part in range(3):   # one bad block in each data part, each in another stripe
        raw = bytearray(world.store(part).get_bytes(key, limit=1 << 24))
        raw[stripe_offset(part, BLOCK) + 100] ^= 0x55
        world.store(part).put_bytes(key, bytes(raw))
    _restores(world, fid, source, tmp_path)
    code, out, _ = world.cli("verify")
    assert code == 1 and "0 lost" in out
    code, out, err = world.cli("repair")
    assert code == 0, err
    code, out, _ = world.cli("verify")
    assert code == 0 and "1 safe" in out


# ---------------------------------------------------------------- 7. garbage shares


@pytest.mark.parametrize("forge", ["garbage share", "header says k = 1"])
def test_a_garbage_share_does_not_stop_a_restore(world: World, tmp_path: Path,
                                                 forge: str) -> None:
    source = _file(tmp_path, "a.bin", 123_456)
    fid = world.put(source)
    key = meta_key(world.vault_id, bytes.fromhex(fid))
    vmk, _, _ = world.steal(0)
    meta = MetaObject.parse(world.store(0).get_bytes(key))
    header = meta.header
    if forge != "garbage share":
        header = FileHeader(META_MAGIC, header.vault_id, header.file_id, header.n, 1,
                            header.block_size, 0)
    world.store(0).put_bytes(key, MetaObject.seal(header, vmk, os.urandom(32), meta.box_nonce,
                                                  meta.sealed_box).to_bytes())
    err = _restores(world, fid, source, tmp_path)
    assert world.name(0) in err
    code, _, err = world.cli("repair")
    assert code == 0, err
    code, out, _ = world.cli("verify")
    assert code == 0, out


# ---------------------------------------------------------------- 8. hangs


def _cssm(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cssm_desktop.cli", "--config", str(config),
                           *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "CSSM_PASSWORD": PASSWORD}, check=False)


def _folder_vault(tmp_path: Path) -> Path:
    cfg = write_config(tmp_path / "cssm.toml",
                       Config(stores=folder_stores(tmp_path / "stores"), threshold=3))
    assert _cssm(cfg, "init").returncode == 0
    return cfg


def test_fifos_and_links_in_a_folder_store_cannot_hang_or_lead_out(tmp_path: Path) -> None:
    cfg = _folder_vault(tmp_path)
    source = _file(tmp_path, "a.bin", 1_100_000)   # stored alone, not in a pack
    done = _cssm(cfg, "put", str(source))
    fid = done.stdout.split()[0]
    vid = load_config(cfg).vault
    stores = tmp_path / "stores"
    meta = stores / "store1" / vid / "meta" / fid
    meta.unlink()
    os.mkfifo(meta)                                          # a FIFO for metadata
    header = stores / "store2" / vid / "vault"
    header.unlink()
    os.mkfifo(header)                                        # and for a vault header
    secret = tmp_path / "outside.bin"
    secret.write_bytes(b"not the store's")
    part = stores / "store3" / vid / "data" / fid
    part.unlink()
    part.symlink_to(secret)                                  # a link out of the store
    started = time.monotonic()
    got = _cssm(cfg, "get", fid, "-o", str(tmp_path / "out.bin"))
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "out.bin").read_bytes() == source.read_bytes()
    assert time.monotonic() - started < 30
    assert "not a regular file" in got.stderr and "store1" in got.stderr
    verify = _cssm(cfg, "verify")
    assert verify.returncode == 1 and "store3" in verify.stdout
    assert secret.read_bytes() == b"not the store's"


@pytest.mark.parametrize("folder", ["data", "meta"])
def test_gc_never_lists_or_deletes_through_a_link_out_of_a_folder_store(
        tmp_path: Path, folder: str) -> None:
    """A store's data/ (or meta/) replaced by a link to another folder, such as the parts
    of the user's second vault on a handed-over disk: gc must not delete there."""
    cfg = _folder_vault(tmp_path)
    source = _file(tmp_path, "a.bin", 1_100_000)
    fid = _cssm(cfg, "put", str(source)).stdout.split()[0]
    vid = load_config(cfg).vault
    elsewhere = tmp_path / "second-vault-parts"
    elsewhere.mkdir()
    theirs = elsewhere / ("ab" * 16)
    theirs.write_bytes(b"a part of another vault")
    os.utime(theirs, (0, 0))   # old enough for any grace period
    target = tmp_path / "stores" / "store1" / vid / folder
    shutil.rmtree(target)
    target.symlink_to(elsewhere, target_is_directory=True)
    done = _cssm(cfg, "gc", "--grace-hours", "0")
    assert "Traceback" not in done.stderr
    assert theirs.read_bytes() == b"a part of another vault"
    assert "leads out of the store" in done.stderr + done.stdout
    got = _cssm(cfg, "get", fid, "-o", str(tmp_path / "out.bin"))
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "out.bin").read_bytes() == source.read_bytes()


class _EndlessListing(BaseHTTPRequestHandler):
    """An S3 endpoint whose listings never end: always IsTruncated, and a marker that is
    new every time (or the same one, for the repeat check)."""

    repeat = False
    pages = 0

    def do_GET(self) -> None:
        type(self).pages += 1
        token = "same" if self.repeat else f"t{self.pages}"
        body = ("<?xml version='1.0' encoding='UTF-8'?>"
                "<ListBucketResult xmlns='http://s3.amazonaws.com/doc/2006-03-01/'>"
                "<Name>b</Name><Prefix></Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys>"
                f"<IsTruncated>true</IsTruncated><NextContinuationToken>{token}"
                "</NextContinuationToken></ListBucketResult>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def endless_s3() -> Iterator[tuple[str, type[_EndlessListing]]]:
    handler = type("Handler", (_EndlessListing,), {"pages": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("repeat", [True, False], ids=["repeated marker", "new markers"])
def test_an_s3_listing_that_never_ends_is_a_store_error(
        endless_s3: tuple[str, type[_EndlessListing]], repeat: bool) -> None:
    endpoint, handler = endless_s3
    handler.repeat = repeat
    from cssm_desktop.stores.s3 import MAX_THIN_PAGES

    store = S3Store("liar", "bucket", endpoint_url=endpoint, region="us-east-1",
                    access_key_id="k", secret_access_key="s", max_attempts=1)
    for listing in (lambda: list(store.list("x/")), lambda: store.children("")):
        with pytest.raises(StoreError, match=r"does not end|nearly empty pages"):
            listing()
    # Bounded by what the listing yields (nothing), not by a page count in the thousands.
    assert handler.pages <= 2 * (MAX_THIN_PAGES + 1)


# ---------------------------------------------------------------- 9. local plaintext


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_local_files_are_private_and_hold_no_names_or_hashes_beyond_the_list(
        tmp_path: Path, isolated_home: Path) -> None:
    name = "Steuererklärung-geheim.pdf"
    source = tmp_path / name
    source.write_bytes(os.urandom(20_000))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    # Each command in a process of its own, as a user runs it (its own log handler).
    config = _folder_vault(tmp_path)
    fid = _cssm(config, "put", str(source)).stdout.split()[0]
    assert _cssm(config, "get", fid, "-o", str(tmp_path / "back" / name)).returncode == 0
    missing = tmp_path / "no such folder" / "Secret plans.txt"
    unreadable = tmp_path / "Secret plans.txt"
    os.mkfifo(unreadable)
    for args in (("put", str(missing)), ("put", str(unreadable)),
                 ("get", fid, "-o", str(tmp_path / "back" / name))):   # refused: exists
        assert _cssm(config, *args).returncode == 1
    data = isolated_home / ".local/share/cssm-desktop"
    logs = isolated_home / ".local/state/cssm-desktop/log"
    assert _mode(data) == _mode(logs) == _mode(logs.parent) == 0o700
    files = [p for folder in (data, logs) for p in folder.rglob("*") if p.is_file()]
    assert files and all(_mode(p) == 0o600 for p in files), [(p, oct(_mode(p))) for p in files]
    assert _mode(config) == 0o600
    for path in files:
        blob = path.read_bytes()
        assert digest.encode() not in blob and bytes.fromhex(digest) not in blob, path
    log_text = b"".join(p.read_bytes() for p in logs.rglob("*") if p.is_file())
    assert b"failed" in log_text   # the failures were logged, without names or paths
    for secret in (name, "Secret plans", str(source), str(missing)):
        assert secret.encode() not in log_text, secret


# ---------------------------------------------------------------- 10. sizes


def test_sizes_leak_only_buckets(world: World, tmp_path: Path) -> None:
    a = world.put(_file(tmp_path, "a.txt", 5000))
    b = world.put(_file(tmp_path, "a-much-longer-name.txt", 5090))
    sizes = {}
    for fid in (a, b):
        fb = bytes.fromhex(fid)
        store = world.store(4)
        sizes[fid] = (len(store.get_bytes(meta_key(world.vault_id, fb))),
                      len(store.get_bytes(data_key(world.vault_id, fb))))
    assert sizes[a] == sizes[b]


# ---------------------------------------------------------------- 11. repair checks first


def test_repair_seals_nothing_before_the_rebuilt_file_hashes_right(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _file(tmp_path, "a.bin", 3 * BLOCK + 5)
    fid = world.put(source)
    key = data_key(world.vault_id, bytes.fromhex(fid))
    world.store(0).delete(key)          # repair must decode from parity
    real = erasure.decode

    def wrong(k, n, blocks, indexes):   # a coding disagreement
        out = [bytearray(b) for b in real(k, n, blocks, indexes)]
        out[0][0] ^= 1
        return out

    monkeypatch.setattr(erasure, "decode", wrong)
    engine = Engine(world.config)
    engine.unlock(PASSWORD)
    _, results = engine.repair()
    ((_, result),) = results
    assert isinstance(result, IntegrityError) and "do not match" in str(result)
    with pytest.raises(ObjectNotFound):
        world.store(0).get_bytes(key)
    if world.kind == "folder":
        leftovers = list(Path(world.config.stores[0].path or "").rglob(".tmp-*"))
        assert leftovers == []
    else:
        assert not list(world.store(0).incomplete_uploads(""))
    monkeypatch.setattr(erasure, "decode", real)
    engine = Engine(world.config)
    engine.unlock(PASSWORD)
    _, ((_, result),) = engine.repair()
    assert not isinstance(result, CssmError) and result.after.healthy
