"""CSI names to volume uuids, and capacity ranges to volume sizes."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mayastor.api.csi.v1 import csi_pb2
from mayastor.csi._volumes import (
    BLOCK,
    DEFAULT_SIZE,
    check_name,
    parse_volume_id,
    size_for,
    volume_uuid_for_name,
    within,
)
from mayastor.csi.errors import InvalidArgument, OutOfRange

bounds = st.integers(min_value=0, max_value=1 << 44)


def capacity(required: int, limit: int) -> csi_pb2.CapacityRange:
    return csi_pb2.CapacityRange(required_bytes=required, limit_bytes=limit)


def test_a_pvc_name_gives_the_uuid_it_holds() -> None:
    wanted = uuid.uuid4()
    assert volume_uuid_for_name(f"pvc-{wanted}") == wanted


@given(st.text(min_size=1, max_size=40))
def test_any_other_name_gives_the_same_uuid_every_time(name: str) -> None:
    assert volume_uuid_for_name(name) == volume_uuid_for_name(name)


def test_two_names_give_two_uuids() -> None:
    assert volume_uuid_for_name("data-0") != volume_uuid_for_name("data-1")


@pytest.mark.parametrize("name", ["", "x" * 129, "bad\x07name", "tab\x1fname"])
def test_a_name_the_spec_does_not_allow_is_invalid_argument(name: str) -> None:
    with pytest.raises(InvalidArgument):
        check_name(name)


def test_a_volume_id_that_is_not_a_canonical_uuid_names_no_volume() -> None:
    plain = uuid.uuid4()
    assert parse_volume_id(str(plain)) == plain
    assert parse_volume_id("vol-1") is None
    assert parse_volume_id(plain.hex) is None


def test_an_empty_volume_id_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument):
        parse_volume_id("")


def test_no_capacity_range_gives_the_default_size() -> None:
    assert size_for(None) == DEFAULT_SIZE
    assert size_for(capacity(0, 0)) == DEFAULT_SIZE


def test_only_a_limit_gives_the_default_size_within_it() -> None:
    assert size_for(capacity(0, 10_000)) == 9_728


@given(bounds, bounds)
def test_a_size_is_whole_blocks_within_the_range_or_out_of_range(required: int, limit: int) -> None:
    try:
        size = size_for(capacity(required, limit))
    except OutOfRange:
        low = max(required, BLOCK)
        assert limit
        assert -(-low // BLOCK) * BLOCK > limit
        return
    assert size % BLOCK == 0
    assert size >= required
    assert size >= BLOCK
    assert not limit or size <= limit
    assert size - required < BLOCK or not required


def test_a_negative_bound_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument):
        size_for(capacity(-1, 0))


def test_an_existing_size_is_within_a_range_it_meets() -> None:
    assert within(8 << 20, capacity(4 << 20, 16 << 20))
    assert not within(8 << 20, capacity(12 << 20, 0))
    assert not within(8 << 20, capacity(0, 4 << 20))
    assert within(8 << 20, None)
