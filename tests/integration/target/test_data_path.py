"""Data through a live target with the test client: several I/O queues, deep queues,
digests on and off, 512 B to 1 MiB transfers, R2T with a small MAXH2CDATA, and the
C2HData SUCCESS flag when SQ flow control is off. Every byte read is compared."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable

import pytest

from mayastor.bdev import MallocDevice
from mayastor.target import NvmfTarget, TargetConfig, openebs_nqn
from tests.conformance.block_device import pattern
from tests.integration.target.conftest import Served
from tests.integration.target.nvme_client import HostController

BS = 512


@pytest.mark.parametrize(
    ("hdgst", "ddgst"), [(False, False), (True, True), (True, False), (False, True)]
)
@pytest.mark.parametrize("size", [512, 4096, 8192 + 512, 128 * 1024, 1 << 20])
async def test_a_transfer_reads_back_with_and_without_digests(
    served: Served, size: int, hdgst: bool, ddgst: bool
) -> None:
    ctrl = await HostController.connect(
        "127.0.0.1", served.port, served.nqn, header_digest=hdgst, data_digest=ddgst
    )
    try:
        data = os.urandom(size)
        assert (await ctrl.io[0].write(64, data, BS)).ok
        answer = await ctrl.io[0].read(64, size // BS, BS)
        assert answer.ok
        assert answer.data == data
        assert bytes(await served.device.read(64, size // BS)) == data
    finally:
        await ctrl.close()


async def test_four_queues_at_depth_128_keep_every_write_apart(served: Served) -> None:
    ctrl = await HostController.connect("127.0.0.1", served.port, served.nqn, io_queues=4)
    rng = random.Random(7)
    blocks = served.device.num_blocks // 8  # 4 KiB slots
    slots = rng.sample(range(blocks), 4 * 128)
    try:

        async def writer(queue_index: int, chunk: list[int]) -> None:
            queue = ctrl.io[queue_index]
            results = await asyncio.gather(
                *(queue.write(slot * 8, pattern(4096, slot), BS) for slot in chunk)
            )
            assert all(r.ok for r in results)

        await asyncio.gather(*(writer(q, slots[q * 128 : (q + 1) * 128]) for q in range(4)))

        async def reader(queue_index: int, chunk: list[int]) -> None:
            queue = ctrl.io[queue_index]
            results = await asyncio.gather(*(queue.read(slot * 8, 8, BS) for slot in chunk))
            for slot, result in zip(chunk, results, strict=True):
                assert result.data == pattern(4096, slot), slot

        # Read back through other queues than the ones that wrote.
        await asyncio.gather(
            *(reader((q + 1) % 4, slots[q * 128 : (q + 1) * 128]) for q in range(4))
        )
    finally:
        await ctrl.close()


async def test_writes_larger_than_maxh2cdata_arrive_whole(
    devices: Callable[..., MallocDevice],
) -> None:
    target = NvmfTarget(config=TargetConfig(max_h2c_data=4096, in_capsule_data_size=0))
    try:
        port = await target.listen(0)
        device = devices()
        nqn = openebs_nqn(device.uuid)
        target.add_subsystem(nqn, device, port=port)
        ctrl = await HostController.connect("127.0.0.1", port, nqn)
        try:
            queue = ctrl.io[0]
            queue.record_r2ts = True
            data = os.urandom(1 << 20)
            assert (await queue.write(0, data, BS)).ok
            assert len(queue.r2ts) == (1 << 20) // 4096
            assert max(r.length for r in queue.r2ts) == 4096
            assert bytes(await device.read(0, (1 << 20) // BS)) == data
        finally:
            await ctrl.close()
    finally:
        await target.close()


async def test_with_sq_flow_control_off_reads_complete_by_c2hdata_success(served: Served) -> None:
    ctrl = await HostController.connect(
        "127.0.0.1", served.port, served.nqn, disable_sq_flow_control=True
    )
    try:
        data = os.urandom(8192)
        await ctrl.io[0].write(0, data, BS)
        for _ in range(5):
            assert (await ctrl.io[0].read(0, 16, BS)).data == data
        assert ctrl.io[0].successes == 5
    finally:
        await ctrl.close()


async def test_with_sq_flow_control_on_reads_complete_by_capsule_resp(served: Served) -> None:
    ctrl = await HostController.connect("127.0.0.1", served.port, served.nqn)
    try:
        assert (await ctrl.io[0].read(0, 16, BS)).ok
        assert ctrl.io[0].successes == 0
    finally:
        await ctrl.close()


async def test_two_hosts_share_a_namespace(served: Served) -> None:
    first = await HostController.connect("127.0.0.1", served.port, served.nqn)
    second = await HostController.connect(
        "127.0.0.1",
        served.port,
        served.nqn,
        hostnqn="nqn.2014-08.org.nvmexpress:uuid:2e9b9f0a-3c7d-4b8e-9f10-1a2b3c4d5e6f",
    )
    try:
        assert first.cntlid != second.cntlid
        data = os.urandom(4096)
        assert (await first.io[0].write(100, data, BS)).ok
        assert (await second.io[0].read(100, 8, BS)).data == data
    finally:
        await first.close()
        await second.close()
