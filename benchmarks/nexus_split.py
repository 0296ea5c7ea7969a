"""Where a replicated write's CPU goes: each io-engine's share, layer by layer.

`speed.py`'s nexus section gives one figure, all io-engines' CPU per replicated write.
This splits it, with the same setting: three io-engines with malloc pools on CPU 0,
the lean client on CPU 1, 4 KiB random writes, and these volumes published over
NVMe/TCP from node A:

* ``replica``: A's replica shared as it is (the yardstick);
* ``nexus L``: a nexus over A's own replica: the nexus layer and the in-process child;
* ``nexus R``: a nexus over B's replica only: one hop through our initiator and B's
  target;
* ``nexus LR``, ``nexus LRR``: one and two remote children beside the local one
  (``LRR`` is speed.py's three-way nexus).

For each shape and each io-engine: user and system CPU µs per write, context switches
(voluntary: it slept; involuntary: it was preempted) and read and write system calls
per write. At QD32 (4 clients of 8 each) the differences between shapes are what each layer
costs; at QD1, once with the io-engines' default poll and once with
``--poll-budget-us 0`` (the CPU then is work only, no spinning), they show what each
wake-up costs. From the QD32 figures it also prints the floor of the three-way nexus
(`qd32_floor`): three replica paths and two initiator paths, whatever the nexus's own
logic costs.

Usage: ``.venv/bin/python benchmarks/nexus_split.py [--rounds 3] [--seconds 4]
[--shapes replica,L,R,LR,LRR] [--output benchmarks/results/nexus_split.json]``.
Prints the medians of the rounds and the floor, and writes both with every sample to
the JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import speed
from lean_client import Target, run_load

RESULTS = speed.HERE / "results" / "nexus_split.json"
SHAPES = {"replica": [0], "L": [0], "R": [1], "LR": [0, 1], "LRR": [0, 1, 2]}
"""Shape -> the nodes whose replicas are the children (A = 0 is the nexus's node)."""
LOADS: tuple[tuple[str, int, int, list[str]], ...] = (
    ("qd32", 32, 4, []),
    ("qd1", 1, 1, []),
    ("qd1 no poll", 1, 1, ["--poll-budget-us", "0"]),
)
"""(name, total queue depth, client processes, io-engine flags)."""
ENGINES = ("A", "B", "C")


@dataclass(frozen=True)
class Counters:
    """A process's counters at one moment (all its threads)."""

    user: float
    system: float
    voluntary: int
    involuntary: int
    reads: int
    writes: int

    @classmethod
    def of(cls, pid: int) -> Counters:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        voluntary = involuntary = 0
        for status in Path(f"/proc/{pid}/task").glob("*/status"):
            for line in status.read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches"):
                    voluntary += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches"):
                    involuntary += int(line.split()[1])
        io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
        return cls(
            int(stat[11]) / speed.CLOCK_TICKS,
            int(stat[12]) / speed.CLOCK_TICKS,
            voluntary,
            involuntary,
            int(io["syscr"]),
            int(io["syscw"]),
        )

    def per_write(self, before: Counters, writes: int) -> dict[str, float]:
        return {
            "user_us": (self.user - before.user) * 1e6 / writes,
            "sys_us": (self.system - before.system) * 1e6 / writes,
            "voluntary_cs": (self.voluntary - before.voluntary) / writes,
            "involuntary_cs": (self.involuntary - before.involuntary) / writes,
            "reads": (self.reads - before.reads) / writes,
            "writes": (self.writes - before.writes) / writes,
        }


@dataclass
class Sample:
    shape: str
    load: str
    round: int
    iops: float
    p50_us: float
    engines: dict[str, dict[str, float]]
    load_average: float


def measure(run: speed.Run, shape: str, load: str, round_: int) -> Sample:
    """One shape under one load on a fresh three-node cluster (under `run`'s folder)."""
    _, qd, procs, flags = next(entry for entry in LOADS if entry[0] == load)
    with speed.Cluster(run, None, 256 + 64, False, list(flags)) as cluster:
        uris = [cluster.replica(node, f"r{node}", 256) for node in range(3)]
        if shape == "replica":
            server = cluster.share("r0")
        else:
            _, server = cluster.nexus(256, [uris[node] for node in SHAPES[shape]])
        pids = cluster.pids
        snapshots: list[list[Counters]] = []

        def probe() -> float:
            snapshots.append([Counters.of(pid) for pid in pids])
            return 0.0

        result: dict[str, Any] = run_load(
            Target("127.0.0.1", server.port, server.nqn, speed.CLIENT_NQN),
            workload="randwrite",
            bs=4096,
            qd=qd // procs,
            procs=procs,
            seconds=run.args.seconds,
            warmup=1.0,
            cpu=speed.CLIENT_CPU,
            probe=probe,
        )
    writes = int(result["ops"])
    before, after = snapshots[-2], snapshots[-1]
    engines = {
        name: a.per_write(b, writes) for name, a, b in zip(ENGINES, after, before, strict=True)
    }
    return Sample(
        shape,
        load,
        round_,
        round(result["iops"]),
        round(result.get("lat_p50_us", 0.0), 1),
        engines,
        round(os.getloadavg()[0], 2),
    )


def median_of(samples: list[Sample], engine: str, key: str) -> float:
    return statistics.median(s.engines[engine][key] for s in samples)


def report(samples: list[Sample], shapes: list[str]) -> None:
    for load, *_ in LOADS:
        print(f"\n{load}: per write, each io-engine's CPU µs (user + system) and context")
        print("switches (voluntary / involuntary); medians of the rounds")
        print(f"{'shape':9} {'IOPS':>7} {'p50 µs':>7} {'all CPU':>8}", end="")
        print("".join(f" {'io-engine ' + e:>22}" for e in ENGINES))
        for shape in shapes:
            these = [s for s in samples if s.shape == shape and s.load == load]
            if not these:
                continue
            cpu = [(median_of(these, e, "user_us"), median_of(these, e, "sys_us")) for e in ENGINES]
            total = statistics.median(
                sum(s.engines[e]["user_us"] + s.engines[e]["sys_us"] for e in ENGINES)
                for s in these
            )
            iops = statistics.median(s.iops for s in these)
            p50 = statistics.median(s.p50_us for s in these)
            print(f"{shape:9} {iops:7.0f} {p50:7.1f} {total:8.1f}", end="")
            for engine, (user, system) in zip(ENGINES, cpu, strict=True):
                vcs = median_of(these, engine, "voluntary_cs")
                ics = median_of(these, engine, "involuntary_cs")
                print(f" {user:5.1f}+{system:4.1f} {vcs:4.2f}/{ics:4.2f}", end="")
            print()


def qd32_floor(samples: list[Sample]) -> dict[str, float] | None:
    """What the three-way nexus must cost at QD32 whatever its own logic, from this run.

    It runs three replica paths (one per replica) and two initiator paths (one per
    remote child). The replica path is the ``replica`` shape's CPU; the initiator path
    what each remote child adds to node A (``LR`` over ``L``, ``LRR`` over ``LR``, the
    mean of the two), and its system part what ``R`` adds to A's system time over the
    replica's (on loopback the sender's system call runs the receiver's TCP input).
    None unless every shape was measured at QD32.
    """

    def a_cpu(shape: str, keys: tuple[str, ...] = ("user_us", "sys_us")) -> float:
        these = [s for s in samples if s.shape == shape and s.load == "qd32"]
        return statistics.median(sum(s.engines["A"][k] for k in keys) for s in these)

    if {s.shape for s in samples if s.load == "qd32"} != set(SHAPES):
        return None
    replica = a_cpu("replica")
    initiator = (a_cpu("LRR") - a_cpu("L")) / 2
    initiator_sys = max(a_cpu("R", ("sys_us",)) - a_cpu("replica", ("sys_us",)), 0.0)
    floor = 3 * replica + 2 * initiator
    floor_sys = 3 * replica + 2 * initiator_sys
    return {
        "replica_path_us": round(replica, 2),
        "initiator_path_us": round(initiator, 2),
        "initiator_sys_us": round(initiator_sys, 2),
        "nexus_floor_us": round(floor, 2),
        "ratio_at_most": round(replica / floor, 3),
        "nexus_floor_no_initiator_user_us": round(floor_sys, 2),
        "ratio_at_most_no_initiator_user": round(replica / floor_sys, 3),
    }


def print_floor(figures: dict[str, float]) -> None:
    print(
        f"\nqd32 floor of the three-way nexus (three replica paths of"
        f" {figures['replica_path_us']:.1f} µs, two initiator paths of"
        f" {figures['initiator_path_us']:.1f}):"
        f" {figures['nexus_floor_us']:.1f} µs per write with no nexus logic, at most"
        f" {figures['ratio_at_most']:.2f}x one replica's IOPS;"
        f" {figures['nexus_floor_no_initiator_user_us']:.1f} µs"
        f" ({figures['ratio_at_most_no_initiator_user']:.2f}x) if the initiator cost only"
        f" its system time ({figures['initiator_sys_us']:.1f} µs)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--dir", default=None, help="where the io-engines' state goes")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    shapes = args.shapes.split(",")
    unknown = [shape for shape in shapes if shape not in SHAPES]
    if unknown:
        parser.error(f"unknown shapes {unknown}: choose from {', '.join(SHAPES)}")
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    samples = []
    run = speed.Run(argparse.Namespace(seconds=args.seconds, dir=args.dir, rounds=args.rounds))
    try:
        for round_ in range(args.rounds):
            for load, *_ in LOADS:
                for shape in shapes:
                    sample = measure(run, shape, load, round_)
                    samples.append(sample)
                    line = f"  round {round_} {load:12} {shape:8} {sample.iops:8.0f} IOPS"
                    print(line, flush=True)
    finally:
        shutil.rmtree(run.workdir, ignore_errors=True)
    report(samples, shapes)
    floor = qd32_floor(samples)
    if floor is not None:
        print_floor(floor)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "benchmark": "nexus_split",
                "date": time.strftime("%Y-%m-%d"),
                "machine": f"{platform.node()} {os.cpu_count()} CPUs",
                "seconds": args.seconds,
                "rounds": args.rounds,
                "qd32_floor": floor,
                "samples": [asdict(s) for s in samples],
            },
            indent=1,
        )
        + "\n"
    )
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
