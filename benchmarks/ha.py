"""High availability, timed: a replica node lost, a target node lost, a node drained.

A core agent and four io-engines run on this machine (loopback ports, pools on sparse
files in ``--dir``), with the product's default periods unless a flag says otherwise.
Three parts, each measured ``--samples`` times where it is cheap enough:

1. **replica node lost**: a ``--size-gib`` volume with three replicas, written in full,
   loses a replica node (SIGKILL, left down). Timed: from the kill to the volume Online
   again, its replica replaced on the fourth node and rebuilt in full; the part of it
   after ``--faulted-child-wait``; the rebuild's own throughput (bytes over its start
   and end times in the rebuild history). Baseline in the same run: ``dd`` copying a
   file of the same size to another file in the same folder (direct I/O, 1 MiB
   blocks), i.e. what the disk does when nothing but copying is asked of it.
2. **target node lost**: a three-replica volume under 4 KiB writes at QD8 from our
   initiator (`FollowingWriter`, in this process) loses its target node (SIGKILL).
   The writer follows the target as the kernel's multipath and ``mayastor-ha-node``
   would: once its writes have failed for ``--failure-grace`` seconds it reports the
   path (``POST /v0/app-nodes/app-1/failed-paths``) and connects the URI the core
   answers. Two ways: the core moves the target on its own after
   ``--switch-over-wait`` (the writer's grace is then that wait plus its own, so the
   report only fetches the new URI), and the report moves it at once (the core's wait
   set to 10 minutes). Timed: the kill to the target moved, to the first write
   acknowledged by the new target, and the longest gap between two acknowledged writes.
3. **drain**: the same writer while ``PUT /v0/nodes/{target}/drain/bench`` moves the
   target off its node (clean shutdown of the old nexus, a new one elsewhere). Timed:
   the longest gap between two acknowledged writes, the drain's own duration (to the
   node Drained) and the first write acknowledged by the new target.

Every write acknowledged in parts 2 and 3 is read back through the final target.

Usage: ``.venv/bin/python benchmarks/ha.py [--size-gib 1] [--samples 3] [--dir /var/tmp]
[--parts replica,target,drain]``. Prints the figures and writes them to
``benchmarks/results/ha.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the cluster harness and the write ledger live with the tests

from tests.support.cluster import TestCluster  # noqa: E402
from tests.support.polling import wait_for  # noqa: E402
from tests.support.volume_io import frontend_nqn  # noqa: E402
from tests.support.write_ledger import Mismatch, WriteLedger, unit_data  # noqa: E402

from mayastor.bdev import NvmfDevice  # noqa: E402
from mayastor.errors import MayastorError  # noqa: E402
from mayastor.nvmf.host import ControllerOptions  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "ha.json"
MIB = 1 << 20
GIB = 1 << 30
APP_NODE = "app-1"
APP = frontend_nqn(APP_NODE)
KEEP_LOGS_AFTER = 15.0
"""A sample whose writes stalled longer (seconds) keeps its folder, logs and all."""


def median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


# ---------------------------------------------------------------------- the writer


class FollowingWriter:
    """4 KiB random writes at a queue depth to a volume's target, following the target
    when it moves (see the module docstring), in a thread with its own event loop.

    Args:
        rest_url: the core agent's REST API.
        volume: the volume's uuid.
        uri: its target's URI now.
        grace: seconds of failing writes before the path is reported.
        units: 4 KiB units written over, from LBA 0.
        depth: writes in flight.
    """

    def __init__(
        self,
        rest_url: str,
        volume: str,
        uri: str,
        *,
        grace: float = 2.0,
        units: int = 4096,
        depth: int = 8,
    ) -> None:
        self.rest_url = rest_url
        self.volume = volume
        self.uri = uri
        self.grace = grace
        self.units = units
        self.depth = depth
        self.acked: list[float] = []
        self.reports: list[tuple[float, str]] = []
        self.switched_at: list[float] = []
        self.ledger: WriteLedger | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> FollowingWriter:
        self._thread.start()
        if not self._ready.wait(30) or self._failure is not None:
            raise RuntimeError(f"the writer did not start: {self._failure!r}")
        return self

    def stop(self) -> WriteLedger:
        self._stop.set()
        self._thread.join(120)
        if self._failure is not None:
            raise RuntimeError(f"the writer failed: {self._failure!r}")
        assert self.ledger is not None
        return self.ledger

    def longest_gap(self, since: float) -> float:
        """The longest time without an acknowledged write after `since` (monotonic)."""
        times = [since, *sorted(t for t in self.acked if t > since)]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._failure = exc
            self._ready.set()

    @staticmethod
    def _options() -> ControllerOptions:
        return ControllerOptions(
            hostnqn=APP,
            io_timeout=5.0,
            keep_alive_timeout=5.0,
            reconnect_delay=0.5,
            ctrl_loss_timeout=None,
            fast_io_fail_timeout=0.0,
        )

    def _report(self) -> str:
        """POST the failed path; the URI to use now (the same one while the core has
        none other)."""
        import httpx

        address = self.uri.removeprefix("nvmf://").split("/", 1)[0]
        body = {"target_nqn": f"nqn.2019-05.io.openebs:{self.volume}", "address": address}
        try:
            reply = httpx.post(
                f"{self.rest_url}/v0/app-nodes/{APP_NODE}/failed-paths", json=body, timeout=30
            )
        except httpx.HTTPError:
            return self.uri
        self.reports.append((time.monotonic(), f"{reply.status_code}"))
        if reply.status_code != 200:
            return self.uri
        return str(reply.json()["uri"])

    async def _main(self) -> None:
        rng = random.Random(7)
        device = await NvmfDevice.open(self.uri, options=self._options())
        ledger = self.ledger = WriteLedger(device.block_size, 4096 // device.block_size)
        busy: set[int] = set()
        failing_since: float | None = None
        switching = asyncio.Lock()
        seq = 0
        self._ready.set()

        async def follow() -> None:
            nonlocal device, failing_since
            async with switching:
                if failing_since is None or time.monotonic() - failing_since < self.grace:
                    return
                new_uri = await asyncio.to_thread(self._report)
                if new_uri == self.uri:
                    return
                old = device
                try:
                    device = await NvmfDevice.open(new_uri, options=self._options())
                except MayastorError:
                    return
                self.uri = new_uri
                self.switched_at.append(time.monotonic())
                failing_since = None
                asyncio.get_running_loop().create_task(old.close())

        async def writer() -> None:
            nonlocal seq, failing_since
            while not self._stop.is_set():
                unit = rng.randrange(self.units)
                if unit in busy:
                    await asyncio.sleep(0)
                    continue
                busy.add(unit)
                lba = unit * ledger.unit_blocks
                seq += 1
                data = unit_data(lba, seq, ledger.unit_bytes, rng)
                try:
                    await device.write(lba, data)
                except MayastorError:
                    ledger.record(lba, data, ok=False)
                    if failing_since is None:
                        failing_since = time.monotonic()
                    await follow()
                    await asyncio.sleep(0.05)
                else:
                    ledger.record(lba, data, ok=True)
                    self.acked.append(time.monotonic())
                    failing_since = None
                finally:
                    busy.discard(unit)

        try:
            await asyncio.gather(*(writer() for _ in range(self.depth)))
        finally:
            await device.close()


async def verify(ledger: WriteLedger, uri: str) -> list[Mismatch]:
    device = await NvmfDevice.open(uri, options=ControllerOptions(hostnqn=APP))
    try:
        return await ledger.verify(device)
    finally:
        await device.close()


# ---------------------------------------------------------------------- helpers


def make_cluster(workdir: Path, disk_size: int, core_flags: list[str]) -> TestCluster:
    return TestCluster(
        workdir,
        nodes=4,
        disk_size=disk_size,
        core_flags=core_flags,
        engine_flags=("--registration-interval", "1"),
    ).start()


def fill(uri: str, size: int) -> float:
    """Write the whole volume once (1 MiB writes, 8 in flight); MB/s."""

    async def run() -> float:
        device = await NvmfDevice.open(uri, options=ControllerOptions(hostnqn=APP))
        step = MIB // device.block_size
        chunk = os.urandom(MIB)
        lbas = iter(range(0, size // device.block_size, step))
        start = time.monotonic()

        async def worker() -> None:
            for lba in lbas:
                await device.write(lba, chunk)

        try:
            await asyncio.gather(*(worker() for _ in range(8)))
            await device.flush()
        finally:
            await device.close()
        return size / MIB / (time.monotonic() - start)

    return asyncio.run(run())


def dd_copy(folder: Path, size: int) -> float:
    """Copy a file of `size` bytes to another in `folder` with dd (direct I/O); MB/s."""
    source, target = folder / "dd-source.img", folder / "dd-target.img"
    subprocess.run(
        ["dd", "if=/dev/urandom", f"of={source}", "bs=1M", f"count={size // MIB}", "status=none"],
        check=True,
    )
    subprocess.run(["sync"], check=True)
    start = time.monotonic()
    subprocess.run(
        [
            "dd",
            f"if={source}",
            f"of={target}",
            "bs=1M",
            "iflag=direct",
            "oflag=direct",
            "conv=fsync",
            "status=none",
        ],
        check=True,
    )
    seconds = time.monotonic() - start
    source.unlink()
    target.unlink()
    return size / MIB / seconds


def publish(cluster: TestCluster, size: int, target: str) -> tuple[str, str]:
    return cluster.new_volume(size=size, replicas=3, target=target, frontend=APP_NODE)


# ---------------------------------------------------------------------- the parts


def replica_node_lost(folder: Path, size: int, wait: float) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="ha-replica.", dir=folder))
    flags = ["--faulted-child-wait", f"{wait:g}s"]
    cluster = make_cluster(workdir, size + 256 * MIB, flags)
    try:
        volume, uri = publish(cluster, size, "node-1")
        fill_mb_s = fill(uri, size)
        lost = next(n for n in cluster.replica_nodes(volume) if n != "node-1")
        killed = time.monotonic()
        cluster.engines[lost].kill()
        timeline = follow_replacement(cluster, volume, lost, killed, wait + 900)
        online_after = timeline["online"]
        records = cluster.rest.get(f"/volumes/{volume}/rebuild-history")["records"]
    finally:
        cluster.close()
        shutil.rmtree(workdir, ignore_errors=True)
    record = records[-1]
    rebuilt = record["blocksTransferred"] * record["blockSize"]
    started = _parse_time(record["startTime"])
    ended = _parse_time(record["endTime"])
    baseline_dir = Path(tempfile.mkdtemp(prefix="ha-dd.", dir=folder))
    try:
        dd_mb_s = dd_copy(baseline_dir, size)
    finally:
        shutil.rmtree(baseline_dir, ignore_errors=True)
    rebuild_mb_s = rebuilt / MIB / max(ended - started, 1e-6)
    return {
        "volume_bytes": size,
        "faulted_child_wait_s": wait,
        "fill_mb_per_s": round(fill_mb_s, 1),
        "kill_to_offline_s": timeline["offline"],
        "kill_to_replaced_s": timeline["replaced"],
        "kill_to_online_s": round(online_after, 2),
        "after_the_wait_s": round(online_after - wait, 2),
        "rebuild": {
            "partial": record["isPartial"],
            "bytes": rebuilt,
            "seconds": round(ended - started, 2),
            "mb_per_s": round(rebuild_mb_s, 1),
        },
        "baseline_dd_copy_mb_per_s": round(dd_mb_s, 1),
        "rebuild_to_dd_ratio": round(rebuild_mb_s / dd_mb_s, 2),
    }


def follow_replacement(
    cluster: TestCluster, volume: str, lost: str, since: float, timeout: float
) -> dict[str, float]:
    """Seconds from `since` until `lost` showed Offline, its replica left the volume (a new
    one placed), and the volume was Online again."""
    timeline: dict[str, float] = {}
    deadline = since + timeout
    while "online" not in timeline:
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: the replica replaced ({timeline})")
        now = round(time.monotonic() - since, 2)
        if "offline" not in timeline and cluster.node_status(lost) != "Online":
            timeline["offline"] = now
        if "replaced" not in timeline and lost not in cluster.replica_nodes(volume):
            timeline["replaced"] = now
        if "replaced" in timeline and cluster.volume_status(volume) == "Online":
            timeline["online"] = now
        time.sleep(0.1)
    return timeline


def _parse_time(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def move_sample(
    folder: Path, core_flags: list[str], grace: float, how: str
) -> tuple[float, float, float, int]:
    """One volume under the writer while its target on node-1 is lost (`how` "kill") or
    drained ("drain"); the longest write gap, the seconds until the target moved (the
    node drained), the seconds until the first write acknowledged by the new target,
    and the acknowledged writes that do not read back."""
    workdir = Path(tempfile.mkdtemp(prefix=f"ha-{how}.", dir=folder))
    cluster = make_cluster(workdir, 512 * MIB, core_flags)
    try:
        cluster.rest.put(f"/app-nodes/{APP_NODE}", {"endpoint": "127.0.0.1:50055"})
        volume, uri = publish(cluster, 64 * MIB, "node-1")
        writer = FollowingWriter(cluster.core.rest_url, volume, uri, grace=grace).start()
        time.sleep(2)
        started = time.monotonic()
        if how == "kill":
            cluster.engines["node-1"].kill()
            wait_for(lambda: cluster.target_node(volume) != "node-1", "the target moved", 120)
        else:
            cluster.rest.put("/nodes/node-1/drain/bench")
            wait_for(
                lambda: (
                    "drainedstate"
                    in (cluster.rest.get("/nodes/node-1")["spec"].get("cordondrainstate") or {})
                ),
                "node-1 drained",
                120,
            )
        moved_after = time.monotonic() - started
        wait_for(lambda: writer.uri != uri, "the writer on the new target", 120)
        resumed = time.monotonic()
        wait_for(lambda: bool(writer.acked) and writer.acked[-1] > resumed, "writes", 60)
        time.sleep(1)
        ledger = writer.stop()
        lost = len(asyncio.run(verify(ledger, writer.uri)))
        switched = writer.switched_at[-1]
        resumed_after = min(t for t in writer.acked if t > switched) - started
        gap = writer.longest_gap(started - 1)
    finally:
        cluster.close()
    if gap > KEEP_LOGS_AFTER:
        print(f"  writes stalled {gap:.1f} s: logs kept in {workdir}", flush=True)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return gap, moved_after, resumed_after, lost


def moves(
    folder: Path, samples: int, core_flags: list[str], grace: float, how: str
) -> dict[str, Any]:
    """`samples` runs of `move_sample`, summed up."""
    gaps, moved_after, resumed_after, lost = [], [], [], 0
    for sample in range(samples):
        gap, moved, resumed, wrong = move_sample(folder, core_flags, grace, how)
        gaps.append(gap)
        moved_after.append(moved)
        resumed_after.append(resumed)
        lost += wrong
        print(f"  {how}, sample {sample + 1}: writes stalled {gap:.2f} s", flush=True)
    return {
        "core_flags": " ".join(core_flags),
        "failure_grace_s": grace,
        "samples": samples,
        "longest_write_gap_s": {"median": median(gaps), "max": round(max(gaps), 2)},
        "target_moved_after_s": {"median": median(moved_after), "max": round(max(moved_after), 2)},
        "io_resumed_on_the_new_target_after_s": {
            "median": median(resumed_after),
            "max": round(max(resumed_after), 2),
        },
        "acknowledged_writes_lost": lost,
    }


# ---------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--size-gib", type=float, default=1.0, help="replica node part's volume")
    parser.add_argument("--faulted-child-wait", type=float, default=5.0, help="seconds")
    parser.add_argument("--switch-over-wait", type=float, default=5.0, help="seconds")
    parser.add_argument("--failure-grace", type=float, default=2.0, help="seconds (ha-node's)")
    parser.add_argument("--samples", type=int, default=3, help="runs of parts 2 and 3")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="for the pool files")
    parser.add_argument("--parts", default="replica,target,drain")
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    parts = set(args.parts.split(","))
    document: dict[str, Any] = {
        "benchmark": "ha",
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "load_average_before": list(os.getloadavg()),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "core_agent": "product defaults (2 s poll, 10 s node deadline) unless named; "
        "io-engines register every second",
    }
    if "replica" in parts:
        print("replica node lost ...", flush=True)
        document["replica_node_lost"] = replica_node_lost(
            args.dir, int(args.size_gib * GIB), args.faulted_child_wait
        )
        print(json.dumps(document["replica_node_lost"], indent=1), flush=True)
    if "target" in parts:
        print("target node lost ...", flush=True)
        by_core = ["--switch-over-wait", f"{args.switch_over_wait:g}s"]
        by_report = ["--switch-over-wait", "10m"]  # only the app node's report moves it
        # the writer reports only after the core's wait, so the core moves the target
        core_grace = args.switch_over_wait + args.failure_grace
        document["target_node_lost"] = {
            "moved_by_the_core": moves(args.dir, args.samples, by_core, core_grace, "kill"),
            "moved_by_the_report": moves(
                args.dir, args.samples, by_report, args.failure_grace, "kill"
            ),
        }
        print(json.dumps(document["target_node_lost"], indent=1), flush=True)
    if "drain" in parts:
        print("drain ...", flush=True)
        document["drain"] = moves(args.dir, args.samples, [], args.failure_grace, "drain")
        print(json.dumps(document["drain"], indent=1), flush=True)
    document["load_average_after"] = list(os.getloadavg())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=1) + "\n")
    print(f"written to {args.output}")


if __name__ == "__main__":
    run()
