"""The control plane's own costs: volume operations, listing at scale, detecting a dead node.

One run, three parts, each with its baseline measured in the same run:

1. **create + publish** of a three-replica volume through REST, `--volumes` times
   (p50, p99), against the same objects made by calling the io-engines' gRPC API
   directly (three replicas, two shares, a nexus, a publish): the ratio is what the
   control plane adds (specs written to the store, placement, polling).
2. **at scale**: `--scale` volumes (three thin replicas each) created, then `GET
   /v0/volumes` (all of them, and a page of 100) timed against `GET /v0/nodes`, and
   the core agent's resident memory and CPU use over `--idle` seconds of quiet.
3. **dead node**: an io-engine SIGKILLed `--kills` times; the time until `GET
   /v0/nodes/{id}` says Offline, with the core agent's default periods (2 s poll, 10 s
   registration deadline).

Usage: ``.venv/bin/python benchmarks/control_plane.py [--volumes 100] [--scale 1000]``.
Prints the figures and writes them to ``benchmarks/results/control_plane.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from engine_idle import cpu_seconds, rss_kib
from mayastor.api.v1 import (
    common_pb2,
    nexus_pb2,
    nexus_pb2_grpc,
    pool_pb2,
    pool_pb2_grpc,
    replica_pb2,
    replica_pb2_grpc,
)
from mayastor.cluster.processes import CoreAgentProcess, EngineProcess
from mayastor.restclient import RestClient

RESULTS = Path(__file__).resolve().parent / "results" / "control_plane.json"
MIB = 1 << 20
VOLUME_SIZE = 64 * MIB


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


class Cluster:
    """A core agent and three io-engines with a pool each on a sparse file."""

    def __init__(self, workdir: Path, disk_size: int, core_flags: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.core = CoreAgentProcess(workdir, extra_args=core_flags)
        self.engines: dict[str, EngineProcess] = {}
        self.disk_size = disk_size
        self.rest: RestClient | None = None

    def start(self) -> RestClient:
        self.core.start()
        for n in (1, 2, 3):
            name = f"node-{n}"
            engine = EngineProcess(
                name,
                self.workdir,
                registration_endpoint=self.core.grpc_endpoint,
                disk_allow=[f"{self.workdir.resolve()}/*"],
            )
            engine.start()
            self.engines[name] = engine
        rest = self.rest = RestClient(self.core.rest_url, timeout=120)
        deadline = time.monotonic() + 60
        while not all(
            rest.get_node(n).get("state", {}).get("status") == "Online" for n in self.engines
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the io-engines did not register")
            time.sleep(0.2)
        for name in self.engines:
            disk = self.workdir / f"{name}.img"
            with open(disk, "wb") as fh:
                fh.truncate(self.disk_size)
            rest.create_pool(name, f"pool-{name}", [str(disk)])
        return rest

    def close(self) -> None:
        if self.rest is not None:
            self.rest.close()
        for engine in self.engines.values():
            engine.stop()
        self.core.stop()


def direct_floor(workdir: Path, rounds: int) -> list[float]:
    """The same objects as a publish, made by calling three io-engines directly."""
    engines = [
        EngineProcess(f"direct-{n}", workdir, disk_allow=[f"{workdir.resolve()}/*"])
        for n in (1, 2, 3)
    ]
    for engine in engines:
        engine.start()
    channels = [grpc.insecure_channel(e.endpoint) for e in engines]
    try:
        pools = [pool_pb2_grpc.PoolRpcStub(c) for c in channels]
        replicas = [replica_pb2_grpc.ReplicaRpcStub(c) for c in channels]
        nexus = nexus_pb2_grpc.NexusRpcStub(channels[0])
        for n, stub in enumerate(pools):
            disk = workdir / f"direct-{n}.img"
            with open(disk, "wb") as fh:
                fh.truncate(4 << 30)
            stub.CreatePool(pool_pb2.CreatePoolRequest(name="p", disks=[str(disk)]), timeout=60)
        times = []
        for _ in range(rounds):
            ids = [str(uuid.uuid4()) for _ in range(4)]
            start = time.perf_counter()
            uris = []
            for n, replica_stub in enumerate(replicas):
                request = replica_pb2.CreateReplicaRequest(
                    name=ids[n], uuid=ids[n], pooluuid="p", size=VOLUME_SIZE, thin=True
                )
                made = replica_stub.CreateReplica(request, timeout=60)
                if n == 0:
                    uris.append(f"bdev:///{ids[n]}?uuid={ids[n]}")
                else:
                    shared = replica_stub.ShareReplica(
                        replica_pb2.ShareReplicaRequest(uuid=made.uuid, share=common_pb2.NVMF),
                        timeout=60,
                    )
                    uris.append(shared.uri)
            nexus.CreateNexus(
                nexus_pb2.CreateNexusRequest(
                    name=ids[3], uuid=ids[3], size=VOLUME_SIZE, children=uris
                ),
                timeout=60,
            )
            nexus.PublishNexus(
                nexus_pb2.PublishNexusRequest(uuid=ids[3], share=common_pb2.NVMF), timeout=60
            )
            times.append(time.perf_counter() - start)
        return times
    finally:
        for channel in channels:
            channel.close()
        for engine in engines:
            engine.stop()


def create_and_publish(workdir: Path, rounds: int) -> dict[str, Any]:
    cluster = Cluster(workdir / "ops", 16 << 30)
    rest = cluster.start()
    try:
        creates, publishes, both = [], [], []
        for n in range(rounds):
            volume = str(uuid.uuid4())
            c = timed(
                functools.partial(
                    rest.create_volume, volume, size=VOLUME_SIZE, replicas=3, thin=True
                )
            )
            p = timed(functools.partial(rest.publish_volume, volume, frontend_node=f"app-{n}"))
            creates.append(c)
            publishes.append(p)
            both.append(c + p)
    finally:
        cluster.close()
    floor = direct_floor(workdir / "direct", rounds)
    return {
        "volumes": rounds,
        "create": summary(creates),
        "publish": summary(publishes),
        "create_and_publish": summary(both),
        "direct_io_engine_calls": summary(floor),
        "ratio_p50_to_direct": round(statistics.median(both) / statistics.median(floor), 2),
    }


def at_scale(workdir: Path, count: int, idle: float) -> dict[str, Any]:
    cluster = Cluster(workdir / "scale", 64 << 30)
    rest = cluster.start()
    try:
        start = time.perf_counter()
        for _ in range(count):
            rest.create_volume(str(uuid.uuid4()), size=VOLUME_SIZE, replicas=3, thin=True)
        made = time.perf_counter() - start
        listing = [timed(rest.get_volumes) for _ in range(20)]
        page = [timed(functools.partial(rest.get_volumes, max_entries=100)) for _ in range(20)]
        nodes = [timed(rest.get_nodes) for _ in range(20)]
        assert len(rest.get_volumes()["entries"]) == count
        pid = cluster.core.pid
        assert pid is not None
        time.sleep(3.0)
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(idle)
        cpu1, t1 = cpu_seconds(pid), time.monotonic()
        rss = rss_kib(pid)
    finally:
        cluster.close()
    return {
        "volumes": count,
        "replicas": 3 * count,
        "create_seconds": round(made, 1),
        "get_volumes_all": summary(listing),
        "get_volumes_page_of_100": summary(page),
        "get_nodes_baseline": summary(nodes),
        "ratio_all_to_baseline_p50": round(
            statistics.median(listing) / statistics.median(nodes), 1
        ),
        "core_rss_mib": round(rss / 1024, 1),
        "core_idle_cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / (t1 - t0), 2),
        "idle_seconds": round(t1 - t0, 1),
    }


def dead_node(workdir: Path, kills: int) -> dict[str, Any]:
    cluster = Cluster(workdir / "kills", 1 << 30)
    rest = cluster.start()
    try:
        seen = []
        victim = cluster.engines["node-3"]
        for _ in range(kills):
            victim.kill()
            start = time.perf_counter()
            while rest.get_node("node-3")["state"]["status"] != "Offline":
                time.sleep(0.02)
            seen.append(time.perf_counter() - start)
            victim.start()
            while rest.get_node("node-3")["state"]["status"] != "Online":
                time.sleep(0.1)
    finally:
        cluster.close()
    return {"kills": kills, "sigkill_to_offline": summary(seen)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--volumes", type=int, default=100)
    parser.add_argument("--scale", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="control-plane-", dir="/var/tmp") as tmp:
        workdir = Path(tmp)
        report = {
            "benchmark": "control_plane",
            "load_average": os.getloadavg(),
            "create_and_publish": create_and_publish(workdir, args.volumes),
            "at_scale": at_scale(workdir, args.scale, args.idle),
            "dead_node": dead_node(workdir, args.kills),
        }
        report["load_average_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
