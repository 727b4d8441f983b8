#!/usr/bin/env python3
"""Build the bundle twice from this commit and compare: same file list, same sizes.

Usage: python build_scripts/check_reproducible.py [--keep DIR]
Exit 0 when both builds agree; the first build is left in DIR (default dist/) so CI
can smoke-test the very bundle that was checked.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build import ROOT, build


def manifest(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_size
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", type=Path, default=ROOT / "dist")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cssm-repro-") as tmp:
        work = Path(tmp)
        first = build(work / "dist-a", work / "work-a")
        second = build(work / "dist-b", work / "work-b")
        a, b = manifest(first), manifest(second)
        only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        sizes = sorted(f for f in set(a) & set(b) if a[f] != b[f])
        target = args.keep / first.name
        if target.exists():
            shutil.rmtree(target)
        args.keep.mkdir(parents=True, exist_ok=True)
        shutil.move(str(first), str(target))
    if only_a or only_b or sizes:
        for label, items in (("only in build 1", only_a), ("only in build 2", only_b),
                             ("sizes differ", sizes)):
            for item in items[:20]:
                print(f"{label}: {item}")
        print("NOT reproducible", file=sys.stderr)
        return 1
    print(f"reproducible: two builds agree on {len(a)} files and their sizes "
          f"({sum(a.values()) / 2**20:.0f} MiB); kept in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
