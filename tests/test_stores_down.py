"""Storing while a store is down (issue: real networks): a put goes on with n-1 stores
(never fewer than k+1), the file is at risk and says why, and repair completes it when
the store is back. Real folders and a real S3 server; the stores really go away."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cssm_desktop.catalog import AT_RISK, SAFE
from cssm_desktop.config import Config
from cssm_desktop.core.put import put_needs
from cssm_desktop.engine import Engine
from cssm_desktop.errors import ConfigError, NotEnoughStores

from .conftest import FAST_KDF, PASSWORD, folder_stores, free_port
from .test_cli import Cli, cli  # noqa: F401  (the fixture)
from .test_gui import main_thread_gc, qt_settings  # noqa: F401  (Qt as the app runs it)
from .test_s3 import _s3_config


def _away(tmp_path: Path, *names: str) -> None:
    for name in names:
        (tmp_path / "stores" / name).rename(tmp_path / f"{name}.away")


def _back(tmp_path: Path, *names: str) -> None:
    for name in names:
        (tmp_path / f"{name}.away").rename(tmp_path / "stores" / name)


def _fresh(engine: Engine, tmp_path: Path, name: str) -> Engine:
    """The same config opened anew (as the next command or the app's next start would)."""
    again = Engine(engine.config, catalog_path=tmp_path / "catalog.sqlite")
    again.unlock(PASSWORD)
    return again


def _big_and_notes(tmp_path: Path, notes: int) -> tuple[Path, Path]:
    """A file stored alone and a folder of small ones (a pack)."""
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1_500_000))
    folder = tmp_path / "Notes"
    folder.mkdir()
    for i in range(notes):
        (folder / f"n{i}.txt").write_bytes(os.urandom(500 + i))
    return big, folder


def test_the_rule_is_n_minus_1_and_never_below_k_plus_1() -> None:
    assert put_needs(5, 3) == 4
    assert put_needs(5, 3, configured=5) == 5
    assert put_needs(5, 3, configured=2) == 4       # never below k + 1
    assert put_needs(3, 2) == 3                      # 2 of 3: every store
    assert put_needs(16, 8) == 15
    assert put_needs(4, 4) == 4


def test_a_put_with_one_store_down_is_at_risk_until_repair(folder_engine: Engine,
                                                           tmp_path: Path) -> None:
    big, notes = _big_and_notes(tmp_path, 20)
    _away(tmp_path, "store2")
    engine = _fresh(folder_engine, tmp_path, "c")
    results = engine.put([big, notes])
    assert all(r.stored is not None for r in results), results
    assert all(r.stored.missing == ("store2",) for r in results if r.stored)
    entries = engine.entries()
    assert len(entries) == 21
    assert {(e.health, e.damaged) for e in entries} == {(AT_RISK, "store2")}
    # The store comes back: the files are still at risk (its parts were never written).
    _back(tmp_path, "store2")
    engine.check_stores()
    assert {e.health for e in engine.entries()} == {AT_RISK}
    _, repaired = engine.repair()
    assert all(r.after.healthy for _, r in repaired)
    assert {e.health for e in engine.entries()} == {SAFE}
    assert all(report.healthy for _, report in engine.verify())
    # And the parts repair wrote restore with two of the original stores gone.
    _away(tmp_path, "store1", "store3")
    later = _fresh(engine, tmp_path, "d")
    rows = later.get_many(later.entries(), tmp_path / "out")
    assert all(isinstance(got, Path) for _, got in rows)
    assert (tmp_path / "out" / "big.bin").read_bytes() == big.read_bytes()


def test_two_stores_down_is_one_clear_error_and_nothing_stays(cli: Cli,  # noqa: F811
                                                              tmp_path: Path) -> None:
    f = tmp_path / "f.bin"
    f.write_bytes(os.urandom(2_000_000))
    _away(tmp_path, "store2", "store4")
    code, out, err = cli("put", str(f))
    assert code == 1 and out == ""
    assert "only 3 of the 4 stores needed" in err and len(err.strip().splitlines()) == 1
    assert cli("ls", "--json")[1].strip() == "[]"
    _back(tmp_path, "store2", "store4")
    code, out, _ = cli("gc", "--dry-run", "--grace-hours", "0")
    assert code == 0 and "would remove 0 objects" in out


def test_cli_says_where_a_put_could_not_go(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    f = tmp_path / "f.bin"
    f.write_bytes(os.urandom(3000))
    _away(tmp_path, "store5")
    code, out, err = cli("put", str(f))
    assert code == 0 and len(out.splitlines()) == 1
    assert "store5" in err and "repair" in err
    assert "at risk" in cli("ls")[1]


def test_put_min_stores_can_ask_for_every_store(tmp_path: Path) -> None:
    cfg = Config(stores=folder_stores(tmp_path / "stores"), threshold=3, put_min_stores=5)
    engine = Engine(cfg, catalog_path=tmp_path / "catalog.sqlite")
    engine.init(PASSWORD, kdf=FAST_KDF)
    _away(tmp_path, "store3")
    again = Engine(cfg, catalog_path=tmp_path / "catalog.sqlite")
    again.unlock(PASSWORD)
    src = tmp_path / "a.bin"
    src.write_bytes(b"a" * 2_000_000)
    (res,) = again.put([src])
    assert isinstance(res.error, NotEnoughStores) and "4 of the 5" in str(res.error)
    with pytest.raises(ConfigError):
        Config(stores=folder_stores(tmp_path / "s2"), put_min_stores=6).validate()


def test_an_unreachable_s3_store_does_not_stop_a_put(moto_server, tmp_path: Path) -> None:
    cfg = _s3_config(moto_server)
    engine = Engine(cfg, catalog_path=tmp_path / "catalog.sqlite")
    engine.init(PASSWORD, kdf=FAST_KDF)
    real = cfg.stores[3].endpoint_url
    cfg.stores[3].endpoint_url = f"http://127.0.0.1:{free_port()}"   # nothing listens
    down = Engine(cfg, catalog_path=tmp_path / "catalog.sqlite")
    down.unlock(PASSWORD)
    src = tmp_path / "s.bin"
    src.write_bytes(os.urandom(1_200_000))
    (res,) = down.put([src])
    assert res.stored is not None and res.stored.missing == ("s3-4",)
    assert down.resolve("s.bin").health == AT_RISK
    cfg.stores[3].endpoint_url = real
    back = Engine(cfg, catalog_path=tmp_path / "catalog.sqlite")
    back.unlock(PASSWORD)
    _, repaired = back.repair()
    assert [r.rebuilt for _, r in repaired] == [("s3-4",)]
    assert back.resolve("s.bin").health == SAFE


def test_settings_state_the_rule_for_storing_with_a_store_down(qtbot, tmp_path: Path) -> None:
    from cssm_desktop.gui.settings_dialog import SettingsDialog

    cfg = Config(stores=folder_stores(tmp_path / "stores"), threshold=3)
    dialog = SettingsDialog(cfg)
    qtbot.addWidget(dialog)
    assert "at least 4 of the 5 stores" in dialog.put_rule.text()
    assert "at risk until Repair" in dialog.put_rule.text()
    dialog.threshold.setValue(4)
    assert "all 5 stores are reachable" in dialog.put_rule.text()


def test_the_app_repairs_by_itself_when_the_store_is_back(qtbot, tmp_path: Path) -> None:
    """Stored while store2 was away: at risk; the store comes back, the next look at the
    stores starts a repair of exactly those files, and they are safe without a click."""
    from cssm_desktop.config import load_config
    from cssm_desktop.gui.context import AppContext
    from cssm_desktop.gui.main_window import MainWindow

    from .conftest import write_config
    from .test_gui_status import _stored, _upload

    cfg_file = tmp_path / "config.toml"
    write_config(cfg_file, Config(stores=folder_stores(tmp_path / "stores"), threshold=3))
    Engine(load_config(cfg_file), tmp_path / "catalog.sqlite").init(PASSWORD, kdf=FAST_KDF)
    _away(tmp_path, "store2")
    win = MainWindow(AppContext(config_file=cfg_file, catalog_file=tmp_path / "catalog.sqlite"))
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.vault_ready, timeout=20_000):
        win.show()
    win.engine.unlock(PASSWORD)
    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}.txt").write_bytes(os.urandom(700 + i))
    _upload(qtbot, win, [src])
    _stored(qtbot, win, 5)
    assert {e.health for e in win.engine.entries()} == {AT_RISK}
    repaired: list[list[str]] = []
    win.controller.mended.connect(repaired.append)
    _back(tmp_path, "store2")
    win.check_stores()
    qtbot.waitUntil(lambda: {e.health for e in win.engine.entries()} == {SAFE},
                    timeout=60_000)
    qtbot.waitUntil(lambda: any(repaired), timeout=10_000)
    (names,) = [r for r in repaired if r]
    assert len(names) == 1 and names[0].startswith("in/f0.txt and 4 more small files")
    win.queue.cancel_all()


def test_a_store_back_while_locked_is_reachable_and_in_use_after_unlock(
        folder_engine: Engine, tmp_path: Path) -> None:
    """Seen in the window: a store down when the vault opened, back before the unlock,
    was still listed "unreachable: cannot reach" with a fresh time at every check."""
    _away(tmp_path, "store3")
    engine = Engine(folder_engine.config, catalog_path=tmp_path / "catalog.sqlite")
    assert "store3" in engine.check_stores().down
    _back(tmp_path, "store3")
    look = engine.check_stores()
    (report,) = [r for r in look.reports if r.name == "store3"]
    assert look.down == {} and "once the vault is unlocked" in report.reason
    engine.unlock(PASSWORD)
    assert len(engine.vault().stores) == 5     # in use again: a put reaches every store
    big = tmp_path / "f.bin"
    big.write_bytes(os.urandom(300_000))
    (res,) = engine.put([big])
    assert res.stored is not None and res.stored.missing == ()


@pytest.mark.parametrize("refusal", ["a file where data/ goes", "a file where meta/ goes"])
def test_a_store_that_refuses_to_create_files_leaves_puts_at_risk_not_failed(
        folder_engine: Engine, tmp_path: Path, refusal: str) -> None:
    """Writers are opened before anything is sent: a refusal there goes through the same
    rule as a store failing mid-put (it used to fail every put). The file restores."""
    vault = folder_engine.vault()
    folder = "data" if "data" in refusal else "meta"
    blocked = tmp_path / "stores" / "store2" / vault.id_hex / folder
    if blocked.exists():
        blocked.rmdir()
    blocked.write_bytes(b"")   # mkdir and every create below it fail (ENOTDIR / EEXIST)
    big, notes = _big_and_notes(tmp_path, 5)
    look = folder_engine.check_stores()   # a look says it at once, before any put
    report = next(r for r in look.reports if r.name == "store2")
    assert report.state.value == "damaged" and "cannot be written" in report.reason
    assert list(look.down) == ["store2"]
    results = folder_engine.put([big, notes])
    assert all(r.stored is not None for r in results), [r.error for r in results]
    for entry in folder_engine.entries():
        assert entry.health == AT_RISK and "store2" in entry.damaged_stores
    rows = folder_engine.get_many(folder_engine.entries(), tmp_path / "back")
    assert all(isinstance(got, Path) for _, got in rows)
    assert (tmp_path / "back" / "big.bin").read_bytes() == big.read_bytes()


def test_a_file_a_restore_found_lost_while_stores_were_away_is_safe_once_they_are_back(
        folder_engine: Engine, tmp_path: Path) -> None:
    """B2: a restore that failed while 3 of 5 stores were away recorded the file "lost";
    after they came back and a look said every store is reachable, it stayed lost."""
    big, _ = _big_and_notes(tmp_path, 0)
    (stored,) = folder_engine.put([big])
    assert stored.stored is not None
    _away(tmp_path, "store1", "store2", "store3")
    engine = _fresh(folder_engine, tmp_path, "c")
    entry = engine.resolve("big.bin")
    with pytest.raises(NotEnoughStores):
        engine.get(entry, tmp_path / "out.bin")
    assert engine.resolve("big.bin").health == "lost"   # true while they are away
    _back(tmp_path, "store1", "store2", "store3")
    look = engine.check_stores()
    assert not look.down
    assert engine.resolve("big.bin").health == SAFE
    assert engine.get(engine.resolve("big.bin"), tmp_path / "out.bin").read_bytes() \
        == big.read_bytes()
