"""The metadata journal: it fills and rotates into checkpoints; outsized changes still commit."""

from __future__ import annotations

import asyncio

from mayastor.lvs import LvolProperties, Pool, ShareProtocol
from tests.unit.lvs.disks import SimDisk

MIB = 1 << 20


def crashed_copy(disk: SimDisk) -> SimDisk:
    """What a killed process leaves: every write that reached the disk, no export."""
    return SimDisk.like(disk, disk.image_after_process_crash())


async def test_a_full_journal_rotates_into_a_checkpoint_and_nothing_is_lost() -> None:
    disk = SimDisk(32 * MIB // 512)
    pool = await Pool.create(disk, "p0", disk="sim", cluster_size=MIB)
    lvols = [await pool.create_lvol(f"lv{i}", MIB, thin=True) for i in range(4)]
    journal_pages = pool._sb.journal_pages
    checkpoints = pool._store.checkpoints_written
    for n in range(3 * journal_pages):
        lvol = lvols[n % 4]
        await pool.set_lvol_properties(lvol, LvolProperties(entity_id=f"change-{n}"))
    assert pool._store.checkpoints_written - checkpoints >= 2
    expected = {lv.name: lv.properties for lv in pool.lvols()}
    again = await Pool.import_(crashed_copy(disk), disk="sim")
    assert {lv.name: lv.properties for lv in again.lvols()} == expected
    await again.export()
    await pool.export()


async def test_a_group_of_changes_larger_than_the_journal_commits_as_a_checkpoint() -> None:
    disk = SimDisk(1024 * MIB // 512)
    # metadata sized for 40 GiB: a 4 MiB journal (the cap) and room for big properties
    pool = await Pool.create(disk, "p0", disk="sim", cluster_size=MIB, max_expansion="40GiB")
    assert pool._sb.journal_pages == 1024
    lvols = [await pool.create_lvol(f"lv{i}", MIB, thin=True) for i in range(24)]
    hosts = tuple(f"nqn.2014-08.org.example:{i:0>190}" for i in range(1000))
    big = LvolProperties(ShareProtocol.NVMF, hosts, "big")
    checkpoints = pool._store.checkpoints_written
    # 24 changes of ~210 KiB submitted together: one group, more than the 4 MiB journal
    await asyncio.gather(*(pool.set_lvol_properties(lv, big) for lv in lvols))
    assert pool._store.checkpoints_written == checkpoints + 1
    assert pool._store.journal_pos == 0
    again = await Pool.import_(crashed_copy(disk), disk="sim")
    assert all(lv.properties == big for lv in again.lvols())
    await again.export()
    await pool.export()
