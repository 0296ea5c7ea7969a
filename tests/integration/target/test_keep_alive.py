"""Controllers go away on a live target when their host does: Keep Alive timeout
expiry, a dropped admin connection; and stay while the host keeps them alive."""

from __future__ import annotations

import asyncio

from mayastor.nvmf.spec import AdminOpcode
from tests.integration.target.conftest import Served
from tests.integration.target.nvme_client import HostController


async def wait_until(condition: object, timeout: float = 10) -> None:
    async def poll() -> None:
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


async def test_a_silent_host_loses_its_controller_when_kato_expires(served: Served) -> None:
    ctrl = await HostController.connect("127.0.0.1", served.port, served.nqn, kato=300)
    try:
        assert served.target.controllers(served.nqn)
        await wait_until(lambda: not served.target.controllers(served.nqn))
        await asyncio.wait_for(ctrl.admin.closed.wait(), 5)
        await asyncio.wait_for(ctrl.io[0].closed.wait(), 5)
    finally:
        await ctrl.close()


async def test_keep_alive_commands_keep_the_controller(served: Served) -> None:
    ctrl = await HostController.connect("127.0.0.1", served.port, served.nqn, kato=300)
    try:
        for _ in range(15):  # well past KATO in total
            assert (await ctrl.admin.admin(AdminOpcode.KEEP_ALIVE)).ok
            await asyncio.sleep(0.1)
        (info,) = served.target.controllers(served.nqn)
        assert info.cntlid == ctrl.cntlid
        assert not ctrl.admin.closed.is_set()
    finally:
        await ctrl.close()


async def test_io_traffic_also_keeps_the_controller(served: Served) -> None:
    ctrl = await HostController.connect("127.0.0.1", served.port, served.nqn, kato=300)
    try:
        for _ in range(15):
            assert (await ctrl.io[0].read(0, 1, 512)).ok
            await asyncio.sleep(0.1)
        assert served.target.controllers(served.nqn)
    finally:
        await ctrl.close()


async def test_dropping_the_admin_connection_frees_the_controller_and_its_queues(
    served: Served,
) -> None:
    ctrl = await HostController.connect("127.0.0.1", served.port, served.nqn, io_queues=2)
    try:
        await ctrl.admin.close()
        await wait_until(lambda: not served.target.controllers(served.nqn))
        for queue in ctrl.io:
            await asyncio.wait_for(queue.closed.wait(), 5)
    finally:
        await ctrl.close()


async def test_a_freed_controller_id_is_handed_out_again(served: Served) -> None:
    served.target.subsystem(served.nqn).cntlid_range = (5, 5)
    first = await HostController.connect("127.0.0.1", served.port, served.nqn)
    await first.shutdown()
    await wait_until(lambda: not served.target.controllers(served.nqn))
    second = await HostController.connect("127.0.0.1", served.port, served.nqn)
    try:
        assert (first.cntlid, second.cntlid) == (5, 5)
    finally:
        await second.close()
