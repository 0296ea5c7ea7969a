"""How the file drivers take and hand out buffers: a read-only view written (what the
NVMe/TCP target passes on), reads kept while more I/O goes on."""

from __future__ import annotations

import asyncio
import functools
import os
from pathlib import Path
from typing import Any

import pytest

from mayastor.bdev import AioDevice, UringDevice, uring_unavailable_reason
from tests.integration.bdev.conftest import MiB, sparse_file

URING_UNAVAILABLE = uring_unavailable_reason()


@pytest.fixture(
    params=[
        "aio",
        pytest.param(
            "uring",
            marks=pytest.mark.skipif(URING_UNAVAILABLE is not None, reason=str(URING_UNAVAILABLE)),
        ),
    ]
)
def driver(request: pytest.FixtureRequest) -> Any:
    return AioDevice if request.param == "aio" else UringDevice


async def test_a_read_only_view_at_an_odd_offset_is_written_and_reads_back(
    driver: Any, tmp_path: Path
) -> None:
    device = await driver.open(str(sparse_file(tmp_path / "d.img", 4 * MiB)), block_size=4096)
    try:
        received = b"header" + os.urandom(8192) + b"tail"
        view = memoryview(received)[6:8198]
        assert view.readonly
        await device.write(3, view)
        assert bytes(await device.read(3, 2)) == received[6:8198]
    finally:
        await device.close()


@pytest.mark.parametrize("by_callback", [False, True], ids=["awaited", "by callback"])
async def test_reads_kept_while_many_more_run_keep_their_data(
    driver: Any, tmp_path: Path, by_callback: bool
) -> None:
    device = await driver.open(str(sparse_file(tmp_path / "d.img", 4 * MiB)), block_size=512)
    write, read = device.write, device.read
    if by_callback:
        write = functools.partial(_submitted, device.submit_write)
        read = functools.partial(_submitted, device.submit_read)
    try:
        blocks = [os.urandom(4096) for _ in range(8)]
        for n, block in enumerate(blocks):
            await write(n * 8, block)
        kept = [await read(n * 8, 8) for n in range(8)]
        for _ in range(200):  # several slabs' worth of small reads and writes
            await write(100, memoryview(os.urandom(4096)))
            assert len(await read(100, 8)) == 4096
        assert [bytes(k) for k in kept] == blocks
    finally:
        await device.close()


async def test_large_reads_kept_while_more_large_io_runs_keep_their_data(
    driver: Any, tmp_path: Path
) -> None:
    device = await driver.open(str(sparse_file(tmp_path / "d.img", 8 * MiB)), block_size=4096)
    try:
        chunks = [os.urandom(128 << 10) for _ in range(4)]
        for n, chunk in enumerate(chunks):
            await device.write(n * 32, chunk)
        kept = [await device.read(n * 32, 32) for n in range(4)]
        tails = [k[-4096:] for k in kept[2:]]  # only a slice of these is kept
        del kept[2:]
        for _ in range(40):  # reuse every large buffer that nothing holds
            await device.write(1024, memoryview(os.urandom(128 << 10)))
            assert len(await device.read(1024, 32)) == 128 << 10
        assert [bytes(k) for k in kept] == chunks[:2]
        assert [bytes(t) for t in tails] == [c[-4096:] for c in chunks[2:]]
    finally:
        await device.close()


# ------------------------------------------------------------------ by callback


async def _submitted(start: Any, *args: Any) -> Any:
    """Run one `submit_read` / `submit_write` and return its data, or raise its error."""
    future = asyncio.get_running_loop().create_future()

    def done(ctx: Any, data: Any, error: Any) -> None:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(data)

    start(*args, done, None)
    return await future


@pytest.mark.parametrize(
    "shape",
    ["bytes", "read-only view at an odd offset", "bytearray", "view of 4-byte items"],
)
async def test_a_write_submitted_by_callback_lands_whatever_the_buffer(
    driver: Any, tmp_path: Path, shape: str
) -> None:
    device = await driver.open(str(sparse_file(tmp_path / "d.img", 4 * MiB)), block_size=512)
    try:
        payload = os.urandom(8192)
        data: Any = {
            "bytes": payload,
            "read-only view at an odd offset": memoryview(b"h" + payload)[1:],
            "bytearray": bytearray(payload),
            "view of 4-byte items": memoryview(bytearray(payload)).cast("I"),
        }[shape]
        assert await _submitted(device.submit_write, 7, data) is None
        assert bytes(await _submitted(device.submit_read, 7, 16)) == payload
    finally:
        await device.close()
