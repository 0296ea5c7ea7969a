"""A well-behaved host's I/O rate while hostile hosts press on the target's bounds.

A real `mayastor` process (default bounds) serves two replicas on one port. Our own
initiator (one I/O queue) measures two workloads on the second replica, each for
`--seconds`: 4 KiB random writes at QD16 (in the capsule) and 128 KiB sequential
writes at QD4 (by R2T, so they need the write-data budget). Phases:

* ``baseline``: nothing else;
* ``silent``: 10,000 TCP connections opened to the same port and left silent (the
  target holds at most `--nvmf-max-connections`, closing the oldest unconnected ones,
  and closes the rest at the ICReq timeout); measured at once after they are opened;
* ``owed_writes``: 4 hosts x 4 I/O queues, each queue announcing 120 Writes of 1 MiB
  by R2T and never sending the data (each queue owes its whole budget, 8 MiB);
* ``both``: the two loads together.

The machine is shared, so the four phases are run `--rounds` times and each loaded
phase is compared with the baseline of its own round. Reported per round, phase and
workload: IOPS, MB/s, the engine's CPU microseconds per I/O, and their ratios to that
baseline (`ratio`: IOPS; `capacity_ratio`: baseline CPU per I/O over this one, the rate
the target could give on a machine of its own); per phase and workload the median of
each over the rounds (the goal: at least 0.8); and the engine's RSS. The hostile hosts
cost the target no CPU once their connections are made, so the ratios show whether
what they hold slows others; on a busy shared machine the IOPS ratio carries the
machine's noise, the CPU ratio much less.

The pool's file is on /dev/shm by default, so that the disk's own noise stays out.

Usage: ``.venv/bin/python benchmarks/target_bounds.py [--seconds 2] [--rounds 5]
[--silent 10000] [--dir /dev/shm] [--output FILE.json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import resource
import socket
import statistics
import sys
import time
import uuid as uuid_mod
from pathlib import Path

from mayastor.nvmf.host import Controller, ControllerOptions
from mayastor.nvmf.pdu import PduReader, PduWriter, Role
from mayastor.nvmf.spec import (
    Connect,
    ConnectData,
    ControllerConfiguration,
    PropertySet,
    SglDescriptor,
    Write,
)
from served_replica import HOST_PREFIX, Replica, cpu_seconds, rss_bytes, served_replica

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "target_bounds.json"
MIB = 1 << 20
GOAL = 0.8
WORKLOADS = (("4k_randwrite_qd16", 4096, 16, True), ("128k_seqwrite_qd4", 128 * 1024, 4, False))
CC_ENABLE = ControllerConfiguration(en=True, iosqes=6, iocqes=4).encode()


async def measure(
    ctrl: Controller, pid: int, size: int, depth: int, rand: bool, seconds: float
) -> tuple[float, float]:
    """IOPS of writes of `size` bytes, `depth` in flight, for `seconds`; and the CPU
    microseconds the engine (process `pid`) spent per I/O meanwhile."""
    blocks = size // 512
    span = (32 * MIB) // 512 - blocks
    data = os.urandom(size)
    rng = random.Random(1)
    done = 0
    stop = time.monotonic() + seconds
    cursor = 0

    async def one() -> None:
        nonlocal done, cursor
        while time.monotonic() < stop:
            if rand:
                lba = rng.randrange(0, span // 8) * 8
            else:
                lba, cursor = cursor, (cursor + blocks) % span
            await ctrl.write(1, lba, blocks, data)
            done += 1

    start, cpu = time.monotonic(), cpu_seconds(pid)
    await asyncio.gather(*(one() for _ in range(depth)))
    cpu = cpu_seconds(pid) - cpu
    return done / (time.monotonic() - start), cpu / done * 1e6


async def open_silent(replica: Replica, count: int) -> list[socket.socket]:
    loop = asyncio.get_running_loop()

    async def one() -> socket.socket | None:
        sock = socket.socket()
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (replica.host, replica.port))
        except OSError:
            sock.close()
            return None
        return sock

    opened: list[socket.socket] = []
    for start in range(0, count, 200):
        made = await asyncio.gather(*(one() for _ in range(min(200, count - start))))
        opened += [s for s in made if s is not None]
    return opened


async def owing_host(replica: Replica, index: int, queues: int) -> list[asyncio.StreamWriter]:
    """A controller whose I/O queues each announce 120 x 1 MiB writes and send no data."""
    hostid = uuid_mod.UUID(int=index + 1)
    hostnqn = HOST_PREFIX + f"uuid:{hostid}"
    writers = []
    pw = PduWriter(Role.HOST)

    async def queue(qid: int, cntlid: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(replica.host, replica.port)
        data = ConnectData(hostid, cntlid, replica.nqn, hostnqn).encode()
        cmd = Connect(qid=qid, sqsize=31 if qid == 0 else 127).to_command(
            0, SglDescriptor.in_capsule(len(data))
        )
        for part in [*pw.encode_ic_req(), *pw.encode_capsule_cmd(cmd.encode(), data)]:
            writer.write(bytes(part))
        return reader, writer

    reader, admin = await queue(0, 0xFFFF)
    writers.append(admin)
    host = PduReader(Role.HOST)
    cntlid = None
    while cntlid is None:
        host.feed(await reader.read(65536))
        while (pdu := host.next_pdu()) is not None:
            cqe = getattr(pdu, "cqe", None)
            if cqe is not None:
                cntlid = int.from_bytes(cqe[:2], "little")
    for part in pw.encode_capsule_cmd(PropertySet(0x14, CC_ENABLE, 4).to_command(1).encode()):
        admin.write(bytes(part))
    for qid in range(1, queues + 1):
        _, writer = await queue(qid, cntlid)
        for i in range(120):
            cmd = Write(i * 2048, 2047).to_command(100 + i, 1, SglDescriptor.transport(MIB))
            for part in pw.encode_capsule_cmd(cmd.encode()):
                writer.write(bytes(part))
        writers.append(writer)
    return writers


async def run(replica: Replica, args: argparse.Namespace) -> list[dict[str, dict[str, object]]]:
    ctrl = Controller(
        replica.host, replica.port, replica.others[0],
        ControllerOptions(hostnqn=HOST_PREFIX + "uuid:" + str(uuid_mod.uuid4()), io_queues=1),
    )  # fmt: skip
    await ctrl.connect()
    rounds: list[dict[str, dict[str, object]]] = []
    silent: list[socket.socket] = []
    owing: list[asyncio.StreamWriter] = []

    async def phase(phases: dict[str, dict[str, object]], name: str) -> None:
        await asyncio.sleep(0.5)
        figures: dict[str, object] = {"rss_mib": round(rss_bytes(replica.pid) / MIB, 1)}
        for label, size, depth, rand in WORKLOADS:
            iops, cpu_us = await measure(ctrl, replica.pid, size, depth, rand, args.seconds)
            figures[label] = {
                "iops": round(iops),
                "mb_per_s": round(iops * size / 1e6, 1),
                "engine_cpu_us_per_io": round(cpu_us, 1),
            }
        phases[name] = figures
        print(len(rounds), name, json.dumps(figures), file=sys.stderr, flush=True)

    async def drop() -> None:
        for sock in silent:
            with contextlib.suppress(OSError):
                sock.close()
        silent.clear()
        for writer in owing:
            writer.close()
        owing.clear()
        await asyncio.sleep(1)

    try:
        for _ in range(args.rounds):
            phases: dict[str, dict[str, object]] = {}
            await phase(phases, "baseline")
            silent += await open_silent(replica, args.silent)
            await phase(phases, "silent")
            await drop()
            for n in range(4):
                owing += await owing_host(replica, n, 4)
            await phase(phases, "owed_writes")
            silent += await open_silent(replica, args.silent)
            await phase(phases, "both")
            await drop()
            base = phases["baseline"]
            for figures in phases.values():
                for label, *_ in WORKLOADS:
                    entry, reference = figures[label], base[label]
                    assert isinstance(entry, dict)
                    assert isinstance(reference, dict)
                    entry["ratio"] = round(entry["iops"] / reference["iops"], 3)
                    entry["capacity_ratio"] = round(
                        reference["engine_cpu_us_per_io"] / entry["engine_cpu_us_per_io"], 3
                    )
            rounds.append(phases)
    finally:
        await drop()
        await ctrl.close()
    return rounds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--dir", default="/dev/shm", help="where the pool's file goes (default: %(default)s)"
    )
    parser.add_argument("--silent", type=int, default=10_000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.silent + 2000), hard))
    with served_replica(count=2, workdir=args.dir) as replica:
        log_path = replica.engine.log_path
        rounds = asyncio.run(run(replica, args))
        limits = [line for line in log_path.read_text().splitlines() if "limit " in line]
    medians: dict[str, dict[str, float]] = {}
    capacity: dict[str, dict[str, float]] = {}
    for name in rounds[0]:
        for label, *_ in WORKLOADS:
            values = [r[name][label]["ratio"] for r in rounds]  # type: ignore[index]
            medians.setdefault(name, {})[label] = statistics.median(values)
            values = [r[name][label]["capacity_ratio"] for r in rounds]  # type: ignore[index]
            capacity.setdefault(name, {})[label] = statistics.median(values)
    ratios = [v for name, per in medians.items() for v in per.values()]
    capacities = [v for name, per in capacity.items() for v in per.values()]
    report = {
        "benchmark": "target_bounds",
        "command": "benchmarks/target_bounds.py " + " ".join(argv or sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "goal": f"every median ratio >= {GOAL}",
        "pool_dir": args.dir,
        "median_ratios": medians,
        "worst_median_ratio": min(ratios),
        "median_capacity_ratios": capacity,
        "worst_median_capacity_ratio": min(capacities),
        "rounds": rounds,
        "limit_log_lines": limits[:20],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if min(ratios) >= GOAL and min(capacities) >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
