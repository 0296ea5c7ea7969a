"""The sparse segment map behaves as a set of segment numbers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mayastor.nexus import SegmentMap


def test_a_block_range_marks_every_segment_it_touches() -> None:
    segments = SegmentMap(100)
    segments.add_blocks(lba=127, nblocks=2, segment_blocks=128)
    segments.add_blocks(lba=1280, nblocks=1, segment_blocks=128)
    assert list(segments) == [0, 1, 10]
    assert len(segments) == 3
    assert 10 in segments
    assert 2 not in segments


def test_an_empty_map_is_false_and_empty_ranges_mark_nothing() -> None:
    segments = SegmentMap(10)
    segments.add_blocks(lba=5, nblocks=0, segment_blocks=4)
    assert not segments
    assert list(segments) == []


def test_ranges_are_clipped_to_the_map() -> None:
    segments = SegmentMap(10)
    segments.add_range(8, 100)
    assert list(segments) == [8, 9]


def test_a_copy_is_independent_and_update_is_a_union() -> None:
    first = SegmentMap(10_000)
    first.add_range(4090, 10)
    second = first.copy()
    second.add_range(9000, 1)
    first.update(second)
    assert 9000 in first
    second.clear()
    assert 4095 in first
    assert not second


@given(
    st.integers(min_value=1, max_value=20_000),
    st.lists(st.tuples(st.integers(0, 20_000), st.integers(0, 5_000)), max_size=12),
)
def test_it_holds_exactly_the_segments_added(
    num_segments: int, ranges: list[tuple[int, int]]
) -> None:
    segments = SegmentMap(num_segments)
    expected: set[int] = set()
    for first, count in ranges:
        segments.add_range(first, count)
        expected.update(range(first, min(first + count, num_segments)))
    assert list(segments) == sorted(expected)
    assert len(segments) == len(expected)
