"""Nexus info and its stores: the JSON layout, atomic file replacement, errors."""

from __future__ import annotations

import asyncio
import json
import uuid as uuid_mod
from pathlib import Path

import pytest

from mayastor.errors import CorruptMetadata, Unavailable
from mayastor.nexus import (
    ChildInfo,
    FileNexusInfoStore,
    MemoryNexusInfoStore,
    Nexus,
    NexusInfo,
    NexusInfoStore,
)
from tests.unit.nexus.faulty import Shelf


def names_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


INFO = NexusInfo(
    clean_shutdown=False,
    children=(ChildInfo(uuid_mod.uuid4(), True), ChildInfo(uuid_mod.uuid4(), False)),
)


def test_both_stores_are_nexus_info_stores(tmp_path: Path) -> None:
    assert isinstance(FileNexusInfoStore(tmp_path), NexusInfoStore)
    assert isinstance(MemoryNexusInfoStore(), NexusInfoStore)


async def test_what_is_put_is_got_back(tmp_path: Path) -> None:
    store = FileNexusInfoStore(tmp_path / "infos")
    key = uuid_mod.uuid4()
    assert await store.get(key) is None
    await store.put(key, INFO)
    assert await store.get(key) == INFO
    assert await FileNexusInfoStore(tmp_path / "infos").get(key) == INFO


async def test_the_file_has_mayastors_json_layout(tmp_path: Path) -> None:
    store = FileNexusInfoStore(tmp_path)
    key = uuid_mod.uuid4()
    await store.put(key, INFO)
    doc = json.loads(store.path_of(key).read_text())
    assert doc == {
        "clean_shutdown": False,
        "children": [
            {"uuid": str(INFO.children[0].uuid), "healthy": True},
            {"uuid": str(INFO.children[1].uuid), "healthy": False},
        ],
    }


async def test_a_put_replaces_the_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = FileNexusInfoStore(tmp_path)
    key = uuid_mod.uuid4()
    await store.put(key, INFO)
    inode = store.path_of(key).stat().st_ino
    newer = NexusInfo(True, INFO.children)
    await store.put(key, newer)
    assert store.path_of(key).stat().st_ino != inode
    assert names_in(tmp_path) == [f"{key}.json"]
    assert await store.get(key) == newer


async def test_concurrent_puts_end_with_the_last_one(tmp_path: Path) -> None:
    store = FileNexusInfoStore(tmp_path)
    key = uuid_mod.uuid4()
    infos = [NexusInfo(i % 2 == 0, (ChildInfo(uuid_mod.UUID(int=i), True),)) for i in range(20)]
    await asyncio.gather(*(store.put(key, info) for info in infos))
    assert await store.get(key) == infos[-1]


async def test_delete_forgets_and_may_be_repeated(tmp_path: Path) -> None:
    store = FileNexusInfoStore(tmp_path)
    key = uuid_mod.uuid4()
    await store.put(key, INFO)
    await store.delete(key)
    await store.delete(key)
    assert await store.get(key) is None


async def test_a_corrupt_file_is_refused(tmp_path: Path) -> None:
    store = FileNexusInfoStore(tmp_path)
    key = uuid_mod.uuid4()
    store.path_of(key).write_text('{"clean_shutdown": "yes", "children": []}')
    with pytest.raises(CorruptMetadata, match="not a nexus info document"):
        await store.get(key)


async def test_a_put_that_cannot_be_written_fails_and_keeps_nothing_half_done(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    store = FileNexusInfoStore(blocker)
    with pytest.raises(Unavailable, match="cannot write"):
        await store.put(uuid_mod.uuid4(), INFO)


async def test_a_nexus_keeps_its_info_in_a_file_store(tmp_path: Path) -> None:
    shelf = Shelf()
    store = FileNexusInfoStore(tmp_path)
    key = uuid_mod.uuid4()
    uris = ["malloc:///a?size_mb=1", "malloc:///b?size_mb=1"]
    nexus = await Nexus.create("n", key, 1 << 20, uris, opener=shelf, store=store)
    await nexus.fault_child(uris[1])
    stored = await FileNexusInfoStore(tmp_path).get(key)
    assert stored is not None
    assert [c.healthy for c in stored.children] == [True, False]
    await nexus.shutdown()
    stored = await FileNexusInfoStore(tmp_path).get(key)
    assert stored is not None
    assert stored.clean_shutdown
    await nexus.destroy()
    assert names_in(tmp_path) == []
    await shelf.close()
