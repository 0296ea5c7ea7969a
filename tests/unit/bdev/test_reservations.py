"""The reservation state machine of a namespace: every action and type against the rules
of NVMe Base 1.4 section 8.8, the access table (Figure 418), invariants over random
command sequences, and the cell that makes changes durable before they take effect."""

from __future__ import annotations

import asyncio
import gc
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mayastor.bdev.reservations import (
    INVALID_FIELD,
    MAX_REGISTRANTS,
    OK,
    RESERVATION_CONFLICT,
    Access,
    Outcome,
    ReservationCell,
    ReservationState,
    Role,
    acquire,
    register,
    release,
    report,
)
from mayastor.errors import InternalDeviceError
from mayastor.nvmf.spec import (
    AcquireAction,
    ChangePtpl,
    IoOpcode,
    RegisterAction,
    ReleaseAction,
    ReservationType,
)

H = uuid.UUID("00000000-0000-4000-8000-0000000000a1")  # holder
R = uuid.UUID("00000000-0000-4000-8000-0000000000b2")  # registrant
O = uuid.UUID("00000000-0000-4000-8000-0000000000c3")  # other (never registers)  # noqa: E741
KH, KR = 0xA1, 0xB2
TYPES = list(ReservationType)


def ok(outcome: Outcome) -> ReservationState:
    assert outcome.status == OK, outcome.status.describe()
    return outcome.state


def registered(*hosts: tuple[uuid.UUID, int]) -> ReservationState:
    state = ReservationState()
    for host, key in hosts:
        state = ok(register(state, host, RegisterAction.REGISTER, nrkey=key))
    return state


def held(rtype: ReservationType) -> ReservationState:
    """H holds a reservation of `rtype`; R is registered; O is not."""
    state = registered((H, KH), (R, KR))
    return ok(acquire(state, H, AcquireAction.ACQUIRE, rtype, crkey=KH))


# ------------------------------------------------------------------ access table

# per reservation type: (holder, other registrant, non-registrant), from Figure 418
EXPECTED_ACCESS = {
    ReservationType.WRITE_EXCLUSIVE: ("rw", "r", "r"),
    ReservationType.EXCLUSIVE_ACCESS: ("rw", "", ""),
    ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY: ("rw", "rw", "r"),
    ReservationType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: ("rw", "rw", ""),
    ReservationType.WRITE_EXCLUSIVE_ALL_REGISTRANTS: ("rw", "rw", "r"),
    ReservationType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS: ("rw", "rw", ""),
}
READS = [IoOpcode.READ, IoOpcode.COMPARE]
WRITES = [
    IoOpcode.WRITE,
    IoOpcode.WRITE_ZEROES,
    IoOpcode.DATASET_MANAGEMENT,
    IoOpcode.WRITE_UNCORRECTABLE,
    IoOpcode.FLUSH,
]


@pytest.mark.parametrize("rtype", TYPES)
@pytest.mark.parametrize("who", [0, 1, 2], ids=["holder", "registrant", "other"])
def test_each_host_may_read_and_write_as_the_spec_table_says(
    rtype: ReservationType, who: int
) -> None:
    cell = ReservationCell(held(rtype))
    host = (H, R, O)[who]
    expected = EXPECTED_ACCESS[rtype][who]
    for opcode in READS:
        assert cell.allows(host, opcode) is ("r" in expected), (rtype, host, opcode)
    for opcode in WRITES:
        assert cell.allows(host, opcode) is ("w" in expected), (rtype, host, opcode)


@pytest.mark.parametrize("opcode", [*READS, *WRITES, IoOpcode.RESERVATION_REPORT])
def test_without_a_reservation_every_host_may_do_everything(opcode: IoOpcode) -> None:
    cell = ReservationCell(registered((H, KH)))
    assert cell.rtype == 0
    assert all(cell.allows(host, opcode) for host in (H, R, O))


@pytest.mark.parametrize(
    "opcode",
    [
        IoOpcode.RESERVATION_REGISTER,
        IoOpcode.RESERVATION_REPORT,
        IoOpcode.RESERVATION_ACQUIRE,
        IoOpcode.RESERVATION_RELEASE,
    ],
)
def test_reservation_commands_are_not_refused_by_the_access_table(opcode: IoOpcode) -> None:
    assert ReservationCell(held(ReservationType.EXCLUSIVE_ACCESS)).allows(O, opcode)


@pytest.mark.parametrize("rtype", TYPES)
def test_every_registrant_holds_an_all_registrants_reservation(rtype: ReservationType) -> None:
    state = held(rtype)
    assert state.role(H) is Role.HOLDER
    assert state.role(R) is (Role.HOLDER if rtype.all_registrants else Role.REGISTRANT)
    assert state.role(O) is Role.OTHER
    holders = {bytes(r.hostid) for r in report(state).holders}
    assert holders == ({H.bytes, R.bytes} if rtype.all_registrants else {H.bytes})


# ------------------------------------------------------------------ Register


def test_register_adds_the_host_with_its_key_and_bumps_the_generation() -> None:
    state = ok(register(ReservationState(), H, RegisterAction.REGISTER, nrkey=KH))
    assert state.key_of(H) == KH
    assert state.generation == 1


def test_registering_the_same_key_again_succeeds_and_another_key_conflicts() -> None:
    state = registered((H, KH))
    assert register(state, H, RegisterAction.REGISTER, nrkey=KH).status == OK
    assert register(state, H, RegisterAction.REGISTER, nrkey=KR).status == RESERVATION_CONFLICT


def test_a_zero_key_cannot_be_registered() -> None:
    assert register(ReservationState(), H, RegisterAction.REGISTER, nrkey=0).status == INVALID_FIELD


@pytest.mark.parametrize("rrega", [3, 4, 7])
def test_reserved_register_actions_are_invalid_fields(rrega: int) -> None:
    assert register(ReservationState(), H, rrega, nrkey=1).status == INVALID_FIELD


def test_unregister_needs_the_current_key_unless_iekey() -> None:
    state = registered((H, KH))
    assert register(state, H, RegisterAction.UNREGISTER, crkey=KR).status == RESERVATION_CONFLICT
    assert ok(register(state, H, RegisterAction.UNREGISTER, crkey=KH)).registrants == ()
    assert ok(register(state, H, RegisterAction.UNREGISTER, iekey=True)).registrants == ()


def test_unregister_or_replace_by_a_host_that_is_not_registered_conflicts() -> None:
    for action in (RegisterAction.UNREGISTER, RegisterAction.REPLACE):
        outcome = register(ReservationState(), H, action, crkey=1, nrkey=2, iekey=True)
        assert outcome.status == RESERVATION_CONFLICT


def test_replace_changes_the_key_and_keeps_the_reservation() -> None:
    state = held(ReservationType.WRITE_EXCLUSIVE)
    assert register(state, H, RegisterAction.REPLACE, crkey=KR, nrkey=5).status == (
        RESERVATION_CONFLICT
    )
    new = ok(register(state, H, RegisterAction.REPLACE, crkey=KH, nrkey=5))
    assert new.key_of(H) == 5
    assert new.holder == H
    assert ok(register(state, H, RegisterAction.REPLACE, iekey=True, nrkey=6)).key_of(H) == 6
    assert register(state, H, RegisterAction.REPLACE, crkey=KH, nrkey=0).status == INVALID_FIELD


@pytest.mark.parametrize("rtype", TYPES)
def test_the_holder_unregistering_releases_unless_all_registrants(
    rtype: ReservationType,
) -> None:
    state = ok(register(held(rtype), H, RegisterAction.UNREGISTER, crkey=KH))
    if rtype.all_registrants:
        assert state.rtype == rtype
        assert state.holder == R
    else:
        assert state.rtype == 0
        assert state.holder is None


def test_the_last_registrant_of_an_all_registrants_reservation_leaving_releases_it() -> None:
    state = held(ReservationType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS)
    state = ok(register(state, H, RegisterAction.UNREGISTER, crkey=KH))
    state = ok(register(state, R, RegisterAction.UNREGISTER, crkey=KR))
    assert (state.rtype, state.holder, state.registrants) == (0, None, ())


def test_ptpl_set_needs_a_persistent_namespace_and_clear_always_works() -> None:
    state = ReservationState()
    volatile = register(state, H, RegisterAction.REGISTER, nrkey=1, cptpl=ChangePtpl.SET)
    assert volatile.status == INVALID_FIELD
    persistent = register(
        state, H, RegisterAction.REGISTER, nrkey=1, cptpl=ChangePtpl.SET, persistent=True
    )
    assert ok(persistent).ptpl
    cleared = register(ok(persistent), H, RegisterAction.REGISTER, nrkey=1, cptpl=ChangePtpl.CLEAR)
    assert not ok(cleared).ptpl
    reserved = register(state, H, RegisterAction.REGISTER, nrkey=1, cptpl=ChangePtpl.RESERVED)
    assert reserved.status == INVALID_FIELD


def test_registrants_are_limited() -> None:
    state = ReservationState()
    for n in range(MAX_REGISTRANTS):
        state = ok(register(state, uuid.UUID(int=n + 1), RegisterAction.REGISTER, nrkey=n + 1))
    extra = register(state, uuid.UUID(int=999), RegisterAction.REGISTER, nrkey=7)
    assert extra.status.sc != 0
    assert extra.state is state


# ------------------------------------------------------------------ Acquire


@pytest.mark.parametrize("rtype", TYPES)
def test_acquire_without_a_reservation_makes_the_host_its_holder(rtype: ReservationType) -> None:
    state = held(rtype)
    assert (state.rtype, state.holder) == (rtype, H)
    assert state.generation == 2  # two registrations; Acquire does not count


@pytest.mark.parametrize("rtype", TYPES)
@pytest.mark.parametrize("wanted", TYPES)
def test_acquire_while_held_succeeds_only_for_a_holder_asking_for_the_same_type(
    rtype: ReservationType, wanted: ReservationType
) -> None:
    state = held(rtype)
    by_holder = acquire(state, H, AcquireAction.ACQUIRE, wanted, crkey=KH)
    by_registrant = acquire(state, R, AcquireAction.ACQUIRE, wanted, crkey=KR)
    assert by_holder.status == (OK if wanted == rtype else RESERVATION_CONFLICT)
    expected_r = OK if (rtype.all_registrants and wanted == rtype) else RESERVATION_CONFLICT
    assert by_registrant.status == expected_r
    assert by_holder.state == state


def test_acquire_needs_the_hosts_registered_key() -> None:
    state = registered((H, KH))
    wrong = acquire(state, H, AcquireAction.ACQUIRE, ReservationType.WRITE_EXCLUSIVE, crkey=KR)
    assert wrong.status == RESERVATION_CONFLICT
    stranger = acquire(state, O, AcquireAction.ACQUIRE, ReservationType.WRITE_EXCLUSIVE, crkey=0)
    assert stranger.status == RESERVATION_CONFLICT


@pytest.mark.parametrize("rtype", [0, 7, 0xFF])
def test_a_reserved_type_is_an_invalid_field(rtype: int) -> None:
    state = registered((H, KH))
    assert acquire(state, H, AcquireAction.ACQUIRE, rtype, crkey=KH).status == INVALID_FIELD


@pytest.mark.parametrize("racqa", [3, 7])
def test_a_reserved_acquire_action_is_an_invalid_field(racqa: int) -> None:
    assert acquire(registered((H, KH)), H, racqa, 1, crkey=KH).status == INVALID_FIELD


def test_acquire_with_iekey_is_an_invalid_field() -> None:
    outcome = acquire(registered((H, KH)), H, AcquireAction.ACQUIRE, 1, crkey=KH, iekey=True)
    assert outcome.status == INVALID_FIELD


PREEMPTS = [AcquireAction.PREEMPT, AcquireAction.PREEMPT_AND_ABORT]


@pytest.mark.parametrize("action", PREEMPTS)
@pytest.mark.parametrize("rtype", [t for t in TYPES if not t.all_registrants])
@pytest.mark.parametrize("new", TYPES)
def test_preempting_the_holders_key_takes_the_reservation_and_unregisters_the_holder(
    action: AcquireAction, rtype: ReservationType, new: ReservationType
) -> None:
    state = held(rtype)
    after = ok(acquire(state, R, action, new, crkey=KR, prkey=KH))
    assert (after.rtype, after.holder) == (new, R)
    assert after.key_of(H) is None
    assert after.generation == state.generation + 1


@pytest.mark.parametrize("action", PREEMPTS)
def test_the_holder_preempting_itself_changes_the_type(action: AcquireAction) -> None:
    state = held(ReservationType.WRITE_EXCLUSIVE)
    after = ok(acquire(state, H, action, ReservationType.EXCLUSIVE_ACCESS, crkey=KH, prkey=KH))
    assert (after.rtype, after.holder, after.key_of(H)) == (2, H, KH)


@pytest.mark.parametrize("action", PREEMPTS)
@pytest.mark.parametrize("rtype", [t for t in TYPES if not t.all_registrants])
def test_preempting_another_key_unregisters_it_and_keeps_the_reservation(
    action: AcquireAction, rtype: ReservationType
) -> None:
    state = held(rtype)
    after = ok(acquire(state, H, action, rtype, crkey=KH, prkey=KR))
    assert (after.rtype, after.holder) == (rtype, H)
    assert after.key_of(R) is None


@pytest.mark.parametrize("rtype", [t for t in TYPES if not t.all_registrants])
def test_preempting_with_a_zero_key_is_an_invalid_field_unless_all_registrants(
    rtype: ReservationType,
) -> None:
    outcome = acquire(held(rtype), R, AcquireAction.PREEMPT, rtype, crkey=KR, prkey=0)
    assert outcome.status == INVALID_FIELD


@pytest.mark.parametrize("rtype", [t for t in TYPES if t.all_registrants])
@pytest.mark.parametrize("new", TYPES)
def test_preempting_an_all_registrants_reservation_with_key_zero_takes_it_alone(
    rtype: ReservationType, new: ReservationType
) -> None:
    state = ok(register(held(rtype), O, RegisterAction.REGISTER, nrkey=0xC3))
    after = ok(acquire(state, R, AcquireAction.PREEMPT, new, crkey=KR, prkey=0))
    assert (after.rtype, after.holder) == (new, R)
    assert [r.hostid for r in after.registrants] == [R]


@pytest.mark.parametrize("rtype", [t for t in TYPES if t.all_registrants])
def test_preempting_a_key_of_an_all_registrants_reservation_only_unregisters_it(
    rtype: ReservationType,
) -> None:
    after = ok(acquire(held(rtype), R, AcquireAction.PREEMPT, rtype, crkey=KR, prkey=KH))
    assert after.rtype == rtype
    assert [r.hostid for r in after.registrants] == [R]
    assert after.role(R) is Role.HOLDER


@pytest.mark.parametrize("rtype", TYPES)
def test_preempting_a_key_nobody_has_conflicts(rtype: ReservationType) -> None:
    state = held(rtype)
    assert acquire(state, R, AcquireAction.PREEMPT, rtype, crkey=KR, prkey=0x99).status == (
        RESERVATION_CONFLICT
    )


def test_preempt_without_a_reservation_unregisters_the_key_and_creates_none() -> None:
    state = registered((H, KH), (R, KR))
    after = ok(acquire(state, H, AcquireAction.PREEMPT, 2, crkey=KH, prkey=KR))
    assert (after.rtype, after.key_of(R)) == (0, None)
    nobody = acquire(state, H, AcquireAction.PREEMPT, 2, crkey=KH, prkey=0x99)
    assert nobody.status == RESERVATION_CONFLICT


# ------------------------------------------------------------------ Release


@pytest.mark.parametrize("rtype", TYPES)
def test_the_holder_releases_its_type_and_keeps_its_registration(rtype: ReservationType) -> None:
    state = held(rtype)
    after = ok(release(state, H, ReleaseAction.RELEASE, rtype, crkey=KH))
    assert (after.rtype, after.holder, after.key_of(H)) == (0, None, KH)
    assert after.generation == state.generation


@pytest.mark.parametrize("rtype", TYPES)
def test_releasing_another_type_than_the_one_held_is_an_invalid_field(
    rtype: ReservationType,
) -> None:
    other = ReservationType(rtype % 6 + 1)
    assert release(held(rtype), H, ReleaseAction.RELEASE, other, crkey=KH).status == INVALID_FIELD


def test_release_by_a_registrant_that_does_not_hold_changes_nothing() -> None:
    state = held(ReservationType.WRITE_EXCLUSIVE)
    outcome = release(state, R, ReleaseAction.RELEASE, 1, crkey=KR)
    assert (outcome.status, outcome.state) == (OK, state)


def test_release_needs_the_registered_key_and_refuses_iekey() -> None:
    state = held(ReservationType.WRITE_EXCLUSIVE)
    assert release(state, H, ReleaseAction.RELEASE, 1, crkey=KR).status == RESERVATION_CONFLICT
    assert release(state, O, ReleaseAction.RELEASE, 1, crkey=0).status == RESERVATION_CONFLICT
    assert release(state, H, ReleaseAction.RELEASE, 1, crkey=KH, iekey=True).status == INVALID_FIELD
    assert release(state, H, 2, 1, crkey=KH).status == INVALID_FIELD


def test_clear_drops_the_reservation_and_every_registration() -> None:
    state = held(ReservationType.EXCLUSIVE_ACCESS)
    after = ok(release(state, R, ReleaseAction.CLEAR, 0, crkey=KR))
    assert (after.rtype, after.holder, after.registrants) == (0, None, ())
    assert after.generation == state.generation + 1


# ------------------------------------------------------------------ Report


def test_report_lists_registrants_with_their_keys_and_128_bit_host_identifiers() -> None:
    status = report(held(ReservationType.EXCLUSIVE_ACCESS))
    assert (status.generation, status.rtype, status.regctl) == (2, 2, 2)
    assert [(r.hostid, r.rkey, r.holds) for r in status.registrants] == [
        (H.bytes, KH, True),
        (R.bytes, KR, False),
    ]


# ------------------------------------------------------------------ invariants

HOSTS = [H, R, O]
KEYS = st.sampled_from([0, KH, KR, 0xC3, 7])
commands = st.one_of(
    st.tuples(
        st.just("register"),
        st.sampled_from(HOSTS),
        st.integers(0, 3),
        KEYS,
        KEYS,
        st.booleans(),
        st.sampled_from(list(ChangePtpl)),
    ),
    st.tuples(
        st.just("acquire"),
        st.sampled_from(HOSTS),
        st.integers(0, 3),
        st.integers(0, 7),
        KEYS,
        KEYS,
    ),
    st.tuples(
        st.just("release"),
        st.sampled_from(HOSTS),
        st.integers(0, 2),
        st.integers(0, 7),
        KEYS,
    ),
)


def run(state: ReservationState, command: tuple[Any, ...]) -> Outcome:
    kind, host, action, *rest = command
    assert isinstance(host, uuid.UUID)
    assert isinstance(action, int)
    if kind == "register":
        crkey, nrkey, iekey, cptpl = rest
        return register(
            state, host, action, crkey=crkey, nrkey=nrkey, iekey=iekey, cptpl=cptpl, persistent=True
        )
    if kind == "acquire":
        rtype, crkey, prkey = rest
        return acquire(state, host, action, rtype, crkey=crkey, prkey=prkey)
    rtype, crkey = rest
    return release(state, host, action, rtype, crkey=crkey)


def check_invariants(state: ReservationState) -> None:
    hosts = [r.hostid for r in state.registrants]
    assert len(hosts) == len(set(hosts))
    assert all(r.key for r in state.registrants)
    assert (state.rtype == 0) == (state.holder is None)
    if state.holder is not None:
        assert state.holder in hosts
    holders = report(state).holders
    if not state.rtype or not ReservationType(state.rtype).all_registrants:
        assert len(holders) <= 1


@settings(max_examples=300, deadline=None)
@given(st.lists(commands, max_size=30))
def test_any_command_sequence_keeps_the_invariants(sequence: list[tuple[object, ...]]) -> None:
    state = ReservationState()
    for command in sequence:
        outcome = run(state, command)
        if outcome.status != OK:
            assert outcome.state == state  # a refused command changes nothing
        assert outcome.state.generation >= state.generation  # never goes back
        state = outcome.state
        check_invariants(state)


@settings(max_examples=200, deadline=None)
@given(st.lists(commands, max_size=20))
def test_a_host_that_is_not_registered_never_holds_anything(
    sequence: list[tuple[object, ...]],
) -> None:
    state = ReservationState()
    for command in sequence:
        state = run(state, command).state
        for host in HOSTS:
            if state.key_of(host) is None:
                assert state.role(host) is Role.OTHER


# ------------------------------------------------------------------ the cell


@dataclass(eq=False)
class Host:
    hostid: uuid.UUID
    quiesced: int = 0

    async def quiesce(self) -> None:
        self.quiesced += 1


async def test_a_change_is_persisted_before_it_takes_effect() -> None:
    seen: list[tuple[int, int]] = []
    cell: ReservationCell

    async def persist(new: ReservationState) -> None:
        seen.append((new.generation, cell.state.generation))

    cell = ReservationCell(persist=persist)
    status = await cell.apply(lambda s: register(s, H, RegisterAction.REGISTER, nrkey=KH))
    assert status == OK
    assert seen == [(1, 0)]
    assert cell.state.generation == 1
    assert cell.persistent


async def test_a_change_that_cannot_be_persisted_does_not_take_effect() -> None:
    async def persist(new: ReservationState) -> None:
        raise InternalDeviceError("the pool is faulted")

    cell = ReservationCell(persist=persist)
    with pytest.raises(InternalDeviceError):
        await cell.apply(lambda s: register(s, H, RegisterAction.REGISTER, nrkey=KH))
    assert cell.state == ReservationState()


async def test_a_refused_command_persists_nothing() -> None:
    calls: list[ReservationState] = []

    async def persist(new: ReservationState) -> None:
        calls.append(new)

    cell = ReservationCell(persist=persist)
    status = await cell.apply(lambda s: register(s, H, RegisterAction.UNREGISTER, crkey=1))
    assert status == RESERVATION_CONFLICT
    assert calls == []


async def test_only_hosts_that_lose_access_are_waited_for() -> None:
    cell = ReservationCell(registered((H, KH), (R, KR)))
    holder, registrant, other = Host(H), Host(R), Host(O)
    for host in (holder, registrant, other):
        cell.attach(host)
    await cell.apply(lambda s: acquire(s, H, AcquireAction.ACQUIRE, 2, crkey=KH))
    assert cell.rtype == 2
    assert (holder.quiesced, registrant.quiesced, other.quiesced) == (0, 1, 1)
    cell.detach(other)
    await cell.apply(lambda s: acquire(s, R, AcquireAction.PREEMPT, 2, crkey=KR, prkey=KH))
    assert (holder.quiesced, registrant.quiesced, other.quiesced) == (1, 1, 1)


async def test_changes_run_one_at_a_time() -> None:
    order: list[str] = []

    async def persist(new: ReservationState) -> None:
        order.append(f"persist {new.generation}")
        await asyncio.sleep(0.01)
        order.append(f"done {new.generation}")

    cell = ReservationCell(persist=persist)
    await asyncio.gather(
        cell.apply(lambda s: register(s, H, RegisterAction.REGISTER, nrkey=KH)),
        cell.apply(lambda s: register(s, R, RegisterAction.REGISTER, nrkey=KR)),
    )
    assert order == ["persist 1", "done 1", "persist 2", "done 2"]


def test_access_flags_cover_reads_and_writes() -> None:
    assert Access.READ | Access.WRITE != Access.NONE


async def test_an_accessor_that_went_away_is_not_waited_for() -> None:
    class Stuck:
        hostid = O

        async def quiesce(self) -> None:
            await asyncio.Event().wait()  # its I/O would never end

    cell = ReservationCell(registered((H, KH)))
    gone = Stuck()
    cell.attach(gone)
    del gone
    gc.collect()
    step = AcquireAction.ACQUIRE
    await asyncio.wait_for(cell.apply(lambda s: acquire(s, H, step, 2, crkey=KH)), 5)
    assert cell.rtype == 2
