"""Pools on real files and loop devices, through the aio driver."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from mayastor.bdev import AioDevice
from mayastor.errors import NotFound
from mayastor.lvs import LvolProperties, Pool, ShareProtocol

MIB = 1 << 20
TIB = 1 << 40


def sparse_file(path: Path, size: int) -> str:
    with open(path, "wb") as fh:
        fh.truncate(size)
    return str(path)


async def test_a_pool_on_a_file_keeps_lvols_and_data_across_export_and_import(
    tmp_path: Path,
) -> None:
    path = sparse_file(tmp_path / "disk.img", 64 * MIB)
    pool = await Pool.create(await AioDevice.open(path), "filepool", disk=path)
    thick = await pool.create_lvol("thick", 8 * MIB)
    thin = await pool.create_lvol(
        "thin", 32 * MIB, thin=True, properties=LvolProperties(ShareProtocol.NVMF, ("nqn.h",))
    )
    payload = os.urandom(256 * 1024)
    await thick.write_at(3 * MIB, payload)
    await thin.write_at(20 * MIB - 4096, payload)  # crosses a cluster boundary
    await thin.flush()
    allocated = thin.allocated_bytes
    await pool.export()

    pool = await Pool.import_(await AioDevice.open(path), disk=path, name="filepool")
    thick, thin = pool.lookup("thick"), pool.lookup("thin")
    assert bytes(await thick.read_at(3 * MIB, len(payload))) == payload
    assert bytes(await thin.read_at(20 * MIB - 4096, len(payload))) == payload
    assert thin.allocated_bytes == allocated == 2 * 4 * MIB
    assert thin.properties.share is ShareProtocol.NVMF
    await pool.destroy()
    device = await AioDevice.open(path)
    with pytest.raises(NotFound):
        await Pool.import_(device, disk=path)
    await device.close()


async def test_a_pool_grows_when_its_file_grows(tmp_path: Path) -> None:
    path = sparse_file(tmp_path / "grow.img", 64 * MIB)
    pool = await Pool.create(await AioDevice.open(path), "growpool", disk=path)
    before = pool.capacity
    os.truncate(path, 128 * MIB)
    assert await pool.grow() is True
    assert pool.capacity == before + 64 * MIB
    assert pool.disk_capacity == 128 * MIB
    await pool.export()
    pool = await Pool.import_(await AioDevice.open(path), disk=path)
    assert pool.capacity == before + 64 * MIB
    await pool.export()


async def test_a_10_tib_sparse_disk_holds_a_pool_of_2_6_million_clusters(tmp_path: Path) -> None:
    path = sparse_file(tmp_path / "huge.img", 10 * TIB)
    pool = await Pool.create(await AioDevice.open(path), "huge", disk=path)
    assert pool.capacity // pool.cluster_size > 2_600_000
    assert pool.disk_capacity - pool.capacity < 10 * TIB // 1000
    lvols = [await pool.create_lvol(f"r{i}", TIB, thin=True) for i in range(20)]
    for i, lvol in enumerate(lvols):
        await lvol.write_at(TIB - 4096, i.to_bytes(2, "little") * 2048)
    assert pool.committed == 20 * TIB
    assert pool.used == 20 * pool.cluster_size
    await pool.export()
    pool = await Pool.import_(await AioDevice.open(path), disk=path)
    for i in range(20):
        got = await pool.lookup(f"r{i}").read_at(TIB - 4096, 4096)
        assert bytes(got) == i.to_bytes(2, "little") * 2048
    await pool.export()
    assert os.stat(path).st_blocks * 512 < 256 * MIB  # the file stays sparse


@pytest.mark.needs_root
async def test_a_pool_on_a_loop_device_survives_export_and_import(
    loop_device: Callable[[int], str],
) -> None:
    dev = loop_device(64 * MIB)
    pool = await Pool.create(await AioDevice.open(dev), "looppool", disk=dev)
    lvol = await pool.create_lvol("lv", 16 * MIB)
    await lvol.write_at(0, b"L" * 4096)
    await pool.export()
    pool = await Pool.import_(await AioDevice.open(dev), disk=dev, name="looppool")
    assert bytes(await pool.lookup("lv").read_at(0, 4096)) == b"L" * 4096
    await pool.export()
