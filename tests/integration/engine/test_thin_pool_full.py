"""A thin replica bigger than its pool, written until the pool is full.

A real `mayastor` process holds a small pool (1 MiB clusters) with a thick replica
that keeps serving (``keeper``), a thick replica that can be given up to free space
(``spare``), a one-cluster thick replica (``crumb``, to free exactly one cluster) and an
over-committed thin replica (``big``, twice the pool's capacity).
``big`` is shared over NVMe/TCP and written through our initiator, one 4 KiB unit at
the start of each cluster, until the pool has no free cluster. Then:

* the write that needs a cluster that is not there fails with the NVMe status
  "capacity exceeded" (our initiator raises `NoSpace`) and changes nothing on disk,
  also when it needs two clusters and only one is free;
* writes acknowledged before read back, and writes into clusters already allocated
  still succeed;
* other replicas keep working;
* after SIGKILL and a restart the pool imports with used == capacity;
* destroying another replica frees its clusters and the writes go on.
"""

from __future__ import annotations

import hashlib
import random
import uuid as uuid_mod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from mayastor.bdev import NvmfDevice
from mayastor.cluster.processes import EngineProcess
from mayastor.errors import NoSpace
from mayastor.nvmf.host import ControllerOptions
from mayastor.nvmf.spec.status import GenericStatus, StatusCodeType
from tests.integration.conftest import make_sparse_file
from tests.support.engine_api import EngineApi
from tests.support.verified_writes import TESTER_NQN

pytestmark = pytest.mark.slow

MIB = 1 << 20
POOL = "tpool"
POOL_FILE_BYTES = 32 * MIB
SPARE_BYTES = 8 * MIB
KEEPER_BYTES = 4 * MIB
UNIT = 4096

CLUSTER = 1 << 20
"""1 MiB clusters: a small pool fills in a few writes."""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def unit_data(rng: random.Random) -> bytes:
    return rng.randbytes(UNIT)


def options() -> ControllerOptions:
    return ControllerOptions(hostnqn=TESTER_NQN)


@dataclass
class FullPool:
    """The io-engine, its pool file and what was written to ``big`` until it was full.

    Attributes:
        written: byte offset in ``big`` -> what an acknowledged write put there.
        next_offset: the first cluster of ``big`` never written (the one the failing
            write wanted).
    """

    engine: EngineProcess
    api: EngineApi
    disk: Path
    capacity: int
    big_uuid: str
    keeper_uri: str
    spare_uuid: str
    crumb_uuid: str
    rng: random.Random
    written: dict[int, bytes] = field(default_factory=dict)
    next_offset: int = 0

    def pool(self) -> tuple[int, int]:
        """(capacity, used) of the pool as the io-engine reports it."""
        found = self.api.list_pools()[POOL]
        return found.capacity, found.used

    def big_uri(self) -> str:
        return self.api.list_replicas()[self.big_uuid].uri

    async def write_new_clusters(self, device: NvmfDevice) -> int:
        """Write a unit at the start of each never-written cluster until `NoSpace`.

        Returns:
            how many writes were acknowledged before the refusal.
        """
        done = 0
        while True:
            data = unit_data(self.rng)
            try:
                await device.write(self.next_offset // device.block_size, data)
            except NoSpace:
                return done
            self.written[self.next_offset] = data
            self.next_offset += CLUSTER
            done += 1

    async def check_written(self, device: NvmfDevice) -> None:
        for offset, data in self.written.items():
            got = bytes(await device.read(offset // device.block_size, UNIT // device.block_size))
            assert got == data, f"the write at byte {offset} of big does not read back"


@pytest.fixture
async def full_pool(
    engines: Callable[..., EngineProcess], tmp_path: Path
) -> AsyncIterator[FullPool]:
    disk = make_sparse_file(tmp_path / "pool.img", POOL_FILE_BYTES)
    engine = engines("fill")
    api = EngineApi(engine.endpoint)
    api.create_pool(POOL, str(disk), CLUSTER)
    engine.pools = [f"{POOL}={disk}"]
    capacity = api.list_pools()[POOL].capacity
    rng = random.Random(7)
    spare = api.create_replica(POOL, "spare", _uuid(rng), SPARE_BYTES, False)
    crumb = api.create_replica(POOL, "crumb", _uuid(rng), CLUSTER, False)
    keeper = api.create_replica(
        POOL, "keeper", _uuid(rng), KEEPER_BYTES, False, share_with=TESTER_NQN
    )
    big = api.create_replica(POOL, "big", _uuid(rng), 2 * capacity, True, share_with=TESTER_NQN)
    found = FullPool(engine, api, disk, capacity, big.uuid, keeper.uri, spare.uuid, crumb.uuid, rng)
    try:
        device = await NvmfDevice.open(big.uri, options=options())
        try:
            acknowledged = await found.write_new_clusters(device)
        finally:
            await device.close()
        assert acknowledged == (capacity - SPARE_BYTES - KEEPER_BYTES - CLUSTER) // CLUSTER
        yield found
    finally:
        found.api.close()


def _uuid(rng: random.Random) -> str:
    return str(uuid_mod.UUID(int=rng.getrandbits(128), version=4))


async def test_the_write_that_needs_a_missing_cluster_fails_with_capacity_exceeded(
    full_pool: FullPool,
) -> None:
    device = await NvmfDevice.open(full_pool.big_uri(), options=options())
    try:
        with pytest.raises(NoSpace) as refused:
            await device.write(full_pool.next_offset // device.block_size, bytes(UNIT))
    finally:
        await device.close()
    status = refused.value.status
    assert (status.sct, status.sc) == (StatusCodeType.GENERIC, GenericStatus.CAPACITY_EXCEEDED)
    assert status.dnr
    capacity, used = full_pool.pool()
    assert used == capacity


async def test_a_refused_write_changes_nothing_on_disk(full_pool: FullPool) -> None:
    last_written = full_pool.next_offset - CLUSTER
    before = digest(full_pool.disk)
    device = await NvmfDevice.open(full_pool.big_uri(), options=options())
    try:
        bs = device.block_size
        with pytest.raises(NoSpace):
            await device.write(full_pool.next_offset // bs, b"\xff" * UNIT)
        # a write over the end of an allocated cluster into an unallocated one: all or nothing
        straddle = full_pool.next_offset - UNIT
        with pytest.raises(NoSpace):
            await device.write(straddle // bs, b"\xee" * (2 * UNIT))
        tail = bytes(await device.read(straddle // bs, UNIT // bs))
    finally:
        await device.close()
    assert tail == bytes(UNIT)
    assert full_pool.written[last_written]
    assert digest(full_pool.disk) == before
    assert full_pool.pool()[1] == full_pool.capacity


async def test_a_write_needing_two_clusters_when_one_is_free_takes_none(
    full_pool: FullPool,
) -> None:
    full_pool.api.destroy_replica(full_pool.crumb_uuid)
    assert full_pool.pool()[1] == full_pool.capacity - CLUSTER
    before = digest(full_pool.disk)
    device = await NvmfDevice.open(full_pool.big_uri(), options=options())
    try:
        bs = device.block_size
        across = full_pool.next_offset + CLUSTER - UNIT  # the end of one cluster, the next's start
        with pytest.raises(NoSpace):
            await device.write(across // bs, b"\xdd" * (2 * UNIT))
        assert full_pool.pool()[1] == full_pool.capacity - CLUSTER
        assert digest(full_pool.disk) == before
        assert bytes(await device.read(across // bs, 2 * UNIT // bs)) == bytes(2 * UNIT)
        assert await full_pool.write_new_clusters(device) == 1
    finally:
        await device.close()


async def test_writes_acknowledged_before_the_pool_filled_read_back(full_pool: FullPool) -> None:
    device = await NvmfDevice.open(full_pool.big_uri(), options=options())
    try:
        await full_pool.check_written(device)
        never = bytes(await device.read(full_pool.next_offset // device.block_size, 8))
    finally:
        await device.close()
    assert never == bytes(8 * device.block_size)


async def test_writes_into_clusters_already_allocated_still_succeed(full_pool: FullPool) -> None:
    device = await NvmfDevice.open(full_pool.big_uri(), options=options())
    try:
        bs = device.block_size
        offset = CLUSTER + 64 * UNIT
        data = unit_data(full_pool.rng)
        await device.write(offset // bs, data)
        assert bytes(await device.read(offset // bs, UNIT // bs)) == data
    finally:
        await device.close()
    assert full_pool.pool()[1] == full_pool.capacity


async def test_other_replicas_keep_working_while_the_pool_is_full(full_pool: FullPool) -> None:
    device = await NvmfDevice.open(full_pool.keeper_uri, options=options())
    try:
        bs = device.block_size
        for offset in range(0, KEEPER_BYTES, CLUSTER):
            data = unit_data(full_pool.rng)
            await device.write(offset // bs, data)
            assert bytes(await device.read(offset // bs, UNIT // bs)) == data
    finally:
        await device.close()
    with pytest.raises(grpc.RpcError) as refused:
        full_pool.api.create_replica(POOL, "thick", _uuid(full_pool.rng), CLUSTER, False)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    thin = full_pool.api.create_replica(POOL, "thin", _uuid(full_pool.rng), CLUSTER, True)
    assert thin.usage.allocated_bytes == 0


async def test_a_full_pool_imports_consistent_after_a_kill(full_pool: FullPool) -> None:
    full_pool.api.close()
    full_pool.engine.kill()
    full_pool.engine.start()
    full_pool.api = EngineApi(full_pool.engine.endpoint)
    capacity, used = full_pool.pool()
    assert (capacity, used) == (full_pool.capacity, full_pool.capacity)
    replicas = full_pool.api.list_replicas()
    assert used == sum(r.usage.allocated_bytes for r in replicas.values())
    assert replicas[full_pool.big_uuid].usage.allocated_bytes == len(full_pool.written) * CLUSTER
    device = await NvmfDevice.open(full_pool.big_uri(), options=options())
    try:
        await full_pool.check_written(device)
        with pytest.raises(NoSpace):
            await device.write(full_pool.next_offset // device.block_size, bytes(UNIT))
    finally:
        await device.close()


async def test_destroying_another_replica_lets_the_writes_go_on(full_pool: FullPool) -> None:
    full_pool.api.destroy_replica(full_pool.spare_uuid)
    assert full_pool.pool()[1] == full_pool.capacity - SPARE_BYTES
    device = await NvmfDevice.open(full_pool.big_uri(), options=options())
    try:
        more = await full_pool.write_new_clusters(device)
        await full_pool.check_written(device)
    finally:
        await device.close()
    assert more == SPARE_BYTES // CLUSTER
    assert full_pool.pool()[1] == full_pool.capacity
