"""SIGKILL at random points of `cssm put` and `cssm get`: never a file that can't be
restored in the catalog, never a partial file at the destination."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cssm_desktop.config import Config

from .conftest import PASSWORD, folder_stores, write_config

SIZE = 24 * 1024 * 1024
SEEDS = range(8)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("kill")
    cfg = write_config(root / "c.toml", Config(stores=folder_stores(root / "stores"), threshold=3))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSSM_")}
    env.update(CSSM_CONFIG=str(cfg), CSSM_PASSWORD=PASSWORD, HOME=str(root / "home"),
               XDG_DATA_HOME=str(root / "data"), XDG_STATE_HOME=str(root / "state"))
    src = root / "big.bin"
    src.write_bytes(os.urandom(SIZE))
    world = {"root": root, "env": env, "src": src}
    _cssm(world, "init")
    start = time.monotonic()
    _cssm(world, "put", str(src))
    world["put_seconds"] = time.monotonic() - start
    world["good_id"] = json.loads(_cssm(world, "ls", "--json"))[0]["id"]
    return world


def _cssm(world: dict[str, object], *args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "cssm_desktop.cli", *args], env=world["env"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _killed_run(world: dict[str, object], seed: int, *args: str) -> bool:
    """Start the command, SIGKILL it at a seeded moment; True if it finished first."""
    delay = random.Random(seed).uniform(0.05, 1.2 * float(world["put_seconds"]))
    proc = subprocess.Popen([sys.executable, "-m", "cssm_desktop.cli", *args],
                            env=world["env"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=delay)  # the fault: the moment the process dies
        return True
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return False


def test_killed_puts_leave_no_unrestorable_file(world: dict[str, object],
                                                tmp_path: Path) -> None:
    """Each seed kills a put at another moment; most must die mid-way (else this proves
    nothing), and none may leave a listed file that does not restore."""
    killed = 0
    for seed in SEEDS:
        src = tmp_path / f"victim-{seed}.bin"
        data = os.urandom(SIZE)
        src.write_bytes(data)
        killed += not _killed_run(world, seed, "put", str(src))
        listed = [e for e in json.loads(_cssm(world, "ls", "--json")) if e["name"] == src.name]
        for entry in listed:  # in the catalog means complete and restorable
            out = tmp_path / "back.bin"
            _cssm(world, "get", entry["id"], "-o", str(out), "--force")
            assert out.read_bytes() == data, seed
        # What the kill left behind is either restorable (repair completes it) or garbage.
        _cssm(world, "gc", "--grace-hours", "0")
        _cssm(world, "repair")
        _cssm(world, "verify")
    print(f"puts killed mid-way: {killed} of {len(SEEDS)}")
    assert killed >= len(SEEDS) // 2


def test_killed_gets_leave_no_partial_file(world: dict[str, object], tmp_path: Path) -> None:
    killed = 0
    for seed in SEEDS:
        dest = tmp_path / f"restore-{seed}"
        dest.mkdir()
        finished = _killed_run(world, 100 + seed, "get", str(world["good_id"]), "-o",
                               str(dest))
        killed += not finished
        files = list(dest.iterdir())
        if files:  # only ever the whole file, under its own name
            assert [f.name for f in files] == ["big.bin"]
            assert files[0].read_bytes() == Path(str(world["src"])).read_bytes()
        else:
            assert not finished
    print(f"gets killed mid-way: {killed} of {len(SEEDS)}")
    assert killed >= len(SEEDS) // 4


@pytest.fixture(scope="module")
def tree_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A vault holding a tree of 1,500 small files (in packs), and how long a restore of
    the whole tree takes here."""
    root = tmp_path_factory.mktemp("killtree")
    cfg = write_config(root / "c.toml", Config(stores=folder_stores(root / "stores"), threshold=3))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSSM_")}
    env.update(CSSM_CONFIG=str(cfg), CSSM_PASSWORD=PASSWORD, HOME=str(root / "home"),
               XDG_DATA_HOME=str(root / "data"), XDG_STATE_HOME=str(root / "state"))
    rnd = random.Random(7)
    tree = {}
    for i in range(1500):
        rel = f"Notes/d{i % 30:02d}/n{i:04d}.txt"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        tree[rel] = rnd.randbytes(rnd.randint(1, 6000))
        (root / rel).write_bytes(tree[rel])
    world: dict[str, object] = {"root": root, "env": env, "tree": tree}
    _cssm(world, "init")
    _cssm(world, "put", str(root / "Notes"))
    start = time.monotonic()
    _cssm(world, "get", "Notes", "-o", str(root / "timed"))
    world["put_seconds"] = time.monotonic() - start    # what _killed_run spreads kills over
    return world


def test_killed_tree_restores_leave_only_whole_files(tree_world: dict[str, object],
                                                     tmp_path: Path) -> None:
    """A tree restore makes its files ahead, unnamed: killed at any moment, what is at the
    destination is whole files under their own names (and folders), nothing else."""
    tree = tree_world["tree"]
    assert isinstance(tree, dict)
    killed = 0
    counts = []
    for seed in SEEDS:
        dest = tmp_path / f"restore-{seed}"
        finished = _killed_run(tree_world, 200 + seed, "get", "Notes", "-o", str(dest))
        killed += not finished
        found = {p.relative_to(dest).as_posix(): p for p in dest.rglob("*") if not p.is_dir()}
        assert set(found) <= set(tree), sorted(set(found) - set(tree))[:3]
        assert all(p.read_bytes() == tree[rel] for rel, p in found.items())
        if finished:
            assert len(found) == len(tree)
        counts.append(len(found))
    print(f"tree restores killed mid-way: {killed} of {len(SEEDS)}; files there: {counts}")
    assert killed >= len(SEEDS) // 4


def test_a_killed_backup_or_forget_loses_nothing_and_blocks_nothing(
        world: dict[str, object], tmp_path: Path) -> None:
    """SIGKILL mid-backup and mid-forget: the next backup completes, every snapshot
    listed restores whole, and the dead process's lease does not block a forget."""
    src = tmp_path / "Docs"
    src.mkdir()
    rnd = random.Random(7)
    for i in range(300):
        (src / f"n{i:03d}.txt").write_bytes(rnd.randbytes(rnd.randint(1, 4000)))
    (src / "big.bin").write_bytes(os.urandom(SIZE // 2))
    killed = 0
    for seed in range(4):
        (src / f"n{seed:03d}.txt").write_text(f"edit {seed}")
        killed += not _killed_run(world, 100 + seed, "backup", "-q", str(src))
    _cssm(world, "backup", "-q", str(src))
    killed += not _killed_run(world, 200, "forget", "--keep-last", "1")
    _cssm(world, "forget", "--keep-last", "1")   # a dead forget's lease: not in the way
    snaps = json.loads(_cssm(world, "snapshots", "--json"))
    assert killed >= 2 and len(snaps) >= 1
    out = tmp_path / "back"
    _cssm(world, "get", "Docs", "--at", snaps[-1]["id"], "-o", str(out))
    for p in src.iterdir():
        assert (out / "Docs" / p.name).read_bytes() == p.read_bytes()
