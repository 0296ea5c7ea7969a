"""The reservation key of a volume's nexus: nonzero, and new with each target."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from mayastor.control.operations.targets import reservation_key, reservation_of
from mayastor.control.specs import NexusNvmfConfig, NexusSpec, SpecStatus

U64 = (1 << 64) - 1


@given(st.uuids(), st.integers(min_value=0, max_value=1 << 20))
def test_a_key_is_a_nonzero_64_bit_value(nexus: uuid.UUID, generation: int) -> None:
    assert 0 < reservation_key(nexus, generation) <= U64


@given(st.uuids(), st.uuids(), st.integers(min_value=1, max_value=0xFFFE))
def test_the_next_target_of_a_volume_never_has_the_same_key(
    old: uuid.UUID, new: uuid.UUID, generation: int
) -> None:
    assert reservation_key(old, generation) != reservation_key(new, generation + 1)


def test_the_generation_can_be_read_off_the_key() -> None:
    nexus = uuid.UUID("00000000-0000-4000-8000-0000000000ff")
    assert reservation_key(nexus, 3) == 0x0003_0000_0000_00FF


def test_a_nexus_spec_says_which_key_it_holds() -> None:
    spec = NexusSpec(
        uuid=uuid.uuid4(),
        name="v",
        node="node-1",
        children=[],
        size=1 << 20,
        status=SpecStatus.CREATED,
    )
    assert reservation_of(spec) == 0
    assert reservation_of(None) == 0
    spec.nvmf_config = NexusNvmfConfig(reservation_key=0x1234)
    assert reservation_of(NexusSpec.from_store(spec.to_store())) == 0x1234
