"""The nexus info of a target replaced while out of reach, in the core agent's store:
marked superseded, kept while its nexus may run, removed once it is collected unless a
volume still trusts its replicas by it."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mayastor.api.store_keys import StoreKeys
from mayastor.control.cluster import Cluster, is_superseded
from mayastor.control.nodes import NodeRegistry
from mayastor.control.spec_registry import SpecRegistry
from mayastor.control.specs import SpecStatus, VolumePolicy, VolumeSpec
from mayastor.control.store import EmbeddedStore

KEYS = StoreKeys("test-cluster")
OLD, NEW = uuid.uuid4(), uuid.uuid4()
CHILD = uuid.uuid4()
RECORD = {"clean_shutdown": False, "children": [{"uuid": str(CHILD), "healthy": True}]}


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    store = EmbeddedStore(tmp_path / "store.db")
    yield Cluster(store=store, keys=KEYS, specs=SpecRegistry(store, KEYS), nodes=NodeRegistry())
    await store.close()


async def stored(cluster: Cluster) -> bytes | None:
    entry = await cluster.store.get(cluster.nexus_info_key(OLD))
    return None if entry is None else entry.value


async def test_the_mark_keeps_what_the_record_says_for_the_next_nexus(cluster: Cluster) -> None:
    await cluster.store.put(cluster.nexus_info_key(OLD), json.dumps(RECORD).encode())
    await cluster.supersede_nexus_info(OLD, NEW)
    value = await stored(cluster)
    assert value is not None
    assert is_superseded(value)
    health = await cluster.nexus_health(OLD)
    assert health is not None
    assert health.healthy == {CHILD}


async def test_a_mark_without_a_record_says_nothing_of_the_replicas(cluster: Cluster) -> None:
    await cluster.supersede_nexus_info(OLD, NEW)
    assert await cluster.nexus_info_superseded(OLD)
    assert await cluster.nexus_health(OLD) is None


async def test_a_marked_record_outlives_its_release_and_goes_when_collected(
    cluster: Cluster,
) -> None:
    await cluster.store.put(cluster.nexus_info_key(OLD), json.dumps(RECORD).encode())
    await cluster.supersede_nexus_info(OLD, NEW)
    await cluster.release_nexus_info(OLD)  # the new target is made
    assert await cluster.nexus_info_superseded(OLD)
    await cluster.forget_superseded_nexus_info(OLD)  # the old nexus is destroyed
    assert await stored(cluster) is None


async def test_a_record_a_volume_still_trusts_is_kept_when_its_nexus_is_collected(
    cluster: Cluster,
) -> None:
    await cluster.store.put(cluster.nexus_info_key(OLD), json.dumps(RECORD).encode())
    await cluster.supersede_nexus_info(OLD, NEW)
    volume = VolumeSpec(
        uuid=uuid.uuid4(),
        size=1 << 20,
        num_replicas=1,
        status=SpecStatus.CREATED,
        policy=VolumePolicy(self_heal=True),
        thin=False,
        health_info_id=OLD,  # the switch-over was undone: unpublished, trusting OLD's record
    )
    await cluster.specs.save(volume)
    await cluster.forget_superseded_nexus_info(OLD)
    assert await cluster.nexus_health(OLD) is not None


async def test_an_unmarked_record_is_released(cluster: Cluster) -> None:
    await cluster.store.put(cluster.nexus_info_key(OLD), json.dumps(RECORD).encode())
    await cluster.forget_superseded_nexus_info(OLD)
    assert await stored(cluster) is not None  # not a superseded one: not this call's to drop
    await cluster.release_nexus_info(OLD)
    assert await stored(cluster) is None
