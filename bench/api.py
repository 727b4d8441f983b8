#!/usr/bin/env python3
"""The local API's upload and download against the CLI, same run, same disk (issue 25).

Usage: python bench/api.py [--size-mib 1024] [--repeat 3]

A file of SIZE random bytes: `cssm put` of it, then `curl -T` of it to `cssm serve`
(a fresh vault of five folders, 3 of 5, each time); `cssm get -o` against `curl` of
/content. Medians of the rounds, the ratios, and the server's peak RSS after each
upload (VmHWM: it must not grow with the file).
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

sys.path.insert(0, str(Path(__file__).parent))
from bench import clear, folder_vault, make_file, run  # as bench.py

PASSWORD = "bench password"


def peak_rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return -1


def proc_cpu(pid: int) -> float:
    """User + system seconds a running process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Seconds (with a final sync) and the CPU seconds (user + system) of one command."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    os.sync()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    curl = shutil.which("curl")
    if curl is None:
        sys.exit("curl not found")
    work = Path(tempfile.mkdtemp(prefix="cssm-api-", dir=args.workdir))
    try:
        bench(work, args, curl)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench(work: Path, args: argparse.Namespace, curl: str) -> None:
    cssm = [sys.executable, "-m", "cssm_desktop.cli"]
    src = work / "big.bin"
    make_file(src, args.size_mib << 20)
    stores, env = folder_vault(work, PASSWORD)
    times: dict[str, list[float]] = {}
    rss: list[int] = []
    cpu: dict[str, list[float]] = {}   # CPU seconds: where a 2-core machine's time goes
    for rnd in range(args.repeat):
        print(f"  round {rnd + 1}/{args.repeat}", flush=True)
        clear(*stores, work / "data", work / "out.bin")
        subprocess.run([*cssm, "init"], env=env, check=True, stdout=subprocess.DEVNULL)
        t, used = timed([*cssm, "put", str(src)], env)
        times.setdefault("cssm put", []).append(t)
        cpu.setdefault("cssm put", []).append(used)
        t, _ = run([*cssm, "get", "big.bin", "-o", str(work / "out.bin"), "--force"], env)
        times.setdefault("cssm get", []).append(t)
        clear(*stores, work / "data", work / "out.bin")
        subprocess.run([*cssm, "init"], env=env, check=True, stdout=subprocess.DEVNULL)
        server = subprocess.Popen([*cssm, "serve", "--address", "127.0.0.1:0", "--unlock"],
                                  env=env, stderr=subprocess.PIPE, text=True)
        try:
            line = server.stderr.readline() if server.stderr else ""
            url = line.split(" on ")[1].split(" ")[0]
            token = (work / "data" / "cssm-desktop" / "api-token").read_text().strip()
            auth = ["-H", f"Authorization: Bearer {token}"]
            time.sleep(0.5)
            before = proc_cpu(server.pid)
            start = time.perf_counter()
            client = subprocess.Popen([curl, "-sf", *auth, "-T", str(src),
                                       f"{url}/v1/files?name=big.bin"],
                                      stdout=subprocess.PIPE, text=True)
            out = client.stdout.read() if client.stdout else ""
            _, status, usage = os.wait4(client.pid, 0)
            os.sync()
            times.setdefault("API upload (curl -T)", []).append(time.perf_counter() - start)
            if os.waitstatus_to_exitcode(status) != 0:
                sys.exit("the API upload failed")
            cpu.setdefault("API upload: server", []).append(proc_cpu(server.pid) - before)
            cpu.setdefault("API upload: curl", []).append(usage.ru_utime + usage.ru_stime)
            rss.append(peak_rss_mib(server.pid))
            file_id = out.split('"id":"')[1].split('"')[0] if '"id":"' in out else \
                out.split('"id": "')[1].split('"')[0]
            start = time.perf_counter()
            subprocess.run([curl, "-sf", *auth, "-o", str(work / "out.bin"),
                            f"{url}/v1/files/{file_id}/content"], check=True)
            os.sync()
            times.setdefault("API download (curl)", []).append(time.perf_counter() - start)
            if subprocess.run(["cmp", "-s", str(src), str(work / "out.bin")]).returncode:
                sys.exit("the API's download differs from the file")
        finally:
            server.terminate()
            server.wait(30)
        for name, ts in times.items():
            print(f"    {name:<24} {ts[-1]:7.2f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{args.size_mib} MiB, medians of {args.repeat} rounds")
    for name, t in med.items():
        print(f"  {name:<24} {t:7.2f} s")
    print(f"  server peak RSS after uploads: {', '.join(f'{r} MiB' for r in rss)}")
    print("  CPU seconds (user + system), medians: " + ", ".join(
        f"{name} {statistics.median(v):.2f}" for name, v in cpu.items()))
    print(f"  ratios: API upload / cssm put {med['API upload (curl -T)'] / med['cssm put']:.2f}"
          f" (target <= 1.1); API download / cssm get "
          f"{med['API download (curl)'] / med['cssm get']:.2f}")


if __name__ == "__main__":
    main()
