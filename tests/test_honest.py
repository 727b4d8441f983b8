"""Status that follows the facts, and edges that give one clear line (issue: honest status).

Stores go away and come back for real (their folders are moved), files are restored for
real, and each CLI case runs `cssm` as a user would.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

from cssm_desktop.catalog import AT_RISK, LOST, SAFE
from cssm_desktop.config import Config, StoreConfig, load_config
from cssm_desktop.core.layout import vault_key
from cssm_desktop.core.status import StoreState, risk_text
from cssm_desktop.engine import Duplicate, Engine
from cssm_desktop.errors import ConfigError, NotEnoughStores
from cssm_desktop.paths import printable, safe_relative

from .conftest import FAST_KDF, PASSWORD, folder_stores, write_config
from .test_cli import Cli, cli  # noqa: F401  (the fixture)


def _put(engine: Engine, path: Path, data: bytes = b"x" * 5000) -> str:
    path.write_bytes(data)
    (result,) = engine.put([path])
    assert result.stored is not None, result
    return result.stored.id_hex


def _unplug(tmp_path: Path, *names: str) -> None:
    for name in names:
        (tmp_path / "stores" / name).rename(tmp_path / f"{name}.unplugged")


def _plug(tmp_path: Path, *names: str) -> None:
    for name in names:
        (tmp_path / f"{name}.unplugged").rename(tmp_path / "stores" / name)


# ---------------------------------------------------------------- health follows the stores


def test_health_follows_the_stores_at_once(folder_engine: Engine, tmp_path: Path) -> None:
    _put(folder_engine, tmp_path / "a.txt")
    assert [e.health for e in folder_engine.entries()] == [SAFE]
    _unplug(tmp_path, "store2", "store4")
    states = {r.name: r.state for r in folder_engine.check_stores().reports}
    assert states == {"store1": StoreState.REACHABLE, "store2": StoreState.UNREACHABLE,
                      "store3": StoreState.REACHABLE, "store4": StoreState.UNREACHABLE,
                      "store5": StoreState.REACHABLE}
    (entry,) = folder_engine.entries()
    assert (entry.health, entry.damaged) == (AT_RISK, "store2,store4")
    _unplug(tmp_path, "store5")
    folder_engine.check_stores()
    assert [e.health for e in folder_engine.entries()] == [LOST]
    _plug(tmp_path, "store2", "store4", "store5")
    folder_engine.check_stores()
    assert [e.health for e in folder_engine.entries()] == [SAFE]


def test_a_verify_during_an_outage_does_not_brand_files_for_good(folder_engine: Engine,
                                                                   tmp_path: Path) -> None:
    """Verify finds the store down: at risk now; back again, the parts it holds were
    never found damaged, so the file is safe again without another verify. A part that
    really is damaged stays on record."""
    fid = _put(folder_engine, tmp_path / "v.txt")
    _unplug(tmp_path, "store4")
    ((_, report),) = folder_engine.verify()
    assert not report.healthy
    assert folder_engine.resolve(fid).health == AT_RISK      # down now
    _plug(tmp_path, "store4")
    folder_engine.check_stores()
    assert folder_engine.resolve(fid).health == SAFE
    vid = folder_engine.vault().id_hex
    part = next((tmp_path / "stores" / "store2" / vid / "data").iterdir())
    part.write_bytes(b"rotten")
    folder_engine.verify()
    entry = folder_engine.resolve(fid)
    assert (entry.health, entry.damaged) == (AT_RISK, "store2")


def test_a_store_back_from_an_outage_is_used_again(tmp_path: Path) -> None:
    cfg = Config(stores=folder_stores(tmp_path / "stores"), threshold=3)
    Engine(cfg, tmp_path / "c.sqlite").init(PASSWORD, kdf=FAST_KDF)
    _unplug(tmp_path, "store3")
    engine = Engine(cfg, tmp_path / "c.sqlite")     # opened while the disk is away
    engine.unlock(PASSWORD)
    assert 2 not in engine.vault().stores
    _plug(tmp_path, "store3")
    reports = {r.name: r for r in engine.check_stores(count_bytes=True).reports}
    assert reports["store3"].state is StoreState.REACHABLE and reports["store3"].held
    assert engine.vault().stores[2].name == "store3"
    fid = _put(engine, tmp_path / "b.txt")           # a put needs all five again: it works
    assert engine.resolve(fid).health == SAFE


def test_a_store_wiped_behind_our_back_is_damaged(folder_engine: Engine,
                                                  tmp_path: Path) -> None:
    vault = folder_engine.vault()
    (tmp_path / "stores" / "store1" / vault_key(vault.vault_id)).unlink()
    report = {r.name: r for r in folder_engine.check_stores().reports}["store1"]
    assert report.state is StoreState.DAMAGED and "header has gone" in report.reason
    assert "store1" in folder_engine.down()


def test_a_failed_restore_marks_the_file_lost(folder_engine: Engine, tmp_path: Path) -> None:
    fid = _put(folder_engine, tmp_path / "c.txt")
    vid = folder_engine.vault().id_hex
    for name in ("store1", "store2", "store3"):
        shutil.rmtree(tmp_path / "stores" / name / vid / "data")
    with pytest.raises(NotEnoughStores):
        folder_engine.get(folder_engine.resolve(fid), tmp_path / "out" / "c.txt")
    assert folder_engine.resolve(fid).health == LOST
    assert not (tmp_path / "out" / "c.txt").exists()


def test_risk_words_are_the_same_for_both_faces() -> None:
    assert risk_text(0, 5, 3) == "all 5 stores reachable; any 3 restore a file"
    assert "2 more can be lost" not in risk_text(1, 5, 3) and "1 more" in risk_text(1, 5, 3)
    assert "one more loss and files are lost" in risk_text(2, 5, 3)
    assert risk_text(3, 5, 3).endswith("cannot be restored until one of them comes back")
    assert risk_text(5, 5, 3).endswith("cannot be restored until 3 of them come back")


# ---------------------------------------------------------------- duplicates


def test_same_name_and_content_is_skipped_again_or_replaced(folder_engine: Engine,
                                                            tmp_path: Path) -> None:
    first = _put(folder_engine, tmp_path / "d.txt")
    (twin,) = folder_engine.put([tmp_path / "d.txt"])
    assert twin.stored is None and twin.duplicate_of is not None and \
        twin.duplicate_of.id == first
    (again,) = folder_engine.put([tmp_path / "d.txt"], duplicates=Duplicate.AGAIN)
    assert again.stored is not None
    assert len(folder_engine.entries()) == 2
    (new,) = folder_engine.put([tmp_path / "d.txt"], duplicates=Duplicate.REPLACE)
    assert new.stored is not None and set(new.replaced) == {first, again.stored.id_hex}
    assert [e.id for e in folder_engine.entries()] == [new.stored.id_hex]
    (tmp_path / "d.txt").write_bytes(b"other content")   # same name, new content: stored
    (changed,) = folder_engine.put([tmp_path / "d.txt"])
    assert changed.stored is not None


# ---------------------------------------------------------------- paths


def test_stored_names_restore_to_one_file_each() -> None:
    assert safe_relative("a:b", windows=False) == Path("a:b")
    assert safe_relative("back\\slash", windows=False) == Path("back\\slash")
    assert safe_relative("../../etc/x/./y", windows=False) == Path("etc/x/y")
    assert safe_relative("C:/x\\y:z", windows=True).parts == ("C_", "x_y_z")
    assert safe_relative("con.txt", windows=True) == Path("_con.txt")
    # Escaped names are quoted: a real backslash-n (bare) never looks like a newline.
    assert printable("new\nline\ttab") == "'new\\nline\\ttab'"
    assert printable("back\\nslash") == "back\\nslash"
    assert printable("bad" + os.fsdecode(b"\xff")) == "'bad\\xff'"
    assert printable("'quoted'") == "'\\'quoted\\''"
    assert printable("a\\b\n") == "'a\\\\b\\n'"


def test_put_of_a_folder_with_links_fifos_and_odd_names(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_text("a")
    (tree / "we:ird").write_text("colon")
    (tree / "back\\slash").write_text("backslash")
    (tree / "new\nline").write_text("newline")
    (tree / "dangling").symlink_to(tmp_path / "nowhere")
    (tree / "loop").symlink_to(tree / "loop")
    (tree / "outside").symlink_to("/etc/hostname")
    (tree / "inside").symlink_to(tree / "a.txt")
    (tree / "sub").symlink_to(tmp_path)       # a link to a folder that contains this one
    os.mkfifo(tree / "fifo")
    code, out, err = cli("put", "--skip-links", str(tree))
    assert code == 0, err
    for name in ("dangling", "loop", "outside", "inside", "sub"):
        assert f"{name}: symbolic link, not followed" in err
    assert "fifo: not a regular file" in err
    assert "Traceback" not in err
    code, out, _ = cli("ls")
    assert "'tree/new\\nline'" in out and len(out.splitlines()) == 5   # header + 4 files
    rows = json.loads(cli("ls", "--json")[1])
    assert sorted(r["name"] for r in rows) == ["tree/a.txt", "tree/back\\slash",
                                               "tree/new\nline", "tree/we:ird"]
    back = tmp_path / "back"
    for row in rows:
        assert cli("get", row["id"], "-o", str(back) + "/")[0] == 0
    assert (back / "tree" / "we:ird").read_text() == "colon"
    assert (back / "tree" / "back\\slash").read_text() == "backslash"
    assert (back / "tree" / "new\nline").read_text() == "newline"


def test_a_fifo_given_by_name_is_one_line_not_a_hang(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    os.mkfifo(tmp_path / "pipe")
    code, _, err = cli("put", str(tmp_path / "pipe"))
    assert code == 1 and err.count("\n") == 1 and "not a regular file" in err


def test_get_into_a_folder_that_does_not_exist_yet(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "e.txt").write_text("e")
    cli("put", str(tmp_path / "e.txt"))
    code, _, err = cli("get", "e.txt", "-o", str(tmp_path / "new-dir") + "/")
    assert code == 0, err
    assert (tmp_path / "new-dir" / "e.txt").read_text() == "e"
    (tmp_path / "dir-in-the-way" / "e.txt").mkdir(parents=True)
    code, _, err = cli("get", "e.txt", "-o", str(tmp_path / "dir-in-the-way"), "--force")
    assert code == 1 and err.count("\n") == 1 and "is a folder" in err
    assert os.listdir(tmp_path / "dir-in-the-way") == ["e.txt"]     # no temp file left
    assert os.listdir(tmp_path / "dir-in-the-way" / "e.txt") == []


def test_cli_duplicates_are_skipped_and_said(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "f.txt").write_text("f")
    assert cli("put", str(tmp_path / "f.txt"))[0] == 0
    code, out, err = cli("put", str(tmp_path / "f.txt"))
    assert code == 0 and out == "" and "already stored as" in err and "--again" in err
    code, out, _ = cli("put", "--replace", str(tmp_path / "f.txt"))
    assert code == 0 and "removed" in out
    assert len(json.loads(cli("ls", "--json")[1])) == 1


def test_short_id_prefix_says_the_minimum(cli: Cli) -> None:  # noqa: F811
    code, _, err = cli("rm", "abc")
    assert code == 1 and "at least 6 hex digits" in err


def test_stores_status_tells_what_a_loss_means(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    code, out, _ = cli("stores", "status")
    assert code == 0 and "all 5 stores reachable" in out and out.count(" ok ") == 5
    _unplug(tmp_path, "store2", "store4")
    code, out, err = cli("stores", "status")
    assert code == 1 and out.count("DOWN") == 2
    assert "one more loss and files are lost" in err
    (tmp_path / "g.txt").write_text("g")
    _plug(tmp_path, "store2", "store4")
    assert cli("put", str(tmp_path / "g.txt"))[0] == 0
    _unplug(tmp_path, "store2")
    code, out, err = cli("ls")
    assert "at risk" in out and "1 of 1 files not safe" in err


# ---------------------------------------------------------------- config edges


def test_folder_paths_expand_and_are_taken_from_the_config_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSSM_TEST_DISK", str(tmp_path / "disk"))
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    path = write_config(conf_dir / "c.toml", Config(stores=[
        StoreConfig("rel", "folder", "stores/rel"),
        StoreConfig("env", "folder", "$CSSM_TEST_DISK/env"),
        StoreConfig("home", "folder", "~/h")], threshold=2))
    monkeypatch.chdir(tmp_path)      # not the config's folder
    cfg = load_config(path)
    folders = [cfg.folder(s) for s in cfg.stores]
    assert folders == [conf_dir / "stores" / "rel", tmp_path / "disk" / "env",
                       Path(os.environ["HOME"]) / "h"]
    engine = Engine(cfg, tmp_path / "c.sqlite")
    assert [str(s.root) for s in engine.stores] == [str(f) for f in folders]


@pytest.mark.parametrize("stores, message", [
    ([StoreConfig("a", "folder", "/tmp/x"), StoreConfig("b", "folder", "/tmp/x/")],
     "'a' and 'b' are the same place"),
    ([StoreConfig("a", "s3", bucket="bkt"), StoreConfig("b", "s3", bucket="bkt")],
     "'a' and 'b' are the same place"),
    ([StoreConfig("a", "folder", "/tmp/x"), StoreConfig("e", "s3")],
     "store 'e': an S3 store needs `bucket`"),
])
def test_config_mistakes_are_named(stores: list[StoreConfig], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config(stores=stores, threshold=1).validate()


def test_a_put_never_stores_the_vault_into_itself(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    """Choosing a parent folder of the stores (easy in a file dialog) must not upload
    the stores' own objects, nor the app's catalog and logs."""
    (tmp_path / "mine.txt").write_text("mine")
    code, _, err = cli("put", str(tmp_path))
    assert code == 0, err
    assert all(f"store{i}: one of this app's own folders" in err for i in range(1, 6))
    assert "cssm-desktop: one of this app's own folders" in err     # data and log folders
    names = [r["name"] for r in json.loads(cli("ls", "--json")[1])]
    assert f"{tmp_path.name}/mine.txt" in names
    assert not any("/stores/" in n or "cssm-desktop" in n for n in names), names
    code, _, err = cli("put", str(tmp_path / "stores" / "store1"))
    assert code == 1 and "own folders" in err


def test_get_a_whole_folder_with_one_password(cli: Cli, tmp_path: Path,  # noqa: F811
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    tree = tmp_path / "Photos"
    (tree / "2025").mkdir(parents=True)
    files = {"a.jpg": b"a" * 3000, "2025/b.jpg": b"b" * 5000, "2025/c.jpg": b"c"}
    for name, data in files.items():
        (tree / name).write_bytes(data)
    (tmp_path / "other.txt").write_text("not in the folder")
    assert cli("put", str(tree), str(tmp_path / "other.txt"))[0] == 0
    monkeypatch.delenv("CSSM_PASSWORD")
    out = tmp_path / "back"
    # One line on stdin: a second unlock would find no password and fail.
    code, stdout, err = cli("get", "Photos", "-o", str(out), stdin=PASSWORD + "\n")
    assert code == 0, err
    assert "3 restored, 0 skipped, 0 failed" in stdout
    assert {p.relative_to(out / "Photos").as_posix(): p.read_bytes()
            for p in (out / "Photos").rglob("*") if p.is_file()} == files
    assert not (out / "other.txt").exists()
    code, stdout, err = cli("get", "Photos/", "-o", str(out), stdin=PASSWORD + "\n")
    assert code == 0 and "0 restored, 3 skipped" in stdout and err.count("skipped") == 3
    ids = [r["id"] for r in json.loads(cli("ls", "--json")[1]) if r["name"].endswith("c.jpg")
           or r["name"] == "other.txt"]
    code, stdout, err = cli("get", *ids, "-o", str(tmp_path / "two"), "--force",
                            stdin=PASSWORD + "\n")
    assert code == 0 and "2 restored" in stdout, err
    assert (tmp_path / "two" / "Photos" / "2025" / "c.jpg").read_bytes() == b"c"
    assert (tmp_path / "two" / "other.txt").read_text() == "not in the folder"


@pytest.mark.parametrize("where, said", [
    ("f.txt/inner", "a file is in the way of its folder"),
    ("/proc/no-such-dir/x", "cannot write /proc/no-such-dir/x"),
])
def test_get_to_a_place_that_cannot_be_written_is_one_line(cli: Cli, tmp_path: Path,  # noqa: F811
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          where: str, said: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f.txt").write_text("f")
    assert cli("put", "f.txt")[0] == 0
    code, _, err = cli("get", "f.txt", "-o", where)
    assert code == 1 and err.count("\n") == 1 and said in err and "unexpected" not in err


def test_status_and_put_say_what_there_is_before_anything_exists(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from cssm_desktop.cli import main

    cfg = write_config(tmp_path / "c.toml", Config(stores=folder_stores(tmp_path / "s", 3),
                                                  threshold=2))
    assert main(["--config", str(cfg), "stores", "status"]) == 1
    out, err = capsys.readouterr()
    assert out.count("does not exist") == 3 and err.count("\n") == 1 and "cssm init" in err
    monkeypatch.setenv("CSSM_PASSWORD", PASSWORD)
    assert main(["--config", str(cfg), "init"]) == 0
    (tmp_path / "empty").mkdir()
    capsys.readouterr()
    assert main(["--config", str(cfg), "put", str(tmp_path / "empty")]) == 0
    assert capsys.readouterr().out.strip().endswith("/empty")   # an empty folder is kept
    (tmp_path / "only-tmp").mkdir()
    (tmp_path / "only-tmp" / "a.tmp").write_text("x")
    assert main(["--config", str(cfg), "put", "--exclude", "*.tmp",
                 str(tmp_path / "only-tmp")]) == 0
    assert "nothing to store: no files under" in capsys.readouterr().err


def test_the_log_says_what_was_stored_and_restored_without_names(
        folder_engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """B12: View > Log was empty after an hour of uploads and restores (nothing was logged
    when all went well). Ids and sizes, never a name."""
    import logging

    big = tmp_path / "secret-name-big.bin"
    big.write_bytes(os.urandom(1_200_000))
    small = tmp_path / "secret-name-small.txt"
    small.write_bytes(b"small")
    caplog.set_level(logging.INFO, logger="cssm_desktop")
    folder_engine.put([big, small])
    rows = folder_engine.get_many(folder_engine.entries(), tmp_path / "back")
    assert all(isinstance(got, Path) for _, got in rows)
    text = "\n".join(r.getMessage() for r in caplog.records)
    big_id = folder_engine.resolve("secret-name-big.bin").id
    assert f"stored file {big_id}: 1200000 bytes, 5 of 5 stores" in text
    assert "stored pack" in text and "1 small files, 5 bytes" in text
    assert "restored 2 of 2 files (1200005 bytes)" in text
    assert "secret-name" not in text and str(tmp_path) not in text



def test_a_name_that_is_not_utf8_is_stored_and_restored_as_its_bytes(
        cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    """C1: one name that was not UTF-8 (common on old disks) stopped the whole folder,
    nothing stored; one such file named alone, too."""
    tree = tmp_path / "d"
    tree.mkdir()
    (tree / "good").write_text("ok")
    bad = os.fsdecode(b"bad\xff")
    (tree / bad).write_bytes(b"x")
    big = tmp_path / os.fsdecode(b"big\xfe.bin")
    big.write_bytes(os.urandom(9 * 1024 * 1024))   # stored alone, not in a pack
    code, out, err = cli("put", str(tree), str(big))
    assert code == 0, err
    code, out, _ = cli("ls")
    assert "'d/bad\\xff'" in out and "'big\\xfe.bin'" in out and "d/good" in out
    rows = json.loads(cli("ls", "--json")[1])   # valid JSON, the very names back
    assert sorted(r["name"] for r in rows) == sorted(["d/good", "d/" + bad, big.name])
    back = tmp_path / "back"
    assert cli("get", "d", "-o", str(back))[0] == 0
    assert (back / "d" / bad).read_bytes() == b"x"
    assert os.fsencode(bad) in os.listdir(os.fsencode(back / "d"))
    big_id = next(r["id"] for r in rows if r["name"] == big.name)
    assert cli("get", big_id, "-o", str(back) + "/")[0] == 0
    assert (back / big.name).read_bytes() == big.read_bytes()
    # From the stores alone, as on a new machine: the same bytes.
    assert cli("catalog", "rebuild")[0] == 0
    assert sorted(r["name"] for r in json.loads(cli("ls", "--json")[1])) == sorted(
        ["d/good", "d/" + bad, big.name])


def test_a_tree_deeper_than_path_max_stores_what_it_can(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    """C2: a folder nested past PATH_MAX aborted the whole put with "unexpected OSError"."""
    top = tmp_path / "deep"
    top.mkdir()
    (top / "top.txt").write_text("top")
    fd = os.open(top, os.O_RDONLY)
    try:   # made relative to each level: no path this long can be named at once
        for _ in range(30):
            os.mkdir("d" * 200, dir_fd=fd)
            inner = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        with os.fdopen(os.open("bottom.txt", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd),
                       "w") as fh:
            fh.write("bottom")
    finally:
        os.close(fd)
    code, out, err = cli("put", str(top))
    assert code == 0, err
    assert "deep/top.txt" in out and "unexpected" not in err
    assert err.count("skipped") == 1 and "too long" in err.lower()


def test_put_says_one_line_for_what_was_stored_already_and_keeps_the_folders_name(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """An unchanged tree re-run printed a line per file (20,001 for 20,000); "1 file(s)";
    `cssm put ..` stored names beginning "../"; no --quiet."""
    tree = tmp_path / "proj" / "src"
    tree.mkdir(parents=True)
    for i in range(15):
        (tree / f"m{i}.py").write_text(f"# {i}")
    code, out, _ = cli("put", "--quiet", str(tree))
    assert code == 0 and out == ""
    code, out, err = cli("put", str(tree))
    assert code == 0 and "skipped" not in err and err.count("\n") == 1
    assert "15 files were already stored" in err and "(s)" not in err
    cli("put", str(tree / "m0.py"))
    code, _, err = cli("put", str(tree / "m0.py"))
    assert "1 file was already stored" in err and "skipped  " in err
    monkeypatch.chdir(tree)
    code, out, err = cli("put", "..")
    names = [r["name"] for r in json.loads(cli("ls", "--json")[1])]
    assert code == 0 and not any(n.startswith("..") for n in names)
    assert "proj/src/m1.py" in names


def test_get_quiet_restores_a_tree_without_a_line_per_file(
        cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    """A 20,000-file restore printed 20,001 lines and get had no --quiet."""
    tree = tmp_path / "notes"
    tree.mkdir()
    for i in range(12):
        (tree / f"n{i}.txt").write_text(f"note {i}")
    assert cli("put", "-q", str(tree))[0] == 0
    out_dir = tmp_path / "back"
    code, out, err = cli("get", "-q", "notes", "-o", str(out_dir))
    assert code == 0 and out == "" and err == ""
    assert sorted(p.name for p in (out_dir / "notes").iterdir()) == sorted(
        f"n{i}.txt" for i in range(12))
    assert (out_dir / "notes" / "n3.txt").read_text() == "note 3"
    code, out, err = cli("get", "-q", "notes", "-o", str(out_dir))   # all there already
    assert code == 0 and out == "" and err.strip() == "0 restored, 12 skipped, 0 failed"
    code, out, err = cli("get", "--quiet", "notes/n1.txt", "-o", str(tmp_path / "one.txt"))
    assert code == 0 and out == "" and (tmp_path / "one.txt").read_text() == "note 1"
    code, out, _ = cli("get", "notes", "-o", str(tmp_path / "loud"))
    assert out.count("restored notes/") == 12   # without -q, a line each, as before


def test_put_quiet_draws_no_progress_on_a_terminal(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """`put -q` says "only errors, warnings and a summary", yet drew its bar on a
    terminal (get -q did not)."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    (tmp_path / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    code, out, err = cli("put", "-q", str(tmp_path / "big.bin"))
    assert code == 0 and out == "" and err == ""
    code, _, err = cli("put", "--again", str(tmp_path / "big.bin"))
    assert code == 0 and "big.bin" in err and "%" in err   # without -q: the bar


def test_gc_takes_only_a_real_grace_period(cli: Cli) -> None:  # noqa: F811
    for bad in ("-1", "nan", "inf", "soon"):
        with pytest.raises(SystemExit) as stop:
            cli("gc", "--grace-hours", bad)
        assert stop.value.code == 2
    assert cli("gc", "--dry-run", "--grace-hours", "0")[0] == 0


def test_stores_down_are_said_once_not_once_per_file(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    """With stores down a put of a folder printed a warning per file and store."""
    import shutil

    tree = tmp_path / "many"
    tree.mkdir()
    for i in range(40):
        (tree / f"f{i}.bin").write_bytes(os.urandom(300_000))   # each stored alone
    for i in range(3):
        (tree / f"big{i}.bin").write_bytes(os.urandom(2 * 1024 * 1024))   # stored alone
    shutil.move(tmp_path / "stores" / "store5", tmp_path / "store5-away")
    code, _, err = cli("put", str(tree))
    assert code == 0 and err.count("\n") == 1, err
    assert "43 files stored without store5" in err, err
    # Where each file meets the failing stores (S3 stores that stop answering), the
    # progress reporter says each store and reason once.
    import io

    from cssm_desktop.cli_progress import ProgressBar
    from cssm_desktop.core.progress import StoreDamaged

    stream = io.StringIO()
    bar = ProgressBar(stream=stream, enabled=False)
    for i in range(2000):
        for store in ("s4", "s5"):
            bar(StoreDamaged(store, f"{i:032x}", "not reachable"))
    assert stream.getvalue().count("\n") == 2


def test_the_first_progress_line_has_no_wild_time_left() -> None:
    """The first reading of a restore said "ETA 11359s"."""
    import io

    from cssm_desktop.cli_progress import ProgressBar
    from cssm_desktop.core.progress import FileProgress, FileStarted

    stream = io.StringIO()
    bar = ProgressBar(stream=stream, enabled=True)
    bar(FileStarted("big.bin", 10 * 1024 ** 3))
    bar(FileProgress("big.bin", 1024, 10 * 1024 ** 3))
    assert "big.bin" in stream.getvalue()
    assert "ETA" not in stream.getvalue() and "left" not in stream.getvalue()


def test_ctrl_c_offers_discard_only_where_an_upload_was_kept(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Folder stores keep nothing of an interrupted put: the hint offered --discard."""
    from cssm_desktop.engine import Engine

    def interrupted(*_a: object, **_k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Engine, "put", interrupted)
    src = tmp_path / "f.bin"
    src.write_bytes(b"x")
    code, _, err = cli("put", str(src))
    assert code == 130 and "nothing partial was kept" in err and "--discard" not in err


def test_a_folder_named_on_the_command_line_that_cannot_be_read_fails_the_put(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """`cssm put LOCKED_DIR` exited 0. (Tests run as root, which reads any folder: the
    folder's listing is refused here as the system refuses it to a user.)"""
    locked = tmp_path / "locked"
    (locked / "inner").mkdir(parents=True)
    (locked / "inner" / "a.txt").write_text("a")
    real = os.scandir

    def refusing(path: object = ".") -> object:
        if os.path.abspath(os.fsdecode(path)) in (str(locked), str(locked / "inner")):  # type: ignore[arg-type]
            raise PermissionError(13, "Permission denied", os.fsdecode(path))  # type: ignore[arg-type]
        return real(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", refusing)
    code, _, err = cli("put", str(locked))
    assert code == 1 and "permission denied" in err.lower()
    monkeypatch.setattr(os, "scandir", lambda path=".": refusing(path) if os.path.abspath(
        os.fsdecode(path)) == str(locked / "inner") else real(path))
    (locked / "b.txt").write_text("b")
    code, out, err = cli("put", str(locked))   # a folder inside: skipped, the rest stored
    assert code == 0 and "locked/b.txt" in out and "skipped" in err


def test_verify_and_repair_take_a_folder_and_show_a_lone_small_file_by_its_id(
        cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    """verify and repair refused a FOLDER that get takes; a pack holding one file showed
    under the pack's id, which no other command knows."""
    tree = tmp_path / "docs"
    tree.mkdir()
    (tree / "a.txt").write_text("a")
    other = tmp_path / "other.txt"
    other.write_text("o")
    assert cli("put", str(tree))[0] == 0
    assert cli("put", str(other))[0] == 0
    rows = {r["name"]: r["id"] for r in json.loads(cli("ls", "--json")[1])}
    code, out, err = cli("verify", "docs")
    assert code == 0 and "verified 1 files: 1 safe" in out, err
    assert rows["docs/a.txt"][:12] in out and "other.txt" not in out
    code, out, err = cli("repair", "docs/")
    assert code == 0 and "1 of 1 files safe" in out, err


def test_two_quick_ctrl_c_leave_no_temporary_parts(tmp_path: Path) -> None:
    """Two Ctrl+C 0.05-0.3 s apart interrupted the cleanup of the first: temporary parts
    of up to 121 MiB were left in folder stores (for 48 h). The second one is now said,
    not obeyed; the cleanup ends and nothing is left."""
    import signal
    import subprocess
    import sys
    import time

    from cssm_desktop.cli import Interrupts
    from cssm_desktop.durable import TEMP_PREFIX

    handler = Interrupts()
    with pytest.raises(KeyboardInterrupt):
        handler(signal.SIGINT, None)
    assert handler(signal.SIGINT, None) is None   # said, not obeyed
    cfg = write_config(tmp_path / "c.toml",
                       Config(stores=folder_stores(tmp_path / "stores"), threshold=3))
    env = {**os.environ, "CSSM_PASSWORD": PASSWORD}
    base = [sys.executable, "-m", "cssm_desktop.cli", "--config", str(cfg)]
    assert subprocess.run([*base, "init"], env=env, capture_output=True,
                          timeout=120).returncode == 0
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:
        for _ in range(600):
            fh.write(os.urandom(1024 * 1024))
    for gap in (0.0, 0.02, 0.05):   # measured before the fix: 5, 4 and 3 parts left
        proc = subprocess.Popen([*base, "put", str(big)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(   # parts are being written
                p.name.startswith(TEMP_PREFIX) for p in (tmp_path / "stores").rglob("*")):
            time.sleep(0.01)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        time.sleep(gap)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        left = [p for p in (tmp_path / "stores").rglob("*") if p.name.startswith(TEMP_PREFIX)]
        assert left == [], (gap, left)


def test_a_full_store_is_called_full_not_unreachable(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    """A store whose disk filled up was "not reachable" in the put's warning."""
    import subprocess

    small_disk = tmp_path / "stores" / "store5"
    held = tmp_path / "store5-as-it-was"
    shutil.copytree(small_disk, held)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(small_disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small file system here (needs root)")
    try:
        shutil.copytree(held, small_disk, dirs_exist_ok=True)   # its vault header, back
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(4 * 1024 * 1024))
        code, _, err = cli("put", str(big))
        assert code == 0, err
        assert "stored without store5" in err and "no space left" in err.lower(), err
        assert "not reachable" not in err
    finally:
        subprocess.run(["umount", str(small_disk)], capture_output=True)


def test_links_and_empty_folders_come_back_as_they_were(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    """Symbolic links inside a folder were dropped, and empty folders too. Now a link is
    stored as a link (its target as written, never followed: a loop, one leading out, one
    leading nowhere) and an empty folder with its bits; both come back so."""
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "real.txt").write_text("real")
    (tree / "empty").mkdir()
    os.chmod(tree / "empty", 0o750)
    (tree / "deep" / "er").mkdir(parents=True)
    links = {"rel": "sub/real.txt", "abs": "/etc", "dangling": "nowhere", "loop": "loop",
             "dir": "sub", "up": ".."}
    for name, target in links.items():
        (tree / name).symlink_to(target)
    code, _, err = cli("put", str(tree))
    assert code == 0 and "symbolic link" not in err, err
    back = tmp_path / "back"
    code, _, err = cli("get", "tree", "-o", str(back))
    assert code == 0, err
    got = back / "tree"
    for name, target in links.items():
        assert (got / name).is_symlink() and os.readlink(got / name) == target, name
    assert (got / "sub" / "real.txt").read_text() == "real"
    assert (got / "empty").is_dir() and not any((got / "empty").iterdir())
    assert stat.S_IMODE((got / "empty").stat().st_mode) == 0o750
    assert (got / "deep" / "er").is_dir()
    # Unchanged: nothing stored again.
    code, _, err = cli("put", str(tree))
    assert code == 0 and "were already stored" in err
    # From the stores alone, on a new machine: the same.
    assert cli("catalog", "rebuild")[0] == 0
    again = tmp_path / "again"
    assert cli("get", "tree", "-o", str(again))[0] == 0
    assert os.readlink(again / "tree" / "abs") == "/etc"


def test_a_restored_link_is_never_written_through(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    """A link stored as "t/a" (to a folder outside) and a file stored as "t/a/x": the
    file must never land where the link points, in one restore or in two."""
    outside = tmp_path / "outside"
    outside.mkdir()
    first = tmp_path / "one" / "t"
    first.mkdir(parents=True)
    (first / "a").symlink_to(outside)
    second = tmp_path / "two" / "t" / "a"
    second.mkdir(parents=True)
    (second / "x").write_text("must not escape")
    assert cli("put", str(first))[0] == 0
    assert cli("put", str(tmp_path / "two" / "t"))[0] == 0
    dest = tmp_path / "dest"
    code, _, err = cli("get", "t", "-o", str(dest))   # both, in one restore
    assert not any(outside.iterdir())
    assert code == 1 and (dest / "t" / "a" / "x").read_text() == "must not escape"
    assert "t/a" in err and "is a folder" in err, err
    dest2 = tmp_path / "dest2"   # the link first, then the file: refused, said
    link_id = next(r["id"] for r in json.loads(cli("ls", "--json")[1])
                   if r["name"] == "t/a")
    file_id = next(r["id"] for r in json.loads(cli("ls", "--json")[1])
                   if r["name"] == "t/a/x")
    code, _, err = cli("get", link_id, "-o", str(dest2) + "/")
    assert code == 0 and (dest2 / "t" / "a").is_symlink(), err
    code, _, err = cli("get", file_id, link_id, "-o", str(dest2), "--force")
    assert not any(outside.iterdir()) and "symbolic link on the way" in err, err
