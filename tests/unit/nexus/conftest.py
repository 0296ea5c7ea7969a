"""Fixtures of the nexus tests: a shelf of disks to open children on, and a store."""

from __future__ import annotations

import uuid as uuid_mod
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from mayastor.nexus import Nexus
from tests.unit.nexus.faulty import RecordingStore, Shelf

MakeNexus = Callable[..., Awaitable[Nexus]]


@pytest.fixture
async def shelf() -> AsyncIterator[Shelf]:
    found = Shelf()
    yield found
    await found.close()


@pytest.fixture
def store() -> RecordingStore:
    return RecordingStore()


@pytest.fixture
async def make_nexus(shelf: Shelf, store: RecordingStore) -> AsyncIterator[MakeNexus]:
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
        return nexus

    yield make
    for handles in shelf.handles.values():  # a failed test may have left I/O held
        for handle in handles:
            for fault in handle.faults:
                fault.release()
    for nexus in made:
        await nexus.close()
