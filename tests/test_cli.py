"""The `cssm` command end to end, as a user or a script would run it, on folder stores."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cssm_desktop.cli import main
from cssm_desktop.config import Config

from .conftest import PASSWORD, folder_stores, write_config


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                 config: Path) -> None:
        self.capsys, self.monkeypatch, self.config = capsys, monkeypatch, config

    def __call__(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        self.capsys.readouterr()
        argv = ["--config", str(self.config), *args]
        if stdin is not None:
            self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
            argv.insert(0, "--password-stdin")
        code = main(argv)
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> Cli:
    cfg = write_config(tmp_path / "cssm.toml",
                       Config(stores=folder_stores(tmp_path / "stores"), threshold=3))
    monkeypatch.setenv("CSSM_PASSWORD", PASSWORD)
    run = Cli(capsys, monkeypatch, cfg)
    code, out, _ = run("init")
    assert code == 0 and "3 of 5" in out
    return run


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_new_user_story_folder_put_lose_two_stores_restore_rebuild(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    photos = tmp_path / "Photos"
    (photos / "2026" / "Été").mkdir(parents=True)
    (photos / "a.jpg").write_bytes(os.urandom(70_000))
    (photos / "2026" / "Été" / "plage ☀.jpg").write_bytes(os.urandom(3_000_001))
    (photos / "2026" / "empty.txt").write_bytes(b"")
    code, out, err = cli("put", str(photos), "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert sorted(e["name"] for e in listed) == ["Photos/2026/empty.txt",
                                                 "Photos/2026/Été/plage ☀.jpg", "Photos/a.jpg"]
    for store in ("store2", "store4"):
        shutil.rmtree(tmp_path / "stores" / store)
    out_dir = tmp_path / "restored"
    out_dir.mkdir()
    for e in listed:
        code, _, err = cli("get", e["id"], "-o", str(out_dir))
        assert code == 0, err
        assert "store2" in err and "store4" in err  # the losses are reported
    assert _tree(out_dir / "Photos") == _tree(photos)

    # A new machine: empty data dir, same config and password.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "new-machine"))
    # With the password at hand, ls catches up with the stores before it answers.
    code, out, err = cli("ls", "--json")
    assert code == 0 and len(json.loads(out)) == 3 and "caught up" in err
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "newer-machine"))
    monkeypatch.delenv("CSSM_PASSWORD")
    code, out, err = cli("ls", "--json")   # without it: says what the list lacks
    assert (code, json.loads(out)) == (0, []) and "2 objects in the stores" in err
    monkeypatch.setenv("CSSM_PASSWORD", PASSWORD)
    code, out, err = cli("catalog", "rebuild")
    assert code == 0 and "3 files" in out, err
    code, out, _ = cli("ls", "--json")
    rows = json.loads(out)
    assert sorted(r["name"] for r in rows) == sorted(e["name"] for e in listed)
    assert {r["health"] for r in rows} == {"at risk"}
    assert all({"id", "name", "size", "stored_at", "health"} <= set(r) for r in rows)
    code, out, _ = cli("ls")
    assert "Photos/a.jpg" in out and "68.4 KiB" in out


def test_put_prints_id_and_path(cli: Cli, tmp_path: Path) -> None:
    f = tmp_path / "note.txt"
    f.write_text("hello")
    code, out, _ = cli("put", str(f))
    assert code == 0
    fid, path = out.strip().split("  ")
    assert len(fid) == 32 and path == str(f)


def test_get_by_name_and_refusal_to_overwrite(cli: Cli, tmp_path: Path) -> None:
    f = tmp_path / "note.txt"
    f.write_text("version 1")
    assert cli("put", str(f))[0] == 0
    dest = tmp_path / "dest.txt"
    dest.write_text("keep me")
    code, _, err = cli("get", "note.txt", "-o", str(dest))
    assert code == 1 and "exists" in err and "--force" in err
    assert dest.read_text() == "keep me"
    code, _, _ = cli("get", "note.txt", "-o", str(dest), "--force")
    assert code == 0 and dest.read_text() == "version 1"


def test_wrong_password_says_so_and_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    f = tmp_path / "f.bin"
    f.write_bytes(b"x" * 100)
    assert cli("put", str(f))[0] == 0
    dest = tmp_path / "out.bin"
    code, _, err = cli("get", "f.bin", "-o", str(dest), stdin="guess\n")
    assert code == 1
    assert err.strip() == "cssm: error: wrong password: the vault key could not be unlocked"
    assert not dest.exists()


def test_put_with_a_wrong_password_says_so_and_stores_nothing(cli: Cli,
                                                              tmp_path: Path) -> None:
    """The unlock runs while the tree is listed: its failure still ends the put, at once
    and in one line, with no listing left running."""
    for i in range(200):
        (tmp_path / "tree" / f"d{i}").mkdir(parents=True)
        (tmp_path / "tree" / f"d{i}" / "f.txt").write_text(str(i))
    code, out, err = cli("put", str(tmp_path / "tree"), stdin="guess\n")
    assert code == 1 and out == ""
    assert err.strip() == "cssm: error: wrong password: the vault key could not be unlocked"
    assert not [t for t in threading.enumerate() if t.name == "cssm-list"]
    assert cli("ls", "--json")[1].strip() == "[]"
    assert not [p for p in (tmp_path / "stores").rglob("*")
                if p.is_file() and p.name != "vault"]


def test_only_k_minus_1_stores(cli: Cli, tmp_path: Path) -> None:
    f = tmp_path / "f.bin"
    f.write_bytes(b"x" * 100)
    assert cli("put", str(f))[0] == 0
    for store in ("store1", "store3", "store5"):
        shutil.rmtree(tmp_path / "stores" / store)
    code, _, err = cli("get", "f.bin", "-o", str(tmp_path / "out"))
    assert code == 1 and "only 2 of the 3 stores needed" in err
    assert not (tmp_path / "out").exists()


def test_unreadable_file_among_good_ones(cli: Cli, tmp_path: Path) -> None:
    good1, good2 = tmp_path / "one.txt", tmp_path / "two.txt"
    good1.write_text("1")
    good2.write_text("2")
    bad = tmp_path / "dangling"
    bad.symlink_to(tmp_path / "gone")
    code, out, err = cli("put", str(good1), str(bad), str(good2))
    assert code == 1
    assert "dangling" in err and "one.txt" not in err
    assert "one.txt" in out and "two.txt" in out
    _, out, _ = cli("ls", "--json")
    assert sorted(r["name"] for r in json.loads(out)) == ["one.txt", "two.txt"]


def test_missing_path_is_named(cli: Cli, tmp_path: Path) -> None:
    code, _, err = cli("put", str(tmp_path / "nope.txt"))
    assert code == 1 and "nope.txt: no such file" in err


def test_200_mib_file_round_trip(cli: Cli, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with open(big, "wb") as fh:
        for _ in range(200):
            chunk = os.urandom(1 << 20)
            digest.update(chunk)
            fh.write(chunk)
    code, _, err = cli("put", str(big))
    assert code == 0, err
    big.unlink()  # the original is gone, as after a disk failure
    shutil.rmtree(tmp_path / "stores" / "store1")  # and a systematic part with it
    code, _, err = cli("get", "big.bin", "-o", str(tmp_path / "back.bin"))
    assert code == 0, err
    back = hashlib.sha256()
    with open(tmp_path / "back.bin", "rb") as fh:
        while chunk := fh.read(1 << 20):
            back.update(chunk)
    assert back.digest() == digest.digest()


def test_rm_removes_everywhere(cli: Cli, tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("bye")
    _, out, _ = cli("put", str(f))
    fid = out.split()[0]
    code, out, _ = cli("rm", "--yes", fid[:8])
    assert code == 0 and fid in out
    assert not [p for p in (tmp_path / "stores").rglob(fid)]
    assert json.loads(cli("ls", "--json")[1]) == []


def test_passwd_then_old_password_fails(cli: Cli, tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("content")
    assert cli("put", str(f))[0] == 0
    code, _out, err = cli("passwd", stdin=f"{PASSWORD}\nbrand new password\n")
    assert code == 0, err
    code, _, err = cli("get", "f.txt", "-o", str(tmp_path / "o1"))
    assert code == 1 and "wrong password" in err
    code, _, err = cli("get", "f.txt", "-o", str(tmp_path / "o2"), stdin="brand new password\n")
    assert code == 0, err
    assert (tmp_path / "o2").read_text() == "content"


def test_init_twice_is_refused(cli: Cli) -> None:
    code, _, err = cli("init")
    assert code == 1 and "already holds vault" in err


def test_stores_list_and_test(cli: Cli, tmp_path: Path) -> None:
    code, out, _ = cli("stores", "list")
    assert code == 0 and out.count("folder") == 5 and "threshold: 3 of 5" in out
    code, out, _ = cli("stores", "test")
    assert code == 0 and out.count("ok ") == 5
    shutil.rmtree(tmp_path / "stores" / "store3")
    code, out, _ = cli("stores", "test")
    assert code == 1 and "FAIL  store3" in out and "does not exist" in out


def test_config_errors_are_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    assert main(["--config", str(tmp_path / "missing.toml"), "ls"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cssm: error: no configuration at") and err.count("\n") == 1
    bad = tmp_path / "bad.toml"
    bad.write_text('threshold = 9\n[[store]]\nname = "a"\ntype = "folder"\npath = "/x"\n'
                   '[[store]]\nname = "b"\ntype = "folder"\npath = "/y"\n')
    assert main(["--config", str(bad), "ls"]) == 1
    assert "threshold must be between 1 and 2" in capsys.readouterr().err


def test_no_password_without_a_terminal(cli: Cli, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CSSM_PASSWORD")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    f = tmp_path / "f.txt"
    f.write_text("x")
    code, _, err = cli("put", str(f))
    assert code == 1 and "--password-stdin" in err


def test_real_process_with_password_on_stdin(tmp_path: Path) -> None:
    """The installed entry point, a separate process, the password piped in."""
    cfg = write_config(tmp_path / "c.toml",
                       Config(stores=folder_stores(tmp_path / "s", 3), threshold=2))
    env = {k: v for k, v in os.environ.items() if k != "CSSM_PASSWORD"}
    cmd = [sys.executable, "-m", "cssm_desktop.cli", "--config", str(cfg), "--password-stdin"]
    r = subprocess.run([*cmd, "init"], input="pw\n", capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    f = tmp_path / "hello.txt"
    f.write_text("hello world")
    r = subprocess.run([*cmd, "put", str(f)], input="pw\n", capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*cmd, "get", "hello.txt", "-o", str(tmp_path / "back.txt")],
                       input="pw\n", capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "back.txt").read_text() == "hello world"
    r = subprocess.run([sys.executable, "-m", "cssm_desktop.cli", "--version"],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.startswith("cssm ")


def test_stores_secret_goes_to_the_keyring_not_the_config(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        memory_keyring: object) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('threshold = 2\n[[store]]\nname = "wasabi"\ntype = "s3"\n'
                   'bucket = "my-bucket"\naccess_key_id = "AKIAEXAMPLE"\n'
                   '[[store]]\nname = "usb"\ntype = "folder"\npath = "/media/usb"\n')
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cr3t-value\n"))
    assert main(["--config", str(cfg), "stores", "secret", "wasabi"]) == 0
    assert memory_keyring.secrets == {  # type: ignore[attr-defined]
        ("cssm-desktop", "wasabi"): "s3cr3t-value"}
    assert "s3cr3t" not in cfg.read_text()
    monkeypatch.setattr(sys, "stdin", io.StringIO("x\n"))
    assert main(["--config", str(cfg), "stores", "secret", "usb"]) == 1
    assert "no S3 store named 'usb'" in capsys.readouterr().err


def test_stores_replace_binds_an_empty_store_and_repair_fills_it(
        cli: Cli, tmp_path: Path) -> None:
    from cssm_desktop.config import StoreConfig, load_config, save_config

    src = tmp_path / "doc.bin"
    src.write_bytes(os.urandom(120_000))
    code, out, _ = cli("put", str(src))
    fid = out.split()[0]
    shutil.rmtree(tmp_path / "stores" / "store3")                # a disk died
    cfg = load_config(cli.config)
    cfg.stores.append(StoreConfig("usb-new", "folder", path=str(tmp_path / "usb-new")))
    save_config(cfg, cli.config)
    # A store that already holds part of the vault cannot stand in for another.
    before = cli.config.read_bytes()
    code, _, err = cli("stores", "replace", "store3", "store2")
    assert code == 1 and err.count("\n") == 1 and "already holds store #2" in err
    assert cli.config.read_bytes() == before
    code, out, err = cli("stores", "replace", "store3", "usb-new")
    assert code == 0, err
    assert "holds store #3" in out and "cssm repair" in out
    stores = {s.name: s.index for s in load_config(cli.config).stores}
    assert "store3" not in stores and stores["usb-new"] == 2
    code, out, _ = cli("stores", "list")
    assert any(line.split()[:2] == ["usb-new", "#3"] for line in out.splitlines())
    code, _, err = cli("repair")
    assert code == 0, err
    code, out, _ = cli("verify")
    assert code == 0 and "1 safe" in out
    # The new store holds index 2's share and part: with two originals gone, it restores.
    for name in ("store1", "store2"):
        shutil.rmtree(tmp_path / "stores" / name)
    code, _, err = cli("get", fid, "-o", str(tmp_path / "back.bin"))
    assert code == 0, err
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()


def test_verify_and_repair_count_files_not_packs(cli: Cli, tmp_path: Path) -> None:
    """A folder of small files is one pack: verify and repair check it once, and say how
    many files that was (they said "verified 2 files" for 41)."""
    import shutil

    notes = tmp_path / "Notes"
    notes.mkdir()
    for i in range(40):
        (notes / f"n{i}.txt").write_bytes(os.urandom(100 + i))
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(2_000_000))
    assert cli("put", str(notes), str(big))[0] == 0
    code, out, _ = cli("verify")
    assert code == 0 and out.rstrip().endswith("verified 41 files: 41 safe, 0 at risk "
                                               "(restorable; run `cssm repair`), 0 lost")
    assert "and 39 more small files" in out
    shutil.rmtree(tmp_path / "stores" / "store2")
    (tmp_path / "stores" / "store2").mkdir()
    code, out, _ = cli("verify")
    assert code == 1 and "verified 41 files: 0 safe, 41 at risk" in out
    code, out, _ = cli("repair")
    assert code == 0 and out.rstrip().endswith("41 of 41 files safe"), out


def test_rm_asks_checks_the_password_and_takes_folders(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """D1: a file stored alone (1 MiB or more) went with a wrong password and no question;
    rm took ids one at a time and no folder."""
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(2 * 1024 * 1024))
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    for i in range(30):
        (docs / ("sub" if i % 2 else ".") / f"n{i}.txt").write_text(f"note {i}")
    assert cli("put", str(big), str(docs))[0] == 0
    fid = next(r["id"] for r in json.loads(cli("ls", "--json")[1]) if r["name"] == "big.bin")
    # No terminal to ask on, no --yes: nothing removed, one line saying how.
    code, _, err = cli("rm", fid[:8])
    assert code == 1 and "--yes" in err and len(err.strip().splitlines()) == 2
    # A wrong password removes nothing, whatever the file.
    monkeypatch.setenv("CSSM_PASSWORD", "not the password")
    code, _, err = cli("rm", "--yes", fid[:8])
    assert code == 1 and "wrong password" in err.lower()
    monkeypatch.setenv("CSSM_PASSWORD", PASSWORD)
    assert len(json.loads(cli("ls", "--json")[1])) == 31
    # --dry-run lists, removes nothing.
    code, out, _ = cli("rm", "--dry-run", "docs")
    assert code == 0 and out.count("would remove") == 30 and "30 files" in out
    assert len(json.loads(cli("ls", "--json")[1])) == 31
    # A folder, every copy under it, in one go; asked on a terminal.
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda _prompt: "n")
    code, _, err = cli("rm", "docs/")
    assert code == 1 and "nothing removed" in err
    monkeypatch.setattr("builtins.input", lambda _prompt: "y")
    code, out, err = cli("rm", "docs/")
    assert code == 0 and out.count("removed ") == 30 and "30 of 30 removed" in err
    assert [r["name"] for r in json.loads(cli("ls", "--json")[1])] == ["big.bin"]
    code, out, _ = cli("get", "docs", "-o", str(tmp_path / "back"))
    assert code == 1


def test_stores_replace_asks_before_a_healthy_store_and_refuses_a_full_one(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """D2: a healthy, reachable store was replaced by a folder full of files, no question."""
    from cssm_desktop.config import StoreConfig, load_config, save_config

    full = tmp_path / "full"
    full.mkdir()
    (full / "holiday.jpg").write_bytes(b"mine")
    empty = tmp_path / "empty"
    cfg = load_config(cli.config)
    cfg.stores += [StoreConfig("full", "folder", path=str(full)),
                   StoreConfig("empty", "folder", path=str(empty))]
    save_config(cfg, cli.config)
    before = cli.config.read_bytes()
    code, _, err = cli("stores", "replace", "--yes", "store1", "full")
    assert code == 1 and "not empty" in err and "holiday.jpg" in err
    code, _, err = cli("stores", "replace", "store1", "empty")   # healthy, no terminal
    assert code == 1 and "reachable and healthy" in err and "--yes" in err
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda _prompt: "")
    code, _, err = cli("stores", "replace", "store1", "empty")
    assert code == 1 and "nothing replaced" in err
    assert cli.config.read_bytes() == before and (full / "holiday.jpg").read_bytes() == b"mine"
    code, out, err = cli("stores", "replace", "--yes", "store1", "empty")
    assert code == 0 and "holds store #1" in out, err


def test_get_to_standard_output(cli: Cli, tmp_path: Path) -> None:
    """`cssm get ID -o -`: the bytes, nothing else, for a file stored alone and one in a
    pack; a folder is refused in one line."""
    import subprocess

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    small = tmp_path / "small.txt"
    small.write_bytes(b"small and packed\n")
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "a").write_text("a")
    assert cli("put", str(big), str(small), str(tree))[0] == 0

    def get(name: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "cssm_desktop.cli", "--config",
                               str(cli.config), "get", name, "-o", "-"],
                              capture_output=True, timeout=120)

    for name, src in (("big.bin", big), ("small.txt", small)):
        done = get(name)
        assert done.returncode == 0 and done.stdout == src.read_bytes(), done.stderr
    done = get("t")
    assert done.returncode == 1 and done.stdout == b"" and b"standard output" in done.stderr
    assert done.stderr.count(b"\n") == 1


def test_put_excludes_what_people_leave_out_and_dry_run_stores_nothing(
        cli: Cli, tmp_path: Path) -> None:
    tree = tmp_path / "proj"
    for d in ("src", "node_modules/lib", "cache", "photos/raw", "photos/edited"):
        (tree / d).mkdir(parents=True)
    for f in ("a.tmp", "src/main.py", "src/cache", "node_modules/lib/x.js", "cache/blob",
              "photos/raw/1.cr2", "photos/edited/1.jpg", "notes.txt"):
        (tree / f).write_text(f)
    rules = tmp_path / "excludes.txt"
    rules.write_text("# build output\nnode_modules\n\ncache/\n")
    code, out, err = cli("put", "--dry-run", "-e", "*.tmp", "--exclude", "proj/photos/raw/*",
                         "--exclude-file", str(rules), str(tree))
    assert code == 0, err
    would = sorted(line.split()[-1] for line in out.splitlines())
    assert would == ["proj/notes.txt", "proj/photos/edited/1.jpg", "proj/src/cache",
                     "proj/src/main.py"]
    assert "4 files" in err and json.loads(cli("ls", "--json")[1]) == []   # nothing stored
    code, _, err = cli("put", "-e", "*.tmp", "-e", "proj/photos/raw/*", "--exclude-file",
                       str(rules), str(tree))
    assert code == 0, err
    assert sorted(r["name"] for r in json.loads(cli("ls", "--json")[1])) == would
    code, _, err = cli("put", "--exclude-file", str(tmp_path / "none.txt"), str(tree))
    assert code == 1 and "cannot read exclude file" in err and err.count("\n") == 1


def test_a_secret_from_the_environment_and_the_log_command(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Machines without a keyring: CSSM_SECRET_<STORE> holds a store's secret key, and
    the error without one says so. `cssm log` shows the log's end and where it is."""
    from cssm_desktop.config import get_secret
    from cssm_desktop.errors import MissingSecret, secret_variable

    assert secret_variable("wasabi-1") == "CSSM_SECRET_WASABI_1"
    assert get_secret("wasabi-1") is None
    monkeypatch.setenv("CSSM_SECRET_WASABI_1", "from-the-environment")
    assert get_secret("wasabi-1") == "from-the-environment"
    assert "CSSM_SECRET_WASABI_1" in str(MissingSecret("wasabi-1"))
    f = tmp_path / "f.bin"
    f.write_bytes(os.urandom(2 * 1024 * 1024))
    assert cli("put", str(f))[0] == 0
    code, out, err = cli("log", "-n", "5")
    assert code == 0 and "log: " in err and "cssm.log" in err
    assert "stored file" in out and "f.bin" not in out   # ids and sizes, never a name
    assert len(out.splitlines()) <= 5


def test_init_and_replace_keep_the_comments_the_user_wrote(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """init and `stores replace` rewrote the config and dropped every comment."""
    from cssm_desktop.config import load_config

    places = ["hall", "attic", "office", "car", "bank"]
    lines = ["# My backup: five disks", "threshold = 3  # any 3 of 5", ""]
    for i, place in enumerate(places, start=1):
        lines += ["[[store]]", f"# disk {i}: the one in the {place}", f'name = "d{i}"',
                  'type = "folder"', f'path = "{tmp_path / "stores" / f"d{i}"}"', ""]
    cfg = tmp_path / "cssm.toml"
    cfg.write_text("\n".join(lines))
    monkeypatch.setenv("CSSM_PASSWORD", PASSWORD)
    run = Cli(capsys, monkeypatch, cfg)
    code, _, err = run("init")
    assert code == 0, err
    text = cfg.read_text()
    for comment in ("# My backup: five disks", "# any 3 of 5", "# disk 1: the one in the hall",
                    "# disk 5: the one in the bank"):
        assert comment in text
    loaded = load_config(cfg)
    assert loaded.vault is not None and [s.index for s in loaded.stores] == [0, 1, 2, 3, 4]
    with cfg.open("a") as fh:
        fh.write(f'\n[[store]]\n# the new disk\nname = "new"\ntype = "folder"\n'
                 f'path = "{tmp_path / "new"}"\n')
    code, _, err = run("stores", "replace", "--yes", "d2", "new")
    assert code == 0, err
    text = cfg.read_text()
    assert "# disk 1: the one in the hall" in text and "# the new disk" in text
    assert "# disk 2" not in text   # the store that went, with its own comment
    assert {s.name: s.index for s in load_config(cfg).stores}["new"] == 1


def test_every_reporting_command_speaks_json(cli: Cli, tmp_path: Path) -> None:
    """get, verify, repair, gc, stores status and rm print one JSON document a script can
    read, and nothing else on standard output."""
    import shutil

    tree = tmp_path / "docs"
    tree.mkdir()
    (tree / "a.txt").write_text("a")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(2 * 1024 * 1024))
    assert cli("put", str(tree), str(big))[0] == 0
    code, out, _ = cli("get", "docs", "-o", str(tmp_path / "back"), "--json")
    rows = json.loads(out)
    assert code == 0 and [(r["name"], r["status"]) for r in rows] == [("docs/a.txt", "restored")]
    code, out, _ = cli("get", "docs", "-o", str(tmp_path / "back"), "--json")
    assert json.loads(out)[0]["status"] == "skipped"
    code, out, _ = cli("get", "big.bin", "-o", str(tmp_path / "b2.bin"), "--json")
    assert json.loads(out)[0]["path"] == str(tmp_path / "b2.bin")
    code, out, _ = cli("verify", "--json")
    verdicts = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and {r["health"] for r in verdicts.values()} == {"safe"}
    assert set(verdicts["big.bin"]["stores"].values()) == {"ok"}
    shutil.rmtree(tmp_path / "stores" / "store2")
    code, out, _ = cli("stores", "status", "--json")
    status = json.loads(out)
    assert code == 1 and status["down"] == ["store2"] and (status["n"], status["k"]) == (5, 3)
    code, out, _ = cli("verify", "big.bin", "--json")
    assert code == 1 and json.loads(out)[0]["health"] == "at risk"
    (tmp_path / "stores" / "store2").mkdir()
    code, out, _ = cli("repair", "--json")
    repaired = json.loads(out)
    assert code == 0 and all(f["safe"] for f in repaired["files"])
    assert any("store2" in f["rebuilt"] for f in repaired["files"])
    code, out, _ = cli("gc", "--dry-run", "--json")
    assert code == 0 and json.loads(out)["dry_run"] is True
    code, out, _ = cli("rm", "--yes", "--json", "docs")
    assert code == 0 and [r["removed"] for r in json.loads(out)] == [True]


def test_shell_completion_knows_the_commands_and_their_flags(tmp_path: Path) -> None:
    """`source <(cssm completion bash)` completes commands and flags, from the parser."""
    import shutil
    import subprocess

    if shutil.which("bash") is None:
        pytest.skip("no bash here")
    script = tmp_path / "cssm.bash"
    done = subprocess.run([sys.executable, "-m", "cssm_desktop.cli", "completion", "bash"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    script.write_text(done.stdout)

    def complete(*words: str) -> list[str]:
        line = " ".join(words)
        probe = (f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
                 f"COMP_LINE='{line}'; COMP_POINT={len(line)}; _shtab_cssm; "
                 'printf "%s\\n" "${COMPREPLY[@]}"')
        return subprocess.run(["bash", "-c", probe], capture_output=True, text=True,
                              timeout=60).stdout.split()

    assert "repair" in complete("cssm", "re") and "rm" in complete("cssm", "r")
    assert set(complete("cssm", "put", "--ex")) == {"--exclude", "--exclude-file"}
    assert "--no-modes" in complete("cssm", "get", "--no")


def test_get_dry_run_says_where_and_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    tree = tmp_path / "docs"
    tree.mkdir()
    (tree / "a.txt").write_text("a")
    (tree / "b.txt").write_text("b")
    assert cli("put", str(tree))[0] == 0
    dest = tmp_path / "dest"
    (dest / "docs").mkdir(parents=True)
    (dest / "docs" / "a.txt").write_text("mine")
    code, out, err = cli("get", "--dry-run", "docs", "-o", str(dest))
    assert code == 0 and "2 files" not in err and "1 file would be restored, 1 skipped" in err
    assert "would skip     docs/a.txt" in out and "would restore  docs/b.txt" in out
    assert sorted(p.name for p in (dest / "docs").iterdir()) == ["a.txt"]
    assert (dest / "docs" / "a.txt").read_text() == "mine"
    code, out, _ = cli("get", "-n", "docs/b.txt", "-o", str(tmp_path / "one.txt"))
    assert code == 0 and out.strip().endswith(str(tmp_path / "one.txt"))
    assert not (tmp_path / "one.txt").exists()
