"""NVMe reservations over real TCP: our target and our initiator, hosts told apart by
the host identifier of their Connect.

Register, acquire, report, preempt, release and clear end to end; the I/O each kind of
host may do under each reservation type; what a malloc namespace (state kept in memory)
reports of itself.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from mayastor.bdev import (
    AcquireAction,
    ChangePtpl,
    MallocDevice,
    RegisterAction,
    ReleaseAction,
    ReservationType,
)
from mayastor.bdev.nvmf import NvmfDevice
from mayastor.errors import DeviceError, InvalidField, ReservationConflict
from mayastor.nvmf.host import ControllerOptions
from mayastor.nvmf.spec import (
    GenericStatus,
    IdentifyNamespace,
    OptionalNvmCommands,
    ReservationCapabilities,
)
from mayastor.target import NvmfTarget, openebs_nqn
from tests.integration.target.conftest import Served, SlowDevice

HOSTNQN = "nqn.2019-05.io.openebs:node-name:resv-test"
HOST_A = uuid.UUID("aaaaaaaa-0000-4000-8000-00000000000a")
HOST_B = uuid.UUID("bbbbbbbb-0000-4000-8000-00000000000b")
HOST_C = uuid.UUID("cccccccc-0000-4000-8000-00000000000c")
KEY_A, KEY_B = 0xA, 0xB
TYPES = list(ReservationType)

Open = Callable[[uuid.UUID], Awaitable[NvmfDevice]]


@pytest.fixture
async def host(served: Served) -> AsyncIterator[Open]:
    """Factory: a remote namespace opened as host `hostid` (one NQN, several IDs)."""
    opened: list[NvmfDevice] = []

    async def open_as(hostid: uuid.UUID) -> NvmfDevice:
        options = ControllerOptions(
            hostnqn=HOSTNQN, hostid=hostid, io_queues=1, ctrl_loss_timeout=0
        )
        device = await NvmfDevice.open(served.target.share_uri(served.nqn), options=options)
        opened.append(device)
        return device

    yield open_as
    for device in opened:
        await device.close()


async def hold(device: NvmfDevice, key: int, rtype: ReservationType) -> None:
    await device.reservation_register(RegisterAction.REGISTER, new_key=key)
    await device.reservation_acquire(AcquireAction.ACQUIRE, rtype, current_key=key)


async def outcome(call: Awaitable[object]) -> str:
    try:
        await call
    except ReservationConflict:
        return "conflict"
    return "ok"


async def test_the_controller_says_it_supports_reservations_and_not_ptpl_in_memory(
    served: Served, host: Open
) -> None:
    a = await host(HOST_A)
    assert a.controller.identify.oncs & OptionalNvmCommands.RESERVATIONS
    assert a.supports_reservations
    assert a.reservation_host == HOST_A
    namespace: IdentifyNamespace = await a.controller.identify_namespace(1)
    assert namespace.rescap == ReservationCapabilities.all_types()


async def test_register_acquire_and_report_over_tcp(served: Served, host: Open) -> None:
    a, b = await host(HOST_A), await host(HOST_B)
    await hold(a, KEY_A, ReservationType.EXCLUSIVE_ACCESS)
    await b.reservation_register(RegisterAction.REGISTER, new_key=KEY_B)
    status = await b.reservation_report()
    assert status.rtype == ReservationType.EXCLUSIVE_ACCESS
    assert status.generation == 2
    assert not status.ptpls
    assert [(r.hostid, r.rkey, r.holds) for r in status.registrants] == [
        (HOST_A.bytes, KEY_A, True),
        (HOST_B.bytes, KEY_B, False),
    ]


async def test_another_hosts_acquire_conflicts_and_its_preempt_takes_the_reservation(
    served: Served, host: Open
) -> None:
    a, b = await host(HOST_A), await host(HOST_B)
    await hold(a, KEY_A, ReservationType.EXCLUSIVE_ACCESS)
    await b.reservation_register(RegisterAction.REGISTER, new_key=KEY_B)
    with pytest.raises(ReservationConflict) as refused:
        await b.reservation_acquire(
            AcquireAction.ACQUIRE, ReservationType.EXCLUSIVE_ACCESS, current_key=KEY_B
        )
    assert "reservation" in str(refused.value)
    await b.reservation_acquire(
        AcquireAction.PREEMPT,
        ReservationType.EXCLUSIVE_ACCESS,
        current_key=KEY_B,
        preempt_key=KEY_A,
    )
    status = await a.reservation_report()
    assert [(r.rkey, r.holds) for r in status.registrants] == [(KEY_B, True)]
    assert await outcome(a.write(0, bytes(512))) == "conflict"
    assert await outcome(a.read(0, 1)) == "conflict"
    assert await outcome(b.write(0, bytes(512))) == "ok"


async def test_release_and_clear_over_tcp(served: Served, host: Open) -> None:
    a, b = await host(HOST_A), await host(HOST_B)
    await hold(a, KEY_A, ReservationType.WRITE_EXCLUSIVE)
    await b.reservation_register(RegisterAction.REGISTER, new_key=KEY_B)
    with pytest.raises(InvalidField):
        await a.reservation_release(
            ReleaseAction.RELEASE, ReservationType.EXCLUSIVE_ACCESS, current_key=KEY_A
        )
    await a.reservation_release(
        ReleaseAction.RELEASE, ReservationType.WRITE_EXCLUSIVE, current_key=KEY_A
    )
    assert (await a.reservation_report()).rtype == 0
    await b.reservation_release(
        ReleaseAction.CLEAR, ReservationType.WRITE_EXCLUSIVE, current_key=KEY_B
    )
    status = await a.reservation_report()
    assert (status.rtype, status.regctl) == (0, 0)


async def test_a_wrong_key_conflicts_and_a_zero_key_is_an_invalid_field(
    served: Served, host: Open
) -> None:
    a = await host(HOST_A)
    with pytest.raises(InvalidField):
        await a.reservation_register(RegisterAction.REGISTER, new_key=0)
    await a.reservation_register(RegisterAction.REGISTER, new_key=KEY_A)
    with pytest.raises(ReservationConflict):
        await a.reservation_register(RegisterAction.UNREGISTER, current_key=KEY_B)
    with pytest.raises(InvalidField):
        await a.reservation_register(
            RegisterAction.REGISTER, new_key=KEY_A, ptpl=ChangePtpl.SET
        )  # a malloc namespace cannot persist through a power loss
    await a.reservation_register(RegisterAction.REPLACE, current_key=KEY_A, new_key=KEY_B)
    assert [r.rkey for r in (await a.reservation_report()).registrants] == [KEY_B]


async def test_a_report_in_the_standard_format_is_refused_over_fabrics(
    served: Served, host: Open
) -> None:
    a = await host(HOST_A)
    with pytest.raises(DeviceError) as refused:
        await a.controller._io_command("report", 0x0E, 1, 15, 0, read_length=64)
    assert refused.value.status.sc == GenericStatus.HOST_ID_INCONSISTENT_FORMAT


# per reservation type: what the holder, another registrant and a stranger may do
ACCESS = {
    ReservationType.WRITE_EXCLUSIVE: ("rw", "r", "r"),
    ReservationType.EXCLUSIVE_ACCESS: ("rw", "", ""),
    ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY: ("rw", "rw", "r"),
    ReservationType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: ("rw", "rw", ""),
    ReservationType.WRITE_EXCLUSIVE_ALL_REGISTRANTS: ("rw", "rw", "r"),
    ReservationType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS: ("rw", "rw", ""),
}


@pytest.mark.parametrize("rtype", TYPES, ids=[t.name.lower() for t in TYPES])
async def test_io_of_each_kind_of_host_under_each_type(
    served: Served, host: Open, rtype: ReservationType
) -> None:
    holder, registrant, stranger = await host(HOST_A), await host(HOST_B), await host(HOST_C)
    await hold(holder, KEY_A, rtype)
    await registrant.reservation_register(RegisterAction.REGISTER, new_key=KEY_B)
    for device, allowed in zip((holder, registrant, stranger), ACCESS[rtype], strict=True):
        expected_read = "ok" if "r" in allowed else "conflict"
        expected_write = "ok" if "w" in allowed else "conflict"
        assert await outcome(device.read(8, 1)) == expected_read, (rtype, device.reservation_host)
        for call in (
            device.write(8, bytes(512)),
            device.write_zeroes(8, 1),
            device.unmap(8, 1),
            device.flush(),
        ):
            assert await outcome(call) == expected_write, (rtype, device.reservation_host)


async def test_a_refused_write_leaves_the_data_alone(served: Served, host: Open) -> None:
    a, b = await host(HOST_A), await host(HOST_B)
    await a.write(0, b"\x0a" * 4096)
    await hold(a, KEY_A, ReservationType.WRITE_EXCLUSIVE)
    assert await outcome(b.write(0, b"\x0b" * 4096)) == "conflict"
    assert await outcome(b.write(0, b"\x0b" * 65536)) == "conflict"  # sent by R2T
    assert bytes(await b.read(0, 8)) == b"\x0a" * 4096


async def test_a_preempt_completes_only_after_the_preempted_hosts_write_in_flight(
    target: NvmfTarget, devices: Callable[..., MallocDevice]
) -> None:
    port = await target.listen(0)
    device = devices(cls=SlowDevice)
    nqn = openebs_nqn(device.uuid)
    target.add_subsystem(nqn, device, port=port)
    uri = target.share_uri(nqn)

    async def open_as(hostid: uuid.UUID) -> NvmfDevice:
        options = ControllerOptions(hostnqn=HOSTNQN, hostid=hostid, io_queues=1)
        return await NvmfDevice.open(uri, options=options)

    old, new = await open_as(HOST_A), await open_as(HOST_B)
    try:
        await hold(old, KEY_A, ReservationType.EXCLUSIVE_ACCESS)
        await new.reservation_register(RegisterAction.REGISTER, new_key=KEY_B)
        write = asyncio.ensure_future(old.write(0, b"\x0a" * 512))  # takes 0.3 s
        await asyncio.sleep(0.05)
        await new.reservation_acquire(
            AcquireAction.PREEMPT,
            ReservationType.EXCLUSIVE_ACCESS,
            current_key=KEY_B,
            preempt_key=KEY_A,
        )
        assert write.done()  # it landed before the preempt was answered
        await write
        assert await outcome(old.write(0, bytes(512))) == "conflict"
    finally:
        await old.close()
        await new.close()
