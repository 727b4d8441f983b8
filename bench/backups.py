#!/usr/bin/env python3
"""Backups of a protected folder against restic, same run, same disk (issue 24).

Usage: python bench/backups.py [--repeat N] [--files 20000] [--snapshots 1000]

For a tree of N files of 1 KiB in 50 folders (cssm backup and restic backup each into
their own repository, 3-of-5 folder stores for cssm):
  - the first backup (not a target; for reference);
  - a backup of the unchanged tree (warm cache: what an hourly run meets);
  - a backup after changing 1% of the files;
then, with S snapshots in the catalog (made by the engine, not timed),
`cssm snapshots` and `cssm versions NAME`: wall time of the whole command.
Peak RSS of each cssm run is reported (memory must not grow with files or snapshots).
Medians of the rounds; a peer that is not installed is skipped.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from small_files import make_tree

from bench import clear, folder_vault, run  # as bench.py

PASSWORD = "bench password"


def touch_share(src: Path, share: float, seed: int) -> None:
    files = sorted(p for p in src.rglob("*") if p.is_file())
    rnd = random.Random(seed)
    for p in rnd.sample(files, max(1, int(len(files) * share))):
        p.write_bytes(rnd.randbytes(p.stat().st_size))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--snapshots", type=int, default=1000)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cssm-backups-", dir=args.workdir))
    try:
        bench(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench(work: Path, args: argparse.Namespace) -> None:
    cssm = [sys.executable, "-m", "cssm_desktop.cli"]
    src = work / "Documents"
    make_tree(src, args.files, 1024)
    stores, env = folder_vault(work, PASSWORD)
    restic = shutil.which("restic")
    renv = dict(os.environ, RESTIC_REPOSITORY=str(work / "restic"), RESTIC_PASSWORD=PASSWORD,
                RESTIC_CACHE_DIR=str(work / "restic-cache"))
    samples: dict[str, list[float]] = {}
    rss: dict[str, list[int]] = {}

    def timed(name: str, cmd: list[str], run_env: dict[str, str]) -> None:
        t, peak = run(cmd, run_env)
        samples.setdefault(name, []).append(t)
        rss.setdefault(name, []).append(peak)
        print(f"    {name:<28} {t:7.2f} s  {peak:6d} MiB", flush=True)

    for rnd in range(args.repeat):
        print(f"  round {rnd + 1}/{args.repeat}", flush=True)
        clear(*stores, work / "data", work / "restic", work / "restic-cache")
        subprocess.run([*cssm, "init"], env=env, check=True, stdout=subprocess.DEVNULL)
        timed("cssm backup (first)", [*cssm, "backup", "-q", str(src)], env)
        if restic:
            subprocess.run([restic, "init"], env=renv, check=True, capture_output=True)
            timed("restic backup (first)", [restic, "backup", "-q", str(src)], renv)
        timed("cssm backup (unchanged)", [*cssm, "backup", "-q", str(src)], env)
        if restic:
            timed("restic backup (unchanged)", [restic, "backup", "-q", str(src)], renv)
        touch_share(src, 0.01, rnd)
        timed("cssm backup (1% changed)", [*cssm, "backup", "-q", str(src)], env)
        if restic:
            timed("restic backup (1% changed)", [restic, "backup", "-q", str(src)], renv)
    many_snapshots(work, env, args.snapshots)
    for _ in range(args.repeat):
        timed(f"cssm snapshots ({args.snapshots})", [*cssm, "snapshots", "--json"],
              {k: v for k, v in env.items() if k != "CSSM_PASSWORD"})
        timed("cssm versions NAME", [*cssm, "versions", "many/f.txt", "--json"],
              {k: v for k, v in env.items() if k != "CSSM_PASSWORD"})
    med = {name: statistics.median(ts) for name, ts in samples.items()}
    print(f"\n{args.files} files of 1 KiB: medians of {args.repeat} rounds")
    for name, t in med.items():
        print(f"  {name:<28} {t:7.2f} s   peak RSS {max(rss[name]):6d} MiB")
    if restic:
        print("  ratios (lower is better):")
        for what in ("unchanged", "1% changed", "first"):
            print(f"    cssm / restic backup ({what}){'':<6}"
                  f"{med[f'cssm backup ({what})'] / med[f'restic backup ({what})']:.2f}")


def many_snapshots(work: Path, env: dict[str, str], count: int) -> None:
    """`count` snapshots of a small folder, and as many versions of one name, made
    through the engine in-process (their timing is not the point)."""
    os.environ.update(env)
    from cssm_desktop.config import config_path, load_config
    from cssm_desktop.engine import Engine

    engine = Engine(load_config(config_path(None)))
    engine.unlock(PASSWORD)
    small = work / "many"
    small.mkdir()
    for i in range(count):
        (small / "f.txt").write_text(f"version {i}")
        engine.backup(small)
    print(f"  made {count} snapshots and versions", flush=True)


if __name__ == "__main__":
    main()
