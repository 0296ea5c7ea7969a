"""The io-engine at rest: resident memory and CPU use while idle.

Starts a `mayastor` process (uvloop, as deployed) with a pool on a 1 GiB sparse file and
`--replicas` replicas in it, waits for it to settle, then samples its CPU time (from
/proc/<pid>/stat) over `--seconds` of idleness and its resident set size (VmRSS). SPDK
burns a whole core while idle; an io-engine should use about none.

Usage: ``.venv/bin/python benchmarks/engine_idle.py [--seconds 10] [--replicas 100]``.
Prints the figures and writes them to ``benchmarks/results/engine_idle.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from mayastor.cluster.processes import EngineProcess

RESULTS = Path(__file__).resolve().parent / "results" / "engine_idle.json"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="engine-idle-") as tmp:
        disk = Path(tmp) / "disk.img"
        with open(disk, "wb") as fh:
            fh.truncate(1 << 30)
        engine = EngineProcess("idle-node", Path(tmp), disk_allow=[f"{Path(tmp).resolve()}/*"])
        engine.start()
        try:
            engine.client("pool", "create", "p1", str(disk), check=True)
            for i in range(args.replicas):
                engine.client("replica", "create", "p1", f"r{i}", "--size=4", "--thin", check=True)
            assert engine.proc is not None
            pid = engine.proc.pid
            time.sleep(2.0)
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            time.sleep(args.seconds)
            cpu1, t1 = cpu_seconds(pid), time.monotonic()
            rss = rss_kib(pid)
        finally:
            engine.stop()
    report = {
        "benchmark": "engine_idle",
        "replicas": args.replicas,
        "idle_seconds": round(t1 - t0, 2),
        "cpu_seconds": round(cpu1 - cpu0, 3),
        "cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / (t1 - t0), 2),
        "rss_mib": round(rss / 1024, 1),
    }
    print(json.dumps(report, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
