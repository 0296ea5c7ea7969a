"""A gRPC call cancelled under the etcd store (its channel closed by another call) is a
failed call, never the cancellation of the task that made it: a core agent asking who
holds its lease must get an answer or StoreUnavailable, not stop with CancelledError."""

from __future__ import annotations

import asyncio

import pytest

from mayastor.control.store.etcd import _uncancelled


async def _cancelled_by_grpc() -> bytes:
    raise asyncio.CancelledError  # what grpc.aio raises in a call of a closed channel


async def test_a_call_that_grpc_cancelled_fails_with_an_os_error() -> None:
    with pytest.raises(OSError, match="connection was closed"):
        await _uncancelled(_cancelled_by_grpc())


async def test_the_task_itself_cancelled_stays_cancelled() -> None:
    started = asyncio.Event()

    async def slow() -> bytes:
        started.set()
        await asyncio.sleep(60)
        return b""

    task = asyncio.ensure_future(_uncancelled(slow()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_deadline_around_the_call_still_times_out() -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await _uncancelled(asyncio.sleep(60))
