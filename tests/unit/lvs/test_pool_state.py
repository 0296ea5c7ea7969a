"""Pool state: degraded when a data I/O fails, faulted when a metadata write fails."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mayastor.bdev import Buffer
from mayastor.errors import DeviceError, FailedPrecondition, WriteFault
from mayastor.lvs import Pool, PoolState
from mayastor.lvs._properties import POOL_STATE_TABLE, PoolEvent
from tests.unit.lvs.disks import SimDisk

MIB = 1 << 20
BPC = MIB // 512


async def make_pool() -> tuple[SimDisk, Pool, int]:
    disk = SimDisk(32 * MIB // 512)
    pool = await Pool.create(disk, "p0", disk="sim", cluster_size=MIB)
    data_lba = pool.max_expandable_size - pool._sb.max_data_clusters * MIB  # data offset
    return disk, pool, data_lba // 512


def test_every_state_and_event_has_a_next_state_and_states_only_get_worse() -> None:
    order = [PoolState.ONLINE, PoolState.DEGRADED, PoolState.FAULTED]
    for state in PoolState:
        for event in PoolEvent:
            after = POOL_STATE_TABLE[(state, event)]
            assert order.index(after) >= order.index(state)


async def test_a_failed_data_read_degrades_the_pool_and_surfaces_the_device_error() -> None:
    disk, pool, data_lba = await make_pool()
    lvol = await pool.create_lvol("lv", 2 * MIB)
    disk.fail = lambda op, lba, n: op == "read" and lba >= data_lba
    with pytest.raises(WriteFault, match="injected read failure"):
        await lvol.read(0, 1)
    assert pool.state is PoolState.DEGRADED
    disk.fail = None
    await pool.create_lvol("still-works", MIB)  # metadata changes go on
    assert bytes(await lvol.read(0, 1)) == bytes(512)
    await pool.export()


async def test_a_failed_data_write_across_clusters_degrades_the_pool() -> None:
    disk, pool, data_lba = await make_pool()
    lvol = await pool.create_lvol("lv", 2 * MIB)
    disk.fail = lambda op, lba, n: op == "write" and lba >= data_lba
    with pytest.raises(WriteFault):
        await lvol.write(BPC - 1, b"x" * 1024)
    assert pool.state is PoolState.DEGRADED
    disk.fail = None
    await pool.export()


async def submitted(start: Any) -> tuple[Buffer | None, DeviceError | None]:
    """The outcome of an I/O started by callback: ``start(done)``."""
    outcome: asyncio.Future[tuple[Buffer | None, DeviceError | None]] = (
        asyncio.get_running_loop().create_future()
    )
    start(lambda _ctx, data, error: outcome.set_result((data, error)))
    return await outcome


async def test_a_failed_submitted_data_write_degrades_the_pool() -> None:
    disk, pool, data_lba = await make_pool()
    lvol = await pool.create_lvol("lv", 2 * MIB)
    disk.fail = lambda op, lba, n: op == "write" and lba >= data_lba
    _, error = await submitted(lambda done: lvol.submit_write(3, b"x" * 512, done, None))
    assert isinstance(error, WriteFault)
    assert pool.state is PoolState.DEGRADED
    disk.fail = None
    await pool.export()


async def test_a_faulted_pool_refuses_submitted_reads_and_writes() -> None:
    disk, pool, data_lba = await make_pool()
    lvol = await pool.create_lvol("lv", MIB)
    disk.fail = lambda op, lba, n: op == "write" and lba < data_lba
    with pytest.raises(WriteFault):
        await pool.create_lvol("doomed", MIB)
    disk.fail = None
    writes = disk.stats.num_write_ops
    _, write_error = await submitted(lambda done: lvol.submit_write(0, b"z" * 512, done, None))
    data, read_error = await submitted(lambda done: lvol.submit_read(0, 1, done, None))
    assert data is None
    assert "faulted" in str(write_error)
    assert "faulted" in str(read_error)
    assert disk.stats.num_write_ops == writes
    await pool.export()


async def test_a_failed_metadata_write_faults_the_pool_and_refuses_changes_and_io() -> None:
    disk, pool, data_lba = await make_pool()
    lvol = await pool.create_lvol("lv", MIB)
    await lvol.write(0, b"k" * 512)
    await lvol.flush()
    disk.fail = lambda op, lba, n: op == "write" and lba < data_lba
    with pytest.raises(WriteFault):
        await pool.create_lvol("doomed", MIB)
    assert pool.state is PoolState.FAULTED
    disk.fail = None
    with pytest.raises(FailedPrecondition, match="faulted"):
        await pool.create_lvol("refused", MIB)
    with pytest.raises(FailedPrecondition, match="faulted"):
        await pool.resize_lvol(lvol, 2 * MIB)
    with pytest.raises(DeviceError, match="faulted"):
        await lvol.read(0, 1)
    with pytest.raises(DeviceError, match="faulted"):
        await lvol.write(0, b"z" * 512)
    await pool.export()  # closes without writing
    again = await Pool.import_(SimDisk.like(disk, disk.image_after_process_crash()), disk="sim")
    assert again.state is PoolState.ONLINE
    assert [lv.name for lv in again.lvols()] == ["lv"]
    assert bytes(await again.lookup("lv").read(0, 1)) == b"k" * 512
    await again.export()


async def test_a_failed_metadata_flush_during_thin_allocation_faults_the_pool() -> None:
    disk, pool, _data_lba = await make_pool()
    thin = await pool.create_lvol("thin", 4 * MIB, thin=True)
    disk.fail = lambda op, lba, n: op == "flush"
    with pytest.raises(DeviceError):
        await thin.write(0, b"a" * 512)
    assert pool.state is PoolState.FAULTED
    assert thin.num_allocated_clusters == 0
    disk.fail = None
    with pytest.raises(DeviceError, match="faulted"):
        await thin.write(BPC, b"b" * 512)
    await pool.export()
