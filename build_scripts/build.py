#!/usr/bin/env python3
"""Build the bundle: `python build_scripts/build.py [--onefile]`.

Output: dist/cssm-desktop/ (Linux and Windows: a folder with `cssm-desktop` and `cssm`),
dist/CSSM Desktop.app (macOS), or with --onefile a single dist/cssm-desktop[.exe].
SOURCE_DATE_EPOCH comes from the last commit and PYTHONHASHSEED is fixed, so two builds
of one commit give the same files (build_scripts/check_reproducible.py checks it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("QtWebEngine", "Qt6WebEngine", "QtQml", "Qt6Qml", "Qt6Quick", "Qt63D")


def source_date_epoch() -> str:
    try:
        return subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "315532800"  # 1980-01-01, the earliest a zip timestamp can say


def tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def build(dist: Path, work: Path, onefile: bool = False) -> Path:
    env = dict(os.environ, SOURCE_DATE_EPOCH=source_date_epoch(), PYTHONHASHSEED="0",
               CSSM_ONEFILE="1" if onefile else "0")
    subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean",
                    "--log-level", "WARN", "--distpath", str(dist), "--workpath", str(work),
                    str(ROOT / "build_scripts" / "cssm-desktop.spec")], cwd=ROOT, env=env,
                   check=True)
    if onefile:
        return dist / ("cssm-desktop.exe" if sys.platform == "win32" else "cssm-desktop")
    if sys.platform == "darwin":
        return dist / "CSSM Desktop.app"
    return dist / "cssm-desktop"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--onefile", action="store_true", help="one self-extracting program")
    ap.add_argument("--dist", type=Path, default=ROOT / "dist")
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "pyinstaller")
    args = ap.parse_args()
    out = build(args.dist, args.work, args.onefile)
    names = [p.name for p in out.rglob("*")] if out.is_dir() else [out.name]
    bad = sorted({n for n in names if n.startswith(FORBIDDEN)})
    if bad:
        print(f"error: the bundle contains Qt modules it must not: {', '.join(bad[:5])}",
              file=sys.stderr)
        return 1
    print(f"built {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}: "
          f"{tree_size(out) / 2**20:.0f} MiB, {len(names)} files, no WebEngine/QML")
    return 0


if __name__ == "__main__":
    sys.exit(main())
