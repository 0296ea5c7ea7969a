"""The library example of `mayastor.nexus` (Mayastor's README, in Python) runs as written."""

from __future__ import annotations

import uuid

import mayastor.nexus
from mayastor.bdev import DeviceOpener
from mayastor.nexus import MemoryNexusInfoStore, Nexus
from tests.unit.nexus.faulty import Shelf


async def test_the_readme_example_writes_and_reads_back_4k_of_ff() -> None:
    nexus = await Nexus.create(
        "nexus0",
        uuid.uuid4(),
        64 * 1024 * 1024,
        [
            "malloc:///malloc0?size_mb=64",
            "malloc:///malloc1?size_mb=64",
            "malloc:///malloc2?size_mb=64",
        ],
        opener=DeviceOpener(),
        store=MemoryNexusInfoStore(),
    )
    await nexus.write_at(0, b"\xff" * 4096)
    assert bytes(await nexus.read_at(0, 4096)) == b"\xff" * 4096
    assert [c.uri for c in nexus.children] == [
        "malloc:///malloc0?size_mb=64",
        "malloc:///malloc1?size_mb=64",
        "malloc:///malloc2?size_mb=64",
    ]
    await nexus.destroy()


async def test_the_module_docstring_example_is_the_one_tested() -> None:
    doc = mayastor.nexus.__doc__ or ""
    example = doc[doc.index("import uuid") : doc.index("Public surface")]
    namespace: dict[str, object] = {}
    exec(compile(example.replace("\n    ", "\n"), "example", "exec"), namespace)
    shelf = Shelf()
    await namespace["main"](shelf)  # type: ignore[operator]
    for name in ("malloc0", "malloc1", "malloc2"):
        assert bytes(await shelf.disks[name].read(0, 8)) == b"\xff" * 4096
    assert not shelf.open_handles()
    await shelf.close()
