"""Fencing: a nexus made with a reservation key holds an NVMe reservation on every child;
a newer nexus takes the children over, and the old one is fenced at its next I/O.

The children are in-process handles (`LoopbackDevice`, as ``bdev:///`` opens them) on
shared malloc disks that keep a reservation cell, as replicas do; each nexus opens
them with its own host identifier.
"""

from __future__ import annotations

import asyncio
import uuid as uuid_mod
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from mayastor.bdev import (
    AcquireAction,
    BlockDevice,
    MallocDevice,
    RegisterAction,
    ReservationCell,
    ReservationType,
)
from mayastor.bdev.loopback import LoopbackDevice
from mayastor.errors import (
    AnaInaccessible,
    DeviceError,
    InvalidArgument,
    ReservationConflict,
    Superseded,
)
from mayastor.nexus import (
    NEXUS_TRANSITIONS,
    ChildState,
    MemoryNexusInfoStore,
    Nexus,
    NexusEvent,
    NexusInfo,
    NexusState,
    PreemptPolicy,
    ReservationPolicy,
    next_nexus_state,
    nexus_host_id,
)
from tests.conformance.block_device import pattern

SIZE = 2 << 20
KEY_A, KEY_B = 0xA, 0xB
R0, R1, R2 = "bdev:///r0", "bdev:///r1", "bdev:///r2"


class Replicas:
    """The tests' child opener: malloc disks with a reservation cell each (like replicas),
    opened as in-process handles of the host the nexus names."""

    def __init__(self) -> None:
        self.disks: dict[str, MallocDevice] = {}
        self.plain: set[str] = set()

    def disk(self, uri: str) -> MallocDevice:
        name = uri.rsplit("/", 1)[-1]
        if name not in self.disks:
            disk = MallocDevice(name, SIZE // 512)
            if uri not in self.plain:
                disk.reservations = ReservationCell()
            self.disks[name] = disk
        return self.disks[name]

    async def open(self, uri: str, *, hostid: uuid_mod.UUID | None = None) -> BlockDevice:
        return LoopbackDevice(self.disk(uri), hostid=hostid)

    def cell(self, uri: str) -> ReservationCell:
        cell = self.disk(uri).reservations
        assert cell is not None
        return cell

    async def close(self) -> None:
        for disk in self.disks.values():
            await disk.close()


Make = Callable[..., Awaitable[Nexus]]


@pytest.fixture
async def replicas() -> AsyncIterator[Replicas]:
    found = Replicas()
    yield found
    await found.close()


@pytest.fixture
async def make(replicas: Replicas) -> AsyncIterator[Make]:
    made: list[Nexus] = []
    store = MemoryNexusInfoStore()

    async def create(key: int | None, children: list[str] | None = None, **policy: Any) -> Nexus:
        reservation = ReservationPolicy(key, **policy) if key is not None else None
        nexus = await Nexus.create(
            f"nexus{len(made)}",
            uuid_mod.uuid4(),
            SIZE,
            children or [R0, R1],
            opener=replicas,
            store=store,
            reservation=reservation,
        )
        made.append(nexus)
        return nexus

    yield create
    for nexus in made:
        await nexus.close()


async def test_each_child_is_registered_and_reserved_by_the_nexus_as_its_own_host(
    make: Make, replicas: Replicas
) -> None:
    nexus = await make(KEY_A)
    assert nexus.host_id == nexus_host_id(nexus.uuid)
    for uri in (R0, R1):
        state = replicas.cell(uri).state
        assert state.rtype == ReservationType.EXCLUSIVE_ACCESS
        assert state.holder == nexus.host_id
        assert state.key_of(nexus.host_id) == KEY_A


async def test_two_nexuses_are_two_hosts(make: Make) -> None:
    a, b = await make(None), await make(None)
    assert a.host_id != b.host_id


async def test_a_newer_nexus_with_the_holder_policy_fences_the_old_one(
    make: Make, replicas: Replicas
) -> None:
    old = await make(KEY_A)
    told: list[str] = []
    old.on_fenced = lambda: told.append("fenced")
    await old.write(0, pattern(4096, 1))
    new = await make(KEY_B, preempt=PreemptPolicy.HOLDER)
    assert all(replicas.cell(u).state.holder == new.host_id for u in (R0, R1))
    with pytest.raises(AnaInaccessible) as refused:
        await old.write(8, pattern(4096, 2))
    assert not refused.value.status.dnr  # a path error: a multipath host retries elsewhere
    assert old.state is NexusState.FENCED
    assert old.fenced is not None
    assert "reservation conflict" in old.fenced
    await asyncio.sleep(0.01)
    assert told == ["fenced"]
    # Nothing was retired: the children are fine, just not ours; the info is untouched.
    assert [c.state for c in old.children] == [ChildState.ONLINE, ChildState.ONLINE]
    assert all(c.healthy for c in old.children)
    with pytest.raises(AnaInaccessible):
        await old.read(0, 8)
    with pytest.raises(AnaInaccessible):
        await old.flush()
    await new.write(16, pattern(4096, 3))
    for uri in (R0, R1):
        disk = replicas.disk(uri)
        assert bytes(await disk.read(0, 8)) == pattern(4096, 1)  # before the takeover
        assert bytes(await disk.read(8, 8)) == bytes(4096)  # never written
        assert bytes(await disk.read(16, 8)) == pattern(4096, 3)  # the new nexus's


async def test_a_fenced_nexus_shutting_down_leaves_its_nexus_info_alone(
    make: Make, replicas: Replicas
) -> None:
    old = await make(KEY_A)
    before = await old._store.get(old.uuid)
    await make(KEY_B, preempt=PreemptPolicy.HOLDER)
    with pytest.raises(AnaInaccessible):
        await old.write(0, bytes(512))
    await old.shutdown()
    after = await old._store.get(old.uuid)
    assert after == before
    assert after is not None
    assert not after.clean_shutdown


async def test_submitted_io_of_a_fenced_nexus_gets_the_path_status(
    make: Make, replicas: Replicas
) -> None:
    old = await make(KEY_A)
    await make(KEY_B, preempt=PreemptPolicy.HOLDER)
    done: asyncio.Future[DeviceError | None] = asyncio.get_running_loop().create_future()
    old.submit_write(0, bytes(512), lambda _c, _d, e: done.set_result(e), None)
    assert isinstance(await done, AnaInaccessible)
    read: asyncio.Future[DeviceError | None] = asyncio.get_running_loop().create_future()
    old.submit_read(0, 1, lambda _c, _d, e: read.set_result(e), None)
    assert isinstance(await read, AnaInaccessible)


async def test_a_write_some_child_took_is_not_acknowledged_once_fenced(
    make: Make, replicas: Replicas
) -> None:
    old = await make(KEY_A)
    # Another host takes only r1 over (the new nexus is half made, say).
    other = LoopbackDevice(replicas.disk(R1), hostid=uuid_mod.uuid4())
    await other.reservation_register(RegisterAction.REGISTER, new_key=KEY_B)
    await other.reservation_acquire(
        AcquireAction.PREEMPT,
        ReservationType.EXCLUSIVE_ACCESS,
        current_key=KEY_B,
        preempt_key=KEY_A,
    )
    with pytest.raises(AnaInaccessible):
        await old.write(0, pattern(512, 7))
    assert old.state is NexusState.FENCED
    await other.close()


async def test_arg_key_preempts_the_given_key(make: Make, replicas: Replicas) -> None:
    await make(KEY_A)
    new = await make(KEY_B, preempt_key=KEY_A)
    assert replicas.cell(R0).state.holder == new.host_id
    assert replicas.cell(R0).state.key_of(new.host_id) == KEY_B


async def test_without_a_preempt_key_a_held_child_cannot_be_taken_and_nothing_is_left_open(
    make: Make, replicas: Replicas
) -> None:
    await make(KEY_A)
    with pytest.raises(ReservationConflict, match="held by key 0xa"):
        await make(KEY_B)
    with pytest.raises(ReservationConflict):
        await make(KEY_B, preempt_key=0x99)  # a key nobody holds
    for uri in (R0, R1):  # the failed attempts left no registration behind
        assert [r.key for r in replicas.cell(uri).state.registrants] == [KEY_A]


async def test_shutdown_releases_and_unregisters(make: Make, replicas: Replicas) -> None:
    nexus = await make(KEY_A)
    await nexus.shutdown()
    for uri in (R0, R1):
        state = replicas.cell(uri).state
        assert (state.rtype, state.registrants) == (0, ())
    await make(KEY_B)  # no preemption needed any more


async def test_a_nexus_made_again_with_its_key_claims_its_children_again(
    replicas: Replicas,
) -> None:
    store = MemoryNexusInfoStore()
    nexus_uuid = uuid_mod.uuid4()
    policy = ReservationPolicy(KEY_A)
    first = await Nexus.create(
        "n", nexus_uuid, SIZE, [R0], opener=replicas, store=store, reservation=policy
    )
    await first.write(0, bytes(512))
    # An unclean end: the handles go, the reservation stays behind on the replica.
    for child in first._children:
        assert child.device is not None
        await child.device.close()
    again = await Nexus.create(
        "n", nexus_uuid, SIZE, [R0], opener=replicas, store=store, reservation=policy
    )
    await again.write(0, bytes(512))
    assert replicas.cell(R0).state.holder == nexus_host_id(nexus_uuid)
    await again.close()


async def test_another_type_is_held_when_asked_for(make: Make, replicas: Replicas) -> None:
    await make(KEY_A, rtype=ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY)
    assert replicas.cell(R0).rtype == ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY


async def test_an_added_child_is_claimed(make: Make, replicas: Replicas) -> None:
    nexus = await make(KEY_A)
    await nexus.add_child(R2)
    assert replicas.cell(R2).state.holder == nexus.host_id


async def test_an_added_child_held_by_another_host_is_refused_and_nothing_changes(
    make: Make, replicas: Replicas
) -> None:
    nexus = await make(KEY_A)
    holder = LoopbackDevice(replicas.disk(R2), hostid=uuid_mod.uuid4())
    await holder.reservation_register(RegisterAction.REGISTER, new_key=0x77)
    await holder.reservation_acquire(
        AcquireAction.ACQUIRE, ReservationType.EXCLUSIVE_ACCESS, current_key=0x77
    )
    with pytest.raises(ReservationConflict):
        await nexus.add_child(R2)
    assert [c.uri for c in nexus.children] == [R0, R1]
    await holder.close()


async def test_a_child_brought_back_online_is_claimed_again(make: Make, replicas: Replicas) -> None:
    nexus = await make(KEY_A)
    await nexus.offline_child(R1)
    await nexus.online_child(R1)
    assert replicas.cell(R1).state.holder == nexus.host_id


async def test_a_rebuild_into_a_taken_over_child_fences_the_nexus(
    make: Make, replicas: Replicas
) -> None:
    nexus = await make(KEY_A, children=[R0])
    other = LoopbackDevice(replicas.disk(R1), hostid=uuid_mod.uuid4())
    await nexus.add_child(R1, norebuild=True)
    await other.reservation_register(RegisterAction.REGISTER, new_key=KEY_B)
    await other.reservation_acquire(
        AcquireAction.PREEMPT,
        ReservationType.EXCLUSIVE_ACCESS,
        current_key=KEY_B,
        preempt_key=KEY_A,
    )
    await nexus.start_rebuild(R1)
    for _ in range(200):
        if nexus.state is NexusState.FENCED:
            break
        await asyncio.sleep(0.01)
    assert nexus.state is NexusState.FENCED
    await other.close()


async def test_children_without_reservations_are_not_fenced(make: Make, replicas: Replicas) -> None:
    replicas.plain.add(R0)
    nexus = await make(KEY_A, children=[R0])
    await nexus.write(0, bytes(512))
    assert replicas.disk(R0).reservations is None


@pytest.mark.parametrize(
    "policy",
    [{"key": 0}, {"key": 1 << 64}, {"key": 5, "preempt_key": 5}, {"key": 5, "rtype": 9}],
)
def test_a_policy_with_a_bad_key_or_type_is_refused(policy: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        ReservationPolicy(**policy)


@pytest.mark.parametrize("state", [NexusState.ONLINE, NexusState.DEGRADED, NexusState.FAULTED])
def test_being_superseded_fences_a_nexus(state: NexusState) -> None:
    assert next_nexus_state("n", state, NexusEvent.SUPERSEDED) is NexusState.FENCED


@pytest.mark.parametrize("event", [e for e in NexusEvent if e is not NexusEvent.SHUTDOWN_STARTED])
def test_a_fenced_nexus_stays_fenced_until_it_is_shut_down(event: NexusEvent) -> None:
    if (NexusState.FENCED, event) in NEXUS_TRANSITIONS:
        assert next_nexus_state("n", NexusState.FENCED, event) is NexusState.FENCED
    assert not NexusState.FENCED.serves_io
    shut = next_nexus_state("n", NexusState.FENCED, NexusEvent.SHUTDOWN_STARTED)
    assert shut is NexusState.SHUTTING_DOWN


class SupersedingStore(MemoryNexusInfoStore):
    """Nexus info kept in memory that refuses every write once `superseded` is set, as
    the cluster store does for a nexus the control plane replaced while it was away."""

    def __init__(self) -> None:
        super().__init__()
        self.superseded = False

    async def put(self, nexus_uuid: uuid_mod.UUID, info: NexusInfo) -> None:
        if self.superseded:
            raise Superseded(f"nexus {nexus_uuid} was replaced by a newer target")
        await super().put(nexus_uuid, info)


async def superseded_nexus(replicas: Replicas) -> tuple[Nexus, SupersedingStore]:
    store = SupersedingStore()
    nexus = await Nexus.create(
        "old",
        uuid_mod.uuid4(),
        SIZE,
        [R0, R1],
        opener=replicas,
        store=store,
        reservation=ReservationPolicy(KEY_A),
    )
    await nexus.write(0, pattern(4096, 1))
    store.superseded = True
    return nexus, store


async def test_a_nexus_whose_info_the_store_refuses_as_superseded_is_fenced(
    replicas: Replicas,
) -> None:
    nexus, store = await superseded_nexus(replicas)
    told: list[str] = []
    nexus.on_fenced = lambda: told.append("fenced")
    before = await store.get(nexus.uuid)
    await replicas.disk(R1).close()  # the remote child it lost while cut off
    with pytest.raises(AnaInaccessible):
        await nexus.write(8, pattern(4096, 2))  # taken by r0 alone: never acknowledged
    assert nexus.state is NexusState.FENCED
    assert nexus.fenced is not None
    assert "store refused its nexus info" in nexus.fenced
    await asyncio.sleep(0.01)
    assert told == ["fenced"]
    with pytest.raises(AnaInaccessible):
        await nexus.read(0, 8)
    assert await store.get(nexus.uuid) == before
    await nexus.close()


async def test_a_superseded_nexus_is_destroyed_without_an_error(replicas: Replicas) -> None:
    nexus, store = await superseded_nexus(replicas)
    before = await store.get(nexus.uuid)
    await nexus.shutdown()  # its clean-shutdown record is refused: left as it was
    assert nexus.state is NexusState.SHUTDOWN
    assert await store.get(nexus.uuid) == before
    await nexus.destroy()
