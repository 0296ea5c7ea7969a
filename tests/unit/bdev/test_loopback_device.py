"""A loopback handle reaches its device in-process, and closing it leaves the device open."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from mayastor.bdev import (
    AcquireAction,
    Buffer,
    MallocDevice,
    RegisterAction,
    ReleaseAction,
    ReservationCell,
    ReservationType,
)
from mayastor.bdev.loopback import LoopbackDevice
from mayastor.errors import DeviceError, InvalidOpcode, ReservationConflict
from tests.conformance.block_device import BlockDeviceConformance


class TestLoopbackConformance(BlockDeviceConformance):
    @pytest.fixture
    async def device(self) -> AsyncIterator[LoopbackDevice]:
        inner = MallocDevice("inner", num_blocks=4096, block_size=512)
        handle = LoopbackDevice(inner)
        yield handle
        await handle.close()
        await inner.close()


async def test_closing_the_handle_leaves_the_device_open_and_tells_its_owner() -> None:
    inner = MallocDevice("inner", num_blocks=64)
    released: list[str] = []

    async def release() -> None:
        released.append("released")

    handle = LoopbackDevice(inner, on_close=release)
    await handle.write(0, b"\x01" * 512)
    await handle.close()
    assert released == ["released"]
    assert not inner.closed
    assert bytes(await inner.read(0, 1)) == b"\x01" * 512
    await inner.close()


# ------------------------------------------------------------------ reservations

HOST_A = uuid.UUID("0000000a-0000-4000-8000-00000000000a")
HOST_B = uuid.UUID("0000000b-0000-4000-8000-00000000000b")
EXCLUSIVE = ReservationType.EXCLUSIVE_ACCESS


class SlowWrites(MallocDevice):
    """A malloc disk whose writes take a while, with a reservation cell of its own."""

    delay = 0.0

    async def _write(self, lba: int, data: Buffer) -> None:
        await asyncio.sleep(self.delay)
        await super()._write(lba, data)


@pytest.fixture
async def shared() -> AsyncIterator[SlowWrites]:
    inner = SlowWrites("replica", num_blocks=64)
    inner.reservations = ReservationCell()
    yield inner
    await inner.close()


async def take(handle: LoopbackDevice, key: int) -> None:
    await handle.reservation_register(RegisterAction.REGISTER, new_key=key)
    await handle.reservation_acquire(AcquireAction.ACQUIRE, EXCLUSIVE, current_key=key)


def submitted(handle: LoopbackDevice, write: bool) -> asyncio.Future[DeviceError | None]:
    future: asyncio.Future[DeviceError | None] = asyncio.get_running_loop().create_future()

    def done(_ctx: object, _data: object, error: DeviceError | None) -> None:
        future.set_result(error)

    if write:
        handle.submit_write(0, bytes(512), done, None)
    else:
        handle.submit_read(0, 1, done, None)
    return future


async def test_a_handle_whose_device_keeps_reservations_takes_part_as_its_host(
    shared: SlowWrites,
) -> None:
    handle = LoopbackDevice(shared, hostid=HOST_A)
    assert handle.supports_reservations
    assert handle.reservation_host == HOST_A
    await take(handle, 0xA)
    status = await handle.reservation_report()
    assert [(r.hostid, r.rkey, r.holds) for r in status.registrants] == [(HOST_A.bytes, 0xA, True)]
    await handle.write(0, b"\x01" * 512)
    assert bytes(await handle.read(0, 1)) == b"\x01" * 512
    await handle.close()


async def test_another_hosts_handle_gets_reservation_conflicts_for_every_io(
    shared: SlowWrites,
) -> None:
    holder = LoopbackDevice(shared, hostid=HOST_A)
    other = LoopbackDevice(shared, hostid=HOST_B)
    await take(holder, 0xA)
    for call in (
        other.read(0, 1),
        other.write(0, bytes(512)),
        other.flush(),
        other.unmap(0, 1),
        other.write_zeroes(0, 1),
    ):
        with pytest.raises(ReservationConflict):
            await call
    assert isinstance(await submitted(other, write=True), ReservationConflict)
    assert isinstance(await submitted(other, write=False), ReservationConflict)
    assert await submitted(holder, write=True) is None
    await holder.close()
    await other.close()


async def test_a_preempted_holder_is_fenced(shared: SlowWrites) -> None:
    old = LoopbackDevice(shared, hostid=HOST_A)
    new = LoopbackDevice(shared, hostid=HOST_B)
    await take(old, 0xA)
    await new.reservation_register(RegisterAction.REGISTER, new_key=0xB)
    with pytest.raises(ReservationConflict):
        await new.reservation_acquire(AcquireAction.ACQUIRE, EXCLUSIVE, current_key=0xB)
    await new.reservation_acquire(
        AcquireAction.PREEMPT, EXCLUSIVE, current_key=0xB, preempt_key=0xA
    )
    with pytest.raises(ReservationConflict):
        await old.write(0, bytes(512))
    with pytest.raises(ReservationConflict):
        await old.reservation_release(ReleaseAction.RELEASE, EXCLUSIVE, current_key=0xA)
    await new.write(0, b"\x02" * 512)
    await old.close()
    await new.close()


async def test_a_preempt_completes_only_after_the_preempted_hosts_write_in_flight(
    shared: SlowWrites,
) -> None:
    old = LoopbackDevice(shared, hostid=HOST_A)
    new = LoopbackDevice(shared, hostid=HOST_B)
    await take(old, 0xA)
    await new.reservation_register(RegisterAction.REGISTER, new_key=0xB)
    shared.delay = 0.2
    write = asyncio.ensure_future(old.write(0, b"\x0a" * 512))
    await asyncio.sleep(0.05)
    await new.reservation_acquire(
        AcquireAction.PREEMPT, EXCLUSIVE, current_key=0xB, preempt_key=0xA
    )
    assert write.done()  # the old holder's write landed before the preempt completed
    await write
    await old.close()
    await new.close()


async def test_a_handle_without_a_host_identifier_never_registers_and_is_fenced(
    shared: SlowWrites,
) -> None:
    holder = LoopbackDevice(shared, hostid=HOST_A)
    anonymous = LoopbackDevice(shared)
    assert not anonymous.supports_reservations
    assert anonymous.reservation_host is None
    with pytest.raises(InvalidOpcode):
        await anonymous.reservation_register(RegisterAction.REGISTER, new_key=1)
    await anonymous.write(0, bytes(512))  # no reservation held yet
    await take(holder, 0xA)
    with pytest.raises(ReservationConflict):
        await anonymous.write(0, bytes(512))
    await holder.close()
    await anonymous.close()


async def test_a_handle_on_a_device_without_reservations_is_not_fenced() -> None:
    inner = MallocDevice("plain", num_blocks=64)
    handle = LoopbackDevice(inner, hostid=HOST_A)
    assert not handle.supports_reservations
    with pytest.raises(InvalidOpcode):
        await handle.reservation_report()
    await handle.write(0, bytes(512))
    await handle.close()
    await inner.close()
