"""Put and get through the engine on five folder stores (3-of-5), with faults and tampering."""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import pytest

from cssm_desktop.catalog import AT_RISK, SAFE
from cssm_desktop.core.progress import CancelToken, Event, FileDone, FileProgress, StoreDamaged
from cssm_desktop.engine import Engine
from cssm_desktop.errors import Cancelled, DestinationExists, NotEnoughStores, WrongPassword

from .conftest import FAST_KDF, PASSWORD


@pytest.fixture(autouse=True)
def _each_file_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests look at one file's own objects in the stores: every file is stored
    alone here (small files in packs are tested in test_packs.py)."""
    monkeypatch.setattr("cssm_desktop.engine.SMALL_FILE", 0)


B = 4096  # small blocks: many stripes from small files


def _put(engine: Engine, path: Path, **kw: object) -> str:
    (result,) = engine.put([path], block_size=B, **kw)  # type: ignore[arg-type]
    assert result.error is None, result.error
    assert result.stored is not None
    return result.stored.id_hex


def _fresh(engine: Engine, password: str = PASSWORD) -> Engine:
    """A new process's view: vault re-read from whatever stores are there now."""
    other = Engine(engine.config, catalog_path=engine.catalog.path)
    other.unlock(password)
    return other


def _store_dir(engine: Engine, i: int) -> Path:
    return Path(engine.config.stores[i].path or "")


def _part(engine: Engine, i: int, file_id: str) -> Path:
    vid = engine.vault().id_hex
    return _store_dir(engine, i) / vid / "data" / file_id


@pytest.mark.parametrize("size", [0, 1, 2, 3 * B - 1, 3 * B, 3 * B + 1, 7 * 3 * B + 5, 100_003])
def test_round_trip_sizes(folder_engine: Engine, tmp_path: Path, size: int) -> None:
    src = tmp_path / "in.bin"
    data = os.urandom(size)
    src.write_bytes(data)
    fid = _put(folder_engine, src)
    entry = folder_engine.resolve(fid)
    assert (entry.name, entry.size, entry.health) == ("in.bin", size, SAFE)
    out = folder_engine.get(entry, tmp_path / "out.bin")
    assert out.read_bytes() == data


def test_names_sizes_and_contents_never_reach_the_stores(folder_engine: Engine,
                                                         tmp_path: Path) -> None:
    src = tmp_path / "secret-plans-Ω.txt"
    src.write_bytes(b"the eagle lands at dawn " * 200)
    _put(folder_engine, src)
    for i in range(5):
        for path in _store_dir(folder_engine, i).rglob("*"):
            assert "secret" not in path.name
            if path.is_file():
                blob = path.read_bytes()
                assert b"eagle" not in blob and b"secret-plans" not in blob


UP_TO_TWO_OF_FIVE = [m for r in range(3) for m in itertools.combinations(range(5), r)]


@pytest.mark.parametrize("missing", UP_TO_TWO_OF_FIVE)
def test_any_n_minus_k_stores_may_vanish(folder_engine: Engine, tmp_path: Path,
                                         missing: tuple[int, ...]) -> None:
    src = tmp_path / "file.bin"
    data = os.urandom(5 * 3 * B + 77)
    src.write_bytes(data)
    fid = _put(folder_engine, src)
    for i in missing:
        shutil.rmtree(_store_dir(folder_engine, i))
    engine = _fresh(folder_engine)
    events: list[Event] = []
    out = engine.get(engine.resolve(fid), tmp_path / "out.bin", listener=events.append)
    assert out.read_bytes() == data
    damaged = {e.store for e in events if isinstance(e, StoreDamaged)}
    assert damaged == {f"store{i + 1}" for i in missing}


def test_k_minus_1_stores_fail_clearly_and_write_nothing(folder_engine: Engine,
                                                         tmp_path: Path) -> None:
    src = tmp_path / "file.bin"
    src.write_bytes(os.urandom(1000))
    fid = _put(folder_engine, src)
    for i in (0, 2, 4):
        shutil.rmtree(_store_dir(folder_engine, i))
    engine = _fresh(folder_engine)
    dest = tmp_path / "restore"
    dest.mkdir()
    with pytest.raises(NotEnoughStores) as info:
        engine.get(engine.resolve(fid), dest)
    assert "only 2 of the 3" in str(info.value)
    assert "store1" in str(info.value) and "store5" in str(info.value)
    assert list(dest.iterdir()) == []


def test_wrong_password_is_refused(folder_engine: Engine) -> None:
    with pytest.raises(WrongPassword, match="wrong password"):
        _fresh(folder_engine, "Correct horse battery staple")


@pytest.mark.parametrize("damaged", [(1,), (0, 3), (1, 2)])
def test_flipped_bytes_are_detected_and_repaired_around(folder_engine: Engine, tmp_path: Path,
                                                        damaged: tuple[int, ...]) -> None:
    """Restore reads the systematic parts first, so damage there is met and routed around."""
    src = tmp_path / "file.bin"
    data = os.urandom(9 * 3 * B)
    src.write_bytes(data)
    fid = _put(folder_engine, src)
    for i in damaged:
        part = _part(folder_engine, i, fid)
        raw = bytearray(part.read_bytes())
        raw[len(raw) // 2] ^= 0x40  # a block in the middle of the part
        part.write_bytes(bytes(raw))
    events: list[Event] = []
    entry = folder_engine.resolve(fid)
    out = folder_engine.get(entry, tmp_path / "out.bin", listener=events.append)
    assert out.read_bytes() == data
    reported = {e.store for e in events if isinstance(e, StoreDamaged)}
    assert reported == {f"store{i + 1}" for i in damaged}
    assert all("failed authentication" in e.reason for e in events if isinstance(e, StoreDamaged))
    after = folder_engine.resolve(fid)
    assert after.health == AT_RISK
    assert set(after.damaged.split(",")) == reported


def test_damage_in_unread_parity_parts_does_not_disturb_a_restore(folder_engine: Engine,
                                                                  tmp_path: Path) -> None:
    src = tmp_path / "file.bin"
    data = os.urandom(9 * 3 * B)
    src.write_bytes(data)
    fid = _put(folder_engine, src)
    for i in (3, 4):
        _part(folder_engine, i, fid).write_bytes(b"garbage")
    events: list[Event] = []
    out = folder_engine.get(folder_engine.resolve(fid), tmp_path / "out.bin",
                            listener=events.append)
    assert out.read_bytes() == data
    assert not [e for e in events if isinstance(e, StoreDamaged)]


def test_too_much_damage_is_an_error_not_wrong_bytes(folder_engine: Engine,
                                                     tmp_path: Path) -> None:
    src = tmp_path / "file.bin"
    src.write_bytes(os.urandom(4 * 3 * B))
    fid = _put(folder_engine, src)
    for i in (0, 1, 2):
        part = _part(folder_engine, i, fid)
        raw = bytearray(part.read_bytes())
        raw[-1] ^= 1
        part.write_bytes(bytes(raw))
    with pytest.raises(NotEnoughStores):
        folder_engine.get(folder_engine.resolve(fid), tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()
    assert not list(tmp_path.glob(".out.bin*"))


def test_truncated_and_swapped_parts_are_detected(folder_engine: Engine, tmp_path: Path) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    data_a, data_b = os.urandom(3 * 3 * B), os.urandom(3 * 3 * B)
    a.write_bytes(data_a)
    b.write_bytes(data_b)
    fa, fb = _put(folder_engine, a), _put(folder_engine, b)
    # store1: a's part replaced by b's (same size, right store); store2: a's part truncated.
    shutil.copy(_part(folder_engine, 0, fb), _part(folder_engine, 0, fa))
    part = _part(folder_engine, 1, fa)
    part.write_bytes(part.read_bytes()[:-100])
    events: list[Event] = []
    out = folder_engine.get(folder_engine.resolve(fa), tmp_path / "out.bin",
                            listener=events.append)
    assert out.read_bytes() == data_a
    reasons = {e.store: e.reason for e in events if isinstance(e, StoreDamaged)}
    assert set(reasons) == {"store1", "store2"}
    assert "header" in reasons["store1"]
    assert "truncated" in reasons["store2"]


def test_part_from_another_vault_is_rejected(tmp_path: Path) -> None:
    from cssm_desktop.config import Config

    from .conftest import folder_stores

    engines = []
    for name in ("one", "two"):
        eng = Engine(Config(stores=folder_stores(tmp_path / name), threshold=3),
                     catalog_path=tmp_path / f"{name}.sqlite")
        eng.init(PASSWORD, kdf=FAST_KDF)
        engines.append(eng)
    src = tmp_path / "f.bin"
    data = os.urandom(2 * 3 * B)
    src.write_bytes(data)
    f1 = _put(engines[0], src)
    f2 = _put(engines[1], src)
    # An attacker renames vault two's part so it sits where vault one's part was.
    shutil.copy(_part(engines[1], 0, f2), _part(engines[0], 0, f1))
    events: list[Event] = []
    out = engines[0].get(engines[0].resolve(f1), tmp_path / "out.bin", listener=events.append)
    assert out.read_bytes() == data
    assert [e.store for e in events if isinstance(e, StoreDamaged)] == ["store1"]


def test_cancel_mid_upload_leaves_nothing(folder_engine: Engine, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(200 * 3 * B))
    cancel = CancelToken()
    seen: list[Event] = []

    def listener(event: Event) -> None:
        seen.append(event)
        if isinstance(event, FileProgress):
            cancel.cancel()

    (result,) = folder_engine.put([src], listener=listener, cancel=cancel, block_size=B)
    assert isinstance(result.error, Cancelled)
    assert any(isinstance(e, FileProgress) for e in seen)
    assert not any(isinstance(e, FileDone) for e in seen)
    assert folder_engine.entries() == []
    vid = folder_engine.vault().id_hex
    for i in range(5):
        leftovers = [p for p in (_store_dir(folder_engine, i) / vid).rglob("*")
                     if p.is_file() and p.name != "vault"]
        assert leftovers == [], leftovers  # no metadata, no data, no temp files


def test_cancel_mid_restore_leaves_no_file(folder_engine: Engine, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(200 * 3 * B))
    fid = _put(folder_engine, src)
    cancel = CancelToken()

    def listener(event: Event) -> None:
        if isinstance(event, FileProgress):
            cancel.cancel()

    dest = tmp_path / "restore"
    dest.mkdir()
    with pytest.raises(Cancelled):
        folder_engine.get(folder_engine.resolve(fid), dest, listener=listener, cancel=cancel)
    assert list(dest.iterdir()) == []


def test_existing_destination_is_never_overwritten_unasked(folder_engine: Engine,
                                                           tmp_path: Path) -> None:
    src = tmp_path / "f.txt"
    src.write_text("stored")
    fid = _put(folder_engine, src)
    dest = tmp_path / "dest.txt"
    dest.write_text("precious")
    with pytest.raises(DestinationExists):
        folder_engine.get(folder_engine.resolve(fid), dest)
    assert dest.read_text() == "precious"
    folder_engine.get(folder_engine.resolve(fid), dest, force=True)
    assert dest.read_text() == "stored"


def test_catalog_rebuilds_from_the_stores_alone(folder_engine: Engine, tmp_path: Path) -> None:
    names = ["a.txt", "Ümlaut ✓.bin", "empty"]
    ids = {}
    for name in names:
        p = tmp_path / name
        p.write_bytes(os.urandom(len(name) * 1000) if name != "empty" else b"")
        ids[name] = _put(folder_engine, p)
    shutil.rmtree(_store_dir(folder_engine, 4))
    fresh = Engine(folder_engine.config, catalog_path=tmp_path / "new-machine.sqlite")
    assert fresh.entries() == []
    fresh.unlock(PASSWORD)
    count, unreadable = fresh.rebuild_catalog()
    assert (count, unreadable) == (3, {})
    rebuilt = {e.name: e for e in fresh.entries()}
    assert set(rebuilt) == set(names)
    for name in names:
        assert rebuilt[name].id == ids[name]
        assert rebuilt[name].size == (tmp_path / name).stat().st_size
        assert rebuilt[name].health == AT_RISK and rebuilt[name].damaged == "store5"


def test_password_change_rewraps_without_touching_data(folder_engine: Engine,
                                                       tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(b"data" * 1000)
    fid = _put(folder_engine, src)
    part = _part(folder_engine, 0, fid)
    before = part.stat().st_mtime_ns, part.read_bytes()
    folder_engine.change_password("new password")
    assert (part.stat().st_mtime_ns, part.read_bytes()) == before
    with pytest.raises(WrongPassword):
        _fresh(folder_engine, PASSWORD)
    engine = _fresh(folder_engine, "new password")
    assert engine.get(engine.resolve(fid), tmp_path / "o").read_bytes() == b"data" * 1000


def test_unreadable_input_fails_alone(folder_engine: Engine, tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("fine")
    broken = tmp_path / "broken-link"
    broken.symlink_to(tmp_path / "does-not-exist")
    results = folder_engine.put([good, broken], block_size=B)
    assert results[0].stored is not None
    assert results[1].error is not None and "broken-link" in str(results[1].error)
    assert [e.name for e in folder_engine.entries()] == ["good.txt"]


def test_opening_a_vault_does_not_list_every_object(folder_engine: Engine,
                                                    tmp_path: Path) -> None:
    """Finding the vault must cost the same with ten files or a million."""
    from cssm_desktop.core.vault import Vault
    from cssm_desktop.stores.folder import FolderStore

    for i in range(5):
        (tmp_path / f"f{i}").write_bytes(b"x")
        _put(folder_engine, tmp_path / f"f{i}")
    listed: list[str] = []

    class Counting(FolderStore):
        def list(self, prefix: str):
            listed.append(prefix)
            return super().list(prefix)

    stores = [Counting(s.name, s.path or "") for s in folder_engine.config.stores]
    vault = Vault.open(stores)
    assert vault.vault_id.hex() == folder_engine.vault().id_hex and len(vault.stores) == 5
    assert listed == []


DECOMPOSED = "cafe\u0301 au lait"   # é as e + combining acute: what some keyboards send
COMPOSED = "caf\u00e9 au lait"


def test_passwords_are_nfc_so_either_form_opens_the_vault(tmp_path: Path) -> None:
    from cssm_desktop.config import Config

    from .conftest import folder_stores

    engine = Engine(Config(stores=folder_stores(tmp_path / "s"), threshold=3),
                    catalog_path=tmp_path / "c.sqlite")
    engine.init(DECOMPOSED, kdf=FAST_KDF)
    for typed in (COMPOSED, DECOMPOSED):
        _fresh(engine, typed)
    with pytest.raises(WrongPassword):
        _fresh(engine, "cafe au lait")


def test_a_vault_whose_password_was_set_before_nfc_still_opens(tmp_path: Path) -> None:
    from cssm_desktop.config import Config
    from cssm_desktop.core.format import VaultHeader
    from cssm_desktop.core.keys import password_key
    from cssm_desktop.core.layout import vault_key

    from .conftest import folder_stores

    engine = Engine(Config(stores=folder_stores(tmp_path / "s"), threshold=3),
                    catalog_path=tmp_path / "c.sqlite")
    vault = engine.init(DECOMPOSED, kdf=FAST_KDF)
    assert vault.vmk is not None
    # What the first release wrote: the key derived from the bytes as typed.
    salt = os.urandom(16)
    old_key = password_key(DECOMPOSED, salt, FAST_KDF)
    for i, store in vault.stores.items():
        header = VaultHeader.seal(vault.vmk, old_key, vault.vault_id, 5, 3, i, FAST_KDF, salt,
                                  version=1)
        store.put_bytes(vault_key(vault.vault_id), header.to_bytes())
    _fresh(engine, DECOMPOSED)
    with pytest.raises(WrongPassword):
        _fresh(engine, COMPOSED)   # that vault knows only the form it was given
