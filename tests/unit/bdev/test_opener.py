"""The DeviceOpener: its table of schemes, names, and malloc devices opened by URI."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from mayastor.bdev import BdevUri, BlockDevice, DeviceOpener, MallocDevice
from mayastor.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from tests.conformance.block_device import BlockDeviceConformance

U = "5d0c1e6c-2b38-4f1e-9a4c-1a2b3c4d5e6f"
NQN = f"nqn.2019-05.io.openebs:{U}"


class TestMallocFromUriConformance(BlockDeviceConformance):
    @pytest.fixture
    async def device(self) -> AsyncIterator[BlockDevice]:
        dev = await DeviceOpener().open("malloc:///m0?size_mb=2&blk_size=4096")
        yield dev
        await dev.close()


async def test_malloc_uri_opens_a_malloc_device_with_its_geometry_and_uuid() -> None:
    uri = f"malloc:///m1?num_blocks=4096&blk_size=512&uuid={U}"
    device = await DeviceOpener().open(uri)
    try:
        assert isinstance(device, MallocDevice)
        assert (device.name, device.block_size, device.num_blocks) == ("m1", 512, 4096)
        assert device.uuid == uuid.UUID(U)
        assert device.uri == uri
        assert (device.driver, device.product_name) == ("malloc", "Malloc disk")
    finally:
        await device.close()


async def test_open_with_a_name_overrides_the_uri_name() -> None:
    device = await DeviceOpener().open("malloc:///m2?size_mb=1", name="scratch")
    try:
        assert device.name == "scratch"
    finally:
        await device.close()


async def test_open_with_an_empty_name_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="name is empty"):
        await DeviceOpener().open("malloc:///m2?size_mb=1", name="")


async def test_malformed_uri_is_refused_before_any_driver_runs() -> None:
    with pytest.raises(InvalidArgument, match="unknown parameter 'size_gb'"):
        await DeviceOpener().open("malloc:///m3?size_gb=1")


async def test_scheme_without_an_opener_is_refused_saying_what_can_be_opened() -> None:
    with pytest.raises(FailedPrecondition) as info:
        await DeviceOpener().open(f"nvmf://127.0.0.1:8420/{NQN}")
    assert "no driver for nvmf://" in str(info.value)
    assert "aio, malloc, uring" in str(info.value)


def test_default_opener_knows_malloc_aio_and_uring() -> None:
    assert DeviceOpener().schemes == ("aio", "malloc", "uring")
    assert DeviceOpener(defaults=False).schemes == ()


async def test_registered_opener_gets_the_parsed_uri_and_the_name() -> None:
    seen: list[tuple[BdevUri, str]] = []

    async def open_loopback(parsed: BdevUri, name: str) -> BlockDevice:
        seen.append((parsed, name))
        return MallocDevice(name, 2048)

    opener = DeviceOpener()
    opener.register("loopback", open_loopback)
    device = await opener.open(f"bdev:///{U}")
    try:
        assert [(p.scheme, p.name, n) for p, n in seen] == [("bdev", U, U)]
        assert device.uri == f"bdev:///{U}"
        assert "bdev" in opener.schemes
    finally:
        await device.close()


async def test_nvmf_tcp_uris_reach_the_nvmf_opener() -> None:
    names: list[str] = []

    async def open_nvmf(parsed: BdevUri, name: str) -> BlockDevice:
        names.append(name)
        return MallocDevice(name, 2048)

    opener = DeviceOpener(defaults=False)
    opener.register("nvmf", open_nvmf)
    device = await opener.open(f"nvmf+tcp://127.0.0.1:4421/{NQN}")
    await device.close()
    assert names == [f"127.0.0.1:4421/{NQN}n1"]


async def test_a_host_identifier_given_to_open_reaches_nvmf_and_bdev_openers_only() -> None:
    seen: list[BdevUri] = []

    async def remember(parsed: BdevUri, name: str) -> BlockDevice:
        seen.append(parsed)
        return MallocDevice(name, 2048)

    opener = DeviceOpener()
    opener.register("nvmf", remember)
    opener.register("bdev", remember)
    host = uuid.UUID(int=0xABC)
    for uri in (f"nvmf://127.0.0.1/{NQN}?hostid={uuid.UUID(int=1)}", f"bdev:///{U}"):
        device = await opener.open(uri, hostid=host)
        await device.close()
    plain = await opener.open("malloc:///m9?size_mb=1", hostid=host)
    await plain.close()
    assert [getattr(p, "hostid", None) for p in seen] == [host, host]


def test_registering_a_scheme_twice_is_refused_unless_replacing() -> None:
    async def other(parsed: BdevUri, name: str) -> BlockDevice:
        return MallocDevice(name, 2048)

    opener = DeviceOpener()
    with pytest.raises(AlreadyExists, match="malloc"):
        opener.register("malloc", other)
    opener.register("malloc", other, replace=True)
    assert "malloc" in opener.schemes


def test_registering_an_unknown_scheme_is_refused() -> None:
    async def other(parsed: BdevUri, name: str) -> BlockDevice:
        return MallocDevice(name, 2048)

    with pytest.raises(InvalidArgument, match="unknown scheme 'pcie'"):
        DeviceOpener().register("pcie", other)


def test_two_openers_do_not_share_their_tables() -> None:
    async def other(parsed: BdevUri, name: str) -> BlockDevice:
        return MallocDevice(name, 2048)

    first, second = DeviceOpener(), DeviceOpener()
    first.register("bdev", other)
    assert "bdev" not in second.schemes
