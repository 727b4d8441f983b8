"""Small files in packs (issue: many small files): round trips on real stores with stores
gone, removal that every reader sees at once, gc that repacks, kills that leave nothing
listed, and stores that lie about packs."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cssm_desktop import durable
from cssm_desktop.config import Config
from cssm_desktop.core.format import KIND_PACK, MetaObject
from cssm_desktop.core.get import open_file
from cssm_desktop.core.layout import removal_prefix
from cssm_desktop.core.pack import open_pack, read_members
from cssm_desktop.core.pack_format import (
    Member,
    index_bytes,
    open_removals,
    parse_index,
    seal_removals,
)
from cssm_desktop.core.progress import CancelToken
from cssm_desktop.engine import Engine
from cssm_desktop.errors import Cancelled, DestinationExists, FormatError, WrongPassword
from cssm_desktop.paths import list_sources

from .conftest import FAST_KDF, PASSWORD, folder_stores, free_port, write_config
from .test_cli import Cli, cli  # noqa: F401  (the fixture)
from .test_s3 import _s3_config, s3  # noqa: F401  (the fixture)


def make_tree(root: Path, files: int, folders: int = 50, seed: int = 1,
              size: tuple[int, int] = (0, 9000)) -> dict[str, bytes]:
    """A Documents-like tree: `files` small files spread over `folders` folders."""
    rnd = random.Random(seed)
    out = {}
    for i in range(files):
        rel = f"{root.name}/d{i % folders:02d}/f{i:05d}.txt"
        data = rnd.randbytes(rnd.randint(*size))
        path = root.parent / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        out[rel] = data
    return out


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in root.rglob("*") if p.is_file()}


def objects(store_root: Path) -> list[Path]:
    return [p for p in store_root.rglob("*") if p.is_file() and p.name != "vault"]


def unplug(tmp_path: Path, *names: str) -> None:
    for name in names:
        (tmp_path / "stores" / name).rename(tmp_path / f"{name}.away")


# ---------------------------------------------------------------- round trips


def test_a_tree_of_small_files_round_trips_through_packs_with_two_stores_gone(
        folder_engine: Engine, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "Documents", 3000)
    results = folder_engine.put([tmp_path / "Documents"])
    assert all(r.stored is not None for r in results) and len(results) == 3000
    entries = folder_engine.entries()
    packs = {e.pack for e in entries}
    assert "" not in packs and 1 <= len(packs) <= 3
    # A handful of objects per store for 3,000 files: n parts + n metadata per pack.
    for store in (tmp_path / "stores").iterdir():
        assert len(objects(store)) == 2 * len(packs), store
    size = sum(len(v) for v in tree.values())
    held = sum(p.stat().st_size for s in (tmp_path / "stores").iterdir() for p in objects(s))
    assert held / size < 2.0     # 3-of-5 itself is 1.67x
    unplug(tmp_path, "store1", "store4")
    folder_engine.check_stores()
    chosen, folder = folder_engine.select(["Documents"])
    assert folder and len(chosen) == 3000
    out = tmp_path / "back"
    rows = folder_engine.get_many(chosen, str(out) + "/")
    assert all(isinstance(got, Path) for _, got in rows)
    assert read_tree(out) == tree


def test_a_second_put_of_a_tree_skips_what_is_stored_and_stores_what_changed(
        folder_engine: Engine, tmp_path: Path) -> None:
    """Names are looked up in batches of 500 (catalog.named_many): more than two."""
    make_tree(tmp_path / "Documents", 1100, size=(1, 200))
    assert all(r.stored for r in folder_engine.put([tmp_path / "Documents"]))
    changed = tmp_path / "Documents" / "d07" / "f00707.txt"
    changed.write_bytes(b"new content")
    again = folder_engine.put([tmp_path / "Documents"])
    stored = [r.source for r in again if r.stored is not None]
    assert stored == [str(changed)]
    assert sum(1 for r in again if r.duplicate_of is not None) == 1099
    assert len(folder_engine.entries()) == 1101


def _fds() -> set[tuple[str, str]]:
    """The open fds and what they are: an fd another test left to the garbage collector
    may close meanwhile, so a check asks that none is new, not that the count stays."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):   # the listing's own fd, gone by now
            out.add((fd, os.readlink(f"/proc/self/fd/{fd}")))
    return out


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts fds in /proc")
def test_files_gone_or_special_among_those_read_ahead_fail_alone_and_no_fd_is_left(
        folder_engine: Engine, tmp_path: Path) -> None:
    """Packs open the next files ahead of the one read: a file deleted or replaced by a
    FIFO after the listing fails alone, wherever it falls in that window."""
    tree = make_tree(tmp_path / "Documents", 100, folders=1, size=(1, 3000))
    sources, _ = list_sources([tmp_path / "Documents"], frozenset())
    gone, fifo = Path(sources[3].path), Path(sources[40].path)
    gone.unlink()
    fifo.unlink()
    os.mkfifo(fifo)
    before = _fds()
    results = folder_engine.put_sources(sources)
    assert _fds() <= before
    failed = {r.source: str(r.error) for r in results if r.error is not None}
    assert failed.keys() == {str(gone), str(fifo)}
    assert "no such file" in failed[str(gone)].lower()
    assert "not a regular file" in failed[str(fifo)]
    assert len(folder_engine.entries()) == 98
    out = tmp_path / "back"
    chosen, _ = folder_engine.select(["Documents"])
    folder_engine.get_many(chosen, str(out) + "/")
    del tree[f"Documents/d00/{gone.name}"], tree[f"Documents/d00/{fifo.name}"]
    assert read_tree(out) == tree


class _CancelWhileReading(CancelToken):
    """The user cancels while the pack's files are being read (the 10th check)."""

    def __init__(self) -> None:
        super().__init__()
        self.checks = 0

    def check(self) -> None:
        self.checks += 1
        if self.checks == 10:
            self.cancel()
        super().check()


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts fds in /proc")
def test_a_cancel_while_files_are_read_ahead_closes_them_and_lists_nothing(
        folder_engine: Engine, tmp_path: Path) -> None:
    make_tree(tmp_path / "Documents", 200, folders=2, size=(1, 100))
    before = _fds()
    cancel = _CancelWhileReading()
    results = folder_engine.put([tmp_path / "Documents"], cancel=cancel)
    assert cancel.checks >= 10
    assert _fds() <= before
    assert results and all(isinstance(r.error, Cancelled) for r in results)
    assert folder_engine.entries() == []
    assert all(objects(s) == [] for s in (tmp_path / "stores").iterdir())


def test_small_and_large_files_together_restore_by_folder_on_s3(
        s3, tmp_path: Path) -> None:  # noqa: F811
    engine = Engine(_s3_config(s3), catalog_path=tmp_path / "catalog.sqlite")
    engine.init(PASSWORD, kdf=FAST_KDF)
    tree = make_tree(tmp_path / "Mixed", 400, folders=7)
    big = tmp_path / "Mixed" / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    tree["Mixed/big.bin"] = big.read_bytes()
    results = engine.put([tmp_path / "Mixed"])
    assert all(r.stored is not None for r in results)
    entries = engine.entries()
    assert [e.name for e in entries if not e.pack] == ["Mixed/big.bin"]
    # Two stores stop answering: nothing listens where they were.
    cfg = engine.config
    cfg.stores[1].endpoint_url = cfg.stores[3].endpoint_url = f"http://127.0.0.1:{free_port()}"
    again = Engine(cfg, catalog_path=tmp_path / "catalog.sqlite")
    again.unlock(PASSWORD)
    chosen, _ = again.select(["Mixed/"])
    rows = again.get_many(chosen, tmp_path / "back")
    assert all(isinstance(got, Path) for _, got in rows), rows
    assert read_tree(tmp_path / "back") == tree


def test_cli_get_of_a_folder_restores_the_tree_with_one_password(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    tree = make_tree(tmp_path / "Notes", 120, folders=6)
    code, out, _ = cli("put", str(tmp_path / "Notes"))
    assert code == 0 and len(out.splitlines()) == 120
    monkeypatch.delenv("CSSM_PASSWORD")
    code, out, err = cli("get", "Notes", "-o", str(tmp_path / "back"), stdin=PASSWORD + "\n")
    assert code == 0, err
    assert out.splitlines()[-1] == "120 restored, 0 skipped, 0 failed"
    assert read_tree(tmp_path / "back") == tree
    # Again: everything is there, nothing is overwritten.
    code, out, err = cli("get", "Notes/d01", "-o", str(tmp_path / "back"),
                         stdin=PASSWORD + "\n")
    assert code == 0 and out.splitlines()[-1] == "0 restored, 20 skipped, 0 failed"
    # A wrong password: one line, and nothing made where the tree would go.
    code, out, err = cli("get", "Notes", "-o", str(tmp_path / "other"), stdin="guess\n")
    assert code == 1 and out == ""
    assert err.strip() == "cssm: error: wrong password: the vault key could not be unlocked"
    assert not (tmp_path / "other").exists()
    # A file where the folder goes: one line, before any password is asked for.
    (tmp_path / "afile").write_text("mine")
    code, out, err = cli("get", "Notes", "-o", str(tmp_path / "afile"), stdin="")
    assert code == 1 and out == ""
    assert err.strip() == (f"cssm: error: cannot restore into {tmp_path / 'afile'}: it is a "
                           "file; several files, or a folder, restore into a folder")
    assert (tmp_path / "afile").read_text() == "mine"


def test_a_tree_restore_keeps_what_is_in_the_way_and_leaves_no_temporary_file(
        folder_engine: Engine, tmp_path: Path) -> None:
    """Taken names are found when each small file is named (a link never replaces): a
    file in the way is kept (replaced with force), a folder in the way never."""
    tree = make_tree(tmp_path / "Notes", 30, folders=3, size=(1, 500))
    folder_engine.put([tmp_path / "Notes"])
    back = tmp_path / "back"
    (back / "Notes" / "d00" / "f00000.txt").mkdir(parents=True)      # a folder in the way
    (back / "Notes" / "d01").mkdir(parents=True)
    (back / "Notes" / "d01" / "f00001.txt").write_bytes(b"mine")     # a file in the way
    (back / "Notes" / "d02").mkdir(parents=True)
    (back / "Notes" / "d02" / "f00002.txt").symlink_to(tmp_path / "nowhere")   # and a link
    chosen, _ = folder_engine.select(["Notes"])
    for force in (False, True):
        rows = {e.name: got for e, got in folder_engine.get_many(chosen, back, force=force)}
        failed = {name: got for name, got in rows.items() if not isinstance(got, Path)}
        folder = failed.pop("Notes/d00/f00000.txt")
        assert isinstance(folder, DestinationExists) and folder.folder
        if force:
            assert failed == {}
        else:
            assert failed.keys() == {"Notes/d01/f00001.txt", "Notes/d02/f00002.txt"}
            assert all(isinstance(e, DestinationExists) and not e.folder
                       for e in failed.values())
            assert (back / "Notes" / "d01" / "f00001.txt").read_bytes() == b"mine"
            assert (back / "Notes" / "d02" / "f00002.txt").is_symlink()
    assert (back / "Notes" / "d00" / "f00000.txt").is_dir()
    del tree["Notes/d00/f00000.txt"]
    assert read_tree(back) == tree       # replaced with force; no temporary file left


@pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="files made ahead are O_TMPFILEs")
def test_files_made_ahead_are_handed_out_once_and_what_is_left_leaves_nothing(
        tmp_path: Path) -> None:
    """MadeAhead: each target's unnamed file is taken once (a second take, or a target it
    was not given, is the caller's to make); closing closes the rest and removes the
    folders it made that nothing was named into."""
    targets = [tmp_path / "back" / f"d{i % 4}" / f"f{i}" for i in range(40)]
    before = _fds()
    with durable.MadeAhead(targets, ahead=8) as made:
        with made._cond:   # the thread has begun with the first
            made._cond.wait_for(lambda: made._next > 0)
        fd = made.take(targets[30])           # out of order: waits, or makes none
        assert made.take(targets[30]) is None
        assert made.take(tmp_path / "elsewhere") is None
        first = made.take(targets[0])
        assert first is not None
        os.write(first, b"kept")
        durable._link_fd(first, targets[0])
        os.close(first)
        if fd is not None:
            os.close(fd)
        assert len(_fds() - before) <= 8 + 2   # at most `ahead` wait open (+ 2 making)
    assert _fds() <= before
    assert targets[0].read_bytes() == b"kept"
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == ["d0"]
    assert [p.name for p in (tmp_path / "back" / "d0").iterdir()] == ["f0"]


@pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="files made ahead are O_TMPFILEs")
def test_files_are_made_ahead_for_a_relative_destination_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`cssm get Notes -o back` gives relative targets: the walk up to a folder that
    exists ended at "" (not a folder), so no file was ever made ahead there."""
    monkeypatch.chdir(tmp_path)
    targets = [Path("back") / f"d{i % 2}" / f"f{i}" for i in range(6)]
    with durable.MadeAhead(targets, ahead=8) as made:
        with made._cond:   # the thread has begun with the first
            made._cond.wait_for(lambda: made._next > 0)
        fds = [made.take(t) for t in targets]
        assert fds[0] is not None
        for fd in fds:
            if fd is not None:
                os.close(fd)
    assert not (tmp_path / "back").exists()   # nothing named: the folders it made went


@pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="files made ahead are O_TMPFILEs")
def test_where_making_files_is_slow_two_threads_make_them_ahead(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two threads halve a slow file system's time: a second joins when the first's first
    files were slow, and they keep ahead of the caller to the last target."""
    monkeypatch.setattr(durable.MadeAhead, "SLOW_MAKE", 0.0)
    targets = [tmp_path / "back" / f"f{i}" for i in range(40)]
    with durable.MadeAhead(targets, ahead=64) as made:
        with made._cond:
            made._cond.wait_for(lambda: made._next >= len(targets))
        assert len(made._threads) == 2
        fds = [made.take(t) for t in targets]
        assert all(fd is not None for fd in fds)
        for fd in fds:
            os.close(fd)
    assert not [t for t in threading.enumerate() if t.name == "cssm-make"]


@pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="files made ahead are O_TMPFILEs")
def test_where_making_files_is_quick_the_caller_makes_its_own_until_it_is_slow(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread beside a caller that makes files quickly only trades the GIL with it (a
    20,000-file restore took 3.4 s with one, 2.75 s without): it stops after its first
    files, the caller's `take` makes each file then, and a thread starts again once the
    caller's own files turn slow (ext4 meeting freed inodes part-way)."""
    monkeypatch.setattr(durable.MadeAhead, "SLOW_MAKE", 1.0)
    after = durable.MadeAhead.SLOW_AFTER
    targets = [tmp_path / "back" / f"f{i}" for i in range(8 * after)]
    with durable.MadeAhead(targets, ahead=64) as made:
        with made._cond:
            made._cond.wait_for(lambda: made._running == 0)
        assert made._next == after and len(made._threads) == 1   # stopped after its first
        fds = [made.take(t) for t in targets[:4 * after]]   # made ahead, then here
        assert all(fd is not None for fd in fds)
        assert len(made._threads) == 1 and made._running == 0
        monkeypatch.setattr(durable.MadeAhead, "SLOW_MAKE", 0.0)   # now slow
        fds += [made.take(t) for t in targets[4 * after:5 * after]]
        assert len(made._threads) == 2                            # a thread again
        with made._cond:
            made._cond.wait_for(lambda: made._next >= len(targets))
        fds += [made.take(t) for t in targets[5 * after:]]
        assert all(fd is not None for fd in fds)
        assert len(set(fds)) == len(targets)
        for fd in fds:
            os.close(fd)
    assert not [t for t in threading.enumerate() if t.name == "cssm-make"]


def test_a_wrong_password_for_a_tree_restore_leaves_nothing_behind(
        folder_engine: Engine, tmp_path: Path) -> None:
    """The files are made while the key is derived: a wrong password closes them (unnamed:
    nothing to see) and removes the folders made for them, leaving no fd open."""
    make_tree(tmp_path / "Notes", 300, folders=30, size=(1, 50))
    folder_engine.put([tmp_path / "Notes"])
    chosen, _ = folder_engine.select(["Notes"])
    later = Engine(folder_engine.config, catalog_path=tmp_path / "catalog.sqlite")
    (tmp_path / "back").mkdir()
    before = _fds()
    with pytest.raises(WrongPassword):
        later.get_many(chosen, tmp_path / "back" / "new", password="guess")
    assert _fds() <= before
    assert list((tmp_path / "back").iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name == "cssm-make"]
    rows = later.get_many(chosen, tmp_path / "back" / "new", password=PASSWORD)
    assert all(isinstance(got, Path) for _, got in rows)
    assert _fds() <= before


def test_a_tree_restore_meets_a_file_where_a_folder_goes_and_says_so(
        folder_engine: Engine, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "Notes", 40, folders=4, size=(1, 50))
    folder_engine.put([tmp_path / "Notes"])
    back = tmp_path / "back"
    (back / "Notes").mkdir(parents=True)
    (back / "Notes" / "d02").write_bytes(b"mine")
    chosen, _ = folder_engine.select(["Notes"])
    rows = {e.name: got for e, got in folder_engine.get_many(chosen, back)}
    failed = {name: str(got) for name, got in rows.items() if not isinstance(got, Path)}
    assert sorted(failed) == sorted(n for n in tree if n.startswith("Notes/d02/"))
    assert all("a file is in the way of its folder" in why for why in failed.values())
    assert (back / "Notes" / "d02").read_bytes() == b"mine"
    assert read_tree(back) == {n: d for n, d in tree.items() if n not in failed} | {
        "Notes/d02": b"mine"}


def test_one_member_is_read_without_reading_the_whole_pack(folder_engine: Engine,
                                                          tmp_path: Path) -> None:
    """A member restores from the stripes that hold it (and the index at the end)."""
    rnd = random.Random(5)
    folder = tmp_path / "Big"
    folder.mkdir()
    for i in range(20):                      # 20 x 700 KiB: one pack of ~14 MiB
        (folder / f"{i:02d}.bin").write_bytes(rnd.randbytes(700 * 1024))
    folder_engine.put([folder])
    entry = folder_engine.resolve("Big/03.bin")
    vault = folder_engine.vault()
    pack = open_pack(vault, bytes.fromhex(entry.pack))
    reads = []
    for store in vault.stores.values():
        original = store.open_read

        def counting(key: str, offset: int = 0, _o=original):  # type: ignore[no-untyped-def]
            reads.append(offset)
            return _o(key, offset)
        store.open_read = counting  # type: ignore[method-assign]
    member = pack.member(bytes.fromhex(entry.id))
    assert member is not None
    ((_, data),) = list(read_members(vault, pack, [member]))
    assert data == (folder / "03.bin").read_bytes()
    stripe = pack.opened.header.k * pack.opened.header.block_size
    assert len(reads) == 3 and min(reads) > 0          # k parts, none from its start
    assert pack.opened.stripes > 6 * (member.size // stripe + 2)


# ---------------------------------------------------------------- removal and gc


def test_a_removed_member_is_gone_for_every_reader_at_once(folder_engine: Engine,
                                                          tmp_path: Path) -> None:
    make_tree(tmp_path / "R", 40, folders=2)
    folder_engine.put([tmp_path / "R"])
    victim = folder_engine.resolve("R/d00/f00002.txt")
    left = folder_engine.remove(victim.id)
    assert left == {}
    assert "R/d00/f00002.txt" not in {e.name for e in folder_engine.entries()}
    # Another machine: the password and the stores only.
    other = Engine(folder_engine.config, catalog_path=tmp_path / "other.sqlite")
    other.unlock(PASSWORD)
    count, unreadable = other.rebuild_catalog()
    assert (count, unreadable) == (39, {})
    assert victim.id not in {e.id for e in other.entries()}
    # Even with the stores that hold the record of it partly gone, it stays gone.
    unplug(tmp_path, "store2", "store5")
    third = Engine(folder_engine.config, catalog_path=tmp_path / "third.sqlite")
    third.unlock(PASSWORD)
    assert third.rebuild_catalog()[0] == 39


def test_gc_repacks_once_enough_is_removed_and_every_file_still_restores(
        folder_engine: Engine, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "G", 200, folders=4, size=(2000, 6000))
    folder_engine.put([tmp_path / "G"])
    (old_pack,) = {e.pack for e in folder_engine.entries()}
    stores = tmp_path / "stores"
    held_before = sum(p.stat().st_size for p in objects(stores / "store1"))
    few = [e for e in folder_engine.entries() if e.name.startswith("G/d00/")][:10]
    folder_engine.remove_many([e.id for e in few])
    report = folder_engine.gc(grace_seconds=0)
    assert report.repacked == []                 # 5% removed: below the threshold
    many = [e for e in folder_engine.entries() if e.name.startswith(("G/d00/", "G/d01/"))]
    folder_engine.remove_many([e.id for e in many])
    dry = folder_engine.gc(grace_seconds=0, dry_run=True)
    assert [(r.old, r.done) for r in dry.repacked] == [(old_pack, False)]
    report = folder_engine.gc(grace_seconds=0)
    (done,) = report.repacked
    assert done.done and done.old == old_pack and done.new and done.removed == 100
    left = folder_engine.entries()
    assert len(left) == 100 and {e.pack for e in left} == {done.new}
    assert not (stores / "store1" / folder_engine.vault().id_hex / "gone").exists() or \
        not objects(stores / "store1" / folder_engine.vault().id_hex / "gone")
    held_after = sum(p.stat().st_size for p in objects(stores / "store1"))
    assert held_after < 0.6 * held_before
    rows = folder_engine.get_many(left, tmp_path / "back")
    assert all(isinstance(got, Path) for _, got in rows)
    assert read_tree(tmp_path / "back") == {k: v for k, v in tree.items()
                                            if k.startswith(("G/d02/", "G/d03/"))}
    # The catalog rebuilt from the stores says the same.
    other = Engine(folder_engine.config, catalog_path=tmp_path / "o.sqlite")
    other.unlock(PASSWORD)
    other.rebuild_catalog()
    assert sorted(e.id for e in other.entries()) == sorted(e.id for e in left)


def test_removing_every_member_removes_the_pack(folder_engine: Engine, tmp_path: Path) -> None:
    make_tree(tmp_path / "A", 5, folders=1)
    folder_engine.put([tmp_path / "A"])
    ids = [e.id for e in folder_engine.entries()]
    folder_engine.remove_many(ids[:2])
    folder_engine.remove_many(ids[2:])
    assert folder_engine.entries() == []
    for store in (tmp_path / "stores").iterdir():
        assert objects(store) == [], store


def test_a_killed_pack_upload_leaves_nothing_listed_and_gc_cleans_up(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.toml", Config(stores=folder_stores(tmp_path / "stores"),
                                                   threshold=3))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSSM_")}
    env.update(CSSM_CONFIG=str(cfg), CSSM_PASSWORD=PASSWORD, HOME=str(tmp_path / "home"),
               XDG_DATA_HOME=str(tmp_path / "data"), XDG_STATE_HOME=str(tmp_path / "state"))

    def cssm(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cssm_desktop.cli", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    assert cssm("init").returncode == 0
    make_tree(tmp_path / "K", 1500, size=(20_000, 24_000))     # ~32 MiB: two packs
    killed = 0
    for attempt in range(6):
        proc = subprocess.Popen([sys.executable, "-m", "cssm_desktop.cli", "put",
                                 str(tmp_path / "K")], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        assert proc.stdout is not None
        # Kill once the first pack's files are listed (the second is on its way), or
        # at once on even attempts (the first pack in flight).
        if attempt % 2:
            for line in proc.stdout:
                if line.strip():
                    break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed += proc.returncode == -signal.SIGKILL
        listed = json.loads(cssm("ls", "--json").stdout or "[]")
        if listed:                          # whatever is listed restores, and right
            back = tmp_path / f"back-{attempt}"
            got = cssm("get", "K", "-o", str(back))
            assert got.returncode == 0, got.stderr
            assert len(listed) == len(read_tree(back))
            for rel, data in read_tree(back).items():
                assert (tmp_path / rel).read_bytes() == data
        gc = cssm("gc", "--grace-hours", "0")
        assert gc.returncode == 0, gc.stderr
        verify = cssm("verify")
        assert verify.returncode == 0, verify.stdout
    assert killed >= 4
    vid = json.loads((tmp_path / "c.toml").read_text().split("vault = ")[1].split("\n")[0])
    # Nothing but complete packs (metadata on every store) is left in the stores.
    for store in (tmp_path / "stores").iterdir():
        metas = {p.name for p in (store / vid / "meta").glob("*")} \
            if (store / vid / "meta").exists() else set()
        datas = {p.name for p in (store / vid / "data").glob("*")} \
            if (store / vid / "data").exists() else set()
        assert metas == datas, store
        assert not list(store.rglob(".tmp-*")), store


# ---------------------------------------------------------------- stores that lie


def _forge_removal(store_dir: Path, vault_id: bytes, vmk: bytes, pack_id: bytes,
                   members: set[bytes]) -> None:
    """One store's operator, who knows the password (so the vault key), seals a record."""
    gone = store_dir / vault_id.hex() / "gone" / pack_id.hex()
    gone.mkdir(parents=True, exist_ok=True)
    (gone / os.urandom(16).hex()).write_bytes(seal_removals(vmk, vault_id, pack_id, members))


def test_an_insiders_removal_records_delete_nothing(folder_engine: Engine,
                                                     tmp_path: Path) -> None:
    """SECURITY.md, insiders: a repack names every member of the old pack; a store keeps
    that and seals one for the new pack naming the members that moved (it knows the
    password). Before, the next gc deleted the new pack from every store."""
    tree = make_tree(tmp_path / "K", 8, folders=1, size=(2000, 3000))
    folder_engine.put([tmp_path / "K"])
    entries = sorted(folder_engine.entries(), key=lambda e: e.name)
    vault = folder_engine.vault()
    vmk = vault.require_key()
    folder_engine.remove_many([e.id for e in entries[:5]])
    report = folder_engine.gc(grace_seconds=0)
    ((moved,),) = [[r for r in report.repacked if r.done]]
    assert moved.new is not None and len(moved.kept) == 3
    new_pack = bytes.fromhex(moved.new)
    # k-1 = 2 insiders each seal "all removed" for the new pack, and for a second time.
    for name in ("store1", "store2"):
        for _ in range(2):
            _forge_removal(tmp_path / "stores" / name, vault.vault_id, vmk, new_pack,
                           set(moved.kept))
    for _ in range(2):
        report = folder_engine.gc(grace_seconds=0)
        assert [r for r in report.repacked if r.done] == []
    for i in range(1, 6):   # the new pack is on every store
        assert (tmp_path / "stores" / f"store{i}" / vault.id_hex / "data" / moved.new).exists()
    other = Engine(folder_engine.config, catalog_path=tmp_path / "other.sqlite")
    other.unlock(PASSWORD)
    assert other.rebuild_catalog()[0] == 3
    rows = other.get_many(other.entries(), tmp_path / "back")
    assert all(isinstance(got, Path) for _, got in rows)
    assert read_tree(tmp_path / "back") == {k: v for k, v in tree.items()
                                            if k in {e.name for e in entries[5:]}}


def test_a_store_cannot_forge_or_hide_a_removal(folder_engine: Engine, tmp_path: Path) -> None:
    make_tree(tmp_path / "L", 10, folders=1)
    folder_engine.put([tmp_path / "L"])
    entries = folder_engine.entries()
    vault = folder_engine.vault()
    pack_id = bytes.fromhex(entries[0].pack)
    gone_dir = tmp_path / "stores" / "store1" / vault.id_hex / "gone" / pack_id.hex()
    gone_dir.mkdir(parents=True)
    # A forged record (the store has no vault key: a random key seals it).
    forged = seal_removals(os.urandom(32), vault.vault_id, pack_id,
                           {bytes.fromhex(e.id) for e in entries})
    (gone_dir / ("ab" * 16)).write_bytes(forged)
    other = Engine(folder_engine.config, catalog_path=tmp_path / "o.sqlite")
    other.unlock(PASSWORD)
    assert other.rebuild_catalog()[0] == 10
    # A real removal, then n-k = 2 stores drop their copies of the record: still gone.
    folder_engine.remove(entries[0].id)
    for name in ("store2", "store3"):
        shutil.rmtree(tmp_path / "stores" / name / vault.id_hex / "gone")
    other = Engine(folder_engine.config, catalog_path=tmp_path / "p.sqlite")
    other.unlock(PASSWORD)
    assert other.rebuild_catalog()[0] == 9
    # gc does not delete a pack because a store forged "everything removed".
    assert folder_engine.gc(grace_seconds=0).repacked == []
    assert len(folder_engine.entries()) == 9


def test_a_tampered_pack_restores_right_or_fails_clearly(folder_engine: Engine,
                                                        tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "T", 60, folders=3)
    folder_engine.put([tmp_path / "T"])
    vault = folder_engine.vault()
    (pack,) = {e.pack for e in folder_engine.entries()}
    parts = [tmp_path / "stores" / f"store{i}" / vault.id_hex / "data" / pack
             for i in range(1, 6)]
    for part in parts[:2]:                 # n-k parts rot in the middle
        raw = bytearray(part.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        part.write_bytes(bytes(raw))
    rows = folder_engine.get_many(folder_engine.entries(), tmp_path / "back")
    assert all(isinstance(got, Path) for _, got in rows)
    assert read_tree(tmp_path / "back") == tree
    ((_, report),) = folder_engine.verify()
    assert not report.healthy and report.restorable
    _, repaired = folder_engine.repair()
    assert repaired[0][1].after.healthy
    raw = bytearray(parts[2].read_bytes())  # now 3 of 5 rot at one place: too many
    raw[len(raw) // 2] ^= 0xFF
    parts[2].write_bytes(bytes(raw))
    for part in parts[:2]:
        raw = bytearray(part.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        part.write_bytes(bytes(raw))
    rows = folder_engine.get_many(folder_engine.entries(), tmp_path / "again")
    failed = [got for _, got in rows if not isinstance(got, Path)]
    assert failed and all("store" in str(f) or "stores" in str(f) for f in failed)
    for p in (tmp_path / "again").rglob("*"):   # whatever was written is whole and right
        if p.is_file():
            assert p.read_bytes() == tree[p.relative_to(tmp_path / "again").as_posix()]


# ---------------------------------------------------------------- format


def test_pack_index_and_removal_records_parse_only_what_they_should() -> None:
    members = [Member(bytes([i]) * 16, i * 10, 10, i, bytes(32), f"a/{i}") for i in range(3)]
    raw = index_bytes(members)
    assert parse_index(raw, 30) == members
    with pytest.raises(FormatError):
        parse_index(raw, 29)                 # a member past the index start
    with pytest.raises(FormatError):
        parse_index(raw + b"\0", 30)         # trailing bytes
    with pytest.raises(FormatError):
        parse_index(raw[:-1], 30)
    with pytest.raises(FormatError):
        parse_index(index_bytes(members + members[:1]), 30)   # an id twice
    vmk, vid, pid = os.urandom(32), os.urandom(16), os.urandom(16)
    sealed = seal_removals(vmk, vid, pid, {b"x" * 16})
    assert open_removals(vmk, vid, pid, sealed) == {b"x" * 16}
    for bad in (sealed[:-1], sealed[:40] + bytes([sealed[40] ^ 1]) + sealed[41:]):
        with pytest.raises(FormatError):
            open_removals(vmk, vid, pid, bad)
    with pytest.raises(FormatError):
        open_removals(vmk, vid, os.urandom(16), sealed)   # another pack's record


def test_a_pack_is_kind_one_and_names_nothing_outside_sealed_data(folder_engine: Engine,
                                                                  tmp_path: Path) -> None:
    make_tree(tmp_path / "Secret names", 30, folders=3)
    folder_engine.put([tmp_path / "Secret names"])
    vault = folder_engine.vault()
    (pack,) = {e.pack for e in folder_engine.entries()}
    opened = open_file(vault, bytes.fromhex(pack))
    assert opened.box.kind == KIND_PACK and opened.box.name == ""
    for p in (tmp_path / "stores").rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            assert b"Secret" not in data and b"f0000" not in data
            assert "Secret" not in p.as_posix().split("stores")[1]
    meta = MetaObject.parse(next((tmp_path / "stores" / "store1").rglob(f"meta/{pack}"))
                            .read_bytes())
    assert meta.header.k == 3
    assert removal_prefix(vault.vault_id).startswith(vault.id_hex)


def test_cli_rm_of_small_files_then_gc_says_what_it_repacks(
        cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    make_tree(tmp_path / "N", 12, folders=2, size=(3000, 3000))
    assert cli("put", str(tmp_path / "N"))[0] == 0
    code, out, err = cli("rm", "--yes", "N/d00/f00000.txt", "N/d00/f00002.txt",
                         "N/d00/f00004.txt", "N/d00/f00006.txt")
    assert code == 0, err
    assert len([line for line in out.splitlines() if line.startswith("removed")]) == 4
    code, out, _ = cli("ls", "--json")
    assert len(json.loads(out)) == 8
    code, out, _ = cli("gc", "--dry-run", "--grace-hours", "0")
    assert code == 0 and "would repack  pack" in out and "4 removed files" in out
    code, out, _ = cli("gc", "--grace-hours", "0")
    assert code == 0 and "repacked  pack" in out and "8 kept in" in out
    code, out, _ = cli("gc", "--dry-run", "--grace-hours", "0")
    assert "repack" not in out
    code, out, err = cli("get", "N", "-o", str(tmp_path / "back"))
    assert code == 0 and out.splitlines()[-1] == "8 restored, 0 skipped, 0 failed", err


def test_a_small_file_restores_to_a_name_relative_to_the_working_folder(
        folder_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "note.txt").write_bytes(b"small")
    folder_engine.put([tmp_path / "note.txt"])
    (entry,) = folder_engine.entries()
    assert entry.pack
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    assert folder_engine.get(entry, "back.txt") == Path("back.txt")
    assert [p.name for p in (tmp_path / "here").iterdir()] == ["back.txt"]
    assert (tmp_path / "here" / "back.txt").read_bytes() == b"small"


def test_files_come_back_with_their_permission_bits_and_older_ones_owner_only(
        folder_engine: Engine, tmp_path: Path) -> None:
    """Every file restored 0600: scripts lost their +x. Modes are kept for a file stored
    alone (key box kind 2) and in a pack (index CSPM); files written before modes were
    kept (kind 0, CSPX) still restore, owner-only; --no-modes restores owner-only."""
    import hashlib
    import io
    import stat

    from cssm_desktop.core.pack import put_pack
    from cssm_desktop.core.pack_format import Member
    from cssm_desktop.core.put import store_content

    tree = tmp_path / "t"
    tree.mkdir()
    modes = {"run.sh": 0o755, "secret.txt": 0o600, "shared.txt": 0o644, "ro.txt": 0o444,
             "big.bin": 0o750}
    for name, mode in modes.items():
        (tree / name).write_bytes(os.urandom(2 * 1024 * 1024 if name == "big.bin" else 300))
        os.chmod(tree / name, mode)
    assert all(r.stored is not None for r in folder_engine.put([tree]))
    entries = [e for e in folder_engine.entries()]
    back = tmp_path / "back"
    for _e, got in folder_engine.get_many(entries, back):
        assert isinstance(got, Path)
    for name, mode in modes.items():
        assert stat.S_IMODE((back / "t" / name).stat().st_mode) == mode, name
        assert (back / "t" / name).read_bytes() == (tree / name).read_bytes()
    folder_engine.restore_modes = False
    owner = tmp_path / "owner"
    list(folder_engine.get_many(entries, owner))
    assert {stat.S_IMODE((owner / "t" / n).stat().st_mode) for n in modes} == {0o600}
    folder_engine.restore_modes = True
    # As earlier versions wrote them: no mode in the key box (kind 0), none in the index.
    vault = folder_engine.vault()
    data = os.urandom(40_000)
    alone = store_content(vault, io.BytesIO(data), "old.bin", "old/alone.bin", len(data), 0)
    member = Member(os.urandom(16), 0, 0, 0, hashlib.sha256(b"old").digest(), "old/in-pack")
    packed = put_pack(vault, [], members=[(member, b"old")])
    assert alone.id_hex and packed.stored is not None
    folder_engine.rebuild_catalog()
    old = [e for e in folder_engine.entries() if e.name.startswith("old/")]
    assert len(old) == 2
    out = tmp_path / "old-back"
    for _e, got in folder_engine.get_many(old, out):
        assert isinstance(got, Path)
    assert (out / "old" / "alone.bin").read_bytes() == data
    assert (out / "old" / "in-pack").read_bytes() == b"old"
    assert {stat.S_IMODE(p.stat().st_mode) for p in (out / "old").iterdir()} == {0o600}
