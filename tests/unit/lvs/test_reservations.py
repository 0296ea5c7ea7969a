"""A replica's NVMe reservation state lives in its pool: stored before it takes effect,
back after an export, a crash or a power cut, under a versioned format that older
software refuses by name and older pools need not have."""

from __future__ import annotations

import dataclasses
import random
import uuid as uuid_mod

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mayastor.bdev import (
    AcquireAction,
    RegisterAction,
    ReservationState,
    ReservationType,
)
from mayastor.bdev.loopback import LoopbackDevice
from mayastor.bdev.reservations import OK, acquire, register
from mayastor.errors import CorruptMetadata, FailedPrecondition, ReservationConflict
from mayastor.lvs import Lvol, Pool
from mayastor.lvs.format import (
    INCOMPAT_RESERVATIONS,
    PAGE_SIZE,
    RecordType,
    ReservationRecord,
    decode_records,
    decode_superblock,
    encode_record,
    encode_superblock,
)
from tests.unit.lvs.disks import Image, SimDisk

MIB = 1 << 20
HOST_A = uuid_mod.UUID("aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa")
HOST_B = uuid_mod.UUID("bbbbbbbb-1111-4111-8111-bbbbbbbbbbbb")
EXCLUSIVE = ReservationType.EXCLUSIVE_ACCESS


async def make_pool() -> tuple[SimDisk, Pool, Lvol]:
    disk = SimDisk(32 * MIB // 512)
    pool = await Pool.create(disk, "p0", disk="sim:///p0", cluster_size=MIB)
    lvol = await pool.create_lvol("r0", 4 * MIB)
    return disk, pool, lvol


async def hold(lvol: Lvol, host: uuid_mod.UUID, key: int) -> None:
    cell = lvol.reservations
    assert cell is not None
    assert await cell.apply(lambda s: register(s, host, RegisterAction.REGISTER, nrkey=key)) == OK
    step = AcquireAction.ACQUIRE
    assert await cell.apply(lambda s: acquire(s, host, step, EXCLUSIVE, crkey=key)) == OK


async def imported(disk: SimDisk, image: Image) -> tuple[Pool, Lvol]:
    pool = await Pool.import_(SimDisk.like(disk, image), disk="sim:///p0")
    return pool, pool.lookup("r0")


def superblocks(image: Image) -> list[bytes]:
    bpp = PAGE_SIZE // 512
    return [b"".join(image.get(copy * bpp + i, bytes(512)) for i in range(bpp)) for copy in (0, 1)]


# ------------------------------------------------------------------ the record


def test_a_reservation_record_has_its_layout() -> None:
    record = ReservationRecord(7, 0x01020304, 2, True, HOST_A, ((HOST_A, 0xAA), (HOST_B, 0xBB)))
    raw = encode_record(record)
    assert raw[0] == RecordType.RESERVATION == 8
    payload = raw[5:]
    assert int.from_bytes(raw[1:5], "little") == len(payload) == 28 + 2 * 24
    assert payload[0:4] == (7).to_bytes(4, "little")
    assert payload[4:8] == bytes([4, 3, 2, 1])
    assert payload[8] == 2  # type
    assert payload[9] == 0b11  # PTPL, a holder follows
    assert payload[10:26] == HOST_A.bytes
    assert payload[26:28] == (2).to_bytes(2, "little")
    assert payload[28:44] == HOST_A.bytes
    assert payload[44:52] == (0xAA).to_bytes(8, "little")
    assert decode_records(raw) == [record]


hosts = st.uuids()
records = st.builds(
    ReservationRecord,
    st.integers(0, 0xFFFF_FFFF),
    st.integers(0, 0xFFFF_FFFF),
    st.integers(0, 6),
    st.booleans(),
    st.none() | hosts,
    st.lists(st.tuples(hosts, st.integers(0, (1 << 64) - 1)), max_size=4).map(tuple),
)


@given(records)
def test_reservation_records_round_trip(record: ReservationRecord) -> None:
    assert decode_records(encode_record(record)) == [record]


@pytest.mark.parametrize(
    "patch", [(9, 0x04), (8, 7)], ids=["unknown flag", "unknown reservation type"]
)
def test_a_malformed_reservation_record_is_corrupt(patch: tuple[int, int]) -> None:
    raw = bytearray(encode_record(ReservationRecord(1, 1, 0, False, None, ())))
    raw[5 + patch[0]] = patch[1]
    with pytest.raises(CorruptMetadata):
        decode_records(bytes(raw))
    with pytest.raises(CorruptMetadata):
        decode_records(bytes(raw[:-1]))


# ------------------------------------------------------------------ the pool


async def test_a_new_lvol_starts_unreserved_and_its_pool_without_the_feature_flag() -> None:
    disk, pool, lvol = await make_pool()
    assert lvol.reservations is not None
    assert lvol.reservations.state == ReservationState(ptpl=True)
    assert lvol.reservations.persistent
    assert pool.incompat_features == 0
    await pool.export()
    assert all(
        (sb := decode_superblock(page, where="t")) is not None and sb.incompat_features == 0
        for page in superblocks(disk.image_after_process_crash())
    )


async def test_the_reservation_comes_back_after_export_and_import() -> None:
    disk, pool, lvol = await make_pool()
    await hold(lvol, HOST_A, 0xA)
    state = lvol.reservations.state if lvol.reservations else None
    await pool.export()
    again, lvol = await imported(disk, disk.image_after_process_crash())
    assert lvol.reservations is not None
    assert lvol.reservations.state == state
    assert again.incompat_features == INCOMPAT_RESERVATIONS
    await again.export()


async def test_an_acknowledged_change_survives_a_power_cut() -> None:
    disk, pool, lvol = await make_pool()
    await hold(lvol, HOST_A, 0xA)
    expected = lvol.reservations.state if lvol.reservations else None
    for seed in range(8):
        again, copy = await imported(disk, disk.image_after_power_cut(random.Random(seed)))
        assert copy.reservations is not None
        assert copy.reservations.state == expected, seed
        await again.export()
    await pool.export()


async def test_a_checkpoint_keeps_the_reservation() -> None:
    disk, pool, lvol = await make_pool()
    await hold(lvol, HOST_A, 0xA)
    await pool._store.request_checkpoint()
    await pool.export()
    again, lvol = await imported(disk, disk.image_after_process_crash())
    assert lvol.reservations is not None
    assert lvol.reservations.state.holder == HOST_A
    await again.export()


async def test_with_ptpl_cleared_the_registrations_are_gone_after_import() -> None:
    disk, pool, lvol = await make_pool()
    await hold(lvol, HOST_A, 0xA)
    cell = lvol.reservations
    assert cell is not None
    await cell.apply(
        lambda s: register(s, HOST_A, RegisterAction.REGISTER, nrkey=0xA, cptpl=2, persistent=True)
    )
    generation = cell.state.generation
    await pool.export()
    again, lvol = await imported(disk, disk.image_after_process_crash())
    assert lvol.reservations is not None
    assert lvol.reservations.state == ReservationState(generation=generation)
    await again.export()


async def test_an_in_process_handle_of_another_host_is_fenced_after_import() -> None:
    disk, pool, lvol = await make_pool()
    await hold(lvol, HOST_A, 0xA)
    await pool.export()
    again, lvol = await imported(disk, disk.image_after_process_crash())
    handle = LoopbackDevice(lvol, hostid=HOST_B)
    with pytest.raises(ReservationConflict):
        await handle.write(0, bytes(512))
    await handle.close()
    await again.export()


async def test_destroying_the_lvol_gives_back_its_reservation_bytes() -> None:
    _disk, pool, lvol = await make_pool()
    before = pool._catalog.record_bytes
    await hold(lvol, HOST_A, 0xA)
    assert pool._catalog.record_bytes > before
    await pool.destroy_lvol(lvol)
    assert pool._catalog.record_bytes == before - lvol.meta.record_bytes
    await pool.export()


# ------------------------------------------------------------------ the feature flag


async def test_older_software_would_refuse_the_pool_by_name() -> None:
    disk, pool, lvol = await make_pool()
    await hold(lvol, HOST_A, 0xA)
    await pool.export()
    image = disk.image_after_process_crash()
    for page in superblocks(image):
        sb = decode_superblock(page, where="t")
        assert sb is not None
        assert sb.incompat_features == INCOMPAT_RESERVATIONS
        assert sb.version == 1  # same format version: pools without the flag stay old-readable


async def test_a_pool_with_an_unknown_incompatible_feature_is_refused_by_name() -> None:
    disk, pool, _lvol = await make_pool()
    await pool.export()
    image = disk.image_after_process_crash()
    sb = decode_superblock(superblocks(image)[0], where="t")
    assert sb is not None
    page = encode_superblock(dataclasses.replace(sb, incompat_features=0x2))
    bpp = PAGE_SIZE // 512
    for copy in (0, 1):
        for i in range(bpp):
            image[copy * bpp + i] = page[i * 512 : (i + 1) * 512]
    with pytest.raises(FailedPrecondition, match="features 0x2"):
        await Pool.import_(SimDisk.like(disk, image), disk="sim:///p0")


@pytest.mark.parametrize("newer", [0, 1], ids=["copy A set", "copy B set"])
async def test_superblocks_that_differ_only_in_features_are_a_crash_between_two_writes(
    newer: int,
) -> None:
    disk, pool, lvol = await make_pool()
    await hold(lvol, HOST_A, 0xA)
    await pool.export()
    image = disk.image_after_process_crash()
    old_sb = decode_superblock(superblocks(image)[0], where="t")
    assert old_sb is not None
    older = encode_superblock(dataclasses.replace(old_sb, incompat_features=0))
    bpp = PAGE_SIZE // 512
    stale = 1 - newer
    for i in range(bpp):
        image[stale * bpp + i] = older[i * 512 : (i + 1) * 512]
    again, lvol = await imported(disk, image)
    assert again.incompat_features == INCOMPAT_RESERVATIONS
    assert lvol.reservations is not None
    assert lvol.reservations.state.holder == HOST_A
    await again.export()


async def test_superblocks_that_differ_otherwise_are_still_corrupt() -> None:
    disk, pool, _lvol = await make_pool()
    await pool.export()
    image = disk.image_after_process_crash()
    sb = decode_superblock(superblocks(image)[0], where="t")
    assert sb is not None
    other = encode_superblock(
        dataclasses.replace(sb, incompat_features=INCOMPAT_RESERVATIONS, name="other")
    )
    for i in range(PAGE_SIZE // 512):
        image[PAGE_SIZE // 512 + i] = other[i * 512 : (i + 1) * 512]
    with pytest.raises(CorruptMetadata, match="disagree"):
        await Pool.import_(SimDisk.like(disk, image), disk="sim:///p0")
