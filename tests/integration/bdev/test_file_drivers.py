"""What the aio and uring drivers do at the edges, each test run for both drivers.

Refusals (missing path, directory, tiny file, a disk already claimed), the O_DIRECT
fallback, block size and capacity rules, growing, giving space back, a full file
system, and opening through URIs.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from mayastor.bdev import (
    AioDevice,
    Buffer,
    DeviceOpener,
    UringDevice,
    uring_unavailable_reason,
)
from mayastor.bdev._file_device import FileBackedDevice
from mayastor.errors import (
    DeviceError,
    FailedPrecondition,
    InternalDeviceError,
    InvalidArgument,
    NoSpace,
    NotFound,
)
from tests.conformance.block_device import pattern
from tests.integration.bdev.conftest import MiB, run, sparse_file

URING_UNAVAILABLE = uring_unavailable_reason()

Open = Callable[..., Awaitable[FileBackedDevice]]
LoopFactory = Callable[..., tuple[str, Path]]


@pytest.fixture(
    params=[
        "aio",
        pytest.param(
            "uring",
            marks=pytest.mark.skipif(URING_UNAVAILABLE is not None, reason=str(URING_UNAVAILABLE)),
        ),
    ]
)
def open_device(request: pytest.FixtureRequest) -> Open:
    """Opens a file device with the driver under test; the test closes it."""
    cls: Any = AioDevice if request.param == "aio" else UringDevice
    opener: Open = cls.open
    return opener


def file_bytes(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(length)


async def fill(device: FileBackedDevice, chunk: bytes) -> None:
    step = len(chunk) // device.block_size
    for lba in range(0, device.num_blocks - step + 1, step):
        await device.write(lba, chunk)


# --------------------------------------------------------------------------- refusals


async def test_missing_path_is_refused_as_not_found_naming_it(
    open_device: Open, tmp_path: Path
) -> None:
    path = str(tmp_path / "absent.img")
    with pytest.raises(NotFound, match=path):
        await open_device(path)


async def test_directory_is_refused(open_device: Open, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=f"{tmp_path}: is a directory"):
        await open_device(str(tmp_path))


async def test_character_device_is_refused(open_device: Open) -> None:
    with pytest.raises(InvalidArgument, match="neither a regular file nor a block device"):
        await open_device("/dev/null")


async def test_file_smaller_than_one_block_is_refused(open_device: Open, tmp_path: Path) -> None:
    path = sparse_file(tmp_path / "tiny.img", 511)
    with pytest.raises(InvalidArgument, match="smaller than one block of 512 bytes"):
        await open_device(str(path))
    path = sparse_file(tmp_path / "small.img", 4000)
    with pytest.raises(InvalidArgument, match="smaller than one block of 4096 bytes"):
        await open_device(str(path), block_size=4096)


async def test_refused_open_leaves_the_file_free_for_the_next(
    open_device: Open, tmp_path: Path
) -> None:
    path = sparse_file(tmp_path / "small.img", 4000)
    with pytest.raises(InvalidArgument):
        await open_device(str(path), block_size=4096)
    device = await open_device(str(path))
    await device.close()


async def test_a_file_opened_twice_is_refused_until_closed(
    open_device: Open, tmp_path: Path
) -> None:
    path = str(sparse_file(tmp_path / "disk.img", MiB))
    first = await open_device(path)
    try:
        with pytest.raises(FailedPrecondition, match="in use"):
            await open_device(path)
        with pytest.raises(FailedPrecondition, match="in use"):
            await AioDevice.open(path)
    finally:
        await first.close()
    again = await open_device(path)
    await again.close()


@pytest.mark.needs_root
async def test_a_block_device_opened_twice_is_refused_until_closed(
    open_device: Open, attach_loop: LoopFactory
) -> None:
    loop_dev, _ = attach_loop()
    first = await open_device(loop_dev)
    try:
        with pytest.raises(FailedPrecondition, match="block device is in use"):
            await open_device(loop_dev)
        with pytest.raises(FailedPrecondition, match="block device is in use"):
            await AioDevice.open(loop_dev)
    finally:
        await first.close()
    again = await open_device(loop_dev)
    await again.close()


# --------------------------------------------------------------------------- geometry


async def test_file_has_512_byte_blocks_unless_4096_are_asked_for(
    open_device: Open, tmp_path: Path
) -> None:
    path = str(sparse_file(tmp_path / "disk.img", MiB))
    device = await open_device(path)
    assert (device.block_size, device.num_blocks) == (512, 2048)
    await device.close()
    device = await open_device(path, block_size=4096)
    assert (device.block_size, device.num_blocks) == (4096, 256)
    await device.close()


async def test_capacity_is_rounded_down_to_whole_blocks(open_device: Open, tmp_path: Path) -> None:
    path = sparse_file(tmp_path / "disk.img", MiB + 4095)
    device = await open_device(str(path), block_size=4096)
    try:
        assert device.num_blocks == 256
    finally:
        await device.close()


@pytest.mark.needs_root
async def test_block_device_takes_its_logical_block_size(
    open_device: Open, attach_loop: LoopFactory
) -> None:
    loop512, _ = attach_loop()
    loop4k, _ = attach_loop(sector_size=4096)
    small = await open_device(loop512)
    large = await open_device(loop4k)
    try:
        assert (small.block_size, small.num_blocks) == (512, 8192)
        assert (large.block_size, large.num_blocks) == (4096, 1024)
    finally:
        await small.close()
        await large.close()


@pytest.mark.needs_root
async def test_block_size_may_be_raised_above_the_device_logical_block_size(
    open_device: Open, attach_loop: LoopFactory
) -> None:
    loop_dev, _ = attach_loop()
    device = await open_device(loop_dev, block_size=4096)
    try:
        assert (device.block_size, device.num_blocks) == (4096, 1024)
    finally:
        await device.close()


@pytest.mark.needs_root
async def test_block_size_below_the_device_logical_block_size_is_refused(
    open_device: Open, attach_loop: LoopFactory
) -> None:
    loop_dev, _ = attach_loop(sector_size=4096)
    with pytest.raises(InvalidArgument, match="smaller than the device's logical block size"):
        await open_device(loop_dev, block_size=512)
    device = await open_device(loop_dev)  # the refusal released the device
    await device.close()


# --------------------------------------------------------------------------- O_DIRECT


async def test_file_on_a_local_file_system_uses_o_direct(open_device: Open, tmp_path: Path) -> None:
    device = await open_device(str(sparse_file(tmp_path / "disk.img", MiB)))
    try:
        assert device.direct
        assert os.O_DIRECT & fcntl.fcntl(device.backing.fd, fcntl.F_GETFL)
    finally:
        await device.close()


@pytest.mark.needs_root
async def test_file_system_without_o_direct_gets_buffered_io_said_once_in_the_log(
    open_device: Open, ramfs_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = sparse_file(ramfs_dir / "disk.img", MiB)
    with caplog.at_level(logging.WARNING, logger="mayastor.bdev"):
        device = await open_device(str(path))
        try:
            data = pattern(64 * 512, seed=3)
            for lba in range(0, 1024, 64):
                await device.write(lba, data)
                assert bytes(await device.read(lba, 64)) == data
            await device.flush()
        finally:
            await device.close()
    assert not device.direct
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1, notes
    assert "buffered I/O" in notes[0]
    assert str(path) in notes[0]
    assert file_bytes(path, 0, len(data)) == data


async def test_file_on_tmpfs_works(open_device: Open, shm_dir: Path) -> None:
    path = sparse_file(shm_dir / "disk.img", MiB)
    device = await open_device(str(path))
    try:
        data = pattern(8 * 512, seed=4)
        await device.write(16, data)
        await device.flush()
        assert bytes(await device.read(16, 8)) == data
    finally:
        await device.close()
    assert file_bytes(path, 16 * 512, len(data)) == data


async def test_writes_from_unaligned_and_read_only_buffers_land(
    open_device: Open, tmp_path: Path
) -> None:
    device = await open_device(str(sparse_file(tmp_path / "disk.img", MiB)), block_size=4096)
    try:
        data = pattern(2 * 4096, seed=5)
        odd = bytearray(b"\xee" * 7 + data)
        buffers: list[tuple[int, Buffer]] = [
            (0, data),
            (2, memoryview(data)),
            (4, memoryview(odd)[7:]),
            (6, bytearray(data)),
        ]
        for lba, buf in buffers:
            await device.write(lba, buf)
            assert bytes(await device.read(lba, 2)) == data, lba
    finally:
        await device.close()


# --------------------------------------------------------------------------- size, space


async def test_refresh_size_sees_a_grown_file(open_device: Open, tmp_path: Path) -> None:
    path = sparse_file(tmp_path / "disk.img", MiB)
    device = await open_device(str(path))
    try:
        assert device.num_blocks == 2048
        os.truncate(path, 3 * MiB)
        assert device.num_blocks == 2048
        assert await device.refresh_size() == 6144
        assert device.num_blocks == 6144
        await device.write(6143, pattern(512, seed=6))
        assert bytes(await device.read(6143, 1)) == pattern(512, seed=6)
    finally:
        await device.close()


@pytest.mark.needs_root
async def test_refresh_size_sees_a_grown_loop_device(
    open_device: Open, attach_loop: LoopFactory
) -> None:
    loop_dev, backing = attach_loop(4 * MiB)
    device = await open_device(loop_dev)
    try:
        os.truncate(backing, 8 * MiB)
        run("losetup", "--set-capacity", loop_dev)
        assert await device.refresh_size() == 16384
    finally:
        await device.close()


async def test_unmap_gives_the_space_back_to_the_file(open_device: Open, tmp_path: Path) -> None:
    path = sparse_file(tmp_path / "disk.img", 4 * MiB)
    device = await open_device(str(path))
    try:
        await device.write(0, pattern(2 * MiB, seed=7))
        await device.flush()
        full = os.stat(path).st_blocks
        await device.unmap(0, 4096)
        assert os.stat(path).st_blocks <= full - (2 * MiB // 512)
        assert bytes(await device.read(0, 4096)) == bytes(2 * MiB)
    finally:
        await device.close()


@pytest.mark.needs_root
async def test_unmap_on_a_loop_device_gives_space_back_to_its_backing_file(
    open_device: Open, attach_loop: LoopFactory
) -> None:
    loop_dev, backing = attach_loop(4 * MiB)
    device = await open_device(loop_dev)
    try:
        await device.write(0, pattern(2 * MiB, seed=8))
        await device.flush()
        full = os.stat(backing).st_blocks
        await device.unmap(0, 4096)
        assert os.stat(backing).st_blocks < full
        assert bytes(await device.read(0, 4096)) == bytes(2 * MiB)
    finally:
        await device.close()


@pytest.mark.needs_root
async def test_write_on_a_full_file_system_is_no_space(
    open_device: Open, small_tmpfs: Path
) -> None:
    path = sparse_file(small_tmpfs / "disk.img", 4 * MiB)
    device = await open_device(str(path), block_size=4096)
    chunk = pattern(256 * 1024, seed=9)
    try:
        with pytest.raises(NoSpace) as info:
            await fill(device, chunk)
        assert info.value.lba is not None
        assert info.value.device == str(path)
        assert not info.value.retryable
    finally:
        await device.close()


async def test_read_past_the_end_of_a_file_that_shrank_is_an_error(
    open_device: Open, tmp_path: Path
) -> None:
    path = sparse_file(tmp_path / "disk.img", MiB)
    device = await open_device(str(path))
    try:
        os.truncate(path, MiB // 2)
        with pytest.raises(InternalDeviceError, match="ends before the range"):
            await device.read(device.num_blocks - 1, 1)
    finally:
        await device.close()


async def test_a_submitted_read_across_the_end_of_a_file_that_shrank_is_an_error(
    open_device: Open, tmp_path: Path
) -> None:
    path = sparse_file(tmp_path / "disk.img", MiB)
    device = await open_device(str(path))
    try:
        os.truncate(path, MiB // 2)
        ended: asyncio.Future[DeviceError | None] = asyncio.get_running_loop().create_future()
        middle = device.num_blocks // 2 - 4
        device.submit_read(middle, 8, lambda _c, _d, error: ended.set_result(error), None)
        error = await ended
        assert isinstance(error, InternalDeviceError)
        assert "ends before the range" in str(error)
        assert (error.lba, error.nblocks) == (middle, 8)
    finally:
        await device.close()


# --------------------------------------------------------------------------- concurrency


async def test_io_is_not_done_within_the_step_that_submitted_it(
    open_device: Open, tmp_path: Path
) -> None:
    device = await open_device(str(sparse_file(tmp_path / "disk.img", 4 * MiB)))
    try:
        writes = [
            asyncio.ensure_future(device.write(256 * i, pattern(128 * 1024, seed=i)))
            for i in range(8)
        ]
        await asyncio.sleep(0)  # every write has been submitted, none can have completed
        assert not any(w.done() for w in writes)
        await asyncio.gather(*writes)
        for i in range(8):
            assert bytes(await device.read(256 * i, 256)) == pattern(128 * 1024, seed=i)
    finally:
        await device.close()


# --------------------------------------------------------------------------- via URIs


async def test_opening_by_uri_names_by_path_and_keeps_uri_and_uuid(tmp_path: Path) -> None:
    path = str(sparse_file(tmp_path / "disk.img", MiB))
    wanted = uuid.uuid4()
    schemes = ["aio"] + (["uring"] if URING_UNAVAILABLE is None else [])
    for scheme in schemes:
        uri = f"{scheme}://{path}?blk_size=4096&uuid={wanted}"
        device = await DeviceOpener().open(uri)
        try:
            assert (device.name, device.uri, device.uuid) == (path, uri, wanted)
            assert (device.driver, device.block_size) == (scheme, 4096)
        finally:
            await device.close()


async def test_bare_path_opens_with_uring_where_it_works_keeping_the_uuid_aio_gave_it(
    tmp_path: Path,
) -> None:
    path = str(sparse_file(tmp_path / "disk.img", MiB))
    opener = DeviceOpener(aio_threads=4)
    first = await opener.open(path)
    await first.close()
    second = await opener.open(path)
    await second.close()
    by_aio = await opener.open(f"aio://{path}")
    await by_aio.close()
    assert isinstance(first, UringDevice if URING_UNAVAILABLE is None else AioDevice)
    assert (first.name, first.uri, first.block_size) == (path, path, 512)
    assert first.uuid == second.uuid == by_aio.uuid
    assert opener.uring_refused == URING_UNAVAILABLE
