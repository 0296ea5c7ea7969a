"""A pool takes a disk only when it holds nothing (or when forced), and a full file
system under a sparse disk file costs a refused request, never the pool.

`RoomyDisk` stands for a sparse file in a file system with a fixed room: a block
takes room when it is first written or zeroed, and gives it back when unmapped; a
write that needs more room than is left fails with `NoSpace` after taking what was
left, as ext4 does. The integration tests run the same on a real ext4 file system.
"""

from __future__ import annotations

import pytest

from mayastor.errors import DiskNotBlank, NoSpace, ResourceExhausted
from mayastor.lvs import LvolProperties, Pool, PoolState
from mayastor.lvs._disk_claim import probe_disk
from tests.unit.lvs.disks import Image, SimDisk

MIB = 1 << 20
BS = 512


class RoomyDisk(SimDisk):
    """A SimDisk over a sparse file whose file system has `room` bytes."""

    def __init__(self, num_blocks: int, room: int, image: Image | None = None) -> None:
        super().__init__(num_blocks, BS, image=image)
        self.room_blocks = room // BS
        self.allocated: set[int] = set(self.current)
        self.reserved: set[int] = set()
        self.written: set[int] = set()

    def _take(self, lba: int, nblocks: int) -> None:
        for block in range(lba, lba + nblocks):
            if block in self.allocated:
                continue
            if len(self.allocated) >= self.room_blocks:
                raise NoSpace(f"{self.name}: no space left on device", device=self.name, lba=lba)
            self.allocated.add(block)

    async def _write(self, lba: int, data: bytes | bytearray | memoryview) -> None:
        self._take(lba, len(data) // BS)
        self.written.update(range(lba, lba + len(data) // BS))
        await super()._write(lba, data)

    async def _write_zeroes(self, lba: int, nblocks: int) -> None:
        self._take(lba, nblocks)
        await super()._write_zeroes(lba, nblocks)

    async def _unmap(self, lba: int, nblocks: int) -> None:
        await super()._unmap(lba, nblocks)
        self.allocated.difference_update(range(lba, lba + nblocks))

    async def reserve_space(self, lba: int, nblocks: int) -> bool:
        self._take(lba, nblocks)
        self.reserved.update(range(lba, lba + nblocks))
        return True


def ext4_image() -> Image:
    """The blocks of a disk whose first kilobytes hold an ext4 superblock."""
    sb = bytearray(BS)
    sb[0x38:0x3A] = b"\x53\xef"
    sb[0x60:0x64] = (0x40).to_bytes(4, "little")
    return {2: bytes(sb)}


async def test_create_on_an_ext4_disk_is_refused_naming_it_and_writes_nothing() -> None:
    disk = SimDisk(32 * MIB // BS, BS, image=ext4_image())
    before = disk.snapshot()
    with pytest.raises(DiskNotBlank, match="ext4 file system") as refused:
        await Pool.create(disk, "p0", disk="sim:///d", cluster_size=MIB)
    assert refused.value.found[0].startswith("ext4 file system")
    assert disk.snapshot() == before
    assert disk.mutations == 0


async def test_forced_create_wipes_what_the_disk_held_and_says_what() -> None:
    image = ext4_image()
    last = 32 * MIB // BS - 1
    gpt = bytearray(BS)
    gpt[:8] = b"EFI PART"
    image[last] = bytes(gpt)
    disk = SimDisk(32 * MIB // BS, BS, image=image)
    pool = await Pool.create(disk, "p0", disk="sim:///d", cluster_size=MIB, force=True)
    assert [text.split(" (")[0].split(" at ")[0] for text in pool.overwritten] == [
        "ext4 file system",
        "GPT partition table",
    ]
    assert [sig.kind for sig in await probe_disk(disk)] == ["Mayastor pool"]
    await pool.export()


async def test_create_or_import_refuses_a_disk_holding_another_pool_unless_forced() -> None:
    disk = SimDisk(32 * MIB // BS, BS)
    first = await Pool.create(disk, "p0", disk="sim:///d", cluster_size=MIB)
    await first.export()
    disk = SimDisk.like(disk, disk.image_after_process_crash())
    before = disk.snapshot()
    with pytest.raises(DiskNotBlank, match="holds pool 'p0'"):
        await Pool.create_or_import(disk, "p1", disk="sim:///d", cluster_size=MIB)
    assert disk.snapshot() == before
    second = await Pool.create_or_import(disk, "p1", disk="sim:///d", cluster_size=MIB, force=True)
    assert (second.name, second.uuid != first.uuid) == ("p1", True)
    await second.export()


async def test_create_or_import_with_force_still_imports_the_same_pool() -> None:
    disk = SimDisk(32 * MIB // BS, BS)
    first = await Pool.create(disk, "p0", disk="sim:///d", cluster_size=MIB)
    await first.create_lvol("keep", MIB)
    await first.export()
    disk = SimDisk.like(disk, disk.image_after_process_crash())
    again = await Pool.create_or_import(disk, "p0", disk="sim:///d", force=True)
    assert again.uuid == first.uuid
    assert [lvol.name for lvol in again.lvols()] == ["keep"]
    await again.export()


BIG = 64 << 30
"""A large disk (sparse in memory): its checkpoint slots are far larger than 1 MiB."""


def bulky() -> LvolProperties:
    """Properties of about 230 KB: a few lvols make the catalog grow past 1 MiB."""
    return LvolProperties(
        allowed_hosts=tuple(f"nqn.2019-05.io.openebs:{n:0>200}" for n in range(1024))
    )


async def test_every_metadata_write_lands_in_room_reserved_before_it() -> None:
    disk = RoomyDisk(BIG // BS, room=BIG)
    pool = await Pool.create(disk, "p0", disk="sim:///d", cluster_size=MIB)
    for n in range(8):
        await pool.create_lvol(f"r{n}", MIB, properties=bulky())
    await pool.destroy_lvol(pool.lookup("r0"))
    await pool.export()
    metadata_blocks = pool._sb.data_offset // BS
    written = {block for block in disk.written if block < metadata_blocks}
    assert written
    assert written <= disk.reserved
    assert len(disk.reserved) < metadata_blocks // 4  # the slots are reserved as they fill


async def test_a_change_with_no_room_below_for_its_metadata_is_refused_pool_online() -> None:
    disk = RoomyDisk(BIG // BS, room=BIG)
    pool = await Pool.create(disk, "p0", disk="sim:///d", cluster_size=MIB)
    disk.room_blocks = len(disk.allocated) + (300 << 10) // BS
    for n in range(2):  # within the 1 MiB of each slot reserved at create
        await pool.create_lvol(f"r{n}", 4096, thin=True, properties=bulky())
    with pytest.raises(ResourceExhausted, match="no room below its disk"):
        await pool.create_lvol("r2", 4096, thin=True, properties=bulky())
    assert pool.state is PoolState.ONLINE
    assert sorted(lvol.name for lvol in pool.lvols()) == ["r0", "r1"]
    disk.room_blocks = BIG // BS
    await pool.create_lvol("r2", 4096, thin=True, properties=bulky())
    await pool.export()


async def test_a_thick_create_that_meets_a_full_file_system_gives_back_what_it_took() -> None:
    disk = RoomyDisk(64 * MIB // BS, room=24 * MIB)
    pool = await Pool.create(disk, "p0", disk="sim:///d", cluster_size=MIB)
    taken = len(disk.allocated)
    with pytest.raises(ResourceExhausted, match="ran out of space") as refused:
        await pool.create_lvol("big", 40 * MIB)
    assert "given back" in str(refused.value)
    assert len(disk.allocated) == taken
    assert pool.state is PoolState.ONLINE
    assert pool.used == 0
    small = await pool.create_lvol("small", 4 * MIB)
    assert small.size == 4 * MIB
    await pool.export()


async def test_a_thin_write_meeting_a_full_file_system_fails_and_gives_the_cluster_back() -> None:
    disk = RoomyDisk(64 * MIB // BS, room=64 * MIB)
    pool = await Pool.create(disk, "p0", disk="sim:///d", cluster_size=MIB)
    lvol = await pool.create_lvol("thin", 32 * MIB, thin=True)
    taken = len(disk.allocated)
    disk.room_blocks = taken + MIB // BS // 2  # half a cluster left
    with pytest.raises(NoSpace):
        await lvol.write(0, bytes(BS))
    assert len(disk.allocated) == taken
    assert pool.state is PoolState.ONLINE
    assert pool.used == 0
    await pool.export()
