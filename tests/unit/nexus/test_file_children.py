"""A nexus over real files (the aio driver through the io-engine's DeviceOpener)."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid as uuid_mod
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mayastor.bdev import DeviceOpener
from mayastor.nexus import ChildState, FileNexusInfoStore, Nexus, RebuildState
from tests.conformance.block_device import BlockDeviceConformance, pattern

SIZE = 4 << 20
ROOT = Path(__file__).resolve().parents[3]


def contents(uri: str) -> bytes:
    return Path(uri.removeprefix("aio://")).read_bytes()


def overwrite(uri: str, offset: int, data: bytes) -> None:
    with open(uri.removeprefix("aio://"), "r+b") as fh:
        os.pwrite(fh.fileno(), data, offset)


def make_files(directory: Path, count: int) -> list[str]:
    uris = []
    for i in range(count):
        path = directory / f"replica{i}.img"
        with open(path, "wb") as fh:
            fh.truncate(SIZE)
        uris.append(f"aio://{path}")
    return uris


class TestNexusOfTwoFiles(BlockDeviceConformance):
    @pytest.fixture
    async def device(self, tmp_path: Path) -> AsyncIterator[Nexus]:
        nexus = await Nexus.create(
            "files",
            uuid_mod.uuid4(),
            SIZE,
            make_files(tmp_path, 2),
            opener=DeviceOpener(aio_threads=4),
            store=FileNexusInfoStore(tmp_path / "info"),
        )
        yield nexus
        await nexus.destroy()


async def test_a_file_child_taken_offline_comes_back_with_only_the_missed_segments(
    tmp_path: Path,
) -> None:
    uris = make_files(tmp_path, 3)
    nexus = await Nexus.create(
        "files",
        uuid_mod.uuid4(),
        SIZE,
        uris,
        opener=DeviceOpener(aio_threads=4),
        store=FileNexusInfoStore(tmp_path / "info"),
    )
    await nexus.write(0, pattern(SIZE, seed=1))
    await nexus.flush()
    await nexus.offline_child(uris[2])
    await nexus.write(1000, pattern(8 * 512, seed=2))
    await nexus.online_child(uris[2])
    record = await nexus.wait_rebuild(uris[2])
    assert (record.state, record.is_partial) == (RebuildState.COMPLETED, True)
    assert record.blocks_transferred == 128
    assert nexus.child(uris[2]).state is ChildState.ONLINE
    await nexus.destroy()
    assert contents(uris[0]) == contents(uris[1]) == contents(uris[2])


CRASHING_IO_ENGINE = """
import asyncio, sys, uuid
from mayastor.bdev import DeviceOpener
from mayastor.nexus import FileNexusInfoStore, Nexus
from tests.conformance.block_device import pattern

async def main():
    key, info_dir, *uris = sys.argv[1:]
    nexus = await Nexus.create(
        "files", uuid.UUID(key), 64 * 512, uris,
        opener=DeviceOpener(aio_threads=2), store=FileNexusInfoStore(info_dir),
    )
    await nexus.write(0, pattern(64 * 512, seed=3))
    await nexus.flush()
    print("acknowledged", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_nexus_recreated_after_a_crash_trusts_one_file_and_rebuilds_the_other(
    tmp_path: Path,
) -> None:
    uris = make_files(tmp_path, 2)
    key = uuid_mod.uuid4()
    engine = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CRASHING_IO_ENGINE,
        str(key),
        str(tmp_path / "info"),
        *uris,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    assert engine.stdout is not None
    assert await engine.stdout.readline() == b"acknowledged\n"
    engine.kill()
    await engine.wait()
    overwrite(uris[1], 0, b"\x01" * 512)  # a write in flight at the crash reached only c1
    nexus = await Nexus.create(
        "files",
        key,
        64 * 512,
        uris,
        opener=DeviceOpener(aio_threads=2),
        store=FileNexusInfoStore(tmp_path / "info"),
    )
    assert [c.state for c in nexus.children] == [ChildState.ONLINE, ChildState.DEGRADED]
    await nexus.wait_rebuild(uris[1])
    assert bytes(await nexus.read(0, 64)) == pattern(64 * 512, seed=3)
    await nexus.destroy()
    assert contents(uris[1])[: 64 * 512] == pattern(64 * 512, seed=3)
