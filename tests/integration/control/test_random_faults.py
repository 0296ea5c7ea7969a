"""Random faults under a verifying write load: seeded rounds, one fault each.

A cluster on etcd with four io-engines, each in a network namespace of its own
(tests/support/netns.py), serves two published volumes (three replicas and two), each
under a `BackgroundLoad` that records every acknowledged write. Each round picks a
fault at random:

* ``kill-engine``: SIGKILL of an io-engine, started again after 0.2-1 s;
* ``kill-engine-past-wait``: SIGKILL of an io-engine, left down until its replicas
  are replaced and its targets moved (past ``--faulted-child-wait``), then started;
* ``kill-core``: SIGKILL of the core agent, started again after 0.2-1 s;
* ``kill-etcd``: SIGKILL of etcd, started again after 0.2-1 s;
* ``stop-engine``: SIGSTOP of an io-engine, SIGCONT after 0.2-3 s (the child I/O
  timeout is 2 s and the switch-over wait 1 s: some children are retired, some
  targets move, some nothing notices);
* ``cut-engine``: an io-engine's link down, up again after 0.2-3 s.

The victim is a node holding a replica or a target of a volume.

After each round, within `ONLINE_BOUND` seconds of the repair (the process back, the
link up): every volume is Online with as many Online children as it has replicas, and
the specs and the io-engines agree (after a freeze or a cut, also once the core's polls
sent during the silence have timed out, since it acts on them). Then every write ever
acknowledged must read back through the volume's current target, each unit read once
per child in a row: the nexus reads round-robin, so every child serves each unit once,
and a child that missed writes but is read as current shows. At the end the cluster is
stopped and every replica is read from its pool file and checked against the same
record.

``MAYASTOR_FAULT_ROUNDS`` sets the number of rounds (default 50) and
``MAYASTOR_FAULT_SEED`` the seed (default: a new one, printed; a failure names it). A
seed replays the same random choices: faults, delays, write data, and the victim by its
rank among the nodes then holding a replica or target (the same node while the
processes' timing leaves the replicas where they were). The soak with hundreds of
rounds is ``benchmarks/ha_fault_soak.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import random
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from mayastor.bdev import DeviceOpener, NvmfDevice
from mayastor.cli.client import main as client_main
from mayastor.cluster.processes import EngineProcess, EtcdProcess
from mayastor.control.engine_client import LIST_TIMEOUT
from mayastor.nexus import MemoryNexusInfoStore, Nexus
from mayastor.nvmf.host import ControllerOptions
from tests.support.agreement import disagreements
from tests.support.cluster import FAST_CORE_FLAGS, TestCluster
from tests.support.netns import TestNetwork
from tests.support.verified_writes import BackgroundLoad, Mismatch, WriteLedger, zero_fingerprint
from tests.support.volume_io import frontend_nqn
from tests.support.write_ledger import Readable

pytestmark = [pytest.mark.slow, pytest.mark.needs_root, pytest.mark.timeout(900)]

MIB = 1 << 20
APP = frontend_nqn("app-1")
FAULTS = (
    "kill-engine",
    "kill-engine-past-wait",
    "kill-core",
    "kill-etcd",
    "stop-engine",
    "cut-engine",
)
ONLINE_BOUND = 60.0
"""Seconds from the repair of a fault to every volume Online again (asserted)."""
AGREEMENT_BOUND = 30.0
"""Seconds the reconciler has, after that, to leave specs and io-engines in agreement."""
FAULTED_CHILD_WAIT = 3.0
CORE_FLAGS = (
    *FAST_CORE_FLAGS,
    "--faulted-child-wait",
    f"{FAULTED_CHILD_WAIT:g}s",
    "--switch-over-wait",
    "1s",
)
ENGINE_FLAGS = ("--child-io-timeout", "2", "--registration-interval", "1")
VOLUMES = ((8 * MIB, 3), (8 * MIB, 2))
"""Size and replica count of each volume."""


@dataclass
class RoundResult:
    """What one round did and how long the cluster took to recover."""

    number: int
    fault: str
    victim: str
    held: float
    """Seconds the fault lasted (the process down or frozen, the link down)."""
    online_after: float
    """Seconds from the repair to every volume Online (with specs and io-engines agreeing)."""
    acknowledged: int
    failed: int
    wall: float
    """Seconds the whole round took, checks and the loads' restart included."""


def merge(history: WriteLedger | None, latest: WriteLedger) -> WriteLedger:
    """The ledger of all rounds so far: `latest` (a round's own, started on a volume
    whose units it took for zeroes) on top of `history`."""
    if history is None:
        return latest
    zero = zero_fingerprint(latest.unit_bytes)
    for lba, held in latest.may_hold.items():
        if zero in held:  # no write to it was acknowledged this round
            history.may_hold[lba] = history.may_hold.get(lba, {zero}) | (held - {zero})
        else:
            history.may_hold[lba] = set(held)
    history.acknowledged += latest.acknowledged
    history.failed += latest.failed
    return history


async def verify_every_child_of(
    ledger: WriteLedger, nexus: Readable, children: int
) -> list[Mismatch]:
    """`ledger.verify` of `nexus`, each unit read `children` times in a row: the nexus
    hands reads round-robin to its Online children, so each of them serves every unit
    once (nothing else reads meanwhile)."""
    return await ledger.verify(nexus, [lba for lba in ledger.units() for _ in range(children)])


async def verify_every_child(ledger: WriteLedger, uri: str, children: int) -> list[Mismatch]:
    """`verify_every_child_of` the nexus published at `uri`."""
    device = await NvmfDevice.open(uri, options=ControllerOptions(hostnqn=APP))
    try:
        return await verify_every_child_of(ledger, device, children)
    finally:
        await device.close()


class ReplicaImage:
    """A replica's bytes, read from its pool file, as `WriteLedger.verify` reads a device."""

    def __init__(self, data: bytes, block_size: int) -> None:
        self.data = data
        self.block_size = block_size

    async def read(self, lba: int, nblocks: int) -> bytes:
        return self.data[lba * self.block_size : (lba + nblocks) * self.block_size]


class _InProcessClient:
    """An io-engine as `disagreements` asks it (``client(ARGS)``), answered by
    mayastor-client's own code in this process: a subprocess costs 0.3 s a call, and
    the check runs after every round."""

    def __init__(self, engine: EngineProcess) -> None:
        self.endpoint = engine.endpoint

    def client(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = client_main(["-b", self.endpoint, "--timeout", "10", *args])
        if check and code != 0:
            raise RuntimeError(
                f"mayastor-client {' '.join(args)} failed ({code}): {err.getvalue()}"
            )
        return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


class _QuickView:
    """`TestCluster` as `disagreements` reads it: its REST client and its io-engines."""

    def __init__(self, cluster: TestCluster) -> None:
        self.rest = cluster.rest
        self.engines = {name: _InProcessClient(e) for name, e in cluster.engines.items()}


def quick_disagreements(cluster: TestCluster) -> list[str]:
    """`tests.support.agreement.disagreements`, with the io-engines asked in-process."""
    return disagreements(cast(TestCluster, _QuickView(cluster)))


class FaultRounds:
    """The cluster, its volumes and their loads, and the rounds of faults.

    Args:
        workdir: where the cluster, etcd and their logs go.
        seed: the random source of every choice.
        log: where each round's line goes.
    """

    def __init__(self, workdir: Path, seed: int, log: Callable[[str], None] = print) -> None:
        self.workdir = workdir
        self.seed = seed
        self.rng = random.Random(seed)
        self.log = log
        self.network = TestNetwork()
        self.etcd: EtcdProcess | None = None
        self.cluster: TestCluster | None = None
        self.volumes: list[str] = []
        self.loads: dict[str, BackgroundLoad] = {}
        self.ledgers: dict[str, WriteLedger] = {}
        self.results: list[RoundResult] = []
        self.now = "set-up"
        """The round under way and its fault, for the messages of a failure."""

    # ------------------------------------------------------------------ set-up

    def start(self) -> FaultRounds:
        self.network.start()
        self.etcd = EtcdProcess(self.workdir / "etcd", host=self.network.gateway)
        self.etcd.start()
        self.cluster = TestCluster(
            self.workdir / "cluster",
            nodes=4,
            disk_size=128 * MIB,
            store=self.etcd.url,
            core_flags=CORE_FLAGS,
            engine_flags=ENGINE_FLAGS,
            network=self.network,
        ).start()
        for n, (size, replicas) in enumerate(VOLUMES):
            volume, _ = self.cluster.new_volume(
                size=size, replicas=replicas, target=f"node-{n + 1}"
            )
            self.volumes.append(volume)
        self._start_loads()
        return self

    def close(self) -> None:
        for load in self.loads.values():
            try:
                load.stop()
            except RuntimeError as exc:
                self.log(f"a load did not stop cleanly: {exc}")
        self.loads = {}
        if self.cluster is not None:
            self.cluster.close()
        if self.etcd is not None:
            self.etcd.stop()
        self.network.close()

    # ------------------------------------------------------------------ helpers

    @property
    def _cluster(self) -> TestCluster:
        assert self.cluster is not None
        return self.cluster

    def uri(self, volume: str) -> str:
        target = self._cluster.volume(volume)["state"].get("target")
        assert target is not None, f"{self._where()}: volume {volume} is no longer published"
        return str(target["deviceUri"])

    def _where(self) -> str:
        return f"seed {self.seed}, {self.now}"

    def _start_loads(self) -> None:
        for volume in self.volumes:
            load = BackgroundLoad(
                self.uri(volume),
                units=256,
                depth=4,
                hostnqn=APP,
                seed=self.rng.getrandbits(32),
            )
            self.loads[volume] = load.start()
        for load in self.loads.values():
            load.wait_for_progress(20, timeout=60)

    def _stop_loads(self) -> dict[str, WriteLedger]:
        ledgers = {volume: load.stop() for volume, load in self.loads.items()}
        self.loads = {}
        return ledgers

    def _statuses(self) -> list[str]:
        try:
            status, body = self._cluster.rest.call("GET", "/volumes")
        except httpx.HTTPError:  # the core agent is starting
            return ["(no answer)"]
        if status != 200:
            return ["(no answer)"]
        return [v["state"]["status"] for v in body["entries"]]

    def _all_online(self) -> bool:
        return all(s == "Online" for s in self._statuses())

    def _wait(self, condition: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self._where()}: not within {timeout:g} s: {what}; volumes {self._statuses()}"
                )
            time.sleep(0.2)

    def _busy_nodes(self) -> list[str]:
        """The nodes holding a replica or a target of a volume (a fault there matters)."""
        cluster = self._cluster
        busy = {n for v in self.volumes for n in cluster.replica_nodes(v)}
        busy |= {t for v in self.volumes if (t := cluster.target_node(v)) is not None}
        return sorted(busy)

    def _agree(self) -> bool:
        try:
            return not quick_disagreements(self._cluster)
        except (httpx.HTTPError, AssertionError, RuntimeError):
            return False  # the core agent (a REST call not 200) or an io-engine not back yet

    def _settled(self) -> bool:
        """Every volume Online with an Online child per replica, and the specs and the
        io-engines agreeing."""
        try:
            status, body = self._cluster.rest.call("GET", "/volumes")
        except httpx.HTTPError:  # the core agent is starting
            return False
        if status != 200:
            return False
        for volume in body["entries"]:
            children = [r.get("child-status") for r in volume["state"]["replica_topology"].values()]
            if volume["state"]["status"] != "Online" or children != ["Online"] * len(children):
                return False
            if len(children) != volume["spec"]["num_replicas"]:
                return False
        return self._agree()

    def _healed_without(self, node: str) -> bool:
        cluster = self._cluster
        if not self._all_online():
            return False
        return all(
            node not in cluster.replica_nodes(v) and cluster.target_node(v) != node
            for v in self.volumes
        )

    # ------------------------------------------------------------------ a round

    def run_round(self) -> RoundResult:
        cluster = self._cluster
        assert self.etcd is not None
        fault = self.rng.choice(FAULTS)
        victim = {"kill-core": "core", "kill-etcd": "etcd"}.get(fault) or self.rng.choice(
            self._busy_nodes()
        )
        if fault in ("stop-engine", "cut-engine"):
            delay = round(self.rng.uniform(0.2, 3.0), 2)  # past the I/O timeout or not
        else:
            delay = round(self.rng.uniform(0.2, 1.0), 2)  # the restart takes a second more
        self.now = f"round {len(self.results) + 1} ({fault} {victim}, {delay:g} s)"
        start = time.monotonic()
        if fault == "kill-engine":
            cluster.engines[victim].kill()
            time.sleep(delay)
            cluster.engines[victim].start()
        elif fault == "kill-engine-past-wait":
            cluster.engines[victim].kill()
            self._wait(
                lambda: self._healed_without(victim),
                f"the volumes healed without {victim}",
                ONLINE_BOUND + FAULTED_CHILD_WAIT,
            )
            cluster.engines[victim].start()
        elif fault == "kill-core":
            cluster.core.kill()
            time.sleep(delay)
            cluster.core.start()
        elif fault == "kill-etcd":
            self.etcd.kill()
            time.sleep(delay)
            self.etcd.start()
        elif fault == "stop-engine":
            cluster.engines[victim].pause()
            time.sleep(delay)
            cluster.engines[victim].resume()
        else:
            self.network.cut(victim)
            time.sleep(delay)
            self.network.restore(victim)
        repaired = time.monotonic()
        settled = "every volume Online with all its children, specs and io-engines agreeing"
        self._wait(self._settled, settled, ONLINE_BOUND)
        online_after = time.monotonic() - repaired
        if fault in ("stop-engine", "cut-engine"):
            # a poll the core sent while the node was silent fails only at its deadline,
            # and the core then acts on it: settled counts once that cannot come any more
            time.sleep(max(0.0, start + LIST_TIMEOUT + 0.5 - time.monotonic()))
            if not self._settled():
                self._wait(self._settled, settled, ONLINE_BOUND)
                online_after = time.monotonic() - repaired
        ledgers = self._stop_loads()
        for volume, ledger in ledgers.items():
            history = self.ledgers[volume] = merge(self.ledgers.get(volume), ledger)
            children = len(cluster.replica_nodes(volume))
            mismatches = asyncio.run(verify_every_child(history, self.uri(volume), children))
            assert mismatches == [], (
                f"{self._where()}: acknowledged writes of {volume} not read back: {mismatches[:5]}"
            )
        result = RoundResult(
            number=len(self.results) + 1,
            fault=fault,
            victim=victim,
            held=round(repaired - start, 2),
            online_after=round(online_after, 2),
            acknowledged=sum(ledger.acknowledged for ledger in ledgers.values()),
            failed=sum(ledger.failed for ledger in ledgers.values()),
            wall=0.0,
        )
        verified = time.monotonic()
        self._start_loads()
        result.wall = round(time.monotonic() - start, 2)
        self.results.append(result)
        self.log(
            f"round {result.number}: {fault} {victim} for {result.held:.1f} s, "
            f"Online {result.online_after:.1f} s after, "
            f"{result.acknowledged} writes acknowledged, {result.failed} failed; "
            f"verified in {verified - repaired - online_after:.1f} s, "
            f"loads again in {time.monotonic() - verified:.1f} s"
        )
        return result

    def stop_and_check_replicas(self) -> None:
        """Stop the loads and the cluster, then check every replica of every volume, read
        from its pool file, against all the rounds' writes."""
        for volume, ledger in self._stop_loads().items():
            self.ledgers[volume] = merge(self.ledgers.get(volume), ledger)
        sizes = dict(zip(self.volumes, (size for size, _ in VOLUMES), strict=True))
        images = self._cluster.stop_and_read_replicas(sizes)
        for volume, contents in images.items():
            ledger = self.ledgers[volume]
            for data in contents:
                wrong = asyncio.run(ledger.verify(ReplicaImage(data, ledger.block_size)))
                assert wrong == [], (
                    f"seed {self.seed}, at the end: a replica of {volume} on disk lacks "
                    f"acknowledged writes: {wrong[:5]}"
                )

    def summary(self) -> dict[str, Any]:
        """Recovery times by fault and overall, and the write counts."""
        by_fault: dict[str, dict[str, float]] = {}
        for fault in FAULTS:
            times = [r.online_after for r in self.results if r.fault == fault]
            if times:
                by_fault[fault] = {
                    "rounds": len(times),
                    "online_after_median_s": round(statistics.median(times), 2),
                    "online_after_max_s": max(times),
                }
        times = [r.online_after for r in self.results]
        return {
            "seed": self.seed,
            "rounds": len(self.results),
            "online_bound_s": ONLINE_BOUND,
            "online_after_median_s": round(statistics.median(times), 2) if times else None,
            "online_after_max_s": max(times, default=None),
            "by_fault": by_fault,
            "round_wall_median_s": (
                round(statistics.median(r.wall for r in self.results), 2) if self.results else None
            ),
            "writes_acknowledged": sum(r.acknowledged for r in self.results),
            "writes_failed": sum(r.failed for r in self.results),
            "round_results": [asdict(r) for r in self.results],
        }


def sparse_files(folder: Path, count: int, size: int) -> list[Path]:
    paths = [folder / f"disk{n}.img" for n in range(count)]
    for path in paths:
        with open(path, "wb") as fh:
            fh.truncate(size)
    return paths


def write_behind_the_nexus(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)
        os.fsync(fh.fileno())


async def test_the_round_check_reads_every_child_so_one_that_missed_a_write_is_found(
    tmp_path: Path,
) -> None:
    disks = sparse_files(tmp_path, 3, 8 * MIB)
    nexus = await Nexus.create(
        "check",
        uuid.uuid4(),
        8 * MIB,
        [f"aio://{disk}" for disk in disks],
        opener=DeviceOpener(),
        store=MemoryNexusInfoStore(),
    )
    try:
        ledger = WriteLedger(nexus.block_size, 8)
        rng = random.Random(5)
        for unit in range(16):
            data = rng.randbytes(ledger.unit_bytes)
            await nexus.write(unit * 8, data)
            ledger.record(unit * 8, data, ok=True)
        await nexus.flush()
        # one child "missed" the write of unit 5: it holds zeroes there
        write_behind_the_nexus(disks[1], 5 * ledger.unit_bytes, bytes(ledger.unit_bytes))
        wrong = await verify_every_child_of(ledger, nexus, 3)
    finally:
        await nexus.destroy()
    assert [m.lba for m in wrong] == [5 * 8]


def seed_from_env() -> int:
    text = os.environ.get("MAYASTOR_FAULT_SEED")
    return int(text) if text else uuid.uuid4().int % 1_000_000


def test_random_faults_lose_no_acknowledged_write_and_every_volume_comes_back_online(
    tmp_path: Path,
) -> None:
    rounds = int(os.environ.get("MAYASTOR_FAULT_ROUNDS", "50"))
    seed = seed_from_env()
    print(f"random faults: seed {seed} (MAYASTOR_FAULT_SEED={seed}), {rounds} rounds")
    campaign = FaultRounds(tmp_path, seed)
    try:
        campaign.start()
        for _ in range(rounds):
            campaign.run_round()
        campaign.stop_and_check_replicas()
    except BaseException as exc:
        exc.add_note(f"replay with MAYASTOR_FAULT_SEED={seed} MAYASTOR_FAULT_ROUNDS={rounds}")
        raise
    finally:
        campaign.close()
    summary = campaign.summary()
    print(
        f"random faults: seed {seed}: {rounds} rounds, Online again after "
        f"{summary['online_after_median_s']} s at the median, {summary['online_after_max_s']} s "
        f"at most; {summary['writes_acknowledged']} writes acknowledged, none lost"
    )
    assert len(campaign.results) == rounds
