"""Our initiator when the path to our target breaks: a fault proxy sits between them and
cuts, freezes or refuses the link, or speaks for the target (a C2HTermReq)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from mayastor.bdev import NvmfDevice
from mayastor.errors import IoTimeout, PathGone, PathLost, Unavailable
from mayastor.nvmf.host import (
    ConnectionClosed,
    ControllerState,
    KeepAliveFailed,
    TargetTerminated,
)
from mayastor.nvmf.pdu import FatalErrorStatus, PduWriter, Role
from tests.conformance.block_device import pattern
from tests.integration.nvmf_host.conftest import Served, options
from tests.integration.nvmf_host.proxy import FaultProxy

RECONNECTING = ControllerState.RECONNECTING
LIVE = ControllerState.LIVE


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait for `condition`; fail the test (not by timing, by never happening) otherwise."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"never happened: {what}")


async def through(proxy: FaultProxy, served: Served, **kwargs: object) -> NvmfDevice:
    return await NvmfDevice.open(served.uri(proxy.port), options=options(**kwargs))


async def test_commands_in_flight_when_the_link_is_cut_fail_with_path_lost_then_io_resumes(
    proxy: FaultProxy, served: Served
) -> None:
    dev = await through(proxy, served, fast_io_fail_timeout=None)
    try:
        proxy.freeze()
        writes = [asyncio.ensure_future(dev.write(8 * i, pattern(4096, i))) for i in range(8)]
        await asyncio.sleep(0.05)
        assert not any(w.done() for w in writes)
        await proxy.cut()
        proxy.thaw()
        results = await asyncio.gather(*writes, return_exceptions=True)
        assert all(isinstance(r, PathLost) for r in results), results
        assert all(isinstance(r.__cause__, ConnectionClosed) for r in results)  # type: ignore[union-attr]
        assert sorted(r.lba for r in results) == [8 * i for i in range(8)]  # type: ignore[union-attr]
        await until(lambda: dev.controller.state is LIVE, "reconnected")
        assert dev.controller.reconnects == 1
        await dev.write(0, pattern(4096, 99))
        assert bytes(await dev.read(0, 8)) == pattern(4096, 99)
    finally:
        await dev.close()


async def test_a_frozen_link_fails_a_command_with_io_timeout_and_the_queue_goes_on(
    proxy: FaultProxy, served: Served
) -> None:
    dev = await through(proxy, served, io_timeout=0.3, keep_alive_timeout=0)
    try:
        await dev.write(0, pattern(512, 1))
        proxy.freeze()
        with pytest.raises(IoTimeout) as info:
            await dev.read(0, 1)
        assert info.value.lba == 0
        proxy.thaw()
        assert bytes(await dev.read(0, 1)) == pattern(512, 1)
        assert dev.controller.state is LIVE
        assert dev.controller.reconnects == 0
    finally:
        await dev.close()


async def test_an_unanswered_keep_alive_loses_the_path_and_it_comes_back_with_the_link(
    proxy: FaultProxy, served: Served
) -> None:
    dev = await through(proxy, served, keep_alive_timeout=0.4, connect_timeout=0.5)
    try:
        proxy.freeze()
        await until(lambda: dev.controller.state is RECONNECTING, "path lost")
        assert isinstance(dev.controller.last_error, KeepAliveFailed)
        proxy.thaw()
        await until(lambda: dev.controller.state is LIVE, "reconnected")
        await dev.write(0, pattern(512, 2))
        assert bytes(await dev.read(0, 1)) == pattern(512, 2)
    finally:
        await dev.close()


async def test_after_ctrl_loss_timeout_the_controller_gives_up_and_every_call_fails(
    proxy: FaultProxy, served: Served
) -> None:
    dev = await through(proxy, served, ctrl_loss_timeout=0.5, fast_io_fail_timeout=None)
    try:
        proxy.refuse()
        await proxy.cut()
        await until(lambda: dev.controller.state is ControllerState.FAILED, "gave up")
        proxy.accept()
        attempts = proxy.connections
        with pytest.raises(PathGone, match="gave up"):
            await dev.read(0, 1)
        with pytest.raises(PathGone):
            await dev.write(0, bytes(512))
        await asyncio.sleep(0.3)
        assert proxy.connections == attempts
        assert dev.controller.state is ControllerState.FAILED
    finally:
        await dev.close()


async def test_with_fast_io_fail_zero_calls_while_reconnecting_fail_at_once(
    proxy: FaultProxy, served: Served
) -> None:
    dev = await through(proxy, served, fast_io_fail_timeout=0, ctrl_loss_timeout=60)
    try:
        proxy.refuse()
        await proxy.cut()
        await until(lambda: dev.controller.state is RECONNECTING, "path lost")
        async with asyncio.timeout(5):
            with pytest.raises(PathLost, match="do not wait"):
                await dev.read(0, 1)
        assert dev.controller.state is RECONNECTING
    finally:
        await dev.close()


async def test_calls_made_while_reconnecting_wait_and_go_through_when_the_path_is_back(
    proxy: FaultProxy, served: Served
) -> None:
    dev = await through(proxy, served, fast_io_fail_timeout=None, ctrl_loss_timeout=60)
    try:
        proxy.refuse()
        await proxy.cut()
        await until(lambda: dev.controller.state is RECONNECTING, "path lost")
        write = asyncio.ensure_future(dev.write(16, pattern(1024, 3)))
        await asyncio.sleep(0.3)
        assert not write.done()
        proxy.accept()
        await write
        assert bytes(await served.device.read(16, 2)) == pattern(1024, 3)
    finally:
        await dev.close()


async def test_calls_waiting_for_the_path_fail_once_fast_io_fail_timeout_has_passed(
    proxy: FaultProxy, served: Served
) -> None:
    dev = await through(proxy, served, fast_io_fail_timeout=0.3, ctrl_loss_timeout=60)
    try:
        proxy.refuse()
        await proxy.cut()
        await until(lambda: dev.controller.state is RECONNECTING, "path lost")
        with pytest.raises(PathLost, match="did not come back in time"):
            await dev.read(0, 1)
        assert dev.controller.state is RECONNECTING
    finally:
        await dev.close()


async def test_a_c2h_term_req_fails_the_commands_in_flight_and_the_controller_reconnects(
    proxy: FaultProxy, served: Served
) -> None:
    dev = await through(proxy, served, io_queues=1, fast_io_fail_timeout=None)
    try:
        proxy.freeze()
        reads = [asyncio.ensure_future(dev.read(i, 1)) for i in range(4)]
        await asyncio.sleep(0.05)
        term = PduWriter(Role.CONTROLLER).encode_term_req(FatalErrorStatus.HEADER_DIGEST_ERROR)
        proxy.inject_to_host(b"".join(bytes(p) for p in term))
        results = await asyncio.gather(*reads, return_exceptions=True)
        assert all(isinstance(r, PathLost) for r in results), results
        cause = results[0].__cause__  # type: ignore[union-attr]
        assert isinstance(cause, TargetTerminated)
        assert cause.fes == FatalErrorStatus.HEADER_DIGEST_ERROR
        await proxy.cut()
        proxy.thaw()
        await until(lambda: dev.controller.state is LIVE, "reconnected")
        assert len(await dev.read(0, 1)) == 512
    finally:
        await dev.close()


async def test_close_while_reconnecting_stops_the_attempts(
    proxy: FaultProxy, served: Served
) -> None:
    dev = await through(proxy, served, ctrl_loss_timeout=None)
    proxy.refuse()
    await proxy.cut()
    await until(lambda: proxy.connections >= 4, "a few reconnect attempts")
    await dev.close()
    assert dev.controller.state is ControllerState.CLOSED
    attempts = proxy.connections
    await asyncio.sleep(0.3)
    assert proxy.connections == attempts


async def test_a_target_that_hangs_up_at_once_is_unavailable(
    proxy: FaultProxy, served: Served
) -> None:
    proxy.refuse()
    with pytest.raises(Unavailable) as info:
        await through(proxy, served)
    assert isinstance(info.value.__cause__, PathLost | ConnectionClosed)


async def test_reconnecting_gets_a_new_controller_from_the_target(
    proxy: FaultProxy, served: Served
) -> None:
    dev = await through(proxy, served)
    try:
        first = dev.controller.cntlid
        await proxy.cut()
        await until(lambda: dev.controller.state is LIVE and dev.controller.reconnects == 1, "back")
        assert dev.controller.cntlid != first
        await until(
            lambda: (
                [c.cntlid for c in served.target.controllers(served.nqn)] == [dev.controller.cntlid]
            ),
            "the target forgot the old controller",
        )
    finally:
        await dev.close()


async def test_when_half_a_queue_timed_out_unanswered_the_connection_is_given_up(
    proxy: FaultProxy, served: Served
) -> None:
    dev = await through(
        proxy, served, io_queues=1, queue_size=4, io_timeout=0.2, keep_alive_timeout=0
    )
    try:
        proxy.freeze()
        results = await asyncio.gather(dev.read(0, 1), dev.read(1, 1), return_exceptions=True)
        assert all(isinstance(r, IoTimeout) for r in results), results
        await until(lambda: dev.controller.state is not LIVE, "the connection given up")
        assert "timed out" in str(dev.controller.last_error)
        proxy.thaw()
        await proxy.cut()
        await until(lambda: dev.controller.state is LIVE, "reconnected")
        assert len(await dev.read(0, 1)) == 512
    finally:
        await dev.close()
