"""A nexus just made for a volume is read back: one that cannot serve is refused, so the
publish (or switch-over) is undone and tried again."""

from __future__ import annotations

import uuid

import pytest

from mayastor.api.v1 import nexus_pb2
from mayastor.control.operations.targets import check_usable
from mayastor.control.specs import SpecStatus, VolumePolicy, VolumeSpec
from mayastor.errors import Conflict, FailedPrecondition, Unavailable

VOLUME = VolumeSpec(
    uuid=uuid.uuid4(),
    size=1 << 20,
    num_replicas=2,
    status=SpecStatus.CREATED,
    policy=VolumePolicy(self_heal=True),
    thin=False,
)


def nexus(state: int, *, fenced: bool = False) -> nexus_pb2.Nexus:
    return nexus_pb2.Nexus(
        uuid=str(uuid.uuid4()),
        state=state,  # type: ignore[arg-type]
        fenced=fenced,
        fence_reason="child nvmf://b answered with a reservation conflict" if fenced else "",
    )


@pytest.mark.parametrize("state", [nexus_pb2.NEXUS_ONLINE, nexus_pb2.NEXUS_DEGRADED])
def test_a_serving_nexus_is_taken(state: int) -> None:
    check_usable(VOLUME, nexus(state))


def test_a_nexus_fenced_as_soon_as_it_was_made_is_a_conflict_naming_why() -> None:
    with pytest.raises(Conflict, match="reservation conflict"):
        check_usable(VOLUME, nexus(nexus_pb2.NEXUS_FAULTED, fenced=True))


def test_a_faulted_new_nexus_is_refused() -> None:
    with pytest.raises(FailedPrecondition, match="faulted"):
        check_usable(VOLUME, nexus(nexus_pb2.NEXUS_FAULTED))


def test_a_new_nexus_its_node_does_not_report_is_unavailable() -> None:
    with pytest.raises(Unavailable):
        check_usable(VOLUME, None)
