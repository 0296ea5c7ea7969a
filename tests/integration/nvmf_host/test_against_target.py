"""Our initiator against our target (in this process, over loopback TCP): data, queues,
digests, transfer sizes, limits the controller sets, refusals, and the run state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import pytest

from mayastor.bdev import BlockDevice, DeviceOpener, NvmfDevice, register_nvmf
from mayastor.errors import (
    ConnectInvalidParameters,
    ConnectRefused,
    DeviceNotReady,
    FailedPrecondition,
    InvalidArgument,
    LbaOutOfRange,
    NotFound,
    Unavailable,
)
from mayastor.nvmf.host import Controller, ControllerState, discover
from mayastor.nvmf.spec import DISCOVERY_NQN, DiscoveryLogPage, LogPageId, SubsystemType
from mayastor.target import TargetConfig
from tests.conformance.block_device import BlockDeviceConformance, pattern
from tests.integration.nvmf_host.conftest import HOSTNQN, Served, ServeFn, options

DIGESTS = pytest.mark.parametrize("digests", [False, True], ids=["no-digests", "digests"])


async def open_device(served: Served, **kwargs: object) -> NvmfDevice:
    return await NvmfDevice.open(served.uri(), options=options(**kwargs))


# ------------------------------------------------------------------ the BlockDevice contract


class TestConformanceWithoutDigests(BlockDeviceConformance):
    @pytest.fixture
    async def device(self, served: Served) -> AsyncIterator[BlockDevice]:
        dev = await open_device(served)
        yield dev
        await dev.close()


class TestConformanceWithDigestsAnd4KiBBlocks(BlockDeviceConformance):
    @pytest.fixture
    async def device(self, serve: ServeFn) -> AsyncIterator[BlockDevice]:
        served = await serve(block_size=4096, num_blocks=1024)
        dev = await open_device(served, header_digest=True, data_digest=True)
        yield dev
        await dev.close()


# ------------------------------------------------------------------ data


@DIGESTS
async def test_transfers_of_every_size_from_512_bytes_to_1_mib_read_back(
    served: Served, digests: bool
) -> None:
    dev = await open_device(served, header_digest=digests, data_digest=digests)
    try:
        sizes = [1, 2, 7, 8, 9, 63, 64, 65, 255, 256, 257, 1023, 1024, 2047, 2048]
        places, lba = [], 0
        for seed, nblocks in enumerate(sizes):
            places.append((lba, nblocks, pattern(nblocks * 512, seed)))
            lba += nblocks
        await asyncio.gather(*(dev.write(lba, data) for lba, _, data in places))
        reads = await asyncio.gather(*(dev.read(lba, n) for lba, n, _ in places))
        wrong = [n for (_, n, data), got in zip(places, reads, strict=True) if bytes(got) != data]
        assert wrong == []
        assert bytes(await served.device.read(0, lba)) == b"".join(d for _, _, d in places)
    finally:
        await dev.close()


@DIGESTS
async def test_four_queues_each_128_deep_carry_verified_data(served: Served, digests: bool) -> None:
    dev = await open_device(
        served, io_queues=4, queue_size=128, header_digest=digests, data_digest=digests
    )
    try:
        assert dev.controller.io_queue_count == 4
        count = 4 * 128
        datas = [pattern(4096, 7000 + i) for i in range(count)]
        await asyncio.gather(*(dev.write(8 * i, d) for i, d in enumerate(datas)))
        reads = await asyncio.gather(*(dev.read(8 * i, 8) for i in range(count)))
        assert sum(bytes(got) == want for got, want in zip(reads, datas, strict=True)) == count
    finally:
        await dev.close()


async def test_without_sq_flow_control_reads_complete_with_their_data_and_verify(
    served: Served,
) -> None:
    dev = await open_device(served, disable_sq_flow_control=True, io_queues=2)
    try:
        datas = [pattern(4096 * (1 + i % 8), 300 + i) for i in range(64)]
        places = [(512 * i, d) for i, d in enumerate(datas)]
        await asyncio.gather(*(dev.write(lba, d) for lba, d in places))
        reads = await asyncio.gather(*(dev.read(lba, len(d) // 512) for lba, d in places))
        assert [bytes(r) for r in reads] == datas
    finally:
        await dev.close()


async def test_io_is_spread_evenly_over_the_queues(served: Served) -> None:
    dev = await open_device(served, io_queues=4)
    try:
        before = [q.submitted for q in dev.controller.io_queues]
        await asyncio.gather(*(dev.read(i, 1) for i in range(40)))
        after = [q.submitted for q in dev.controller.io_queues]
        assert [b - a for a, b in zip(before, after, strict=True)] == [10, 10, 10, 10]
    finally:
        await dev.close()


async def test_close_shuts_the_controller_down_so_the_target_flushes_and_confirms(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    controller = Controller("127.0.0.1", served.port, served.nqn, options())
    await controller.connect()
    flushes = served.device.stats.num_flush_ops
    with caplog.at_level(logging.INFO, logger="mayastor.nvmf.host"):
        await controller.close()
    assert served.device.stats.num_flush_ops == flushes + 1
    assert [r.message for r in caplog.records if "shutdown" in r.message] == []
    assert served.target.controllers(served.nqn) == []


async def test_more_calls_than_queue_entries_wait_for_a_free_entry(serve: ServeFn) -> None:
    served = await serve(config=TargetConfig(max_queue_entries=4))
    dev = await open_device(served, io_queues=1, queue_size=128)
    try:
        assert dev.controller.queue_size == 4
        datas = [pattern(512, i) for i in range(64)]
        await asyncio.gather(*(dev.write(i, d) for i, d in enumerate(datas)))
        assert bytes(await dev.read(0, 64)) == b"".join(datas)
    finally:
        await dev.close()


async def test_a_controller_with_a_small_mdts_gets_large_transfers_split(serve: ServeFn) -> None:
    served = await serve(config=TargetConfig(max_data_transfer=64 << 10))
    dev = await open_device(served)
    try:
        assert dev.controller.max_transfer == 64 << 10
        data = pattern(1 << 20, 3)
        before = served.device.stats.snapshot()
        await dev.write(100, data)
        assert bytes(await dev.read(100, 2048)) == data
        after = served.device.stats
        assert after.num_write_ops - before.num_write_ops == 16
        assert after.num_read_ops - before.num_read_ops == 16
    finally:
        await dev.close()


async def test_writes_larger_than_the_capsule_go_by_r2t_in_pieces_of_maxh2cdata(
    serve: ServeFn,
) -> None:
    served = await serve(config=TargetConfig(in_capsule_data_size=0, max_h2c_data=4096))
    dev = await open_device(served, data_digest=True)
    try:
        data = pattern(256 << 10, 4)
        await dev.write(0, data)
        small = pattern(512, 5)
        await dev.write(1000, small)
        assert bytes(await served.device.read(0, 512)) == data
        assert bytes(await served.device.read(1000, 1)) == small
    finally:
        await dev.close()


async def test_unmap_deallocates_on_a_namespace_whose_deallocated_blocks_read_zeroes(
    served: Served,
) -> None:
    dev = await open_device(served)
    try:
        assert dev.namespace.dlfeat & 0x7 == 1
        await dev.write(0, pattern(64 * 512, 6))
        await dev.unmap(8, 32)
        assert served.device.stats.num_unmap_ops == 1
        got = bytes(await dev.read(0, 64))
        assert got[8 * 512 : 40 * 512] == bytes(32 * 512)
        assert got[:4096] == pattern(64 * 512, 6)[:4096]
    finally:
        await dev.close()


async def test_the_device_takes_the_namespace_uuid_and_the_uri_may_override_it(
    served: Served,
) -> None:
    dev = await open_device(served)
    try:
        assert dev.uuid == served.device.uuid
        assert (dev.driver, dev.product_name) == ("nvmf", "NVMe disk")
        assert dev.name == f"127.0.0.1:{served.port}/{served.nqn}n1"
    finally:
        await dev.close()
    chosen = "5d0c1e6c-2b38-4f1e-9a4c-1a2b3c4d5e6f"
    other = await NvmfDevice.open(f"{served.uri()}?uuid={chosen}", options=options())
    try:
        assert str(other.uuid) == chosen
    finally:
        await other.close()


async def test_a_range_past_the_namespace_comes_back_as_lba_out_of_range_with_its_range(
    served: Served,
) -> None:
    controller = Controller("127.0.0.1", served.port, served.nqn, options())
    await controller.connect()
    try:
        with pytest.raises(LbaOutOfRange) as info:
            await controller.read(1, served.device.num_blocks - 1, 2, 1024)
        assert (info.value.lba, info.value.nblocks) == (served.device.num_blocks - 1, 2)
    finally:
        await controller.close()


# ------------------------------------------------------------------ opening and refusals


async def test_discovery_lists_the_subsystem(served: Served) -> None:
    page = await discover("127.0.0.1", served.port, options())
    nvme = [e for e in page.entries if e.subtype == SubsystemType.NVME]
    assert [(e.subnqn, e.trsvcid) for e in nvme] == [(served.nqn, str(served.port))]


async def test_a_discovery_controller_refuses_io_and_serves_its_log_page(served: Served) -> None:
    controller = Controller("127.0.0.1", served.port, DISCOVERY_NQN, options())
    await controller.connect()
    try:
        assert controller.io_queue_count == 0
        with pytest.raises(FailedPrecondition, match="discovery"):
            await controller.read(1, 0, 1, 512)
        header = await controller.get_log_page(LogPageId.DISCOVERY, 1024)
        assert DiscoveryLogPage.decode_header(header)[1] == 1
    finally:
        await controller.close()


async def test_a_host_not_on_the_allow_list_is_refused_and_an_allowed_one_gets_in(
    serve: ServeFn,
) -> None:
    served = await serve(allowed_hosts=[HOSTNQN])
    stranger = "nqn.2019-05.io.openebs:node-name:stranger"
    with pytest.raises(ConnectRefused):
        await NvmfDevice.open(served.uri(), options=options(hostnqn=stranger))
    dev = await NvmfDevice.open(served.uri(), options=options())
    await dev.close()


async def test_the_host_nqn_of_the_uri_wins_over_the_options(serve: ServeFn) -> None:
    served = await serve(allowed_hosts=[HOSTNQN])
    stranger = "nqn.2019-05.io.openebs:node-name:stranger"
    dev = await NvmfDevice.open(
        f"{served.uri()}?hostnqn={HOSTNQN}", options=options(hostnqn=stranger)
    )
    try:
        assert dev.controller.options.hostnqn == HOSTNQN
    finally:
        await dev.close()


async def test_a_subsystem_that_does_not_exist_is_an_invalid_connect_parameter(
    served: Served,
) -> None:
    controller = Controller("127.0.0.1", served.port, served.nqn + "-missing", options())
    with pytest.raises(ConnectInvalidParameters):
        await controller.connect()
    assert controller.state is ControllerState.IDLE


async def test_a_namespace_that_does_not_exist_is_not_found(served: Served) -> None:
    with pytest.raises(NotFound):
        await NvmfDevice.open(served.uri(), nsid=2, options=options())


async def test_a_controller_that_grants_fewer_queues_gets_fewer(serve: ServeFn) -> None:
    served = await serve(config=TargetConfig(max_io_queues=2))
    dev = await open_device(served, io_queues=8)
    try:
        assert dev.controller.io_queue_count == 2
    finally:
        await dev.close()


async def test_register_nvmf_makes_the_opener_open_nvmf_uris_with_our_host_nqn(
    serve: ServeFn,
) -> None:
    served = await serve(allowed_hosts=[HOSTNQN])
    opener = DeviceOpener()
    register_nvmf(opener, hostnqn=HOSTNQN, options=options(hostnqn="nqn.2019-05.io.x:other"))
    assert "nvmf" in opener.schemes
    dev = await opener.open(served.uri())
    try:
        assert isinstance(dev, NvmfDevice)
        assert dev.controller.options.hostnqn == HOSTNQN
        assert dev.uri == served.uri()
    finally:
        await dev.close()


@pytest.mark.parametrize(
    "uri",
    [
        "malloc:///m0?size_mb=1",
        "nvmf://127.0.0.1:8420/nqn.2019-05.io.openebs:x?reftag=true",
    ],
)
async def test_what_the_driver_cannot_do_is_refused_before_connecting(uri: str) -> None:
    with pytest.raises(InvalidArgument):
        await NvmfDevice.open(uri, options=options())


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_nothing_listening_is_unavailable_and_the_controller_stays_idle() -> None:
    controller = Controller("127.0.0.1", _closed_port(), "nqn.2019-05.io.openebs:x", options())
    with pytest.raises(Unavailable):
        await controller.connect()
    assert controller.state is ControllerState.IDLE


async def test_a_listener_that_never_answers_is_unavailable_after_the_connect_timeout() -> None:
    accepted: list[asyncio.StreamWriter] = []
    silent = await asyncio.start_server(lambda r, w: accepted.append(w), "127.0.0.1", 0)
    port = int(silent.sockets[0].getsockname()[1])
    try:
        controller = Controller(
            "127.0.0.1", port, "nqn.2019-05.io.openebs:x", options(connect_timeout=0.3)
        )
        with pytest.raises(Unavailable, match="longer than"):
            await controller.connect()
        assert controller.state is ControllerState.IDLE
    finally:
        for writer in accepted:
            writer.close()
        silent.close()
        await silent.wait_closed()
        await asyncio.sleep(0)


# ------------------------------------------------------------------ run state


async def test_calls_before_connect_are_refused_as_not_connected(served: Served) -> None:
    controller = Controller("127.0.0.1", served.port, served.nqn, options())
    with pytest.raises(FailedPrecondition, match="connect"):
        await controller.read(1, 0, 1, 512)
    with pytest.raises(FailedPrecondition):
        _ = controller.identify


async def test_connect_twice_is_refused_and_the_first_connection_goes_on(served: Served) -> None:
    controller = Controller("127.0.0.1", served.port, served.nqn, options())
    await controller.connect()
    try:
        with pytest.raises(FailedPrecondition, match="live"):
            await controller.connect()
        assert len(await controller.read(1, 0, 1, 512)) == 512
    finally:
        await controller.close()


async def test_after_close_calls_are_refused_as_not_ready_and_close_is_idempotent(
    served: Served,
) -> None:
    controller = Controller("127.0.0.1", served.port, served.nqn, options())
    await controller.connect()
    await controller.close()
    await controller.close()
    assert controller.state is ControllerState.CLOSED
    with pytest.raises(DeviceNotReady):
        await controller.read(1, 0, 1, 512)
    assert served.target.controllers(served.nqn) == []


async def test_close_while_connecting_leaves_the_controller_closed(served: Served) -> None:
    controller = Controller("127.0.0.1", served.port, served.nqn, options())
    connecting = asyncio.ensure_future(controller.connect())
    await asyncio.sleep(0)
    await controller.close()
    with pytest.raises(FailedPrecondition, match="closed while connecting"):
        await connecting
    assert controller.state is ControllerState.CLOSED


async def test_a_cancelled_read_leaves_the_queue_usable(served: Served) -> None:
    dev = await open_device(served, io_queues=1)
    try:
        reads = [asyncio.ensure_future(dev.read(i, 1)) for i in range(16)]
        await asyncio.sleep(0)
        for task in reads[::2]:
            task.cancel()
        for task in reads:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await dev.write(0, pattern(512, 9))
        assert bytes(await dev.read(0, 1)) == pattern(512, 9)
    finally:
        await dev.close()
