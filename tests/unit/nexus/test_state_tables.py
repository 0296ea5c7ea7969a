"""The nexus, child and rebuild state tables: what they allow, and that they refuse the rest."""

from __future__ import annotations

import itertools

import pytest

from mayastor.errors import (
    DeviceError,
    FailedPrecondition,
    InternalDeviceError,
    IoTimeout,
    NoSpace,
    PathLost,
    UnrecoveredReadError,
)
from mayastor.nexus import (
    CHILD_TRANSITIONS,
    NEXUS_TRANSITIONS,
    REBUILD_TRANSITIONS,
    ChildEvent,
    ChildState,
    FaultReason,
    NexusEvent,
    NexusState,
    RebuildEvent,
    RebuildState,
    next_child_state,
    next_nexus_state,
    next_rebuild_state,
    reason_for_error,
)

NEXUS_MISSING = [
    pair for pair in itertools.product(NexusState, NexusEvent) if pair not in NEXUS_TRANSITIONS
]
CHILD_MISSING = [
    pair for pair in itertools.product(ChildState, ChildEvent) if pair not in CHILD_TRANSITIONS
]
REBUILD_MISSING = [
    pair
    for pair in itertools.product(RebuildState, RebuildEvent)
    if pair not in REBUILD_TRANSITIONS
]


@pytest.mark.parametrize(("state", "event"), NEXUS_MISSING)
def test_a_nexus_transition_outside_the_table_is_refused(
    state: NexusState, event: NexusEvent
) -> None:
    with pytest.raises(FailedPrecondition, match=state.value):
        next_nexus_state("n0", state, event)


@pytest.mark.parametrize(("state", "event"), CHILD_MISSING)
def test_a_child_transition_outside_the_table_is_refused(
    state: ChildState, event: ChildEvent
) -> None:
    with pytest.raises(FailedPrecondition, match=event.value):
        next_child_state("bdev:///c0", state, event)


@pytest.mark.parametrize(("state", "event"), REBUILD_MISSING)
def test_a_rebuild_transition_outside_the_table_is_refused(
    state: RebuildState, event: RebuildEvent
) -> None:
    with pytest.raises(FailedPrecondition, match="cannot"):
        next_rebuild_state("bdev:///c0", state, event)


def test_a_shut_down_nexus_accepts_no_event() -> None:
    assert all((NexusState.SHUTDOWN, event) in NEXUS_MISSING for event in NexusEvent)


def test_a_faulted_nexus_stays_faulted_until_it_shuts_down() -> None:
    for event in (NexusEvent.ALL_CHILDREN_IN_SYNC, NexusEvent.REDUNDANCY_LOST):
        assert next_nexus_state("n0", NexusState.FAULTED, event) is NexusState.FAULTED
    assert next_nexus_state("n0", NexusState.FAULTED, NexusEvent.SHUTDOWN_STARTED) is (
        NexusState.SHUTTING_DOWN
    )


def test_only_online_and_degraded_nexuses_serve_io() -> None:
    assert {s for s in NexusState if s.serves_io} == {NexusState.ONLINE, NexusState.DEGRADED}


def test_a_child_is_rebuilt_from_faulted_through_degraded_to_online() -> None:
    assert next_child_state("c", ChildState.FAULTED, ChildEvent.REBUILD_STARTED) == (
        ChildState.DEGRADED,
        None,
    )
    assert next_child_state("c", ChildState.DEGRADED, ChildEvent.REBUILD_COMPLETED) == (
        ChildState.ONLINE,
        None,
    )


def test_fixed_fault_reasons_come_from_the_table() -> None:
    expected = {
        ChildEvent.FAULTED_BY_CLIENT: FaultReason.BY_CLIENT,
        ChildEvent.TAKEN_OFFLINE: FaultReason.OFFLINE,
        ChildEvent.REBUILD_FAILED: FaultReason.REBUILD_FAILED,
        ChildEvent.REBUILD_STOPPED: FaultReason.OUT_OF_SYNC,
    }
    for event, reason in expected.items():
        state = ChildState.DEGRADED
        assert next_child_state("c", state, event) == (ChildState.FAULTED, reason)


def test_an_online_child_cannot_start_a_rebuild() -> None:
    with pytest.raises(FailedPrecondition):
        next_child_state("c", ChildState.ONLINE, ChildEvent.REBUILD_STARTED)


def test_a_finished_rebuild_cannot_be_paused_or_resumed() -> None:
    for state in (RebuildState.COMPLETED, RebuildState.FAILED, RebuildState.STOPPED):
        assert state.done
        for event in (RebuildEvent.PAUSE, RebuildEvent.RESUME, RebuildEvent.STOP):
            with pytest.raises(FailedPrecondition):
                next_rebuild_state("c", state, event)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (NoSpace("x"), FaultReason.NO_SPACE),
        (IoTimeout("x"), FaultReason.TIMED_OUT),
        (PathLost("x"), FaultReason.TIMED_OUT),
        (UnrecoveredReadError("x"), FaultReason.IO_ERROR),
        (InternalDeviceError("x"), FaultReason.IO_ERROR),
        (DeviceError("x"), FaultReason.IO_ERROR),
        (OSError("not a device error"), FaultReason.IO_ERROR),
    ],
)
def test_the_fault_reason_follows_the_error(error: Exception, reason: FaultReason) -> None:
    assert reason_for_error(error) is reason
