"""Fixtures of the nexus tests: a shelf of disks to open children on, and a store.

A test module can run its tests through both ways of doing I/O on a nexus by
overriding `io_api` with ``params=IO_APIS``: "submitted" makes the nexus's `read` and
`write` go through `submit_read` / `submit_write` (the target's way), awaiting only
the callback.
"""

from __future__ import annotations

import asyncio
import uuid as uuid_mod
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from mayastor.bdev import Buffer
from mayastor.errors import DeviceError
from mayastor.nexus import Nexus
from tests.unit.nexus.faulty import RecordingStore, Shelf

MakeNexus = Callable[..., Awaitable[Nexus]]
IO_APIS = ["awaited", "submitted"]


@pytest.fixture
def io_api() -> str:
    """How the tests do I/O on a nexus; a module may override it with both `IO_APIS`."""
    return "awaited"


def _resolve(future: asyncio.Future[Any], data: Buffer | None, error: DeviceError | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(data)


def submit_io(nexus: Nexus) -> None:
    """Make `nexus.read` and `nexus.write` go through its submit API."""

    async def read(lba: int, nblocks: int) -> Buffer:
        future: asyncio.Future[Buffer] = asyncio.get_running_loop().create_future()
        nexus.submit_read(lba, nblocks, _resolve, future)
        return await future

    async def write(lba: int, data: Buffer) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        nexus.submit_write(lba, data, _resolve, future)
        await future

    nexus.read = read  # type: ignore[method-assign]
    nexus.write = write  # type: ignore[method-assign]


@pytest.fixture
async def shelf() -> AsyncIterator[Shelf]:
    found = Shelf()
    yield found
    await found.close()


@pytest.fixture
def store() -> RecordingStore:
    return RecordingStore()


@pytest.fixture
async def make_nexus(shelf: Shelf, store: RecordingStore, io_api: str) -> AsyncIterator[MakeNexus]:
    """Create nexuses over ``malloc:///c<i>`` children (2 MiB each); destroyed at the end."""
    made: list[Nexus] = []

    async def make(children: int | list[str] = 2, size: int = 2 << 20, **options: Any) -> Nexus:
        uris = (
            [f"malloc:///c{i}?size_mb=2" for i in range(children)]
            if isinstance(children, int)
            else children
        )
        options.setdefault("uuid", uuid_mod.uuid4())
        nexus = await Nexus.create(
            "nexus0",
            options.pop("uuid"),
            size,
            uris,
            opener=shelf,
            store=store,
            **options,
        )
        made.append(nexus)
        if io_api == "submitted":
            submit_io(nexus)
        return nexus

    yield make
    for handles in shelf.handles.values():  # a failed test may have left I/O held
        for handle in handles:
            for fault in handle.faults:
                fault.release()
    for nexus in made:
        await nexus.close()
