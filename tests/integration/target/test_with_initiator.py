"""Our initiator (`mayastor.nvmf.host`, `NvmfDevice`) against our target.

The remote namespace passes the BlockDevice conformance suite; data is verified with
several queues and deep queues, digests on and off, 512 B to 1 MiB transfers;
discovery, a refused host and the initiator's keep-alive work end to end.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Callable

import pytest

from mayastor.bdev import BlockDevice, MallocDevice
from mayastor.bdev.nvmf import NvmfDevice
from mayastor.errors import ConnectRefused
from mayastor.nvmf.host import ControllerOptions, discover
from mayastor.target import NvmfTarget
from tests.conformance.block_device import BlockDeviceConformance, pattern
from tests.integration.target.conftest import Served

HOST = "nqn.2019-05.io.openebs:node-name:test-host"


def options(**changes: object) -> ControllerOptions:
    base: dict[str, object] = {
        "hostnqn": HOST,
        "io_queues": 2,
        "keep_alive_timeout": 5.0,
        "ctrl_loss_timeout": 0,
    }
    base.update(changes)
    return ControllerOptions(**base)  # type: ignore[arg-type]


async def open_remote(served: Served, **changes: object) -> NvmfDevice:
    return await NvmfDevice.open(served.target.share_uri(served.nqn), options=options(**changes))


class TestRemoteNamespaceConformance(BlockDeviceConformance):
    @pytest.fixture
    async def device(self, served: Served) -> AsyncIterator[BlockDevice]:
        remote = await open_remote(served)
        assert remote.uuid == served.device.uuid  # the namespace UUID is the device's
        yield remote
        await remote.close()


@pytest.mark.parametrize("digests", [False, True], ids=["plain", "digests"])
@pytest.mark.parametrize("size", [512, 4096, 64 * 1024, 128 * 1024 + 512, 1 << 20])
async def test_transfers_read_back_through_our_initiator(
    served: Served, size: int, digests: bool
) -> None:
    remote = await open_remote(served, header_digest=digests, data_digest=digests)
    try:
        data = os.urandom(size)
        await remote.write_at(4096, data)
        assert bytes(await remote.read_at(4096, size)) == data
        assert bytes(await served.device.read_at(4096, size)) == data
    finally:
        await remote.close()


@pytest.mark.parametrize("digests", [False, True], ids=["plain", "digests"])
async def test_four_queues_deep_keep_every_write_apart(served: Served, digests: bool) -> None:
    remote = await open_remote(
        served, io_queues=4, queue_size=128, header_digest=digests, data_digest=digests
    )
    rng = random.Random(11)
    slots = rng.sample(range(served.device.num_blocks // 8), 512)
    try:
        await asyncio.gather(*(remote.write(s * 8, pattern(4096, s)) for s in slots))
        reads = await asyncio.gather(*(remote.read(s * 8, 8) for s in slots))
        for slot, data in zip(slots, reads, strict=True):
            assert bytes(data) == pattern(4096, slot), slot
        assert remote.controller.io_queue_count == 4
    finally:
        await remote.close()


async def test_discovery_through_our_initiator_lists_the_subsystem(served: Served) -> None:
    page = await discover("127.0.0.1", served.port, options(io_queues=0))
    assert [(e.subnqn, e.trsvcid, e.traddr) for e in page.entries] == [
        (served.nqn, str(served.port), "127.0.0.1")
    ]


async def test_a_host_not_allowed_gets_connect_refused(served: Served) -> None:
    served.target.set_allowed_hosts(served.nqn, ["nqn.2019-05.io.openebs:node-name:other"])
    with pytest.raises(ConnectRefused):
        await open_remote(served)
    assert served.target.controllers(served.nqn) == []


async def test_the_initiators_keep_alives_hold_the_controller(served: Served) -> None:
    remote = await open_remote(served, keep_alive_timeout=0.4)
    try:
        await asyncio.sleep(1.5)  # several KATOs with no I/O
        (info,) = served.target.controllers(served.nqn)
        assert info.keep_alive_ms == 400
        assert bytes(await remote.read(0, 1)) == bytes(512)
    finally:
        await remote.close()
    assert served.target.controllers(served.nqn) == []


async def test_a_4k_namespace_is_seen_with_its_block_size(
    target: NvmfTarget, devices: Callable[..., MallocDevice]
) -> None:
    port = await target.listen(0)
    device = devices(block_size=4096)
    target.add_subsystem("nqn.2019-05.io.openebs:four-k", device, port=port)
    remote = await NvmfDevice.open(
        target.share_uri("nqn.2019-05.io.openebs:four-k"), options=options()
    )
    try:
        assert (remote.block_size, remote.num_blocks) == (4096, device.num_blocks)
        data = os.urandom(3 * 4096)
        await remote.write(5, data)
        assert bytes(await device.read(5, 3)) == data
    finally:
        await remote.close()
