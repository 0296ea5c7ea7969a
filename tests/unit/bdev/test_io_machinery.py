"""The machinery under the file drivers: the worker-thread pool, the io_uring ring, and
how OSErrors become DeviceErrors."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from mayastor.bdev import uring_unavailable_reason
from mayastor.bdev._backing import device_error
from mayastor.bdev._buffers import aligned_buffer
from mayastor.bdev._io_uring import IORING_OP_READ, IORING_OP_WRITE, IoUring
from mayastor.bdev._thread_pool import IoThreadPool
from mayastor.errors import (
    InternalDeviceError,
    InvalidArgument,
    NoSpace,
    UnrecoveredReadError,
    WriteFault,
)

URING_UNAVAILABLE = uring_unavailable_reason()
needs_uring = pytest.mark.skipif(URING_UNAVAILABLE is not None, reason=str(URING_UNAVAILABLE))


# --------------------------------------------------------------------------- thread pool


@pytest.fixture
async def pool() -> AsyncIterator[IoThreadPool]:
    p = IoThreadPool(4, "test-pool")
    yield p
    await p.close()


async def test_pool_runs_as_many_calls_at_once_as_it_has_threads(pool: IoThreadPool) -> None:
    barrier = threading.Barrier(4, timeout=30)  # passes only when 4 calls run together
    results = await asyncio.gather(*(pool.submit(barrier.wait) for _ in range(4)))
    assert sorted(results) == [0, 1, 2, 3]


async def test_pool_call_result_and_exception_reach_the_caller(pool: IoThreadPool) -> None:
    assert await pool.submit(pow, 2, 10) == 1024
    with pytest.raises(OSError) as info:
        await pool.submit(os.fstat, -1)
    assert info.value.errno == errno.EBADF


async def test_pool_close_waits_for_a_call_whose_caller_was_cancelled() -> None:
    pool = IoThreadPool(2, "test-pool")
    release, finished = threading.Event(), threading.Event()

    def slow() -> None:
        release.wait(30)
        finished.set()

    call = pool.submit(slow)
    call.cancel()
    closing = asyncio.ensure_future(pool.close())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not closing.done()
    release.set()
    await closing
    assert finished.is_set()


async def test_pool_stops_its_threads_at_close() -> None:
    pool = IoThreadPool(3, "stopping-pool")
    await asyncio.gather(*(pool.submit(threading.get_ident) for _ in range(6)))
    await pool.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("stopping-pool")]


async def test_pool_refuses_work_after_close() -> None:
    pool = IoThreadPool(1, "closed-pool")
    await pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(int)


def test_pool_of_no_threads_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="at least one thread"):
        IoThreadPool(0, "empty")


# --------------------------------------------------------------------------- io_uring


@pytest.fixture
def pipes() -> Iterator[list[tuple[int, int]]]:
    made = [os.pipe() for _ in range(6)]
    yield made
    for r, w in made:
        os.close(r)
        os.close(w)


async def _read_pipe(ring: IoUring, fd: int, order: list[int], index: int) -> bytes:
    buf, address = aligned_buffer(16)
    count = await ring.submit(IORING_OP_READ, fd, 0, address, 16, 0, buf)
    order.append(index)
    return bytes(buf[:count])


@needs_uring
async def test_ring_keeps_many_operations_in_flight_and_completes_them_out_of_order(
    pipes: list[tuple[int, int]],
) -> None:
    ring = IoUring(8)
    order: list[int] = []
    reads = [asyncio.ensure_future(_read_pipe(ring, r, order, i)) for i, (r, _) in enumerate(pipes)]
    await asyncio.sleep(0)
    for i, (_, w) in reversed(list(enumerate(pipes))):
        os.write(w, b"pipe %d" % i)
        while len(order) < len(pipes) - i:  # each read completes before the next write
            await asyncio.sleep(0.001)
    assert [await r for r in reads] == [b"pipe %d" % i for i in range(len(pipes))]
    assert order == list(reversed(range(len(pipes))))
    await ring.close()


@needs_uring
async def test_ring_runs_more_operations_than_it_has_entries(
    pipes: list[tuple[int, int]],
) -> None:
    ring = IoUring(2)
    order: list[int] = []
    reads = [asyncio.ensure_future(_read_pipe(ring, r, order, i)) for i, (r, _) in enumerate(pipes)]
    for i, (_, w) in enumerate(pipes):
        os.write(w, b"%d" % i)
    assert await asyncio.gather(*reads) == [b"%d" % i for i in range(len(pipes))]
    await ring.close()


@needs_uring
async def test_ring_failure_raises_the_kernel_errno(pipes: list[tuple[int, int]]) -> None:
    ring = IoUring(4)
    read_end = pipes[0][0]
    data = b"x" * 8
    try:
        with pytest.raises(OSError) as info:
            await ring.submit(IORING_OP_WRITE, read_end, 0, 0, len(data), 0, data)
        assert info.value.errno == errno.EBADF
    finally:
        await ring.close()


@needs_uring
async def test_ring_close_waits_for_an_operation_whose_caller_was_cancelled(
    pipes: list[tuple[int, int]],
) -> None:
    ring = IoUring(4)
    read_end, write_end = pipes[0]
    buf, address = aligned_buffer(4)
    read = asyncio.ensure_future(ring.submit(IORING_OP_READ, read_end, 0, address, 4, 0, buf))
    await asyncio.sleep(0)
    read.cancel()
    closing = asyncio.ensure_future(ring.close())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not closing.done()
    os.write(write_end, b"late")
    await closing
    assert bytes(buf) == b"late"  # the kernel wrote into memory that was kept alive


@needs_uring
async def test_ring_refuses_operations_after_close() -> None:
    ring = IoUring(2)
    await ring.close()
    with pytest.raises(OSError, match="closed") as info:
        await ring.submit(IORING_OP_READ, 0, 0, 0, 0, 0, None)
    assert info.value.errno == errno.ESHUTDOWN


class _Completions:
    """Results of operations submitted by callback, in the order they came."""

    def __init__(self) -> None:
        self.order: list[int] = []
        self.results: dict[int, int] = {}
        self.changed = asyncio.Event()

    def __call__(self, ctx: int, result: int) -> None:
        assert ctx not in self.results, f"operation {ctx} completed twice"
        self.order.append(ctx)
        self.results[ctx] = result
        self.changed.set()

    async def wait_for(self, count: int) -> None:
        while len(self.results) < count:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 10)


@needs_uring
async def test_ring_calls_back_each_operation_once_in_completion_order(
    pipes: list[tuple[int, int]],
) -> None:
    ring = IoUring(8)
    done = _Completions()
    bufs = [aligned_buffer(16) for _ in pipes]
    for i, ((r, _), (buf, address)) in enumerate(zip(pipes, bufs, strict=True)):
        ring.submit_cb(IORING_OP_READ, r, 0, address, 16, 0, buf, done, i)
    assert done.order == []  # never called back before submit_cb returns
    for i, (_, w) in reversed(list(enumerate(pipes))):
        os.write(w, b"pipe %d" % i)
        await done.wait_for(len(pipes) - i)
    assert done.order == list(reversed(range(len(pipes))))
    assert [bytes(buf[: done.results[i]]) for i, (buf, _) in enumerate(bufs)] == [
        b"pipe %d" % i for i in range(len(pipes))
    ]
    await ring.close()


@needs_uring
async def test_ring_handles_a_completion_in_the_loop_turn_that_submitted_it(
    pipes: list[tuple[int, int]],
) -> None:
    ring = IoUring(4)
    done = _Completions()
    (r, w), (buf, address) = pipes[0], aligned_buffer(16)
    os.write(w, b"ready")  # the kernel completes the read as it is submitted
    ring.submit_cb(IORING_OP_READ, r, 0, address, 16, 0, buf, done, 0)
    await asyncio.sleep(0)  # one loop turn: the submission runs before this resumes
    assert done.results == {0: 5}
    await ring.close()


@needs_uring
async def test_ring_holds_callback_operations_beyond_its_entries_in_a_backlog(
    pipes: list[tuple[int, int]],
) -> None:
    ring = IoUring(2)
    done = _Completions()
    bufs = [aligned_buffer(16) for _ in pipes]
    for i, ((r, _), (buf, address)) in enumerate(zip(pipes, bufs, strict=True)):
        ring.submit_cb(IORING_OP_READ, r, 0, address, 16, 0, buf, done, i)
    for i, (_, w) in enumerate(pipes):
        os.write(w, b"%d" % i)
    await done.wait_for(len(pipes))
    assert [bytes(buf[: done.results[i]]) for i, (buf, _) in enumerate(bufs)] == [
        b"%d" % i for i in range(len(pipes))
    ]
    await ring.close()


@needs_uring
async def test_ring_reports_a_failed_callback_operation_as_minus_errno(
    pipes: list[tuple[int, int]],
) -> None:
    ring = IoUring(4)
    done = _Completions()
    data = b"x" * 8
    ring.submit_cb(IORING_OP_WRITE, pipes[0][0], 0, 0, len(data), 0, data, done, 0)
    await done.wait_for(1)
    assert done.results == {0: -errno.EBADF}
    await ring.close()


@needs_uring
async def test_ring_close_ends_the_backlog_with_eshutdown_and_waits_for_the_kernel(
    pipes: list[tuple[int, int]],
) -> None:
    ring = IoUring(1)
    done = _Completions()
    (first, first_address), (second, second_address) = aligned_buffer(4), aligned_buffer(4)
    ring.submit_cb(IORING_OP_READ, pipes[0][0], 0, first_address, 4, 0, first, done, 0)
    ring.submit_cb(IORING_OP_READ, pipes[1][0], 0, second_address, 4, 0, second, done, 1)
    await asyncio.sleep(0)
    closing = asyncio.ensure_future(ring.close())
    await done.wait_for(1)
    assert done.results == {1: -errno.ESHUTDOWN}  # never given to the kernel
    assert not closing.done()
    os.write(pipes[0][1], b"late")
    await closing
    assert done.results == {1: -errno.ESHUTDOWN, 0: 4}
    assert bytes(first) == b"late"


@needs_uring
async def test_ring_calls_back_with_eshutdown_after_close() -> None:
    ring = IoUring(2)
    await ring.close()
    done = _Completions()
    ring.submit_cb(IORING_OP_READ, 0, 0, 0, 0, 0, None, done, 0)
    assert done.results == {}
    await done.wait_for(1)
    assert done.results == {0: -errno.ESHUTDOWN}


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("code", "op", "expected"),
    [
        (errno.EIO, "read", UnrecoveredReadError),
        (errno.EIO, "write", WriteFault),
        (errno.EIO, "flush", WriteFault),
        (errno.ENOSPC, "write", NoSpace),
        (errno.ENOSPC, "write_zeroes", NoSpace),
        (errno.EDQUOT, "write", NoSpace),
        (errno.EBADF, "read", InternalDeviceError),
        (errno.EINVAL, "write", InternalDeviceError),
    ],
)
def test_os_errors_become_the_device_error_of_their_kind(
    code: int, op: str, expected: type
) -> None:
    error = device_error(OSError(code, os.strerror(code)), op, "disk0", lba=8, nblocks=4)
    assert type(error) is expected
    assert (error.device, error.lba, error.nblocks) == ("disk0", 8, 4)
    assert os.strerror(code) in str(error)
    assert "disk0" in str(error)
