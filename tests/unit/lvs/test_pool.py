"""Pools: create, import, export, destroy, grow, create-or-import; every refusal changes nothing."""

from __future__ import annotations

import dataclasses
import os
import uuid as uuid_mod

import pytest

from mayastor.bdev import MallocDevice
from mayastor.errors import CorruptMetadata, FailedPrecondition, InvalidArgument, NotFound
from mayastor.lvs import (
    DEFAULT_CLUSTER_SIZE,
    LvolProperties,
    Pool,
    PoolState,
    ShareProtocol,
)
from mayastor.lvs.format import FORMAT_VERSION, PAGE_SIZE, decode_superblock, encode_superblock
from tests.unit.lvs.disks import SimDisk

MIB = 1 << 20


async def make_pool(mib: int = 32, bs: int = 512, **kwargs: object) -> tuple[SimDisk, Pool]:
    disk = SimDisk(mib * MIB // bs, bs)
    kwargs.setdefault("cluster_size", MIB)
    pool = await Pool.create(disk, "p0", disk="sim:///p0", **kwargs)  # type: ignore[arg-type]
    return disk, pool


def reopen(disk: SimDisk) -> SimDisk:
    """The same disk contents, opened again (after an export closed it)."""
    return SimDisk.like(disk, disk.image_after_process_crash())


# ---------------------------------------------------------------------- create


async def test_a_100_mib_disk_with_default_clusters_gives_a_96_mib_pool() -> None:
    disk = SimDisk(100 * MIB // 512)
    pool = await Pool.create(disk, "tpool", disk="/dev/loop8")
    assert pool.cluster_size == DEFAULT_CLUSTER_SIZE == 4 * MIB
    assert pool.capacity == 96 * MIB
    assert (pool.used, pool.committed) == (0, 0)
    assert pool.disk_capacity == 100 * MIB
    assert pool.state is PoolState.ONLINE
    assert (pool.name, pool.disk, pool.base) == ("tpool", "/dev/loop8", disk)
    await pool.export()


async def test_create_takes_the_given_uuid_and_reports_metadata_info() -> None:
    wanted = uuid_mod.uuid4()
    _disk, pool = await make_pool(uuid=wanted, max_expansion="2x")
    assert pool.uuid == wanted
    info = pool.md_info
    assert info.page_size == PAGE_SIZE
    assert 0 < info.used_pages < info.pages
    assert 2 * 32 * MIB - MIB < pool.max_expandable_size <= 2 * 32 * MIB
    await pool.export()


async def test_create_refuses_a_disk_that_holds_a_pool_naming_it_and_changes_nothing() -> None:
    disk, pool = await make_pool()
    await pool.export()
    disk = reopen(disk)
    before = disk.snapshot()
    with pytest.raises(FailedPrecondition, match="already holds pool 'p0'"):
        await Pool.create(disk, "other", disk="sim:///p0")
    assert disk.snapshot() == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cluster_size": MIB + 512}, "cluster size"),
        ({"cluster_size": 0}, "cluster size"),
        ({"cluster_size": 2 << 30}, "cluster size"),
        ({"max_expansion": "0.5x"}, "below 1"),
        ({"max_expansion": "lots"}, "neither a factor"),
        ({"max_expansion": "1MiB"}, "smaller than the disk"),
        ({"uuid": "not-a-uuid"}, "not a UUID"),
    ],
)
async def test_create_refuses_bad_arguments_and_writes_nothing(
    kwargs: dict[str, object], message: str
) -> None:
    disk = SimDisk(32 * MIB // 512)
    with pytest.raises(InvalidArgument, match=message):
        await Pool.create(disk, "p", disk="sim", **kwargs)  # type: ignore[arg-type]
    assert disk.snapshot() == {}
    assert disk.mutations == 0


@pytest.mark.parametrize("name", ["", "a/b", "tab\there", "x" * 256])
async def test_create_refuses_a_bad_pool_name(name: str) -> None:
    disk = SimDisk(32 * MIB // 512)
    with pytest.raises(InvalidArgument, match="name"):
        await Pool.create(disk, name, disk="sim")
    assert disk.mutations == 0


async def test_create_refuses_a_disk_too_small_for_metadata_and_one_cluster() -> None:
    disk = SimDisk(4 * MIB // 512)
    with pytest.raises(InvalidArgument, match="too small"):
        await Pool.create(disk, "p", disk="sim")
    assert disk.mutations == 0


# ---------------------------------------------------------------------- import / export


async def test_export_then_import_gives_back_lvols_properties_allocations_and_data() -> None:
    disk, pool = await make_pool()
    props = LvolProperties(ShareProtocol.NVMF, ("nqn.2014-08.org.nvmexpress:uuid:h1",), "vol-7")
    thick = await pool.create_lvol("thick", 3 * MIB, properties=props)
    thin = await pool.create_lvol("thin", 8 * MIB, thin=True)
    payload = os.urandom(64 * 512)
    await thin.write(5 * 2048 + 3, payload)
    await thick.write(10, payload)
    expected = {
        lv.name: (lv.uuid, lv.size, lv.thin, lv.properties, lv.allocated_bytes)
        for lv in pool.lvols()
    }
    used, committed = pool.used, pool.committed
    await pool.export()
    assert disk.closed
    with pytest.raises(FailedPrecondition, match="exported"):
        await pool.create_lvol("late", MIB)

    pool = await Pool.import_(reopen(disk), disk="sim:///p0", name="p0")
    got = {
        lv.name: (lv.uuid, lv.size, lv.thin, lv.properties, lv.allocated_bytes)
        for lv in pool.lvols()
    }
    assert got == expected
    assert (pool.used, pool.committed) == (used, committed)
    assert bytes(await pool.lookup("thin").read(5 * 2048 + 3, 64)) == payload
    assert bytes(await pool.lookup("thick").read(10, 64)) == payload
    await pool.export()


async def test_export_twice_is_harmless() -> None:
    _disk, pool = await make_pool()
    await pool.export()
    await pool.export()


async def test_import_of_a_blank_disk_is_not_found_and_writes_nothing() -> None:
    disk = SimDisk(32 * MIB // 512)
    with pytest.raises(NotFound, match="holds no pool"):
        await Pool.import_(disk, disk="sim:///blank")
    assert disk.mutations == 0


async def test_import_of_a_disk_of_random_bytes_is_not_found_and_writes_nothing() -> None:
    disk = MallocDevice("rnd", num_blocks=32 * MIB // 512)
    noise = os.urandom(disk.size)
    await disk.write(0, noise)
    with pytest.raises(NotFound, match="holds no pool"):
        await Pool.import_(disk, disk="malloc:///rnd")
    assert bytes(await disk.read(0, disk.num_blocks)) == noise
    await disk.close()


@pytest.mark.parametrize(
    "wanted",
    [
        {"name": "other"},
        {"uuid": uuid_mod.UUID(int=1)},
        {"name": "p0", "uuid": uuid_mod.UUID(int=1)},
    ],
)
async def test_import_refuses_a_disk_holding_another_pool_and_changes_nothing(
    wanted: dict[str, object],
) -> None:
    disk, pool = await make_pool()
    await pool.export()
    disk = reopen(disk)
    before = disk.snapshot()
    with pytest.raises(FailedPrecondition, match="holds pool 'p0'"):
        await Pool.import_(disk, disk="sim:///p0", **wanted)  # type: ignore[arg-type]
    assert disk.snapshot() == before
    assert disk.mutations == 0


async def test_import_of_an_unknown_format_version_is_a_clear_error_and_changes_nothing() -> None:
    disk, pool = await make_pool()
    await pool.export()
    image = disk.image_after_process_crash()
    page = b"".join(image.get(i, bytes(512)) for i in range(8))
    sb = decode_superblock(page, where="t")
    assert sb is not None
    future = encode_superblock(dataclasses.replace(sb, version=FORMAT_VERSION + 1))
    for copy in (0, 1):
        for i in range(8):
            image[copy * 8 + i] = future[i * 512 : (i + 1) * 512]
    disk = SimDisk.like(disk, image)
    before = disk.snapshot()
    with pytest.raises(FailedPrecondition, match=f"format version {FORMAT_VERSION + 1}"):
        await Pool.import_(disk, disk="sim:///p0")
    with pytest.raises(FailedPrecondition, match=f"format version {FORMAT_VERSION + 1}"):
        await Pool.create(disk, "p0", disk="sim:///p0")
    assert disk.snapshot() == before


async def test_import_refuses_a_pool_made_for_another_block_size() -> None:
    disk, pool = await make_pool(bs=512)
    await pool.export()
    image = disk.image_after_process_crash()
    raw = b"".join(image.get(i, bytes(512)) for i in range(32 * MIB // 512))
    other = MallocDevice("m", num_blocks=32 * MIB // 4096, block_size=4096)
    await other.write(0, raw)
    with pytest.raises(FailedPrecondition, match="512-byte blocks"):
        await Pool.import_(other, disk="malloc:///m")
    await other.close()


async def test_import_with_both_superblocks_damaged_is_corrupt_metadata() -> None:
    disk, pool = await make_pool()
    await pool.export()
    image = disk.image_after_process_crash()
    for block in (3, 8 + 3):
        image[block] = b"\x01" * 512
    with pytest.raises(CorruptMetadata, match="both superblock copies are damaged"):
        await Pool.import_(SimDisk.like(disk, image), disk="sim:///p0")
    with pytest.raises(CorruptMetadata):
        await Pool.create(SimDisk.like(disk, image), "p0", disk="sim:///p0")


# ---------------------------------------------------------------------- create_or_import


async def test_create_or_import_creates_on_an_empty_disk_and_imports_the_same_pool_later() -> None:
    disk = SimDisk(32 * MIB // 512)
    pool = await Pool.create_or_import(disk, "p0", disk="sim", cluster_size=MIB)
    lvol = await pool.create_lvol("lv", MIB)
    await pool.export()
    again = await Pool.create_or_import(reopen(disk), "p0", disk="sim", cluster_size=MIB)
    assert again.uuid == pool.uuid
    assert [lv.uuid for lv in again.lvols()] == [lvol.uuid]
    await again.export()


async def test_create_or_import_refuses_a_disk_holding_another_pool_and_changes_nothing() -> None:
    disk, pool = await make_pool()
    await pool.export()
    disk = reopen(disk)
    before = disk.snapshot()
    with pytest.raises(FailedPrecondition, match="holds pool 'p0'"):
        await Pool.create_or_import(disk, "p1", disk="sim")
    with pytest.raises(FailedPrecondition, match="holds pool 'p0'"):
        await Pool.create_or_import(disk, "p0", disk="sim", uuid=uuid_mod.UUID(int=3))
    assert disk.snapshot() == before


# ---------------------------------------------------------------------- destroy


async def test_destroy_leaves_a_disk_that_holds_no_pool() -> None:
    disk, pool = await make_pool()
    lvol = await pool.create_lvol("lv", MIB)
    await pool.destroy()
    assert lvol.closed
    assert disk.closed
    with pytest.raises(NotFound):
        await Pool.import_(reopen(disk), disk="sim")
    fresh = await Pool.create(reopen(disk), "p1", disk="sim", cluster_size=MIB)
    assert fresh.lvols() == []
    await fresh.export()


async def test_destroy_after_export_is_refused() -> None:
    _disk, pool = await make_pool()
    await pool.export()
    with pytest.raises(FailedPrecondition, match="exported"):
        await pool.destroy()


async def test_a_recreated_pool_of_the_same_uuid_never_sees_the_old_pools_lvols() -> None:
    same = uuid_mod.uuid4()
    disk, pool = await make_pool(uuid=same)
    for i in range(5):
        await pool.create_lvol(f"old{i}", MIB)
    await pool.destroy()
    disk = reopen(disk)
    pool = await Pool.create(disk, "p0", disk="sim", uuid=same, cluster_size=MIB)
    await pool.export()
    pool = await Pool.import_(reopen(disk), disk="sim")
    assert pool.lvols() == []
    await pool.export()


# ---------------------------------------------------------------------- grow


async def test_grow_takes_the_new_space_and_keeps_it_across_import() -> None:
    disk, pool = await make_pool()
    before = pool.capacity
    assert await pool.grow() is False
    disk.grow(8 * MIB // 512)
    assert pool.disk_capacity == 32 * MIB  # not seen before the grow asks the disk
    assert await pool.grow() is True
    assert pool.capacity == before + 8 * MIB
    assert pool.disk_capacity == 40 * MIB
    big = await pool.create_lvol("big", pool.capacity)
    assert big.num_clusters * MIB == pool.capacity
    await pool.export()
    pool = await Pool.import_(reopen(disk), disk="sim")
    assert pool.capacity == before + 8 * MIB
    await pool.export()


async def test_grow_beyond_the_metadata_sizing_is_refused_and_changes_nothing() -> None:
    disk, pool = await make_pool(max_expansion="40MiB")
    assert pool.max_expandable_size <= 40 * MIB
    disk.grow(64 * MIB // 512)
    before = disk.snapshot()
    with pytest.raises(FailedPrecondition, match="max_expansion"):
        await pool.grow()
    assert disk.snapshot() == before
    assert pool.capacity < 32 * MIB
    await pool.export()


async def test_grow_refuses_a_disk_that_shrank() -> None:
    disk, pool = await make_pool()
    disk.capacity_blocks -= 2 * MIB // 512
    with pytest.raises(FailedPrecondition, match="shrank"):
        await pool.grow()
    await pool.export()


async def test_pool_io_counters_are_the_base_devices() -> None:
    disk, pool = await make_pool()
    lvol = await pool.create_lvol("lv", MIB)
    before = disk.stats.num_write_ops
    await lvol.write(0, bytes(512))
    assert pool.stats is disk.stats
    assert pool.stats.num_write_ops == before + 1
    await pool.export()


async def test_lookup_of_missing_lvols_is_not_found() -> None:
    _disk, pool = await make_pool()
    with pytest.raises(NotFound, match="'nope'"):
        pool.lookup("nope")
    with pytest.raises(NotFound):
        pool.lookup_uuid(uuid_mod.uuid4())
    with pytest.raises(NotFound):
        pool.lookup_uuid("not a uuid")
    await pool.export()
