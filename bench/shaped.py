#!/usr/bin/env python3
"""Store and restore one file at 3-of-5 over home-connection links: five S3 buckets
(`rclone serve s3` on loopback), each behind its own shaped link (tests/netshape.py:
RATE bytes/s each way, RTT round trip), against the link's ideal time and against
rclone crypt copying the same file to one bucket behind the same shaping, in one run.

Usage: python bench/shaped.py [SIZE_MIB] [--rate MBPS] [--rtt MS] [--repeat N]

The ideal for a put: every store receives size/k bytes at its rate, all at once, so
size / k / rate; a restore reads size/k from each of k stores likewise. rclone sends the
whole file through one link: size / rate. Peak RSS is each process's own (wait4).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from bench import clear, compile_package, make_file, run
from tests.netshape import ShapedProxy

PASSWORD = "bench password"
KEY_ID, SECRET = "benchkey", "bench-secret-key-123"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_s3(root: Path, rclone: str) -> tuple[subprocess.Popen[bytes], int]:
    import socket

    port = free_port()
    proc = subprocess.Popen([rclone, "serve", "s3", "--addr", f"127.0.0.1:{port}",
                             "--auth-key", f"{KEY_ID},{SECRET}", "--config", "/dev/null",
                             str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.05)   # polling for the port to open, not waiting for work
    proc.kill()
    sys.exit("rclone serve s3 did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("size_mib", nargs="?", type=int, default=256)
    ap.add_argument("--rate", type=float, default=4.0, help="MB/s per store and direction")
    ap.add_argument("--rtt", type=float, default=40.0, help="round trip, milliseconds")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    size, rate, rtt = args.size_mib << 20, args.rate * 1e6, args.rtt / 1000
    py = sys.executable
    compile_package()
    rclone = next((p for p in (Path(py).parent / "rclone",) if p.exists()), None)
    rclone_exe = str(rclone) if rclone else "rclone"
    work = Path(tempfile.mkdtemp(prefix="cssm-shaped-", dir=args.workdir))
    root = work / "s3"
    for b in ("bkt1", "bkt2", "bkt3", "bkt4", "bkt5", "crypt"):
        (root / b).mkdir(parents=True)
    server, port = start_s3(root, rclone_exe)
    proxies = [ShapedProxy(port, rtt=rtt, rate=rate) for _ in range(6)]
    for p in proxies:
        p.__enter__()
    try:
        src = work / "input.bin"
        make_file(src, size)
        creds = work / "aws-credentials"
        creds.write_text(f"[bench]\naws_access_key_id = {KEY_ID}\n"
                         f"aws_secret_access_key = {SECRET}\n")
        cfg = work / "cssm.toml"
        cfg.write_text("threshold = 3\n" + "".join(
            f'[[store]]\nname = "s{i}"\ntype = "s3"\nbucket = "bkt{i}"\n'
            f'endpoint_url = "{proxies[i - 1].endpoint}"\nregion = "us-east-1"\n'
            'profile = "bench"\n' for i in range(1, 6)))
        env = dict(os.environ, CSSM_CONFIG=str(cfg), CSSM_PASSWORD=PASSWORD,
                   XDG_DATA_HOME=str(work / "data"), XDG_STATE_HOME=str(work / "state"),
                   AWS_SHARED_CREDENTIALS_FILE=str(creds), AWS_CONFIG_FILE=str(work / "none"))
        renv = dict(os.environ, RCLONE_CONFIG=str(work / "rclone.conf"),
                    RCLONE_CONFIG_BS3_TYPE="s3", RCLONE_CONFIG_BS3_PROVIDER="Other",
                    RCLONE_CONFIG_BS3_ENDPOINT=proxies[5].endpoint,
                    RCLONE_CONFIG_BS3_ACCESS_KEY_ID=KEY_ID,
                    RCLONE_CONFIG_BS3_SECRET_ACCESS_KEY=SECRET,
                    RCLONE_CONFIG_BCRYPT_TYPE="crypt", RCLONE_CONFIG_BCRYPT_REMOTE="bs3:crypt",
                    RCLONE_CONFIG_BCRYPT_PASSWORD=subprocess.run(
                        [rclone_exe, "obscure", PASSWORD], capture_output=True, text=True,
                        check=True).stdout.strip())
        cssm = [py, "-m", "cssm_desktop.cli"]
        out = work / "out.bin"

        def reset() -> None:
            for b in ("bkt1", "bkt2", "bkt3", "bkt4", "bkt5"):
                clear(root / b)
                (root / b).mkdir()
            clear(work / "data", out)
            subprocess.run([*cssm, "init"], env=env, check=True, stdout=subprocess.DEVNULL)

        def two_down() -> None:
            clear(out)
            proxies[0].down()
            proxies[1].down()

        def all_up() -> None:
            for p in proxies:
                p.up()

        def reset_crypt() -> None:
            clear(root / "crypt", work / "rclone-out")
            (root / "crypt").mkdir()

        steps = [
            ("cssm put 3-of-5", [*cssm, "put", str(src)], reset, env, None),
            ("cssm get (stores 3,4,5)", [*cssm, "get", "input.bin", "-o", str(out)],
             two_down, env, all_up),
            ("rclone crypt copy (1 bucket)", [rclone_exe, "copy", str(src), "bcrypt:"],
             reset_crypt, renv, None),
            ("rclone crypt restore", [rclone_exe, "copy", "bcrypt:input.bin",
                                      str(work / "rclone-out")], lambda: None, renv, None),
        ]
        print(f"{args.size_mib} MiB, 5 links of {args.rate:g} MB/s each way, "
              f"{args.rtt:g} ms round trip", flush=True)
        samples: dict[str, list[tuple[float, int, int]]] = {s[0]: [] for s in steps}
        for rnd in range(args.repeat):
            print(f"round {rnd + 1}/{args.repeat}", flush=True)
            for label, cmd, setup, run_env, after in steps:
                setup()
                before = sum(p.upload.bytes + p.download.bytes for p in proxies)
                t, rss = run(cmd, run_env)
                moved = sum(p.upload.bytes + p.download.bytes for p in proxies) - before
                if after:
                    after()
                samples[label].append((t, rss, moved))
                print(f"  {label:<30} {t:7.2f} s  {rss:4d} MiB  {moved / 1e6:7.1f} MB "
                      "on the links", flush=True)
            if subprocess.run(["cmp", "-s", str(src), str(out)]).returncode != 0:
                sys.exit("restored bytes differ")
        med = {label: statistics.median(t for t, _, _ in runs) for label, runs in samples.items()}
        peak = max(r for label, runs in samples.items() if label.startswith("cssm")
                   for _, r, _ in runs)
        ideal = size / 3 / rate
        print(f"\nmedians (restored file compared byte for byte: identical); ideal for "
              f"3-of-5: {ideal:.1f} s, for one link: {size / rate:.1f} s")
        for label, t in med.items():
            print(f"  {label:<30} {t:7.2f} s")
        print("ratios (lower is better):")
        print(f"  put / ideal                    {med['cssm put 3-of-5'] / ideal:.2f}")
        print(f"  put / rclone crypt copy        "
              f"{med['cssm put 3-of-5'] / med['rclone crypt copy (1 bucket)']:.2f}")
        print(f"  get / ideal                    {med['cssm get (stores 3,4,5)'] / ideal:.2f}")
        print(f"  get / rclone crypt restore     "
              f"{med['cssm get (stores 3,4,5)'] / med['rclone crypt restore']:.2f}")
        print(f"  cssm peak RSS                  {peak} MiB")
    finally:
        for p in proxies:
            p.__exit__(None, None, None)
        server.terminate()
        server.wait(timeout=10)
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
