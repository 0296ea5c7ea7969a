"""Lvols: create, destroy, resize, properties, thin allocation, pool full, refusals."""

from __future__ import annotations

import asyncio
import os
import random
import uuid as uuid_mod

import pytest

from mayastor.bdev import MallocDevice
from mayastor.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    LbaOutOfRange,
    NoSpace,
    NotFound,
    ResourceExhausted,
)
from mayastor.lvs import Lvol, LvolProperties, Pool, ShareProtocol
from tests.unit.lvs.disks import SimDisk

MIB = 1 << 20
BPC = MIB // 512  # blocks per cluster in these tests


async def make_pool(mib: int = 32) -> tuple[SimDisk, Pool]:
    disk = SimDisk(mib * MIB // 512)
    pool = await Pool.create(disk, "p0", disk="sim", cluster_size=MIB)
    return disk, pool


def reopen(disk: SimDisk) -> SimDisk:
    return SimDisk.like(disk, disk.image_after_process_crash())


# ---------------------------------------------------------------------- create


async def test_a_thick_lvol_takes_all_its_clusters_at_once() -> None:
    _disk, pool = await make_pool()
    lvol = await pool.create_lvol("thick", 2 * MIB + 512)
    assert (lvol.driver, lvol.product_name) == ("lvol", "Logical Volume")
    assert (lvol.size, lvol.num_blocks, lvol.block_size) == (2 * MIB + 512, 2 * BPC + 1, 512)
    assert (lvol.num_clusters, lvol.num_allocated_clusters) == (3, 3)
    assert lvol.allocated_bytes == 3 * MIB
    assert (pool.used, pool.committed) == (3 * MIB, 2 * MIB + 512)
    assert lvol.pool is pool
    assert not lvol.thin
    await pool.export()


async def test_a_thin_lvol_takes_clusters_on_first_write_and_reports_them() -> None:
    _disk, pool = await make_pool()
    lvol = await pool.create_lvol("thin", 4 * MIB, thin=True)
    assert (lvol.allocated_bytes, pool.used, pool.committed) == (0, 0, 4 * MIB)
    await lvol.write(BPC + 7, b"x" * 512)
    await lvol.write(BPC + 9, b"y" * 512)
    assert lvol.num_allocated_clusters == 1
    assert (lvol.allocated_bytes, pool.used) == (MIB, MIB)
    await pool.export()


async def test_size_is_rounded_up_to_the_block_size() -> None:
    _disk, pool = await make_pool()
    lvol = await pool.create_lvol("odd", 1000, thin=True)
    assert lvol.size == 1024
    await pool.export()


async def test_a_taken_name_or_uuid_is_refused_and_nothing_changes() -> None:
    disk, pool = await make_pool()
    first = await pool.create_lvol("lv", MIB)
    before = disk.snapshot()
    with pytest.raises(AlreadyExists, match="'lv' already exists"):
        await pool.create_lvol("lv", MIB, thin=True)
    with pytest.raises(AlreadyExists, match=str(first.uuid)):
        await pool.create_lvol("other", MIB, uuid=first.uuid)
    assert disk.snapshot() == before
    assert [lv.name for lv in pool.lvols()] == ["lv"]
    await pool.export()


async def test_a_thick_lvol_larger_than_the_free_space_is_refused_and_nothing_changes() -> None:
    disk, pool = await make_pool()
    before = disk.snapshot()
    with pytest.raises(ResourceExhausted, match=r"only .* are free"):
        await pool.create_lvol("huge", pool.capacity + 1)
    assert disk.snapshot() == before
    assert (pool.used, pool.lvols()) == (0, [])
    thin = await pool.create_lvol("huge", 10 * pool.capacity, thin=True)
    assert thin.size == 10 * pool.capacity
    await pool.export()


@pytest.mark.parametrize(
    ("name", "size", "extra", "message"),
    [
        ("zero", 0, {}, "positive"),
        ("neg", -512, {}, "positive"),
        ("float", 1.5, {}, "positive"),
        ("", MIB, {}, "name"),
        ("a/b", MIB, {}, "name"),
        ("uuid", MIB, {"uuid": "nope"}, "not a UUID"),
        ("hosts", MIB, {"properties": LvolProperties(allowed_hosts=("",))}, "host NQN"),
        ("thin", MIB, {"thin": "yes"}, "thin"),
        ("huge", 1 << 62, {"thin": True}, "larger than a pool can address"),
    ],
)
async def test_bad_lvol_arguments_are_invalid_and_change_nothing(
    name: str, size: object, extra: dict[str, object], message: str
) -> None:
    disk, pool = await make_pool()
    before = disk.snapshot()
    with pytest.raises(InvalidArgument, match=message):
        await pool.create_lvol(name, size, **extra)  # type: ignore[arg-type]
    assert disk.snapshot() == before
    await pool.export()


async def test_full_metadata_is_resource_exhausted_and_changes_nothing() -> None:
    disk, pool = await make_pool()
    hosts = tuple(f"nqn.2014-08.org.example:{i:0>190}" for i in range(1000))
    lvol = await pool.create_lvol("a", MIB, properties=LvolProperties(allowed_hosts=hosts))
    other = await pool.create_lvol("c", MIB)
    before = disk.snapshot()
    with pytest.raises(ResourceExhausted, match="metadata is full"):
        await pool.create_lvol("b", MIB, properties=LvolProperties(allowed_hosts=hosts))
    with pytest.raises(ResourceExhausted, match="metadata is full"):
        await pool.set_lvol_properties(other, LvolProperties(allowed_hosts=hosts))
    assert disk.snapshot() == before
    assert pool.lookup("c").properties == LvolProperties()
    await pool.export()
    pool = await Pool.import_(reopen(disk), disk="sim")
    assert pool.lookup("a").properties.allowed_hosts == hosts
    assert lvol.uuid == pool.lookup("a").uuid
    await pool.export()


# ---------------------------------------------------------------------- destroy


async def test_destroy_frees_the_clusters_and_a_reused_cluster_reads_as_zeroes() -> None:
    _disk, pool = await make_pool()
    old = await pool.create_lvol("old", pool.capacity)
    await old.write(0, os.urandom(BPC * 512))
    await pool.destroy_lvol(old)
    assert old.closed
    assert (pool.used, pool.lvols()) == (0, [])
    new = await pool.create_lvol("new", pool.capacity, thin=True)
    await new.write(5, b"z" * 512)
    data = bytes(await new.read(0, BPC))
    assert data[5 * 512 : 6 * 512] == b"z" * 512
    assert data.count(0) == len(data) - 512
    thick = await pool.create_lvol("thick", MIB)
    assert bytes(await thick.read(0, BPC)).count(0) == MIB
    await pool.export()


async def test_destroy_of_a_missing_lvol_is_not_found_and_changes_nothing() -> None:
    disk, pool = await make_pool()
    lvol = await pool.create_lvol("lv", MIB)
    await pool.destroy_lvol(lvol)
    before = disk.snapshot()
    with pytest.raises(NotFound, match="'lv'"):
        await pool.destroy_lvol(lvol)
    _disk2, other_pool = await make_pool()
    stranger = await other_pool.create_lvol("stranger", MIB)
    with pytest.raises(NotFound, match="not in pool"):
        await pool.destroy_lvol(stranger)
    assert disk.snapshot() == before
    await pool.export()
    await other_pool.export()


async def test_destroy_waits_for_io_in_flight_and_refuses_new_io() -> None:
    disk, pool = await make_pool()
    disk.jitter = random.Random(1)
    lvol = await pool.create_lvol("lv", 4 * MIB, thin=True)
    writes = [asyncio.ensure_future(lvol.write(i * BPC, b"w" * 512)) for i in range(4)]
    await asyncio.sleep(0)
    await pool.destroy_lvol(lvol)
    assert all(w.done() and w.exception() is None for w in writes)
    assert pool.used == 0
    await pool.export()


# ---------------------------------------------------------------------- resize


async def test_growing_a_thick_lvol_allocates_and_keeps_its_data() -> None:
    _disk, pool = await make_pool()
    lvol = await pool.create_lvol("lv", MIB)
    data = os.urandom(4096)
    await lvol.write(0, data)
    await pool.resize_lvol(lvol, 3 * MIB)
    assert (lvol.size, lvol.num_clusters, lvol.num_allocated_clusters) == (3 * MIB, 3, 3)
    assert bytes(await lvol.read(0, 8)) == data
    assert bytes(await lvol.read(2 * BPC, BPC)).count(0) == MIB
    await pool.export()


async def test_growing_a_thick_lvol_beyond_the_free_space_is_refused_and_changes_nothing() -> None:
    disk, pool = await make_pool()
    lvol = await pool.create_lvol("lv", MIB)
    before = disk.snapshot()
    with pytest.raises(ResourceExhausted):
        await pool.resize_lvol(lvol, pool.capacity + MIB)
    assert disk.snapshot() == before
    assert lvol.size == MIB
    await pool.export()


async def test_shrinking_that_would_lose_allocated_clusters_is_refused_and_changes_nothing() -> (
    None
):
    disk, pool = await make_pool()
    thin = await pool.create_lvol("thin", 4 * MIB, thin=True)
    await thin.write(3 * BPC, b"d" * 512)
    thick = await pool.create_lvol("thick", 2 * MIB)
    before = disk.snapshot()
    with pytest.raises(FailedPrecondition, match=r"cluster 3 .* allocated"):
        await pool.resize_lvol(thin, 3 * MIB)
    with pytest.raises(FailedPrecondition, match=r"cluster 1 .* allocated"):
        await pool.resize_lvol(thick, MIB)
    assert disk.snapshot() == before
    assert (thin.size, thick.size) == (4 * MIB, 2 * MIB)
    await pool.export()


async def test_shrinking_over_unallocated_clusters_or_within_the_last_cluster_works() -> None:
    disk, pool = await make_pool()
    thin = await pool.create_lvol("thin", 4 * MIB, thin=True)
    await thin.write(0, b"d" * 512)
    await pool.resize_lvol(thin, MIB)
    assert (thin.size, thin.num_blocks, thin.num_clusters) == (MIB, BPC, 1)
    thick = await pool.create_lvol("thick", 2 * MIB)
    await pool.resize_lvol(thick, MIB + 512)
    assert (thick.size, thick.num_allocated_clusters) == (MIB + 512, 2)
    await pool.export()
    pool = await Pool.import_(reopen(disk), disk="sim")
    assert pool.lookup("thin").size == MIB
    assert pool.lookup("thick").size == MIB + 512
    await pool.export()


async def test_data_cut_off_by_a_shrink_does_not_come_back_when_the_lvol_grows() -> None:
    _disk, pool = await make_pool()
    lvol = await pool.create_lvol("lv", MIB, thin=True)
    await lvol.write(BPC - 4, b"s" * 2048)
    await pool.resize_lvol(lvol, MIB - 4 * 512)
    await pool.resize_lvol(lvol, 2 * MIB)
    assert bytes(await lvol.read(BPC - 4, 4)) == bytes(2048)
    await pool.export()


async def test_writes_past_the_end_of_a_shrunk_lvol_are_refused() -> None:
    _disk, pool = await make_pool()
    lvol = await pool.create_lvol("lv", 2 * MIB, thin=True)
    await pool.resize_lvol(lvol, MIB)
    with pytest.raises(LbaOutOfRange):
        await lvol.write(BPC, b"x" * 512)
    await pool.export()


# ---------------------------------------------------------------------- properties


async def test_properties_are_persisted_across_export_and_import() -> None:
    disk, pool = await make_pool()
    lvol = await pool.create_lvol("lv", MIB, properties=LvolProperties(entity_id="v1"))
    props = LvolProperties(ShareProtocol.NVMF, ("nqn.a", "nqn.b"), "volume-42")
    await pool.set_lvol_properties(lvol, props)
    assert lvol.properties == props
    await pool.export()
    pool = await Pool.import_(reopen(disk), disk="sim")
    assert pool.lookup("lv").properties == props
    await pool.export()


async def test_bad_properties_are_refused_and_change_nothing() -> None:
    disk, pool = await make_pool()
    lvol = await pool.create_lvol("lv", MIB)
    before = disk.snapshot()
    with pytest.raises(InvalidArgument, match="host NQN"):
        await pool.set_lvol_properties(lvol, LvolProperties(allowed_hosts=("x" * 300,)))
    with pytest.raises(InvalidArgument, match="share protocol"):
        await pool.set_lvol_properties(lvol, LvolProperties(share="nvmf"))  # type: ignore[arg-type]
    assert disk.snapshot() == before
    await pool.export()


# ---------------------------------------------------------------------- thin I/O


async def test_a_full_thin_pool_fails_the_write_with_no_space_and_stays_consistent() -> None:
    disk, pool = await make_pool()
    clusters = pool.capacity // MIB
    thin = await pool.create_lvol("thin", 2 * pool.capacity, thin=True)
    for c in range(clusters):
        await thin.write(c * BPC, c.to_bytes(2, "little") * 256)
    assert pool.used == pool.capacity
    before = disk.snapshot()
    with pytest.raises(NoSpace, match="no free cluster"):
        await thin.write(clusters * BPC, b"n" * 512)
    assert disk.snapshot() == before
    assert thin.num_allocated_clusters == clusters
    assert bytes(await thin.read(clusters * BPC, 1)) == bytes(512)
    with pytest.raises(ResourceExhausted):
        await pool.create_lvol("thick", MIB)
    await pool.export()
    pool = await Pool.import_(reopen(disk), disk="sim")
    thin = pool.lookup("thin")
    assert pool.used == pool.capacity
    for c in range(clusters):
        assert bytes(await thin.read(c * BPC, 1)) == c.to_bytes(2, "little") * 256
    await pool.export()


async def test_concurrent_first_writes_to_one_cluster_allocate_it_once() -> None:
    disk, pool = await make_pool()
    disk.jitter = random.Random(3)
    thin = await pool.create_lvol("thin", 4 * MIB, thin=True)
    blocks = [bytes([i]) * 512 for i in range(1, 33)]
    await asyncio.gather(*(thin.write(i * 8, b) for i, b in enumerate(blocks)))
    assert thin.num_allocated_clusters == 1
    assert pool.used == MIB
    for i, b in enumerate(blocks):
        assert bytes(await thin.read(i * 8, 1)) == b
    await pool.export()


async def test_concurrent_allocations_are_committed_together() -> None:
    disk, pool = await make_pool()
    disk.jitter = random.Random(4)
    thin = await pool.create_lvol("thin", 16 * MIB, thin=True)
    flushes = disk.stats.num_flush_ops
    await asyncio.gather(*(thin.write(c * BPC, b"g" * 512) for c in range(16)))
    assert thin.num_allocated_clusters == 16
    # one allocation alone costs two flushes; sixteen together cost far fewer than 32
    assert disk.stats.num_flush_ops - flushes < 16
    await pool.export()


async def test_reads_of_unallocated_clusters_return_zeroes_without_touching_the_disk() -> None:
    disk, pool = await make_pool()
    thin = await pool.create_lvol("thin", 4 * MIB, thin=True)
    reads = disk.stats.num_read_ops
    assert bytes(await thin.read(0, 2 * BPC)) == bytes(2 * MIB)
    assert disk.stats.num_read_ops == reads
    await pool.export()


async def test_an_io_across_clusters_is_one_base_io_per_run_of_adjacent_clusters() -> None:
    disk, pool = await make_pool()
    thick = await pool.create_lvol("thick", 3 * MIB)  # clusters adjacent on disk
    thin = await pool.create_lvol("thin", 3 * MIB, thin=True)
    await thin.write(BPC, b"2" * 512)  # lvol cluster 1 first,
    await thin.write(0, b"1" * 512)  # then cluster 0: not adjacent in that order
    data = os.urandom(8 * 512)
    for lvol, expected_ios in ((thick, 1), (thin, 2)):
        writes, reads = disk.stats.num_write_ops, disk.stats.num_read_ops
        await lvol.write(BPC - 4, data)
        assert bytes(await lvol.read(BPC - 4, 8)) == data
        assert disk.stats.num_write_ops - writes == expected_ios
        assert disk.stats.num_read_ops - reads == expected_ios
    await pool.export()


async def test_a_submitted_io_within_an_allocated_cluster_reaches_the_disk_in_the_call() -> None:
    base = MallocDevice("base", num_blocks=16 * MIB // 512, block_size=512)
    pool = await Pool.create(base, "p0", disk="malloc:///base", cluster_size=MIB)
    thick = await pool.create_lvol("thick", 2 * MIB)
    data = os.urandom(4 * 512)
    ended: list[object] = []
    thick.submit_write(BPC - 4, data, lambda ctx, _data, error: ended.append((ctx, error)), 1)
    thick.submit_read(BPC - 4, 4, lambda ctx, got, error: ended.append((ctx, got, error)), 2)
    # a malloc disk completes inline: nothing was waited for
    assert ended == [(1, None), (2, data, None)]
    assert (thick.stats.num_write_ops, thick.stats.num_read_ops) == (1, 1)
    await pool.export()


async def test_a_write_that_cannot_get_all_its_clusters_takes_none_and_changes_nothing() -> None:
    disk, pool = await make_pool()
    await pool.create_lvol("thick", pool.capacity - MIB)
    thin = await pool.create_lvol("thin", 2 * MIB, thin=True)
    before = disk.snapshot()
    with pytest.raises(NoSpace):
        await thin.write(BPC - 1, b"t" * 1024)
    assert thin.num_allocated_clusters == 0
    assert pool.used == pool.capacity - MIB
    assert disk.snapshot() == before
    assert bytes(await thin.read(BPC - 1, 2)) == bytes(1024)
    await thin.write(BPC, b"t" * 512)  # the free cluster is still there for a write that fits
    assert thin.num_allocated_clusters == 1
    await pool.export()


async def test_unmap_on_a_thin_lvol_zeroes_and_keeps_the_clusters() -> None:
    _disk, pool = await make_pool()
    thin = await pool.create_lvol("thin", 2 * MIB, thin=True)
    await thin.write(0, b"u" * 4096)
    await thin.unmap(0, 2 * BPC)
    assert bytes(await thin.read(0, 8)) == bytes(4096)
    assert thin.num_allocated_clusters == 1
    await pool.export()


async def test_lvols_are_listed_and_found_by_name_and_uuid() -> None:
    _disk, pool = await make_pool()
    wanted = uuid_mod.uuid4()
    made: list[Lvol] = [
        await pool.create_lvol("a", MIB),
        await pool.create_lvol("b", MIB, uuid=wanted, thin=True),
    ]
    assert sorted(lv.name for lv in pool.lvols()) == ["a", "b"]
    assert pool.lookup("b") is made[1]
    assert pool.lookup_uuid(wanted) is made[1]
    assert pool.lookup_uuid(str(wanted)) is made[1]
    await pool.export()
