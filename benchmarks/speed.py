"""The data-path speed table of issue 12, from one run: target, initiator, nexus, rebuild.

Every figure is measured in the same run for this tree ("after") and, with
``--baseline-src DIR`` (the ``src`` folder of a checkout of an older commit), for that
code too ("today"): servers and io-engines then run with ``PYTHONPATH=DIR``, while the
load generators are the same. Servers (our target, SPDK's, the io-engines) are pinned
to CPU 0 and load generators to CPU 1, so "on one core" is literal; the machine's
load average is recorded with every run, each run is repeated ``--rounds`` times and
the median kept; a ratio is the median of the ratios of figures measured in the same
round.

Sections (``--sections``, all by default):

* ``target``: `NvmfTarget` serving a 1 GiB malloc device, driven by the lean client
  (`lean_client.py`, 4 processes): 4 KiB random read and write at QD32, 128 KiB
  sequential read and write at QD16; IOPS, MB/s and the target's CPU µs per I/O. With
  ``--spdk DIR`` (a build of SPDK v24.01 outside the repo) SPDK's `nvmf_tgt` serves a
  malloc bdev the same way and `spdk_nvme_perf` drives both targets (4 KiB random
  reads at QD32, 128 KiB sequential reads and writes at QD16): the ratios to SPDK's
  target come from that one client, and so does the 128 KiB bandwidth of each target
  (a C client that is not the bottleneck, which the lean client at 128 KiB can be).
* ``pairs`` (with ``--spdk``): 128 KiB sequential reads and writes at QD16 with
  `spdk_nvme_perf`, ``--pairs`` short runs against this tree's target each followed at
  once by the same run against SPDK's (both serve all along; SPDK's, which polls, is
  stopped with SIGSTOP while ours is measured). This VM's loopback swings between a
  fast and a slow state within a minute (SPDK's own target then drops to half its
  rate), which a median of three long rounds can land in; many short pairs give the
  median bandwidth and the median of the ratios of runs a few seconds apart.
* ``uring``: the same target on a 1 GiB file opened with io_uring; CPU µs per I/O,
  and fio's own CPU µs per I/O on that file (io_uring, O_DIRECT, QD32, on CPU 0): the
  kernel's share, which no code of ours can remove.
* ``initiator``: our initiator (`nvmf_initiator.py`, one process, by callback as the
  nexus drives a child; a baseline older than that API awaits each I/O) against our
  malloc target: its own CPU µs per 4 KiB read at QD32 (against this tree's target),
  and the QD1 read round trip (against the target of the same code: a round trip is
  both sides).
* ``nexus``: three io-engines with RAM-backed pools (malloc), all on CPU 0: a
  three-way nexus (one local, two remote replicas) published over NVMe/TCP against
  one replica shared the same way, 4 KiB random writes at QD32 (write IOPS ratio) and
  at QD1 (latency ratio); then the same with pools on files: the io-engines' CPU µs
  per replicated write, first on the fresh replicas, then again once the volume was
  written through (ext4 converts the unwritten extents of a thick replica's zeroed
  clusters on the first write to each block, which a disk does not). Each is
  measured again with this tree's io-engines under ``--cpu-policy batch``
  (SCHED_BATCH: the setting for io-engines sharing cores).
* ``floor`` (with ``nexus``): `chain_floor.py`'s QD1 latencies of one hop and of a
  three-process chain on one core of processes that only move the bytes, and the
  servers' CPU per write: what this machine allows the nexus's QD1 ratio, whatever the
  code does.
* ``rebuild``: a 1 GiB replica rebuilt over NVMe/TCP into a remote one, malloc pools
  and file pools; for files, fio's rate copying the same bytes of the same files as
  the rebuild found them (a reader of the source's replica range and a writer of the
  same range of the destination, punched out first as it was before the rebuild, run
  together in the pools' O_DIRECT or buffered mode; the slower one's MB/s); and the
  io-engines' CPU µs per MB copied (the figure a loaded machine disturbs least).
* ``idle``: an io-engine with 100 replicas at rest: CPU % over 30 s and resident MiB.

Usage: ``.venv/bin/python benchmarks/speed.py [--baseline-src DIR] [--spdk DIR]
[--sections target,pairs,uring,initiator,nexus,floor,rebuild,idle] [--rounds 3] [--seconds 4]
[--pairs 8]
[--dir /var/tmp] [--output benchmarks/results/speed.json]``. Prints the table and
writes every sample to the JSON file.
"""

from __future__ import annotations

import argparse
import contextlib
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

import chain_floor
from lean_client import Target, run_load
from mayastor.api.v1 import nexus_pb2, nexus_pb2_grpc
from mayastor.cluster.processes import EngineProcess

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "speed.json"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SERVER_CPU, CLIENT_CPU = 0, 1
BENCH_NQN = "nqn.2019-05.io.openebs:bench-replica"
SPDK_NQN = "nqn.2016-06.io.spdk:bench"
IDLE_SECONDS = 30.0
"""The idle io-engine's measured window: a clock tick is 10 ms, 0.1 % of 10 s, so a
shorter window shows one tick more or less as a change of the idle CPU."""
PAIR_SECONDS = 2.0
"""Seconds of one run of a pair: short, so that both runs see the same state of the VM."""
FAST_SHARE = 0.8
"""A pair counts as run in the VM's fast state when SPDK's run reached this share of
its best run of the section."""
CLIENT_NQN = "nqn.2019-05.io.openebs:node-name:lean-client"
SECTIONS = ("target", "pairs", "uring", "initiator", "nexus", "floor", "rebuild", "idle")


@dataclass
class Sample:
    """One measurement: what, with which code, and the figures."""

    section: str
    name: str
    code: str  # "after" (this tree), "today" (--baseline-src) or "spdk"
    round: int
    figures: dict[str, float]
    load_average: float = field(default_factory=lambda: round(os.getloadavg()[0], 2))


class Run:
    """The samples of this run, the settings, and where servers take their code from."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.samples: list[Sample] = []
        self.round = 0
        self.workdir = Path(tempfile.mkdtemp(prefix="speed.", dir=args.dir))

    def codes(self) -> list[tuple[str, str | None]]:
        """(label, PYTHONPATH) for each code under test: today first, then after."""
        today = [("today", str(self.args.baseline_src))] if self.args.baseline_src else []
        return [*today, ("after", None)]

    def add(self, section: str, name: str, code: str, **figures: float) -> None:
        rounded = {k: round(v, 2) for k, v in figures.items()}
        sample = Sample(section, name, code, self.round, rounded)
        self.samples.append(sample)
        shown = " ".join(f"{k}={v}" for k, v in sample.figures.items())
        print(f"  [{code:5}] {name:28} {shown}  load {sample.load_average}", file=sys.stderr)

    def rounds(self, count: int) -> Iterator[int]:
        """Round numbers for a section's loop; samples remember theirs."""
        for number in range(count):
            self.round = number
            yield number

    def median(self, name: str, code: str, key: str) -> float | None:
        values = [
            s.figures[key]
            for s in self.samples
            if s.name == name and s.code == code and key in s.figures
        ]
        return statistics.median(values) if values else None

    def median_ratio(self, top: tuple[str, str, str], bottom: tuple[str, str, str]) -> float | None:
        """The median over rounds of top / bottom, each (name, code, key), both measured
        in the same round (so that a noisy moment of the machine cancels out)."""

        def by_round(name: str, code: str, key: str) -> dict[int, float]:
            return {
                s.round: s.figures[key]
                for s in self.samples
                if s.name == name and s.code == code and key in s.figures
            }

        a, b = by_round(*top), by_round(*bottom)
        ratios = [a[r] / b[r] for r in a if b.get(r)]
        return statistics.median(ratios) if ratios else None


# ------------------------------------------------------------------ processes


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@contextlib.contextmanager
def pinned(cpu: int) -> Iterator[None]:
    """Processes started inside run on `cpu`: the calling thread is pinned while they
    are forked (a child inherits its affinity) and unpinned after. No preexec_fn: it is
    not safe in a process with threads (gRPC's), and it once hung a fork here."""
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)


@contextlib.contextmanager
def pythonpath(path: str | None) -> Iterator[dict[str, str]]:
    """The environment for a server of the given code; os.environ too while inside."""
    saved = os.environ.get("PYTHONPATH")
    if path is not None:
        os.environ["PYTHONPATH"] = path
    try:
        yield dict(os.environ)
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    pid: int
    nqn: str


@contextlib.contextmanager
def our_target(code_path: str | None, driver: str, file: str) -> Iterator[Server]:
    """`nvmf_target.py serve` on CPU 0 with the given code; stopped on the way out."""
    argv = [sys.executable, str(HERE / "nvmf_target.py"), "serve", "--driver", driver]
    argv += ["--file", file, "--blocks", str((1 << 30) // 4096)]
    with pythonpath(code_path) as env, pinned(SERVER_CPU):
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        yield Server(proc, int(ready["port"]), int(ready["pid"]), BENCH_NQN)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def spdk_target(spdk: Path, workdir: Path) -> Iterator[Server]:
    """SPDK's nvmf_tgt on CPU 0 serving a 1 GiB malloc bdev (needs hugepages)."""
    sock = str(workdir / "spdk.sock")
    proc = subprocess.Popen(
        [str(spdk / "build/bin/nvmf_tgt"), "-m", f"{1 << SERVER_CPU:#x}", "-r", sock],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        rpc = [sys.executable, str(spdk / "scripts/rpc.py"), "-s", sock]
        deadline = time.monotonic() + 30
        while subprocess.run([*rpc, "spdk_get_version"], capture_output=True).returncode:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("SPDK's nvmf_tgt did not start (hugepages set up?)")
            time.sleep(0.2)
        port = 4420 + os.getpid() % 1000
        for call in (
            ["nvmf_create_transport", "-t", "TCP"],
            ["bdev_malloc_create", "-b", "Malloc0", "1024", "4096"],
            ["nvmf_create_subsystem", SPDK_NQN, "-a", "-s", "SPDK0001"],
            ["nvmf_subsystem_add_ns", SPDK_NQN, "Malloc0"],
            ["nvmf_subsystem_add_listener", SPDK_NQN, "-t", "tcp", "-a", "127.0.0.1",
             "-s", str(port)],
        ):  # fmt: skip
            subprocess.run([*rpc, *call], check=True, capture_output=True)
        yield Server(proc, port, proc.pid, SPDK_NQN)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def spdk_perf(spdk: Path, server: Server, qd: int, bs: int, rw: str, seconds: float) -> float:
    """spdk_nvme_perf on CPU 1: IOPS."""
    trid = (
        f"trtype:tcp adrfam:IPv4 traddr:127.0.0.1 trsvcid:{server.port} "
        f"subnqn:{server.nqn} hostnqn:{CLIENT_NQN}"
    )
    argv = [str(spdk / "build/bin/spdk_nvme_perf"), "-c", f"{1 << CLIENT_CPU:#x}"]
    argv += ["-q", str(qd), "-o", str(bs), "-w", rw, "-t", str(int(seconds)), "-r", trid]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120).stdout
    total = [line for line in out.splitlines() if line.startswith("Total")]
    if not total:
        raise RuntimeError(f"spdk_nvme_perf printed no total:\n{out[-2000:]}")
    return float(total[0].split(":", 1)[1].split()[0])


def lean(
    run: Run, server: Server, workload: str, bs: int, qd: int, procs: int, probe_pids: list[int]
) -> dict[str, Any]:
    """The lean client on CPU 1; the servers' CPU seconds over the measured window."""
    return run_load(
        Target("127.0.0.1", server.port, server.nqn, CLIENT_NQN),
        workload=workload,
        bs=bs,
        qd=qd // procs,
        procs=procs,
        seconds=run.args.seconds,
        warmup=1.0,
        cpu=CLIENT_CPU,
        probe=lambda: sum(cpu_seconds(pid) for pid in probe_pids),
    )


TARGET_WORKLOADS = (
    ("randread", 4096, 32, 4),
    ("randwrite", 4096, 32, 4),
    ("seqread", 128 << 10, 16, 2),
    ("seqwrite", 128 << 10, 16, 2),
)

PERF_WORKLOADS = (
    ("randread", 32, 4096, "randread"),
    ("seqread", 16, 128 << 10, "read"),
    ("seqwrite", 16, 128 << 10, "write"),
)
"""(name, QD, block size, spdk_nvme_perf's -w) run against each target: SPDK's C client
is never the bottleneck, so these give the targets' own 128 KiB bandwidth."""


# ------------------------------------------------------------------ sections


def section_target(run: Run) -> None:
    args = run.args
    for _ in run.rounds(args.rounds):
        for code, path in run.codes():
            with our_target(path, "malloc", "/dev/null") as server:
                for workload, bs, qd, procs in TARGET_WORKLOADS:
                    r = lean(run, server, workload, bs, qd, procs, [server.pid])
                    run.add(
                        "target", f"malloc {workload}", code,
                        iops=r["iops"], mb_per_s=r["mb_per_s"], p50_us=r["lat_p50_us"],
                        target_us_per_io=r["probe"] * 1e6 / r["ops"],
                        target_cpu_pct=100 * r["probe"] / r["seconds"],
                    )  # fmt: skip
                if args.spdk:
                    for name, qd, bs, rw in PERF_WORKLOADS:
                        iops = spdk_perf(args.spdk, server, qd, bs, rw, args.seconds)
                        run.add("target", f"perf {name}", code, iops=iops,
                                mb_per_s=iops * bs / 1e6)  # fmt: skip
        if args.spdk:
            with spdk_target(args.spdk, run.workdir) as server:
                for name, qd, bs, rw in PERF_WORKLOADS:
                    iops = spdk_perf(args.spdk, server, qd, bs, rw, args.seconds)
                    run.add("target", f"perf {name}", "spdk", iops=iops, mb_per_s=iops * bs / 1e6)


def section_pairs(run: Run) -> None:
    args = run.args
    if not args.spdk:
        return
    with (
        our_target(None, "malloc", "/dev/null") as ours,
        spdk_target(args.spdk, run.workdir) as spdk,
    ):
        for _ in run.rounds(args.pairs):
            for name, qd, bs, rw in PERF_WORKLOADS[1:]:
                os.kill(spdk.pid, signal.SIGSTOP)
                try:
                    steal = steal_ticks()
                    iops = spdk_perf(args.spdk, ours, qd, bs, rw, PAIR_SECONDS)
                    steal = steal_ticks() - steal
                finally:
                    os.kill(spdk.pid, signal.SIGCONT)
                run.add("pairs", f"pair {name}", "after", mb_per_s=iops * bs / 1e6,
                        steal_ticks=steal)  # fmt: skip
                steal = steal_ticks()
                iops = spdk_perf(args.spdk, spdk, qd, bs, rw, PAIR_SECONDS)
                run.add("pairs", f"pair {name}", "spdk", mb_per_s=iops * bs / 1e6,
                        steal_ticks=steal_ticks() - steal)  # fmt: skip


def steal_ticks() -> int:
    """Clock ticks the hypervisor stole from this VM's CPUs so far (/proc/stat)."""
    with open("/proc/stat") as fh:
        return int(fh.readline().split()[8])


def fast_pairs(run: Run, name: str) -> list[float]:
    """Our MB/s in the pairs whose SPDK run reached FAST_SHARE of SPDK's best run of
    the section: the VM's fast state, the one the goals' absolute figures assume."""
    spdk = {s.round: s.figures["mb_per_s"] for s in run.samples
            if s.name == name and s.code == "spdk"}  # fmt: skip
    if not spdk:
        return []
    floor = FAST_SHARE * max(spdk.values())
    return [
        s.figures["mb_per_s"]
        for s in run.samples
        if s.name == name and s.code == "after" and spdk.get(s.round, 0) >= floor
    ]


def section_uring(run: Run) -> None:
    path = run.workdir / "target.img"
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as fh:
        for _ in range(1024):
            fh.write(chunk)
    for _ in run.rounds(run.args.rounds):
        for code, src in run.codes():
            with our_target(src, "uring", str(path)) as server:
                for workload, bs, qd, procs in TARGET_WORKLOADS[:2]:
                    r = lean(run, server, workload, bs, qd, procs, [server.pid])
                    run.add(
                        "uring", f"uring {workload}", code,
                        iops=r["iops"], target_us_per_io=r["probe"] * 1e6 / r["ops"],
                    )  # fmt: skip
        for workload in ("randread", "randwrite"):
            run.add("uring", f"uring {workload}", "fio",
                    target_us_per_io=fio_cpu_per_io(path, workload, run.args.seconds))  # fmt: skip
    path.unlink()


def fio_cpu_per_io(path: Path, workload: str, seconds: float) -> float:
    """fio on CPU 0 doing 4 KiB `workload` at QD32 on the same file (io_uring, O_DIRECT,
    as the target opens it): its CPU µs per I/O, user and kernel. The floor of the
    target's figure: the kernel's share of an I/O that no user-space code can remove."""
    argv = ["taskset", "-c", str(SERVER_CPU), "fio", "--output-format=json", "--name=floor",
            f"--filename={path}", "--ioengine=io_uring", "--direct=1", "--bs=4k",
            "--iodepth=32", f"--rw={workload}", f"--runtime={max(1, int(seconds))}",
            "--time_based"]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    job = json.loads(out[out.index("{") :])["jobs"][0]
    ios = int(job["read"]["total_ios"]) + int(job["write"]["total_ios"])
    cpu_share = float(job["usr_cpu"] + job["sys_cpu"]) / 100
    cpu_seconds = cpu_share * float(job["job_runtime"]) / 1000
    return cpu_seconds * 1e6 / ios


def initiator(
    server: Server, code_path: str | None, qd: int, seconds: float, api: str
) -> dict[str, Any]:
    argv = [sys.executable, str(HERE / "nvmf_initiator.py")]
    argv += [f"nvmf://127.0.0.1:{server.port}/{server.nqn}", "--workload", "randread"]
    argv += ["--qd", str(qd), "--queues", "1", "--seconds", str(seconds), "--hostnqn", CLIENT_NQN]
    argv += ["--api", api]
    with pythonpath(code_path) as env, pinned(CLIENT_CPU):
        done = subprocess.run(
            argv, capture_output=True, text=True, check=True, env=env, timeout=seconds + 120
        )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def has_submit_api(src: str) -> bool:
    """Whether the initiator under `src` has the callback API (`QueueConnection.submit`)."""
    module = Path(src) / "mayastor" / "nvmf" / "host" / "_connection.py"
    return module.is_file() and "    def submit(" in module.read_text()


def section_initiator(run: Run) -> None:
    for _ in run.rounds(run.args.rounds):
        for code, path in run.codes():
            # The callback API is the one the nexus uses; code older than it has only
            # `await`.
            api = "submit" if path is None or has_submit_api(path) else "await"
            with our_target(None, "malloc", "/dev/null") as server:
                r = initiator(server, path, 32, run.args.seconds, api)
                run.add("initiator", "initiator qd32", code, iops=r["iops"],
                        initiator_us_per_io=r["cpu_us_per_io"])  # fmt: skip
            # A round trip is both sides: the target runs the same code as the initiator.
            with our_target(path, "malloc", "/dev/null") as server:
                r = initiator(server, path, 1, run.args.seconds, api)
                run.add("initiator", "initiator qd1", code, iops=r["iops"],
                        p50_us=r["lat_p50_us"])  # fmt: skip


class Cluster:
    """Three io-engines on CPU 0, a pool each (malloc or a file)."""

    def __init__(
        self, run: Run, code_path: str | None, pool_mb: int, files: bool, flags: list[str]
    ) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="cluster.", dir=run.workdir))
        self.code_path = code_path
        self.nodes = [
            EngineProcess(f"bench-{n}", self.workdir, extra_args=flags) for n in ("a", "b", "c")
        ]
        self.pool_mb = pool_mb
        self.files = files
        self.disks: list[Path] = []

    def __enter__(self) -> Cluster:
        try:
            with pythonpath(self.code_path), pinned(SERVER_CPU):
                for node in self.nodes:
                    node.start()
            for node in self.nodes:
                if self.files:
                    # under its state folder: an io-engine opens disks there by default
                    node.state_dir.mkdir(parents=True, exist_ok=True)
                    disk = node.state_dir / f"{node.node_name}.img"
                    with open(disk, "wb") as fh:
                        fh.truncate(self.pool_mb << 20)
                    self.disks.append(disk)
                    spec = str(disk)
                else:
                    spec = f"malloc:///{node.node_name}?size_mb={self.pool_mb}&blk_size=4096"
                node.client("pool", "create", "pool", spec, check=True)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def pids(self) -> list[int]:
        return [node.proc.pid for node in self.nodes if node.proc is not None]

    def replica(self, node: int, name: str, size_mb: int) -> str:
        """A replica on node `node`: its URI for a nexus on node A."""
        engine = self.nodes[node]
        replica_uuid = str(uuid.uuid4())
        engine.client("replica", "create", "pool", name, f"--size={size_mb}",
                      "--uuid", replica_uuid, check=True)  # fmt: skip
        if node == 0:
            return f"bdev:///{name}?uuid={replica_uuid}"
        return engine.client("replica", "share", "pool", name, check=True).stdout.strip()

    def share(self, name: str) -> Server:
        uri = self.nodes[0].client("replica", "share", "pool", name, check=True).stdout.strip()
        return _server_of(uri)

    def nexus(self, size_mb: int, children: list[str]) -> tuple[str, Server]:
        nexus_uuid = str(uuid.uuid4())
        node = self.nodes[0]
        node.client("nexus", "create", nexus_uuid, str(size_mb), *children, check=True)
        uri = node.client(
            "nexus", "publish", nexus_uuid, "--allowed-host", CLIENT_NQN, check=True
        ).stdout.strip()
        return nexus_uuid, _server_of(uri)

    def stub(self) -> nexus_pb2_grpc.NexusRpcStub:
        channel = grpc.insecure_channel(self.nodes[0].endpoint)
        return nexus_pb2_grpc.NexusRpcStub(channel)


def _server_of(uri: str) -> Server:
    rest = uri.split("://", 1)[1].split("?", 1)[0]
    hostport, nqn = rest.split("/", 1)
    return Server(None, int(hostport.rsplit(":", 1)[1]), 0, nqn)  # type: ignore[arg-type]


def fill(run: Run, server: Server, size_mb: int) -> None:
    """Write every block the workloads touch, so that reads and rebuilds find data."""
    run_load(
        Target("127.0.0.1", server.port, server.nqn, CLIENT_NQN),
        workload="seqwrite", bs=1 << 20, qd=8, seconds=max(2.0, size_mb / 300), warmup=0.0,
        cpu=CLIENT_CPU, size_mb=size_mb,
    )  # fmt: skip


def section_nexus(run: Run) -> None:
    size_mb = 256
    for files in (False, True):
        kind = "files" if files else "malloc"
        for _ in run.rounds(run.args.rounds):
            for code, flags, tag in NEXUS_SETTINGS:
                if code == "today" and not run.args.baseline_src:
                    continue
                path = str(run.args.baseline_src) if code == "today" else None
                with Cluster(run, path, size_mb + 64, files, flags) as cluster:
                    uris = [cluster.replica(i, f"r{i}", size_mb) for i in range(3)]
                    replica = cluster.share("r0")
                    targets = [("replica", replica)]
                    _, nexus = cluster.nexus(size_mb, uris)
                    targets.append(("nexus3", nexus))
                    for label, server in targets:
                        r = lean(run, server, "randwrite", 4096, 32, 4, cluster.pids)
                        run.add(
                            "nexus", f"{kind} {label} qd32{tag}", code,
                            iops=r["iops"], engines_us_per_io=r["probe"] * 1e6 / r["ops"],
                        )  # fmt: skip
                        if not files:
                            r = lean(run, server, "randwrite", 4096, 1, 1, cluster.pids)
                            run.add("nexus", f"{kind} {label} qd1{tag}", code, iops=r["iops"],
                                    mean_us=r["lat_mean_us"], p50_us=r["lat_p50_us"])  # fmt: skip
                    if files:
                        # A thick replica's clusters were zeroed with fallocate, so ext4
                        # converts an unwritten extent on the first write to each block:
                        # the same once every block was written (as on a disk).
                        fill(run, nexus, size_mb)
                        r = lean(run, nexus, "randwrite", 4096, 32, 4, cluster.pids)
                        run.add(
                            "nexus", f"files nexus3 qd32 written{tag}", code,
                            iops=r["iops"], engines_us_per_io=r["probe"] * 1e6 / r["ops"],
                        )  # fmt: skip


NEXUS_SETTINGS: tuple[tuple[str, list[str], str], ...] = (
    ("today", [], ""),
    ("after", [], ""),
    ("after", ["--cpu-policy", "batch"], " batch"),
)
"""(code, io-engine flags, name suffix) of the nexus section's clusters: the defaults,
then this tree's io-engines under SCHED_BATCH (`mayastor --cpu-policy batch`)."""


def section_floor(run: Run) -> None:
    for _ in run.rounds(run.args.rounds):
        for shape in ("hop", "chain"):
            with pinned(CLIENT_CPU):
                p50, cpu = chain_floor.measure(shape, run.args.seconds)
            run.add("floor", f"floor {shape}", "bytes", p50_us=p50, servers_us_per_io=cpu)


def section_rebuild(run: Run) -> None:
    size_mb = 1024
    for files in (False, True):
        kind = "files" if files else "malloc"
        for _ in run.rounds(max(1, run.args.rounds - 1)):
            for code, path in run.codes():
                with Cluster(run, path, size_mb + 128, files, []) as cluster:
                    source = cluster.replica(0, "src", size_mb)
                    dest = cluster.replica(1, "dst", size_mb)
                    nexus_uuid, nexus = cluster.nexus(size_mb, [source])
                    fill(run, nexus, size_mb)
                    stub = cluster.stub()
                    cpu = sum(cpu_seconds(pid) for pid in cluster.pids)
                    stub.AddChildNexus(
                        nexus_pb2.AddChildNexusRequest(uuid=nexus_uuid, uri=dest), timeout=60
                    )
                    mb_per_s = rebuild_rate(stub, nexus_uuid, dest)
                    cpu = sum(cpu_seconds(pid) for pid in cluster.pids) - cpu
                    # the io-engines' CPU per MB copied: other work on the machine
                    # disturbs it far less than the rate
                    figures = {
                        "mb_per_s": mb_per_s,
                        "engines_us_per_mb": cpu * 1e6 / (size_mb * 1.048576),
                    }
                    if files:
                        direct = opened_direct(cluster.pids[0], cluster.disks[0])
                        figures["fio_copy_mb_per_s"] = fio_copy(
                            cluster.disks[0], cluster.disks[1], size_mb, direct=direct
                        )
                    run.add("rebuild", f"rebuild {kind}", code, **figures)


def rebuild_rate(stub: nexus_pb2_grpc.NexusRpcStub, nexus_uuid: str, child: str) -> float:
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        history = stub.GetRebuildHistory(
            nexus_pb2.RebuildHistoryRequest(uuid=nexus_uuid), timeout=30
        )
        records = [r for r in history.records if r.child_uri == child]
        if records:
            record = records[-1]
            seconds = (record.end_time.ToNanoseconds() - record.start_time.ToNanoseconds()) / 1e9
            return float(record.blocks_transferred * record.block_size / max(seconds, 1e-9) / 1e6)
        time.sleep(0.2)
    raise RuntimeError("the rebuild did not end in 30 minutes")


def fio_copy(source: Path, dest: Path, size_mb: int, *, direct: bool) -> float:
    """fio copying the bytes the rebuild copied, as it found them: the slower side's MB/s.

    A reader of `source` and a writer of `dest` run together (1 MiB, QD16, io_uring), so
    the slower side's MB/s is the rate of a copy. Both cover the range of the source's
    pool file that holds the replica (its data extent of `size_mb`), on the same files
    and disk as the rebuild. The rebuild wrote blocks the destination's sparse pool file
    had never held, so the file system allocated them as it went; fio would find them
    allocated and only overwrite them (a quarter to a third faster here), so the range
    is punched out of `dest` first. `direct` is the pools' mode (O_DIRECT or buffered).
    """
    size = size_mb << 20
    offset = data_extent(source, size)
    subprocess.run(
        ["fallocate", "--punch-hole", f"--offset={offset}", f"--length={size}", str(dest)],
        check=True,
    )
    common = [
        "--ioengine=io_uring", f"--direct={int(direct)}", "--bs=1m", "--iodepth=16",
        f"--offset={offset}", f"--size={size}",
    ]  # fmt: skip
    argv = ["fio", "--output-format=json", "--name=read", f"--filename={source}", "--rw=read",
            *common, "--name=write", f"--filename={dest}", "--rw=write", *common]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    jobs = json.loads(out[out.index("{") :])["jobs"]
    read = next(j for j in jobs if j["jobname"] == "read")["read"]["bw_bytes"]
    write = next(j for j in jobs if j["jobname"] == "write")["write"]["bw_bytes"]
    return float(min(read, write)) / 1e6


def data_extent(path: Path, size: int) -> int:
    """The offset of the first run of data in `path` at least `size` bytes long (where a
    pool file holds a replica that was filled), 0 when there is none."""
    fd = os.open(path, os.O_RDONLY)
    try:
        position = 0
        while True:
            try:
                start = os.lseek(fd, position, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after `position`
                return 0
            position = os.lseek(fd, start, os.SEEK_HOLE)
            if position - start >= size:
                return start
    finally:
        os.close(fd)


def opened_direct(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open with O_DIRECT (how its pool does I/O)."""
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if Path(os.readlink(fd)) != path.resolve():
                continue
            info = (Path(f"/proc/{pid}/fdinfo") / fd.name).read_text()
        except OSError:  # closed meanwhile
            continue
        flags = next(line for line in info.splitlines() if line.startswith("flags:"))
        return bool(int(flags.split()[1], 8) & os.O_DIRECT)
    raise RuntimeError(f"process {pid} does not have {path} open")


def section_idle(run: Run) -> None:
    for code, path in run.codes():
        workdir = Path(tempfile.mkdtemp(prefix="idle.", dir=run.workdir))
        engine = EngineProcess("idle-node", workdir)
        # under its state folder: an io-engine opens disks there by default (every version)
        engine.state_dir.mkdir(parents=True, exist_ok=True)
        disk = engine.state_dir / "disk.img"
        with open(disk, "wb") as fh:
            fh.truncate(1 << 30)
        with pythonpath(path):
            engine.start()
        try:
            engine.client("pool", "create", "p1", str(disk), check=True)
            for i in range(100):
                engine.client("replica", "create", "p1", f"r{i}", "--size=4", "--thin",
                              "--share", "nvmf", check=True)  # fmt: skip
            assert engine.proc is not None
            pid = engine.proc.pid
            time.sleep(3)
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            time.sleep(IDLE_SECONDS)
            cpu = cpu_seconds(pid) - cpu0
            rss = next(
                int(line.split()[1])
                for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("VmRSS:")
            )
            run.add("idle", "idle io-engine", code,
                    cpu_pct=100 * cpu / (time.monotonic() - t0), rss_mib=rss / 1024)  # fmt: skip
        finally:
            engine.stop()
            shutil.rmtree(workdir, ignore_errors=True)


# ------------------------------------------------------------------ the table


def table(run: Run) -> list[tuple[str, str, str, str]]:
    """(figure, today, after, goal) rows, as issue 12 words them."""
    m = run.median

    def fmt(value: float | None, spec: str = ".1f") -> str:
        return "-" if value is None else format(value, spec)

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    def both(name_a: str, name_b: str, key: str, code: str, spec: str = ".1f") -> str:
        return f"{fmt(m(name_a, code, key), spec)} / {fmt(m(name_b, code, key), spec)}"

    rows = []
    cells: dict[str, str] = {}
    r = run.median_ratio
    spdk_read = m("perf randread", "spdk", "iops")
    rows.append((
        "4K randread IOPS / SPDK target (spdk_nvme_perf)",
        fmt(r(("perf randread", "today", "iops"), ("perf randread", "spdk", "iops")), ".2f"),
        fmt(r(("perf randread", "after", "iops"), ("perf randread", "spdk", "iops")), ".2f"),
        ">= 0.40",
    ))  # fmt: skip
    rows.append((
        "128K seqread MB/s / SPDK target (spdk_nvme_perf)",
        fmt(r(("perf seqread", "today", "mb_per_s"), ("perf seqread", "spdk", "mb_per_s")), ".2f"),
        fmt(r(("perf seqread", "after", "mb_per_s"), ("perf seqread", "spdk", "mb_per_s")), ".2f"),
        ">= 0.90",
    ))  # fmt: skip
    rows.append((
        "4K randread IOPS, lean client (SPDK target)",
        fmt(m("malloc randread", "today", "iops"), ".0f"),
        fmt(m("malloc randread", "after", "iops"), ".0f") + f" ({fmt(spdk_read, '.0f')})",
        "",
    ))  # fmt: skip
    rows.append((
        "target CPU us per 4K randread / randwrite, malloc",
        both("malloc randread", "malloc randwrite", "target_us_per_io", "today"),
        both("malloc randread", "malloc randwrite", "target_us_per_io", "after"),
        "<= 6",
    ))  # fmt: skip
    rows.append((
        "target CPU us per 4K read / write, uring file (fio's own)",
        both("uring randread", "uring randwrite", "target_us_per_io", "today"),
        both("uring randread", "uring randwrite", "target_us_per_io", "after")
        + f" ({both('uring randread', 'uring randwrite', 'target_us_per_io', 'fio')})",
        "<= 12",
    ))  # fmt: skip
    gb = {c: (m("malloc seqread", c, "mb_per_s"), m("malloc seqwrite", c, "mb_per_s"))
          for c in ("today", "after")}  # fmt: skip
    rows.append((
        "128K seq read / write GB/s through the target, malloc (lean client)",
        " / ".join(fmt(v and v / 1000, ".2f") for v in gb["today"]),
        " / ".join(fmt(v and v / 1000, ".2f") for v in gb["after"]),
        ">= 4 / >= 3",
    ))  # fmt: skip
    perf_gb = {c: (m("perf seqread", c, "mb_per_s"), m("perf seqwrite", c, "mb_per_s"))
               for c in ("today", "after", "spdk")}  # fmt: skip
    rows.append((
        "128K seq read / write GB/s through the target, malloc (spdk_nvme_perf; SPDK's)",
        " / ".join(fmt(v and v / 1000, ".2f") for v in perf_gb["today"]),
        " / ".join(fmt(v and v / 1000, ".2f") for v in perf_gb["after"])
        + " (" + " / ".join(fmt(v and v / 1000, ".2f") for v in perf_gb["spdk"]) + ")",
        ">= 4 / >= 3",
    ))  # fmt: skip
    pair_gb = [m(f"pair {n}", "after", "mb_per_s") for n in ("seqread", "seqwrite")]
    pair_ratio = [r((f"pair {n}", "after", "mb_per_s"), (f"pair {n}", "spdk", "mb_per_s"))
                  for n in ("seqread", "seqwrite")]  # fmt: skip
    rows.append((
        "128K seq read / write GB/s, short pairs (median; / SPDK same pair)",
        "",
        " / ".join(fmt(v and v / 1000, ".2f") for v in pair_gb)
        + " (" + " / ".join(fmt(v, ".2f") for v in pair_ratio) + ")",
        ">= 4 / >= 3",
    ))  # fmt: skip
    fast = [fast_pairs(run, f"pair {n}") for n in ("seqread", "seqwrite")]
    rows.append((
        "the same, pairs in the VM's fast state (median; how many)",
        "",
        " / ".join(fmt(statistics.median(v) / 1000 if v else None, ".2f") for v in fast)
        + " (" + " / ".join(str(len(v)) for v in fast) + ")",
        ">= 4 / >= 3",
    ))  # fmt: skip
    rows.append((
        "our initiator's CPU us per 4K I/O",
        fmt(m("initiator qd32", "today", "initiator_us_per_io")),
        fmt(m("initiator qd32", "after", "initiator_us_per_io")),
        "<= 6",
    ))  # fmt: skip
    rows.append((
        "4K read QD1 round trip, our initiator (p50 us)",
        fmt(m("initiator qd1", "today", "p50_us")),
        fmt(m("initiator qd1", "after", "p50_us")),
        "<= 40",
    ))  # fmt: skip
    for code in ("today", "after"):
        cells[f"nexus qd32 {code}"] = fmt(
            r(("malloc nexus3 qd32", code, "iops"), ("malloc replica qd32", code, "iops")), ".2f"
        )
        cells[f"nexus qd1 {code}"] = fmt(
            r(("malloc replica qd1", code, "mean_us"), ("malloc nexus3 qd1", code, "mean_us")),
            ".2f",
        )
        copy = r(("rebuild files", code, "mb_per_s"), ("rebuild files", code, "fio_copy_mb_per_s"))
        cells[f"rebuild files {code}"] = (
            f"{fmt(m('rebuild files', code, 'mb_per_s'), '.0f')} ({fmt(copy, '.2f')})"
        )
    rows.append((
        "3-way nexus / replica, 4K randwrite QD32 IOPS",
        cells["nexus qd32 today"], cells["nexus qd32 after"], ">= 0.25",
    ))  # fmt: skip
    rows.append((
        "3-way nexus / replica, QD1 (latency ratio)",
        cells["nexus qd1 today"], cells["nexus qd1 after"], ">= 0.5",
    ))  # fmt: skip
    batch = {
        "qd32": r(("malloc nexus3 qd32 batch", "after", "iops"),
                  ("malloc replica qd32 batch", "after", "iops")),
        "qd1": r(("malloc replica qd1 batch", "after", "mean_us"),
                 ("malloc nexus3 qd1 batch", "after", "mean_us")),
    }  # fmt: skip
    rows.append((
        "QD1 floor: one hop / three-process chain moving bytes only (p50 us)",
        "",
        fmt(r(("floor hop", "bytes", "p50_us"), ("floor chain", "bytes", "p50_us")), ".2f")
        + f" ({both('floor hop', 'floor chain', 'p50_us', 'bytes')})",
        "",
    ))  # fmt: skip
    rows.append((
        "the same two, io-engines under --cpu-policy batch",
        "", f"{fmt(batch['qd32'], '.2f')} / {fmt(batch['qd1'], '.2f')}", ">= 0.25 / >= 0.5",
    ))  # fmt: skip
    for name, label, goal in (
        ("malloc nexus3 qd32", "malloc", ""),
        ("files nexus3 qd32", "files", "<= 60"),
        ("files nexus3 qd32 written", "files written once first", ""),
    ):
        rows.append((
            f"3-way nexus: engines' CPU us per 4K write, {label} (batch)",
            fmt(m(name, "today", "engines_us_per_io")),
            fmt(m(name, "after", "engines_us_per_io"))
            + f" ({fmt(m(f'{name} batch', 'after', 'engines_us_per_io'))})",
            goal,
        ))  # fmt: skip
    rows.append((
        "rebuild 1 GiB over NVMe/TCP, malloc: MB/s",
        fmt(m("rebuild malloc", "today", "mb_per_s"), ".0f"),
        fmt(m("rebuild malloc", "after", "mb_per_s"), ".0f"),
        ">= 1000",
    ))  # fmt: skip
    rows.append((
        "rebuild 1 GiB, files: MB/s (/ fio copy, same round)",
        cells["rebuild files today"], cells["rebuild files after"], ">= 0.8x fio",
    ))  # fmt: skip
    rows.append((
        "rebuild: io-engines' CPU us per MB, malloc / files",
        both("rebuild malloc", "rebuild files", "engines_us_per_mb", "today", ".0f"),
        both("rebuild malloc", "rebuild files", "engines_us_per_mb", "after", ".0f"),
        "",
    ))  # fmt: skip
    rows.append((
        "idle io-engine: CPU % / RSS MiB",
        both("idle io-engine", "idle io-engine", "cpu_pct", "today", ".2f").split(" / ")[0]
        + " / " + fmt(m("idle io-engine", "today", "rss_mib"), ".0f"),
        both("idle io-engine", "idle io-engine", "cpu_pct", "after", ".2f").split(" / ")[0]
        + " / " + fmt(m("idle io-engine", "after", "rss_mib"), ".0f"),
        "unchanged",
    ))  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--baseline-src", type=Path, help="src/ of the code to compare with")
    parser.add_argument("--spdk", type=Path, help="an SPDK build folder (the yardstick)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--pairs", type=int, default=8, help="runs of each pair (section pairs)")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    run = Run(args)
    load_before = os.getloadavg()
    started = time.time()
    try:
        for name in args.sections.split(","):
            print(f"== {name}", file=sys.stderr)
            globals()[f"section_{name}"](run)
    finally:
        shutil.rmtree(run.workdir, ignore_errors=True)
    rows = table(run)
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':{width}}  {'today':>16}  {'after':>22}  goal")
    for figure, today, after, goal in rows:
        print(f"{figure:{width}}  {today:>16}  {after:>22}  {goal}")
    load_after = os.getloadavg()
    print(f"load average: {load_before[0]:.2f} at start, {load_after[0]:.2f} at the end")
    document = {
        "benchmark": "speed (issue 12)",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "seconds": round(time.time() - started),
        "machine": {
            "python": platform.python_version(),
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "load_average_start": load_before,
            "load_average_end": load_after,
        },
        "settings": {k: str(v) for k, v in vars(args).items()},
        "table": [dict(zip(("figure", "today", "after", "goal"), r, strict=True)) for r in rows],
        "samples": [s.__dict__ for s in run.samples],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=1) + "\n")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
