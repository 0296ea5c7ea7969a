"""The nexus info of a replaced nexus, marked superseded by the core agent, refuses the
old nexus's writes: in etcd, which io-engines write directly (``--ps-endpoint``).

(Through the core agent's gRPC, with the embedded store, the partition tests show it
on the whole cluster.)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest

from mayastor.api.store_keys import StoreKeys
from mayastor.cluster.processes import EtcdProcess
from mayastor.control.cluster import is_superseded, mark_superseded
from mayastor.control.store import EtcdStore
from mayastor.engine.cluster_nexus_info import EtcdNexusInfoStore
from mayastor.errors import Superseded
from mayastor.nexus import ChildInfo, NexusInfo

KEYS = StoreKeys("fence-test")
OLD, NEW = uuid.uuid4(), uuid.uuid4()
CHILDREN = (uuid.uuid4(), uuid.uuid4())


def info(*healthy: bool) -> NexusInfo:
    return NexusInfo(
        clean_shutdown=False,
        children=tuple(ChildInfo(u, h) for u, h in zip(CHILDREN, healthy, strict=True)),
    )


@pytest.fixture
async def stores(etcd: EtcdProcess) -> AsyncIterator[tuple[EtcdStore, EtcdNexusInfoStore]]:
    core = EtcdStore(etcd.url)
    engine = EtcdNexusInfoStore(etcd.url, lambda: KEYS, retry_for=1.0)
    yield core, engine
    await engine.close()
    await core.close()


async def test_an_old_nexus_cannot_write_its_info_once_the_core_marked_it_superseded(
    stores: tuple[EtcdStore, EtcdNexusInfoStore],
) -> None:
    core, engine = stores
    await engine.put(OLD, info(True, True))
    await engine.put(OLD, info(True, True))  # its own writes follow one another
    await mark_superseded(core, KEYS.nexus_info(OLD), NEW)
    with pytest.raises(Superseded):
        await engine.put(OLD, info(True, False))  # retiring a child it lost
    stored = await core.get(KEYS.nexus_info(OLD))
    assert stored is not None
    assert is_superseded(stored.value)
    doc = json.loads(stored.value)
    assert doc["superseded_by"] == str(NEW)
    assert [c["healthy"] for c in doc["children"]] == [True, True]  # what it said before


async def test_an_io_engine_that_never_wrote_the_record_is_refused_by_the_mark(
    stores: tuple[EtcdStore, EtcdNexusInfoStore],
) -> None:
    core, engine = stores
    await mark_superseded(core, KEYS.nexus_info(OLD), NEW)
    with pytest.raises(Superseded):
        await engine.put(OLD, info(True, True))
    with pytest.raises(Superseded):
        await engine.get(OLD)


async def test_a_record_removed_under_a_nexus_refuses_its_next_write(
    stores: tuple[EtcdStore, EtcdNexusInfoStore],
) -> None:
    core, engine = stores
    await engine.put(OLD, info(True, True))
    await core.delete(KEYS.nexus_info(OLD))
    with pytest.raises(Superseded):
        await engine.put(OLD, info(True, False))
    assert await core.get(KEYS.nexus_info(OLD)) is None


async def test_a_record_written_before_by_another_io_engine_is_taken_over(
    stores: tuple[EtcdStore, EtcdNexusInfoStore],
) -> None:
    core, engine = stores
    await core.put(KEYS.nexus_info(OLD), info(True, False).to_json())
    await engine.put(OLD, info(True, True))
    assert await engine.get(OLD) == info(True, True)


async def test_a_nexus_made_again_after_its_record_was_removed_writes_a_new_one(
    stores: tuple[EtcdStore, EtcdNexusInfoStore],
) -> None:
    core, engine = stores
    await engine.put(OLD, info(True, True))
    await core.delete(KEYS.nexus_info(OLD))
    assert await engine.get(OLD) is None  # made again: it reads its record first
    await engine.put(OLD, info(True, False))
    assert await engine.get(OLD) == info(True, False)
