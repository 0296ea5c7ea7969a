"""The io-engine survives SIGKILL at any moment: nothing acknowledged is lost.

One real `mayastor` process holds two pools with 1 MiB clusters: one on a sparse file,
one on a loop device. Each round it is SIGKILLed at a seeded random moment while

* our initiator writes to shared replicas over NVMe/TCP (`BackgroundLoad`, one thick
  and one thin replica on the file pool, one thin replica on the loop pool), so thin
  clusters are being allocated and written when the kill lands;
* two control threads create, destroy and resize replicas of both pools over gRPC,
  recording which calls were acknowledged, refused, or left without an answer.

Before the restart the crashed disks are read in-process (read only) and the cluster
maps checked on their own: no cluster belongs to two replicas or lies outside the pool.
The io-engine is then started again with ``--pool`` and the pools must import, and:

* every acknowledged create is there with its uuid, size and thin flag; every
  acknowledged destroy is gone; every acknowledged resize has its size; a call with no
  answer either happened or did not, and nothing else is there;
* the io-engine reports what the disk holds (sizes and allocations per replica);
* every acknowledged write reads back (process-kill semantics: a write is in the kernel
  before it is acknowledged, so no flush is needed for it to survive);
* a thin replica holds a cluster for every acknowledged write, and none beyond the
  clusters that some write reached;
* a pool's used bytes are the sum of its replicas' allocations, committed bytes the sum
  of their sizes, and exactly ``capacity - used`` can be taken by a thick replica.

The seed comes from ``MAYASTOR_CRASH_SEED`` or is drawn at random; it is printed and
named in every failure, so a failing round can be replayed (timing aside).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
import time
import uuid as uuid_mod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from mayastor.api.v1 import replica_pb2
from mayastor.bdev import AioDevice
from mayastor.cluster.processes import EngineProcess
from mayastor.lvs._store import MetadataStore
from mayastor.lvs.format import PAGE_SIZE, decode_superblock
from tests.integration.conftest import make_sparse_file
from tests.support.engine_api import EngineApi
from tests.support.verified_writes import (
    TESTER_NQN,
    BackgroundLoad,
    WriteLedger,
    verify_uri,
    zero_fingerprint,
)

pytestmark = [pytest.mark.slow, pytest.mark.needs_root]

MIB = 1 << 20
CLUSTER = MIB
ROUNDS = 10
FILE_POOL = "pf"
LOOP_POOL = "pl"
FILE_POOL_BYTES = 128 * MIB
LOOP_POOL_BYTES = 64 * MIB
UNIT_BLOCKS = 8
"""Writes are 4 KiB units (8 blocks of 512 bytes)."""
RPC_TIMEOUT = 60.0
CHURN_LIVE = 5
"""Each control thread keeps at most this many replicas of its own."""
SIZE_STEP = 256 * 1024
"""Control-thread replica sizes are multiples of this, so many end inside a cluster."""

REFUSALS = {
    "create": {grpc.StatusCode.RESOURCE_EXHAUSTED},
    "resize": {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.FAILED_PRECONDITION},
    "destroy": set(),
}
"""What a live io-engine may answer instead of doing the change (then nothing changed)."""


# ---------------------------------------------------------------------- the API


# ---------------------------------------------------------------------- the model


@dataclass
class Expected:
    """What a replica may look like after a crash.

    `exists` is True (acknowledged create), False (acknowledged destroy) or None (a
    create or destroy that got no answer). `sizes` are the sizes it may have: one after
    an acknowledged change, the old and the new after a resize without an answer.
    """

    pool: str
    name: str
    thin: bool
    sizes: set[int]
    exists: bool | None = True


@dataclass
class Model:
    """The replicas as the acknowledged (and unanswered) calls say they must be."""

    replicas: dict[str, Expected] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def problems(self, observed: dict[str, replica_pb2.Replica]) -> list[str]:
        """Where the io-engine's replicas differ from what the calls allow."""
        found = []
        with self.lock:
            for uuid, want in self.replicas.items():
                got = observed.get(uuid)
                if got is None:
                    if want.exists:
                        found.append(f"acknowledged replica {want.name} ({uuid}) is missing")
                    continue
                if want.exists is False:
                    found.append(
                        f"replica {want.name} ({uuid}) is there after an acknowledged destroy "
                        "(or a refused create)"
                    )
                    continue
                if (got.name, got.poolname, got.thin) != (want.name, want.pool, want.thin):
                    found.append(
                        f"replica {uuid} is {got.name}/{got.poolname}/thin={got.thin}, "
                        f"expected {want.name}/{want.pool}/thin={want.thin}"
                    )
                if got.size not in want.sizes:
                    found.append(
                        f"replica {want.name} has size {got.size}, expected one of "
                        f"{sorted(want.sizes)}"
                    )
            for uuid, got in observed.items():
                if uuid not in self.replicas:
                    found.append(f"replica {got.name} ({uuid}) was never created")
        return found

    def settle(self, observed: dict[str, replica_pb2.Replica]) -> None:
        """After a check: what the io-engine has is what must be there from now on."""
        with self.lock:
            self.replicas = {
                uuid: Expected(r.poolname, r.name, r.thin, {r.size}) for uuid, r in observed.items()
            }


# ---------------------------------------------------------------------- control churn


class ControlChurn:
    """A thread creating, resizing and destroying replicas of its own until the kill.

    Every call's outcome goes into the model at once: acknowledged (the change is
    certain), refused with an expected status (nothing changed), or no answer after
    the kill (the change may or may not have happened). Any other answer is a failure.

    Args:
        api: the io-engine's API (one channel shared by the control threads).
        model: where outcomes go.
        prefix: names of this thread's replicas start with it.
        rng: this thread's choices.
        killed: set just before the io-engine is killed.
    """

    def __init__(
        self,
        api: EngineApi,
        model: Model,
        prefix: str,
        rng: random.Random,
        killed: threading.Event,
    ) -> None:
        self.api = api
        self.model = model
        self.prefix = prefix
        self.rng = rng
        self.killed = killed
        self.live: list[str] = []
        self.acknowledged = 0
        self.unanswered = 0
        self.unexpected: list[str] = []
        self._count = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ControlChurn:
        self._thread.start()
        return self

    def join(self) -> None:
        self._thread.join(timeout=RPC_TIMEOUT * 2)
        assert not self._thread.is_alive(), "a control thread did not stop"

    def _run(self) -> None:
        while not self.killed.is_set():
            rng = self.rng
            choice = rng.random()
            if not self.live or (len(self.live) < CHURN_LIVE and choice < 0.4):
                self._create()
            elif choice < 0.75:
                self._resize(rng.choice(self.live))
            else:
                self._destroy(rng.choice(self.live))

    def _size(self) -> int:
        return self.rng.randint(1, 24) * SIZE_STEP

    def _call(self, what: str, call: Callable[[], object]) -> str:
        """'ok', 'refused' or 'unanswered'."""
        try:
            call()
        except grpc.RpcError as exc:
            code = exc.code()
            if code in REFUSALS[what]:
                return "refused"
            if self.killed.is_set():
                self.unanswered += 1
                return "unanswered"
            self.unexpected.append(f"{what}: {code.name} {exc.details()}")
            self.killed.wait()
            return "unanswered"
        self.acknowledged += 1
        return "ok"

    def _create(self) -> None:
        self._count += 1
        name = f"{self.prefix}-{self._count}"
        uuid = str(uuid_mod.UUID(int=self.rng.getrandbits(128), version=4))
        pool = self.rng.choice((FILE_POOL, LOOP_POOL))
        size = self._size()
        thin = self.rng.random() < 0.5
        with self.model.lock:
            self.model.replicas[uuid] = Expected(pool, name, thin, {size}, exists=None)
        outcome = self._call(
            "create", lambda: self.api.create_replica(pool, name, uuid, size, thin)
        )
        with self.model.lock:
            if outcome == "ok":
                self.model.replicas[uuid].exists = True
                self.live.append(uuid)
            elif outcome == "refused":
                self.model.replicas[uuid].exists = False

    def _destroy(self, uuid: str) -> None:
        with self.model.lock:
            self.model.replicas[uuid].exists = None
        self.live.remove(uuid)
        if self._call("destroy", lambda: self.api.destroy_replica(uuid)) == "ok":
            with self.model.lock:
                self.model.replicas[uuid].exists = False

    def _resize(self, uuid: str) -> None:
        size = self._size()
        with self.model.lock:
            want = self.model.replicas[uuid]
            old = set(want.sizes)
            want.sizes |= {size}
        outcome = self._call("resize", lambda: self.api.resize_replica(uuid, size))
        with self.model.lock:
            if outcome == "ok":
                want.sizes = {size}
            elif outcome == "refused":
                want.sizes = old


# ---------------------------------------------------------------------- write loads


@dataclass
class Load:
    """A replica written by a `BackgroundLoad` in one round, checked in the next."""

    uuid: str
    name: str
    thin: bool
    writer: BackgroundLoad
    ledger: WriteLedger | None = None


def allocation_bounds(ledger: WriteLedger, block_size: int) -> tuple[int, int]:
    """Clusters a thin replica must hold (an acknowledged write reached them) and may hold.

    A unit whose possible contents exclude zeroes had a write acknowledged; a cluster
    may be allocated only where some write (acknowledged or not) went.
    """
    zero = zero_fingerprint(ledger.unit_bytes)
    must = {
        lba * block_size // CLUSTER for lba, held in ledger.may_hold.items() if zero not in held
    }
    may = {lba * block_size // CLUSTER for lba in ledger.may_hold}
    return len(must), len(may)


# ---------------------------------------------------------------------- offline check


@dataclass(frozen=True)
class DiskView:
    """What a crashed pool's disk says, read in-process without changing it."""

    used_clusters: int
    data_clusters: int
    replicas: dict[str, tuple[int, int]]
    """uuid -> (size, allocated clusters)."""


async def read_pool_disk(path: str) -> DiskView:
    """Load a pool's metadata read-only and check its cluster maps on their own.

    Raises:
        AssertionError: a cluster belongs to two replicas, lies outside the pool, or
            the pool's used count is not the number of mapped clusters.
    """
    device = await AioDevice.open(path)
    try:
        page = await device.read(0, PAGE_SIZE // device.block_size)
        sb = decode_superblock(page, where=path)
        assert sb is not None, f"{path} holds no pool superblock"
        store, _disagree = await MetadataStore.load(device, sb)
    finally:
        await device.close()
    catalog = store.catalog
    owner: dict[int, str] = {}
    replicas = {}
    for meta in catalog.lvols.values():
        for _lc, pc, n in meta.iter_extents():
            for cluster in range(pc, pc + n):
                assert cluster < catalog.data_clusters, (
                    f"{path}: replica {meta.name} maps cluster {cluster} outside the pool"
                )
                assert cluster not in owner, (
                    f"{path}: cluster {cluster} belongs to {owner[cluster]} and {meta.name}"
                )
                owner[cluster] = meta.name
        replicas[str(meta.uuid)] = (meta.size, meta.allocated)
    assert len(owner) == catalog.used_clusters, (
        f"{path}: {len(owner)} clusters are mapped but the pool counts {catalog.used_clusters} used"
    )
    return DiskView(catalog.used_clusters, catalog.data_clusters, replicas)


# ---------------------------------------------------------------------- the test


@dataclass
class CrashRig:
    """The io-engine, its two pool disks, the model and the loads in flight."""

    engine: EngineProcess
    disks: dict[str, str]
    seed: int
    rng: random.Random
    model: Model = field(default_factory=Model)
    loads: list[Load] = field(default_factory=list)
    api: EngineApi | None = None

    def start(self) -> EngineApi:
        self.engine.start()
        self.api = EngineApi(self.engine.endpoint)
        return self.api

    def kill(self) -> None:
        self.engine.kill()
        if self.api is not None:
            self.api.close()
            self.api = None

    def new_uuid(self) -> str:
        return str(uuid_mod.UUID(int=self.rng.getrandbits(128), version=4))

    def fail(self, round_no: int, what: str) -> str:
        return f"seed {self.seed}, round {round_no}: {what}"

    # --------------------------------------------------------------- checks

    def check_disks_offline(self, round_no: int) -> dict[str, DiskView]:
        views = {}
        for pool, disk in self.disks.items():
            try:
                views[pool] = asyncio.run(read_pool_disk(disk))
            except AssertionError as exc:
                raise AssertionError(self.fail(round_no, str(exc))) from None
        return views

    def check_engine(
        self, api: EngineApi, round_no: int, views: dict[str, DiskView]
    ) -> dict[str, replica_pb2.Replica]:
        pools = api.list_pools()
        assert set(pools) == set(self.disks), self.fail(
            round_no, f"pools after restart: {sorted(pools)}\n{self.engine.log_tail()}"
        )
        observed = api.list_replicas()
        problems = self.model.problems(observed)
        assert not problems, self.fail(round_no, "; ".join(problems))
        for name, pool in pools.items():
            mine = [r for r in observed.values() if r.poolname == name]
            view = views[name]
            reported = {r.uuid: (r.size, r.usage.num_allocated_clusters) for r in mine}
            assert reported == view.replicas, self.fail(
                round_no, f"pool {name}: the io-engine reports {reported}, the disk {view}"
            )
            assert pool.used == sum(r.usage.allocated_bytes for r in mine), self.fail(
                round_no, f"pool {name}: used {pool.used} is not the sum of the allocations"
            )
            assert (pool.used, pool.capacity) == (
                view.used_clusters * CLUSTER,
                view.data_clusters * CLUSTER,
            ), self.fail(round_no, f"pool {name}: {pool} but the disk says {view}")
            assert pool.committed == sum(r.size for r in mine), self.fail(
                round_no, f"pool {name}: committed {pool.committed} is not the sum of sizes"
            )
            written = {load.uuid for load in self.loads}
            for r in mine:
                clusters = -(-r.size // CLUSTER)
                held = r.usage.num_allocated_clusters
                assert r.usage.num_clusters == clusters, self.fail(round_no, f"{r}")
                if not r.thin:
                    assert held == clusters, self.fail(
                        round_no, f"thick replica {r.name} holds {held} of {clusters} clusters"
                    )
                elif r.uuid not in written:
                    assert held == 0, self.fail(
                        round_no, f"thin replica {r.name} was never written but holds {held}"
                    )
        return observed

    def check_loads(self, round_no: int, observed: dict[str, replica_pb2.Replica]) -> None:
        for load in self.loads:
            assert load.ledger is not None
            replica = observed[load.uuid]
            wrong = asyncio.run(verify_uri(load.ledger, replica.uri))
            assert not wrong, self.fail(
                round_no,
                f"{len(wrong)} of {len(load.ledger.may_hold)} units of {load.name} do not "
                f"read back (first: {wrong[:3]}); {load.ledger.acknowledged} writes were "
                "acknowledged",
            )
            if load.thin:
                must, may = allocation_bounds(load.ledger, load.ledger.block_size)
                held = replica.usage.num_allocated_clusters
                assert must <= held <= may, self.fail(
                    round_no,
                    f"thin {load.name} holds {held} clusters; acknowledged writes reached "
                    f"{must}, all writes {may}",
                )

    def check_free_space_is_takeable(self, api: EngineApi, round_no: int) -> None:
        """A thick replica of exactly ``capacity - used`` fits; one cluster more does not."""
        for name, pool in api.list_pools().items():
            free = pool.capacity - pool.used
            fill = self.new_uuid()
            if free:
                api.create_replica(name, f"fill-{round_no}", fill, free, False)
            with pytest.raises(grpc.RpcError) as refused:
                api.create_replica(name, f"over-{round_no}", self.new_uuid(), CLUSTER, False)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, self.fail(
                round_no, f"pool {name}: one cluster past capacity - used: {refused.value}"
            )
            if free:
                api.destroy_replica(fill)

    # --------------------------------------------------------------- workload

    def start_loads(self, api: EngineApi, round_no: int) -> None:
        for pool, label, size, thin in (
            (FILE_POOL, "thick", 8 * MIB, False),
            (FILE_POOL, "thin", 32 * MIB, True),
            (LOOP_POOL, "thin", 16 * MIB, True),
        ):
            name = f"load-{round_no}-{pool}-{label}"
            uuid = self.new_uuid()
            replica = api.create_replica(pool, name, uuid, size, thin, share_with=TESTER_NQN)
            self.model.replicas[uuid] = Expected(pool, name, thin, {size})
            writer = BackgroundLoad(
                replica.uri,
                units=size // (UNIT_BLOCKS * 512),
                unit_blocks=UNIT_BLOCKS,
                depth=4,
                seed=self.rng.getrandbits(32),
            )
            self.loads.append(Load(uuid, name, thin, writer))
        for load in self.loads:
            load.writer.start()

    def destroy_loads(self, api: EngineApi) -> None:
        for load in self.loads:
            api.destroy_replica(load.uuid)
            self.model.replicas[load.uuid].exists = False
        self.loads = []

    def crash_round(self, api: EngineApi, round_no: int) -> tuple[int, int]:
        """Loads and control calls running, SIGKILL at a seeded moment; their counts."""
        killed = threading.Event()
        self.start_loads(api, round_no)
        churn = [
            ControlChurn(
                api, self.model, f"c{round_no}{t}", random.Random(self.rng.random()), killed
            )
            for t in "ab"
        ]
        for thread in churn:
            thread.start()
        self.rng.choice(self.loads).writer.wait_for_progress(self.rng.randint(1, 300), timeout=60)
        time.sleep(self.rng.uniform(0.0, 1.0))
        killed.set()
        self.kill()
        for thread in churn:
            thread.join()
        for load in self.loads:
            load.ledger = load.writer.stop()
        print(
            f"round {round_no}: killed with {sum(t.unanswered for t in churn)} control calls "
            f"unanswered ({sum(t.acknowledged for t in churn)} acknowledged); writes "
            f"acknowledged/failed per load: "
            + ", ".join(
                f"{x.ledger.acknowledged}/{x.ledger.failed}" for x in self.loads if x.ledger
            )
        )
        unexpected = [u for t in churn for u in t.unexpected]
        assert not unexpected, self.fail(round_no, f"refusals from a live io-engine: {unexpected}")
        return (
            sum(t.acknowledged for t in churn),
            sum(load.ledger.acknowledged for load in self.loads if load.ledger),
        )


@pytest.fixture
def rig(
    engines: Callable[..., EngineProcess],
    loop_device: Callable[[int], str],
    tmp_path: Path,
) -> Iterator[CrashRig]:
    seed = int(os.environ.get("MAYASTOR_CRASH_SEED") or random.SystemRandom().getrandbits(32))
    print(f"crash-safety seed {seed} (set MAYASTOR_CRASH_SEED={seed} to replay)")
    disks = {
        FILE_POOL: str(make_sparse_file(tmp_path / "pool.img", FILE_POOL_BYTES)),
        LOOP_POOL: loop_device(LOOP_POOL_BYTES),
    }
    engine = engines("crashy")
    found = CrashRig(engine, disks, seed, random.Random(seed))
    found.api = EngineApi(engine.endpoint)
    for name, disk in disks.items():
        found.api.create_pool(name, disk, CLUSTER)
    engine.pools = [f"{name}={disk}" for name, disk in disks.items()]
    yield found
    for load in found.loads:
        if load.ledger is None:
            with contextlib.suppress(RuntimeError):  # never started, or already failed
                load.ledger = load.writer.stop()
    if found.api is not None:
        found.api.close()


def test_sigkill_at_random_moments_loses_no_acknowledged_change_or_write(rig: CrashRig) -> None:
    assert rig.api is not None
    api = rig.api
    totals = [0, 0]
    for round_no in range(ROUNDS):
        calls, writes = rig.crash_round(api, round_no)
        totals[0] += calls
        totals[1] += writes
        views = rig.check_disks_offline(round_no)
        api = rig.start()
        observed = rig.check_engine(api, round_no, views)
        rig.check_loads(round_no, observed)
        rig.model.settle(observed)
        rig.destroy_loads(api)
        rig.check_free_space_is_takeable(api, round_no)
    print(
        f"{ROUNDS} kills; {totals[0]} acknowledged control calls and {totals[1]} "
        "acknowledged writes survived"
    )
    assert totals[0] > 0, "no control call was acknowledged: the workload did not run"
    assert totals[1] > 0, "no write was acknowledged: the workload did not run"
