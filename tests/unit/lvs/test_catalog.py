"""The catalog refuses metadata that contradicts itself, at run time and at import."""

from __future__ import annotations

import uuid as uuid_mod
from array import array

import pytest

from mayastor.errors import CorruptMetadata
from mayastor.lvs import Pool
from mayastor.lvs._catalog import Catalog
from mayastor.lvs.format import (
    DestroyRecord,
    ExtentsRecord,
    LvolRecord,
    PoolSizeRecord,
    Record,
    ResizeRecord,
)
from tests.unit.lvs.disks import SimDisk

MIB = 1 << 20


def catalog(clusters: int = 10) -> Catalog:
    return Catalog(MIB, clusters, 2 * clusters, 1 << 22)


def lvol(lvol_id: int, size: int = 2 * MIB, *, thin: bool = True, name: str = "") -> LvolRecord:
    return LvolRecord(
        lvol_id, uuid_mod.UUID(int=lvol_id), name or f"lv{lvol_id}", size, thin, 0, (), None
    )


def extents(lvol_id: int, *triples: int) -> ExtentsRecord:
    return ExtentsRecord(lvol_id, array("I", triples))


def test_applied_records_build_maps_and_the_cluster_bitmap() -> None:
    cat = catalog()
    for rec in (lvol(1, thin=False), extents(1, 0, 4, 2), lvol(2), extents(2, 1, 0, 1)):
        cat.apply(rec)
    assert (cat.used_clusters, cat.free_clusters) == (3, 7)
    assert [cat.lvols[1].lookup(i) for i in range(2)] == [4, 5]
    assert (cat.lvols[2].lookup(0), cat.lvols[2].lookup(1)) == (-1, 0)
    cat.apply(DestroyRecord(1))
    assert (cat.used_clusters, cat.free_clusters) == (1, 9)
    cat.check_complete()


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([lvol(1), lvol(2), extents(1, 0, 3, 1), extents(2, 0, 3, 1)], "already belong"),
        ([lvol(1), extents(1, 0, 9, 2)], "outside"),
        ([lvol(1), extents(1, 2, 0, 1)], "outside"),
        ([lvol(1), extents(1, 0, 0, 1), extents(1, 0, 1, 1)], "mapped twice"),
        ([lvol(1), lvol(1, name="other")], "created twice"),
        ([lvol(1), lvol(2, name="lv1")], "taken"),
        ([DestroyRecord(5)], "does not exist"),
        ([lvol(1), extents(1, 1, 0, 1), ResizeRecord(1, MIB)], "shrunk"),
        ([PoolSizeRecord(5)], "resized"),
        ([PoolSizeRecord(100)], "resized"),
        ([lvol(1, 0)], "impossible size"),
    ],
)
def test_records_that_contradict_the_catalog_are_corrupt(
    records: list[Record], message: str
) -> None:
    cat = catalog()
    for rec in records[:-1]:
        cat.apply(rec)
    with pytest.raises(CorruptMetadata, match=message):
        cat.apply(records[-1])


def test_a_thick_lvol_without_all_its_clusters_is_corrupt() -> None:
    cat = catalog()
    cat.apply(lvol(1, 2 * MIB, thin=False))
    cat.apply(extents(1, 0, 0, 1))
    with pytest.raises(CorruptMetadata, match="1 of its 2 clusters"):
        cat.check_complete()


async def test_an_import_refuses_a_journal_that_gives_one_cluster_to_two_lvols() -> None:
    disk = SimDisk(32 * MIB // 512)
    pool = await Pool.create(disk, "p0", disk="sim", cluster_size=MIB)
    a = await pool.create_lvol("a", MIB)
    b = await pool.create_lvol("b", MIB, thin=True)
    owned = a.meta.extents[1]
    # bypass the pool's checks: a well-formed, checksummed record that lies
    await pool._store.commit([extents(b.meta.lvol_id, 0, owned, 1)], lambda: None)
    crashed = SimDisk.like(disk, disk.image_after_process_crash())  # before any checkpoint
    await pool.export()
    with pytest.raises(CorruptMetadata, match="already belong to another lvol"):
        await Pool.import_(crashed, disk="sim")


async def test_an_import_refuses_a_journal_that_points_outside_the_pool() -> None:
    disk = SimDisk(32 * MIB // 512)
    pool = await Pool.create(disk, "p0", disk="sim", cluster_size=MIB)
    b = await pool.create_lvol("b", MIB, thin=True)
    beyond = pool.capacity // MIB
    await pool._store.commit([extents(b.meta.lvol_id, 0, beyond, 1)], lambda: None)
    crashed = SimDisk.like(disk, disk.image_after_process_crash())  # before any checkpoint
    await pool.export()
    with pytest.raises(CorruptMetadata, match="outside"):
        await Pool.import_(crashed, disk="sim")
