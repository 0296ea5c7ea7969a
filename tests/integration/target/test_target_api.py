"""The public API of `NvmfTarget` on a live target: adding, listing, changing and
removing subsystems, listening, closing, and the typed errors for bad input."""

from __future__ import annotations

import asyncio
import socket
import uuid as uuid_mod
from collections.abc import Callable

import pytest

from mayastor.bdev import MallocDevice
from mayastor.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from mayastor.nvmf.spec import (
    DISCOVERY_NQN,
    AnaLog,
    AnaState,
    CommandSpecificStatus,
    ControllerConfiguration,
    DiscoveryLogPage,
    LogPageId,
    PropertyOffset,
)
from mayastor.target import NvmfTarget, openebs_nqn
from tests.integration.target.conftest import Served, SlowDevice
from tests.integration.target.nvme_client import (
    HOSTNQN,
    HostController,
    HostQueue,
    TargetTerminated,
)

OTHER_HOST = "nqn.2014-08.org.nvmexpress:uuid:7d0c6a33-2b8f-4f4e-8d2c-8a9f5e6b7c01"
INVALID_PARAMETERS = (1, CommandSpecificStatus.CONNECT_INVALID_PARAMETERS)
INVALID_HOST = (1, CommandSpecificStatus.CONNECT_INVALID_HOST)


async def connect_admin(
    port: int, nqn: str, hostnqn: str = HOSTNQN
) -> tuple[HostQueue, tuple[int, int]]:
    queue = await HostQueue.open("127.0.0.1", port)
    response = await queue.connect(nqn, hostnqn=hostnqn)
    return queue, response.sct_sc


# ------------------------------------------------------------------ adding


async def test_share_uri_names_address_port_and_nqn(served: Served) -> None:
    uri = served.target.share_uri(served.nqn)
    assert uri == f"nvmf://127.0.0.1:{served.port}/{served.nqn}"


async def test_the_subsystem_reports_what_it_was_given(
    target: NvmfTarget, devices: Callable[..., MallocDevice]
) -> None:
    device = devices()
    sub = target.add_subsystem(
        "nqn.2019-05.io.openebs:given",
        device,
        port=4421,
        allowed_hosts=[HOSTNQN],
        serial="serial-1",
        model="Model X",
        cntlid_range=(10, 20),
        ana_state=AnaState.NON_OPTIMIZED,
    )
    assert (sub.nqn, sub.device, sub.port) == ("nqn.2019-05.io.openebs:given", device, 4421)
    assert sub.allowed_hosts == frozenset({HOSTNQN})
    assert (sub.serial, sub.model, sub.cntlid_range) == ("serial-1", "Model X", (10, 20))
    assert sub.ana_state == AnaState.NON_OPTIMIZED
    assert sub.serial != ""
    assert target.subsystems() == [sub]


async def test_a_taken_nqn_is_already_exists(
    served: Served, devices: Callable[..., MallocDevice]
) -> None:
    with pytest.raises(AlreadyExists):
        served.target.add_subsystem(served.nqn, devices(), port=served.port)


@pytest.mark.parametrize(
    "nqn",
    ["", "not-an-nqn", "nqn.2019-13.io.openebs:x", DISCOVERY_NQN, "nqn.2019-05.io.x:" + "a" * 300],
)
async def test_a_bad_or_reserved_nqn_is_invalid_argument(
    target: NvmfTarget, devices: Callable[..., MallocDevice], nqn: str
) -> None:
    with pytest.raises(InvalidArgument):
        target.add_subsystem(nqn, devices(), port=8420)
    assert target.subsystems() == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": 0},
        {"port": 70000},
        {"port": 8420, "serial": "x" * 21},
        {"port": 8420, "serial": "serial\u00e9"},
        {"port": 8420, "model": ""},
        {"port": 8420, "model": "m" * 41},
        {"port": 8420, "cntlid_range": (0, 5)},
        {"port": 8420, "cntlid_range": (5, 4)},
        {"port": 8420, "cntlid_range": (1, 0xFFF0)},
        {"port": 8420, "allowed_hosts": HOSTNQN},
        {"port": 8420, "allowed_hosts": ["not a host"]},
        {"port": 8420, "ana_state": 9},
    ],
    ids=str,
)
async def test_bad_subsystem_arguments_are_invalid_argument_and_add_nothing(
    target: NvmfTarget, devices: Callable[..., MallocDevice], kwargs: dict[str, object]
) -> None:
    with pytest.raises(InvalidArgument):
        target.add_subsystem("nqn.2019-05.io.openebs:bad-args", devices(), **kwargs)  # type: ignore[arg-type]
    assert target.subsystems() == []


async def test_something_that_is_not_a_block_device_is_invalid_argument(target: NvmfTarget) -> None:
    with pytest.raises(InvalidArgument):
        target.add_subsystem("nqn.2019-05.io.openebs:x", "/dev/sda", port=8420)  # type: ignore[arg-type]


def test_a_target_address_that_is_not_ipv4_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument):
        NvmfTarget("localhost")


@pytest.mark.parametrize("call", ["share_uri", "controllers", "subsystem", "namespace_changed"])
async def test_an_unknown_subsystem_is_not_found(target: NvmfTarget, call: str) -> None:
    with pytest.raises(NotFound):
        getattr(target, call)("nqn.2019-05.io.openebs:nobody")


async def test_removing_an_unknown_subsystem_is_not_found(target: NvmfTarget) -> None:
    with pytest.raises(NotFound):
        await target.remove_subsystem("nqn.2019-05.io.openebs:nobody")


async def test_changing_an_unknown_subsystem_is_not_found(target: NvmfTarget) -> None:
    with pytest.raises(NotFound):
        target.set_allowed_hosts("nqn.2019-05.io.openebs:nobody", None)
    with pytest.raises(NotFound):
        target.set_ana_state("nqn.2019-05.io.openebs:nobody", AnaState.OPTIMIZED)


# ------------------------------------------------------------------ listening


async def test_listening_twice_on_one_port_is_already_exists(served: Served) -> None:
    with pytest.raises(AlreadyExists):
        await served.target.listen(served.port)


async def test_a_port_taken_by_someone_else_is_failed_precondition(target: NvmfTarget) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(FailedPrecondition):
            await target.listen(other.getsockname()[1])


async def test_one_target_listens_on_several_ports(target: NvmfTarget) -> None:
    first = await target.listen(0)
    second = await target.listen(0)
    assert target.ports == tuple(sorted((first, second)))


async def test_a_subsystem_is_refused_through_a_port_it_is_not_served_on(
    served: Served,
) -> None:
    other = await served.target.listen(0)
    queue, status = await connect_admin(other, served.nqn)
    await queue.close()
    assert status == INVALID_PARAMETERS


async def test_discovery_through_any_port_lists_each_subsystem_with_its_own_port(
    target: NvmfTarget, devices: Callable[..., MallocDevice]
) -> None:
    replicas = await target.listen(0)
    nexuses = await target.listen(0)
    target.add_subsystem("nqn.2019-05.io.openebs:replica", devices(), port=replicas)
    target.add_subsystem("nqn.2019-05.io.openebs:nexus", devices(), port=nexuses)
    for port in (replicas, nexuses):
        queue = await HostQueue.open("127.0.0.1", port)
        await queue.connect(DISCOVERY_NQN)
        await queue.property_set(
            PropertyOffset.CC, ControllerConfiguration(en=True, iosqes=6, iocqes=4).encode()
        )
        page = DiscoveryLogPage.decode(
            (await queue.get_log_page(LogPageId.DISCOVERY, 3072, nsid=0)).data
        )
        await queue.close()
        assert sorted((e.subnqn, e.trsvcid) for e in page.entries) == [
            ("nqn.2019-05.io.openebs:nexus", str(nexuses)),
            ("nqn.2019-05.io.openebs:replica", str(replicas)),
        ]


# ------------------------------------------------------------------ controllers


async def test_controllers_lists_each_host_controller_with_its_queues(served: Served) -> None:
    ctrl = await HostController.connect(
        "127.0.0.1", served.port, served.nqn, io_queues=2, kato=10_000
    )
    try:
        (info,) = served.target.controllers(served.nqn)
        assert info.cntlid == ctrl.cntlid
        assert info.hostnqn == HOSTNQN
        assert info.queues == 3
        assert info.keep_alive_ms == 10_000
        assert info.state == "ready"
    finally:
        await ctrl.close()


async def test_allowed_hosts_apply_to_new_connections_only(served: Served) -> None:
    ctrl = await HostController.connect("127.0.0.1", served.port, served.nqn)
    try:
        served.target.set_allowed_hosts(served.nqn, [OTHER_HOST])
        assert (await ctrl.io[0].read(0, 1, 512)).ok  # the connected host goes on
        queue, status = await connect_admin(served.port, served.nqn)
        await queue.close()
        assert status == INVALID_HOST
        other, status = await connect_admin(served.port, served.nqn, hostnqn=OTHER_HOST)
        await other.close()
        assert status == (0, 0)
    finally:
        await ctrl.close()


async def test_ana_state_change_shows_in_the_ana_log(served: Served) -> None:
    ctrl = await HostController.connect("127.0.0.1", served.port, served.nqn)
    try:
        served.target.set_ana_state(served.nqn, AnaState.INACCESSIBLE)
        log = AnaLog.decode((await ctrl.admin.get_log_page(LogPageId.ANA, 4096)).data)
        assert [g.state for g in log.groups] == [AnaState.INACCESSIBLE]
    finally:
        await ctrl.close()


# ------------------------------------------------------------------ removing, closing


async def test_removing_a_subsystem_disconnects_its_hosts_and_refuses_new_ones(
    served: Served,
) -> None:
    ctrl = await HostController.connect("127.0.0.1", served.port, served.nqn)
    try:
        await served.target.remove_subsystem(served.nqn)
        await asyncio.wait_for(ctrl.admin.closed.wait(), 5)
        await asyncio.wait_for(ctrl.io[0].closed.wait(), 5)
        queue, status = await connect_admin(served.port, served.nqn)
        await queue.close()
        assert status == INVALID_PARAMETERS
        assert served.target.subsystems() == []
    finally:
        await ctrl.close()


async def test_removing_a_subsystem_waits_for_its_writes_in_flight(
    target: NvmfTarget, devices: Callable[..., MallocDevice]
) -> None:
    port = await target.listen(0)
    device = devices(cls=SlowDevice)
    nqn = openebs_nqn(device.uuid)
    target.add_subsystem(nqn, device, port=port)
    ctrl = await HostController.connect("127.0.0.1", port, nqn)
    try:
        writes = [asyncio.create_task(ctrl.io[0].write(i * 8, bytes(4096), 512)) for i in range(4)]
        await asyncio.sleep(0.05)
        assert device.stats.num_write_ops == 0
        await target.remove_subsystem(nqn)
        assert device.stats.num_write_ops == 4
        for write in writes:
            with pytest.raises(TargetTerminated):
                await write  # never acknowledged: the connection went first
    finally:
        await ctrl.close()


async def test_close_disconnects_everyone_and_stops_listening(served: Served) -> None:
    ctrl = await HostController.connect("127.0.0.1", served.port, served.nqn)
    try:
        await served.target.close()
        await asyncio.wait_for(ctrl.admin.closed.wait(), 5)
        with pytest.raises(OSError):
            await HostQueue.open("127.0.0.1", served.port)
        await served.target.close()  # again: nothing happens
        with pytest.raises(FailedPrecondition):
            await served.target.listen(0)
    finally:
        await ctrl.close()


async def test_a_new_device_can_be_shared_under_a_removed_nqn(
    served: Served, devices: Callable[..., MallocDevice]
) -> None:
    await served.target.remove_subsystem(served.nqn)
    replacement = devices()
    served.target.add_subsystem(served.nqn, replacement, port=served.port)
    ctrl = await HostController.connect("127.0.0.1", served.port, served.nqn)
    try:
        assert (await ctrl.io[0].write(0, b"x" * 512, 512)).ok
        assert bytes(await replacement.read(0, 1)) == b"x" * 512
    finally:
        await ctrl.close()


def test_openebs_nqn_is_the_mayastor_form() -> None:
    value = uuid_mod.UUID("0d0a1b2c-3d4e-4f50-8a1b-2c3d4e5f6a7b")
    assert openebs_nqn(value) == f"nqn.2019-05.io.openebs:{value}"
