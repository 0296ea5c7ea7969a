"""A nexus over local and remote replicas, across io-engine processes, over NVMe/TCP.

Three io-engines run as processes (`EngineProcess`) on loopback, each with a pool on a
file in ``--dir`` (opened as a bare path, i.e. the aio driver, or with
``--disk-scheme uring`` through io_uring). Node A holds the local replica and the nexus;
nodes B and C share one replica each over NVMe/TCP. Every workload is driven from a
separate load-generator process, `benchmarks/nvmf_initiator.py` (our initiator, uvloop),
connected over NVMe/TCP:

* baseline: replica r0 on node A shared on its replica port and reached the same way;
* nexus of 1 child (r0, local), 2 (r0 + r1 on B), 3 (r0 + r1 + r2 on C), published on
  node A's nexus port;

each with 4 KiB random write and read at QD32 and 128 KiB sequential write and read at
QD16 over the first ``--size-mb`` MiB (written in full beforehand, so reads hit data,
not holes). All targets are run in turn, ``--rounds`` times, so that a noisy moment on
the machine does not land on one target only; the median of each figure is kept.
Reported: IOPS, MB/s, p50/p99 latency, the ratio to the replica alone (same run), and
the CPU microseconds per I/O of the three io-engines together (from /proc).

Rebuild: a nexus of one local 1 GiB replica (``--rebuild-mb``, written in full) gets a
fresh remote replica and copies it in full, once idle and once while a load generator
keeps 4 KiB random writes at QD32 on the published nexus. Reported: the rebuild's MB/s
(bytes copied over its start and end times from the rebuild history) and, under load,
the write IOPS the nexus kept serving during the rebuild, and over ``--seconds`` just
before it with the one child (write ops counted on the local replica, which every nexus
write reaches once; the rebuild only reads it).

Usage: ``.venv/bin/python benchmarks/nexus_remote.py [--seconds 5] [--rounds 2] [--size-mb 256]
[--rebuild-mb 1024] [--disk-scheme aio|uring] [--dir /var/tmp] [--output FILE.json]``.
Prints a table and writes the figures as JSON (default
``benchmarks/results/nexus_remote.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc

from mayastor.api.v1 import nexus_pb2, nexus_pb2_grpc, stats_pb2, stats_pb2_grpc
from mayastor.bdev import NvmfDevice
from mayastor.cluster.processes import EngineProcess
from mayastor.nvmf.host import ControllerOptions

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "nexus_remote.json"
LOADGEN = HERE / "nvmf_initiator.py"
LOADGEN_NQN = "nqn.2014-08.org.nvmexpress:uuid:b3e1c0de-0000-4000-8000-00000000be4c"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Workload:
    name: str
    workload: str
    block_bytes: int
    queue_depth: int


WORKLOADS = (
    Workload("randwrite-4k-qd32", "randwrite", 4096, 32),
    Workload("randread-4k-qd32", "randread", 4096, 32),
    Workload("seqwrite-128k-qd16", "seqwrite", 128 << 10, 16),
    Workload("seqread-128k-qd16", "seqread", 128 << 10, 16),
)


@dataclass
class Result:
    target: str
    workload: str
    ops: int
    seconds: float
    iops: float
    mb_per_s: float
    lat_p50_us: float
    lat_p99_us: float
    errors: int
    engines_cpu_us_per_io: float | None
    loadgen_cpu_us_per_io: float | None
    ratio_to_replica: float | None = None
    iops_samples: list[float] = field(default_factory=list)


@dataclass
class RebuildResult:
    load: str
    size_mb: int
    seconds: float
    mb_per_s: float
    state: str
    write_iops_before: float | None = None
    write_iops_during: float | None = None


class Cluster:
    """Three io-engines with a pool each, and a gRPC channel to the nexus node."""

    def __init__(self, workdir: Path, pool_mb: int, disk_scheme: str) -> None:
        self.workdir = workdir
        self.nodes = [
            EngineProcess(f"bench-{n}", workdir, disk_allow=[f"{workdir.resolve()}/*"])
            for n in ("a", "b", "c")
        ]
        self.pool_mb = pool_mb
        self.disk_scheme = disk_scheme
        self.channel: grpc.Channel | None = None

    def start(self) -> None:
        for node in self.nodes:
            node.start()
            disk = self.workdir / f"{node.node_name}.img"
            with open(disk, "wb") as fh:
                fh.truncate(self.pool_mb << 20)
            spec = f"uring://{disk}" if self.disk_scheme == "uring" else str(disk)
            node.client("pool", "create", "pool", spec, check=True)
        self.channel = grpc.insecure_channel(self.nodes[0].endpoint)

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.close()
        for node in self.nodes:
            node.stop()

    @property
    def nexus_node(self) -> EngineProcess:
        return self.nodes[0]

    def replica(self, node: int, name: str, size_mb: int) -> str:
        """Create replica `name` on node `node`; its URI for a nexus on node A."""
        engine = self.nodes[node]
        replica_uuid = str(uuid.uuid4())
        engine.client(
            "replica", "create", "pool", name, f"--size={size_mb}", "--uuid", replica_uuid,
            check=True,
        )  # fmt: skip
        if node == 0:
            return f"bdev:///{name}?uuid={replica_uuid}"
        return engine.client("replica", "share", "pool", name, check=True).stdout.strip()

    @contextmanager
    def nexus(self, size_mb: int, children: Sequence[str]) -> Iterator[tuple[str, str]]:
        """A new nexus over `children`, published for the load generator: (uuid, URI)."""
        nexus_uuid = str(uuid.uuid4())
        node = self.nexus_node
        node.client("nexus", "create", nexus_uuid, str(size_mb), *children, check=True)
        try:
            uri = node.client(
                "nexus", "publish", nexus_uuid, "--allowed-host", LOADGEN_NQN, check=True
            ).stdout.strip()
            listed = self.nexus_stub().ListNexus(nexus_pb2.ListNexusOptions(), timeout=30)
            (nexus,) = [n for n in listed.nexus_list if n.uuid == nexus_uuid]
            states = {c.uri: nexus_pb2.ChildState.Name(c.state) for c in nexus.children}
            if set(states.values()) != {"CHILD_STATE_ONLINE"} or nexus.rebuilds:
                raise RuntimeError(f"nexus {nexus_uuid} is not clean at start: {states}")
            yield nexus_uuid, uri
        finally:
            node.client("nexus", "destroy", nexus_uuid, check=True)

    def nexus_stub(self) -> nexus_pb2_grpc.NexusRpcStub:
        assert self.channel is not None
        return nexus_pb2_grpc.NexusRpcStub(self.channel)

    def replica_write_ops(self, name: str) -> int:
        assert self.channel is not None
        stub = stats_pb2_grpc.StatsRpcStub(self.channel)
        reply = stub.GetReplicaIoStats(stats_pb2.ListStatsOption(name=name), timeout=30)
        (entry,) = reply.stats
        return int(entry.stats.num_write_ops)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the three io-engine processes so far."""
        total = 0
        for node in self.nodes:
            assert node.proc is not None
            fields = Path(f"/proc/{node.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / CLOCK_TICKS


def loadgen_argv(uri: str, workload: Workload, seconds: float, size_mb: int) -> list[str]:
    return [
        sys.executable,
        str(LOADGEN),
        uri,
        "--workload",
        workload.workload,
        "--bs",
        str(workload.block_bytes),
        "--qd",
        str(workload.queue_depth),
        "--seconds",
        str(seconds),
        "--size-mb",
        str(size_mb),
        "--hostnqn",
        LOADGEN_NQN,
    ]


def drive(
    cluster: Cluster, target: str, uri: str, workload: Workload, seconds: float, size_mb: int
) -> Result:
    """One load-generator run; the io-engines' CPU time is taken around it."""
    cpu0 = cluster.cpu_seconds()
    done = subprocess.run(
        loadgen_argv(uri, workload, seconds, size_mb),
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 120,
    )
    cpu = cluster.cpu_seconds() - cpu0
    out = json.loads(done.stdout)
    ops = int(out["ops"])
    # The engines' CPU time also covers the load generator's connect and warm-up
    # (one second at most), so this is an upper bound.
    return Result(
        target=target,
        workload=workload.name,
        ops=ops,
        seconds=float(out["seconds"]),
        iops=float(out["iops"]),
        mb_per_s=float(out["mb_per_s"]),
        lat_p50_us=float(out["lat_p50_us"]),
        lat_p99_us=float(out["lat_p99_us"]),
        errors=int(out["errors"]),
        engines_cpu_us_per_io=round(cpu / ops * 1e6, 1) if ops else None,
        loadgen_cpu_us_per_io=out["cpu_us_per_io"],
    )


async def _fill(uri: str, size_mb: int) -> None:
    device = await NvmfDevice.open(uri, options=ControllerOptions(hostnqn=LOADGEN_NQN))
    try:
        chunk = (1 << 20) // device.block_size
        end = min(device.num_blocks, (size_mb << 20) // device.block_size)
        data = memoryview(os.urandom(1 << 20))
        lbas = iter(range(0, end, chunk))

        async def worker() -> None:
            for lba in lbas:
                count = min(chunk, end - lba)
                await device.write(lba, data[: count * device.block_size])

        await asyncio.gather(*(worker() for _ in range(8)))
        await device.flush()
    finally:
        await device.close()


def fill(uri: str, size_mb: int) -> None:
    """Write the first `size_mb` MiB of `uri` with random data (not measured)."""
    asyncio.run(_fill(uri, size_mb))


def measure(cluster: Cluster, seconds: float, size_mb: int, rounds: int) -> list[Result]:
    """Every target and workload, `rounds` times in turn; the median of each figure."""
    uris = [cluster.replica(i, f"r{i}", size_mb) for i in range(3)]
    with cluster.nexus(size_mb, uris) as (_, uri):
        fill(uri, size_mb)
    samples: dict[tuple[str, str], list[Result]] = {}

    def run_all(target: str, uri: str) -> None:
        for workload in WORKLOADS:
            result = drive(cluster, target, uri, workload, seconds, size_mb)
            samples.setdefault((target, workload.name), []).append(result)
            report(result)

    node = cluster.nexus_node
    targets = ("nexus-1 (local)", "nexus-2 (local+remote)", "nexus-3 (local+2 remote)")
    for _ in range(rounds):
        shared = node.client(
            "replica", "share", "pool", "r0", "--allowed-host", LOADGEN_NQN, check=True
        ).stdout.strip()
        run_all("replica", shared)
        node.client("replica", "unshare", "pool", "r0", check=True)
        for count, target in enumerate(targets, start=1):
            with cluster.nexus(size_mb, uris[:count]) as (_, uri):
                run_all(target, uri)
    results = [median_of(runs) for runs in samples.values()]
    baseline = {r.workload: r.iops for r in results if r.target == "replica"}
    for r in results:
        if baseline.get(r.workload):
            r.ratio_to_replica = round(r.iops / baseline[r.workload], 3)
    return results


def median_of(runs: list[Result]) -> Result:
    """One result from several runs of the same target and workload: medians, sums."""

    def med(values: Sequence[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return round(statistics.median(present), 1) if present else None

    first = runs[0]
    return Result(
        target=first.target,
        workload=first.workload,
        ops=sum(r.ops for r in runs),
        seconds=round(sum(r.seconds for r in runs), 3),
        iops=med([r.iops for r in runs]) or 0.0,
        mb_per_s=med([r.mb_per_s for r in runs]) or 0.0,
        lat_p50_us=med([r.lat_p50_us for r in runs]) or 0.0,
        lat_p99_us=med([r.lat_p99_us for r in runs]) or 0.0,
        errors=sum(r.errors for r in runs),
        engines_cpu_us_per_io=med([r.engines_cpu_us_per_io for r in runs]),
        loadgen_cpu_us_per_io=med([r.loadgen_cpu_us_per_io for r in runs]),
        iops_samples=[r.iops for r in runs],
    )


def report(r: Result) -> None:
    print(
        f"  {r.target:26} {r.workload:19} {r.iops:9.0f} IOPS {r.mb_per_s:8.1f} MB/s "
        f"p99 {r.lat_p99_us:8.0f} us  engines {r.engines_cpu_us_per_io} CPU us/IO",
        file=sys.stderr,
    )


def wait_for_rebuild(
    cluster: Cluster, nexus_uuid: str, child: str, timeout: float
) -> RebuildResult:
    """Poll the rebuild history until the rebuild of `child` ended; its figures."""
    stub = cluster.nexus_stub()
    deadline = time.monotonic() + timeout
    while True:
        history = stub.GetRebuildHistory(
            nexus_pb2.RebuildHistoryRequest(uuid=nexus_uuid), timeout=30
        )
        records = [r for r in history.records if r.child_uri == child]
        if records:
            record = records[-1]
            start = record.start_time.ToNanoseconds() / 1e9
            end = record.end_time.ToNanoseconds() / 1e9
            copied = record.blocks_transferred * record.block_size
            seconds = max(end - start, 1e-9)
            return RebuildResult(
                load="",
                size_mb=copied >> 20,
                seconds=round(seconds, 2),
                mb_per_s=round(copied / seconds / 1e6, 1),
                state=nexus_pb2.RebuildJobState.Name(record.state),
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"the rebuild of {child} did not end within {timeout} s")
        time.sleep(0.5)


def add_child(cluster: Cluster, nexus_uuid: str, child: str) -> None:
    cluster.nexus_stub().AddChildNexus(
        nexus_pb2.AddChildNexusRequest(uuid=nexus_uuid, uri=child, norebuild=False), timeout=60
    )


def rebuilds(cluster: Cluster, size_mb: int, seconds: float) -> list[RebuildResult]:
    source = cluster.replica(0, "rb0", size_mb)
    targets = [cluster.replica(1, "rb1", size_mb), cluster.replica(2, "rb2", size_mb)]
    results = []
    with cluster.nexus(size_mb, [source]) as (nexus_uuid, uri):
        fill(uri, size_mb)
        add_child(cluster, nexus_uuid, targets[0])
        idle = wait_for_rebuild(cluster, nexus_uuid, targets[0], timeout=1800)
        idle.load = "idle"
        results.append(idle)
        print(f"  rebuild idle: {idle}", file=sys.stderr)
        cluster.nexus_stub().RemoveChildNexus(
            nexus_pb2.RemoveChildNexusRequest(uuid=nexus_uuid, uri=targets[0]), timeout=60
        )
        load = subprocess.Popen(
            loadgen_argv(uri, WORKLOADS[0], 3600, size_mb),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            ops0 = cluster.replica_write_ops("rb0")
            wait_until = time.monotonic() + 60
            while cluster.replica_write_ops("rb0") == ops0:  # connected and writing
                if load.poll() is not None or time.monotonic() > wait_until:
                    raise RuntimeError("the write load did not start")
                time.sleep(0.2)
            ops0, t0 = cluster.replica_write_ops("rb0"), time.monotonic()
            time.sleep(seconds)
            ops_before, t_before = cluster.replica_write_ops("rb0") - ops0, time.monotonic() - t0
            ops0, t0 = cluster.replica_write_ops("rb0"), time.monotonic()
            add_child(cluster, nexus_uuid, targets[1])
            busy = wait_for_rebuild(cluster, nexus_uuid, targets[1], timeout=3600)
            ops1, t1 = cluster.replica_write_ops("rb0"), time.monotonic()
        finally:
            if load.poll() is None:
                load.send_signal(signal.SIGTERM)
            load.wait(60)
        busy.load = "4k randwrite qd32"
        busy.write_iops_before = round(ops_before / t_before, 1)
        busy.write_iops_during = round((ops1 - ops0) / (t1 - t0), 1)
        results.append(busy)
        print(f"  rebuild under load: {busy}", file=sys.stderr)
    return results


def print_table(results: list[Result], rebuild_results: list[RebuildResult]) -> None:
    print(
        f"{'target':26} {'workload':19} {'IOPS':>9} {'MB/s':>8} {'p50 us':>8} {'p99 us':>8} "
        f"{'x replica':>9} {'eng us/IO':>9}"
    )
    for r in results:
        ratio = f"{r.ratio_to_replica:.2f}" if r.ratio_to_replica is not None else "-"
        print(
            f"{r.target:26} {r.workload:19} {r.iops:9.0f} {r.mb_per_s:8.1f} {r.lat_p50_us:8.0f} "
            f"{r.lat_p99_us:8.0f} {ratio:>9} {r.engines_cpu_us_per_io or 0:9.1f}"
        )
    print()
    print(
        f"{'rebuild (local -> remote)':26} {'MiB':>6} {'seconds':>8} {'MB/s':>8} "
        f"{'write IOPS before':>17} {'during':>7}"
    )
    for b in rebuild_results:
        before = f"{b.write_iops_before:.0f}" if b.write_iops_before is not None else "-"
        during = f"{b.write_iops_during:.0f}" if b.write_iops_during is not None else "-"
        print(
            f"{b.load:26} {b.size_mb:6} {b.seconds:8.1f} {b.mb_per_s:8.1f} {before:>17} {during:>7}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per workload")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each, median kept")
    parser.add_argument("--size-mb", type=int, default=256, help="replica and region size")
    parser.add_argument("--rebuild-mb", type=int, default=1024, help="rebuilt replica size")
    parser.add_argument("--disk-scheme", choices=("aio", "uring"), default="aio")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="for the pool files")
    parser.add_argument("--skip-io", action="store_true", help="only the rebuilds")
    parser.add_argument("--skip-rebuild", action="store_true", help="only the I/O runs")
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="nexus-remote.", dir=args.dir))
    # Each pool holds an I/O replica and a rebuild replica, plus metadata and slack.
    cluster = Cluster(workdir, args.size_mb + args.rebuild_mb + 128, args.disk_scheme)
    try:
        cluster.start()
        results = [] if args.skip_io else measure(cluster, args.seconds, args.size_mb, args.rounds)
        rebuild_results = (
            [] if args.skip_rebuild else rebuilds(cluster, args.rebuild_mb, args.seconds)
        )
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(results, rebuild_results)
    document = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "settings": {k: str(v) for k, v in vars(args).items()},
        "pools": f"files in {args.dir}, opened as "
        + ("uring:///PATH (io_uring)" if args.disk_scheme == "uring" else "a bare path (aio)"),
        "load_generator": "benchmarks/nvmf_initiator.py, 2 I/O queues, uvloop, own process",
        "io": [asdict(r) for r in results],
        "rebuild": [asdict(b) for b in rebuild_results],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=1) + "\n")
    print(f"written to {args.output}")


if __name__ == "__main__":
    run()
