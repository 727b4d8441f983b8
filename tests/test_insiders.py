"""Insiders: up to k-1 stores whose operators know the password (SECURITY.md, "Insiders").

Each attack is played as such an operator could: it reads its own vault header, derives
the password key, unwraps the master key and seals whatever that lets it seal, on its own
store only. Real folder stores and real S3 (moto), the real `cssm` command.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cssm_desktop.config import Config, save_config
from cssm_desktop.core.format import FileHeader, VaultHeader
from cssm_desktop.core.layout import data_key, meta_key, vault_key
from cssm_desktop.engine import Engine

from .conftest import FAST_KDF, PASSWORD, folder_stores
from .worlds import World, _file, _restores


@pytest.fixture(autouse=True)
def _each_file_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests look at one file's own objects in the stores."""
    monkeypatch.setattr("cssm_desktop.engine.SMALL_FILE", 0)


def reseal_header(world: World, i: int, n: int, k: int, version: int | None = None) -> None:
    """Store i's operator seals its own header anew with any n and k: it authenticates."""
    vmk, pk, h = world.steal(i)
    forged = VaultHeader.seal(vmk, pk, h.vault_id, n, k, h.index, h.kdf, h.salt,
                              version or h.version)
    world.store(i).put_bytes(vault_key(world.vault_id), forged.to_bytes())


def file_headers(world: World, fid: str) -> list[FileHeader | None]:
    """Each store's metadata header for a file (None where it has none)."""
    from cssm_desktop.core.format import MetaObject
    from cssm_desktop.errors import ObjectNotFound

    out: list[FileHeader | None] = []
    for i in range(5):
        try:
            raw = world.store(i).get_bytes(meta_key(world.vault_id, bytes.fromhex(fid)))
        except ObjectNotFound:
            out.append(None)
            continue
        out.append(MetaObject.parse(raw).header)
    return out


def forget_shape(world: World) -> None:
    """A config of an earlier version: the binding of indexes, but no n and k."""
    cfg = world.config
    cfg.vault_n = cfg.vault_k = None
    save_config(cfg, world.cli.config)


# ---------------------------------------------------------------- n and k


def test_init_records_n_and_k_in_the_config(world: World) -> None:
    cfg = world.config
    assert (cfg.vault_n, cfg.vault_k) == (5, 3)
    assert "vault_n = 5" in world.cli.config.read_text()


@pytest.mark.parametrize("claim", [(5, 1), (2, 1)], ids=["k=1", "n=2,k=1"])
@pytest.mark.parametrize("config", ["bound", "no recorded shape"])
def test_insiders_resealing_their_headers_change_n_and_k_nowhere(
        world: World, tmp_path: Path, claim: tuple[int, int], config: str) -> None:
    before = _file(tmp_path, "before.bin", 120_000)
    old = world.put(before)
    for i in (0, 1):   # k-1 = 2 insiders, first in the config: their headers are tried first
        reseal_header(world, i, *claim)
    if config == "no recorded shape":
        forget_shape(world)
    code, out, err = world.cli("ls")
    assert code == 0, err
    assert "before.bin" in out
    if config == "bound":   # known before any unlock: two stores are not usable
        assert "at risk" in out
    new_source = _file(tmp_path, "after.bin", 90_000)
    if config == "bound":
        # The insiders are named as damaged, the others are fine; not "5 reachable".
        code, out, err = world.cli("stores", "status")
        assert code != 0
        states = {line.split()[0]: line.split()[2] for line in out.splitlines()[1:]}
        assert states == {world.name(0): "DAMAGED", world.name(1): "DAMAGED",
                          world.name(2): "ok", world.name(3): "ok", world.name(4): "ok"}
    # Three usable stores are fewer than a put needs (4): it says so, and stores nothing
    # at k = 1 on the insiders.
    code, _, err = world.cli("put", str(new_source))
    assert code != 0 and world.name(0) in err and "3 of 5" in err
    assert all(len(list(world.store(i).list(f"{world.vault_id.hex()}/meta/"))) == 1
               for i in range(5))   # only the first file's metadata
    # Repair writes the vault's own shape back to the insiders' stores, never theirs to
    # the others; the config keeps 3 of 5.
    code, _, err = world.cli("repair")
    for i in range(5):
        h = world.header(i)
        assert (h.n, h.k, h.index) == (5, 3, i)
    assert (world.config.vault_n, world.config.vault_k) == (5, 3)
    # A new file is stored 3 of 5, a share to every store: no store reads it alone.
    new = world.put(new_source)
    assert [(h.n, h.k) if h else None for h in file_headers(world, new)] == [(5, 3)] * 5
    _restores(world, old, before, tmp_path)
    _restores(world, new, new_source, tmp_path)


def test_a_header_resealed_as_version_1_does_not_set_what_repair_writes(
        world: World, tmp_path: Path) -> None:
    reseal_header(world, 0, 5, 3, version=1)
    world.cli("repair")
    assert all(world.header(i).version == 2 for i in range(5))


def test_on_a_new_machine_too_few_agreeing_stores_are_not_believed(
        world: World, tmp_path: Path) -> None:
    """Two insiders claim n = 2, k = 1 while the three honest stores are away: nothing is
    settled on their word; the user is told what each claims and how to decide."""
    source = _file(tmp_path, "a.bin", 50_000)
    world.put(source)
    for i in (0, 1):
        reseal_header(world, i, 2, 1)
    world.forget_binding()
    for i in (2, 3, 4):
        world.take_down(i)
    code, _, err = world.cli("catalog", "rebuild")   # what a new machine does first
    assert code != 0
    assert "1 of 2" in err and "vault_n" in err and len(err.strip().splitlines()) == 1
    assert world.config.vault_n is None   # nothing recorded


def test_on_a_new_machine_the_majority_shape_wins_and_the_insider_is_named(
        world: World, tmp_path: Path) -> None:
    source = _file(tmp_path, "a.bin", 50_000)
    fid = world.put(source)
    reseal_header(world, 0, 5, 1)
    world.forget_binding()
    err = _restores(world, fid, source, tmp_path)
    assert world.name(0) in err
    assert (world.config.vault_n, world.config.vault_k) == (5, 3)


def test_a_shape_written_by_the_user_decides(world: World, tmp_path: Path) -> None:
    source = _file(tmp_path, "a.bin", 50_000)
    fid = world.put(source)
    for i in (0, 1):
        reseal_header(world, i, 2, 1)
    world.forget_binding()   # a new machine: the user writes down only n and k
    cfg = world.config
    cfg.vault_n, cfg.vault_k = 5, 3
    save_config(cfg, world.cli.config)
    err = _restores(world, fid, source, tmp_path)
    assert world.name(0) in err and world.name(1) in err


# ---------------------------------------------------------------- files of another shape


def inject_k1_file(world: World, tmp_path: Path, name: str, data: bytes) -> str:
    """Store 0's operator stores a file of its own at k = 1: its one share is the file's
    key, so the file opens from that store alone. (Made by our own put with k = 1, then
    everything but store 0's objects taken away: the objects are what the operator,
    who knows the password, could write.)"""
    from cssm_desktop.core.put import put_file
    from cssm_desktop.engine import Engine

    src = tmp_path / "injected"
    src.write_bytes(data)
    engine = Engine(world.config, catalog_path=tmp_path / "insider-catalog.sqlite")
    engine.unlock(PASSWORD)
    stored = put_file(engine.vault(), src, name, k=1)
    for i in range(1, 5):
        for key in (meta_key(world.vault_id, stored.file_id),
                    data_key(world.vault_id, stored.file_id)):
            world.store(i).delete(key)
    return stored.id_hex


def test_a_file_injected_at_k_1_is_foreign_never_restored_or_repaired(
        world: World, tmp_path: Path) -> None:
    mine = tmp_path / "docs" / "report.pdf"
    mine.parent.mkdir()
    mine.write_bytes(b"the user's own report " * 3000)
    code, _, err = world.cli("put", str(mine.parent))
    assert code == 0, err
    fid = inject_k1_file(world, tmp_path, "docs/report.pdf", b"the insider's version" * 3000)
    # A new machine: the file list comes from the stores.
    code, out, err = world.cli("catalog", "rebuild")
    assert code == 0, err
    assert f"file {fid[:12]}" in err and "foreign" in err and world.name(0) in err
    assert "1 of 5" in err and "catalog rebuilt: 1 files" in out
    code, out, _ = world.cli("ls")
    assert code == 0 and out.count("report.pdf") == 1 and fid[:12] not in out
    restored = tmp_path / "out"
    code, _, err = world.cli("get", "docs", "-o", str(restored))
    assert code == 0, err
    assert (restored / "docs" / "report.pdf").read_bytes() == mine.read_bytes()
    # Asked for by id: a clear error, nothing written.
    code, _, err = world.cli("get", fid, "-o", str(tmp_path / "by-id"))
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "by-id").exists()
    # Repair never copies it to another store.
    world.cli("repair")
    for i in range(1, 5):
        keys = {o.key for o in world.store(i).list(world.vault_id.hex() + "/")}
        assert not any(fid in key for key in keys)


# ---------------------------------------------------------------- local hygiene


def test_a_stores_own_words_reach_the_terminal_and_log_as_one_escaped_line() -> None:
    from cssm_desktop.errors import StoreError

    err = StoreError("s3", "Access Denied\n2026-12-02 INFO forged: all good\x1b[2J")
    assert "\n" not in str(err) and "\x1b" not in str(err)
    assert "\\n2026-12-02 INFO forged" in err.reason


def test_a_handed_over_key_checks_every_header_as_a_password_does(world: World,
                                                                  tmp_path: Path) -> None:
    """Settings saved in the window hand the password key to the engine built from them
    (the vault stays unlocked): that unlock checks each header as unlock does, never opens
    another vault, and a locked engine holds no key."""
    from cssm_desktop.core.status import StoreState

    first = Engine(world.config, tmp_path / "a.sqlite")
    first.unlock(PASSWORD)
    held = first.held_key()
    assert held is not None and "pk" not in repr(held) and held.pk not in repr(held).encode()
    reseal_header(world, 1, 5, 1)   # an insider, after the key was handed over
    second = Engine(world.config, tmp_path / "b.sqlite")
    assert second.unlock_with(held) and second.unlocked
    look = second.check_stores()
    states = {r.name: r.state for r in look.reports}
    assert states[world.name(1)] is StoreState.DAMAGED
    assert (second.vault().n, second.vault().k) == (5, 3)
    first.lock()
    assert first.held_key() is None
    # Another vault's stores: the key is not tried there.
    other_cfg = Config(stores=folder_stores(tmp_path / "other"), threshold=2)
    other = Engine(other_cfg, tmp_path / "c.sqlite")
    other.init(PASSWORD, kdf=FAST_KDF)
    other.lock()
    assert not other.unlock_with(held) and not other.unlocked
