"""Sizes: binary units in, binary units out, nothing guessed."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mayastor.kubectl.sizes import MAX_SIZE, UNITS, format_size, parse_size

FACTOR = {"B": 1, **dict(UNITS)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1048576", 1 << 20),
        ("512B", 512),
        ("4KiB", 4 << 10),
        ("32MiB", 32 << 20),
        ("1GiB", 1 << 30),
        ("2TiB", 2 << 40),
        ("1PiB", 1 << 50),
        ("1Gi", 1 << 30),
        ("64Mi", 64 << 20),
        ("1.5GiB", 3 << 29),
        ("1 GiB", 1 << 30),
        (" 8 mib ", 8 << 20),
    ],
)
def test_a_size_with_a_binary_unit_or_none_reads_as_bytes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["1G", "1GB", "10MB", "5k", "1TB"])
def test_a_decimal_unit_is_refused_as_ambiguous(text: str) -> None:
    with pytest.raises(ValueError, match="binary"):
        parse_size(text)


@pytest.mark.parametrize("text", ["", "GiB", "-1GiB", "1,5GiB", "1e9", "1 GiB B", "1XiB"])
def test_text_that_is_not_a_size_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_a_fraction_of_a_byte_is_refused() -> None:
    with pytest.raises(ValueError, match="whole number of bytes"):
        parse_size("1.5B")


def test_a_size_beyond_the_apis_range_is_refused() -> None:
    with pytest.raises(ValueError, match="largest"):
        parse_size(str(MAX_SIZE + 1))


@given(st.text(max_size=20))
def test_any_text_parses_to_a_size_or_raises_value_error(text: str) -> None:
    try:
        size = parse_size(text)
    except ValueError:
        return
    assert 0 <= size <= MAX_SIZE


@pytest.mark.parametrize(
    ("nbytes", "shown"),
    [
        (0, "0B"),
        (1023, "1023B"),
        (1024, "1KiB"),
        (32 << 20, "32MiB"),
        (252 << 20, "252MiB"),
        (400_000_000, "381.5MiB"),
        (3 << 29, "1.5GiB"),
        (1 << 40, "1TiB"),
        ((1 << 20) - 1, "1MiB"),
    ],
)
def test_sizes_show_in_the_largest_binary_unit_with_one_decimal_at_most(
    nbytes: int, shown: str
) -> None:
    assert format_size(nbytes) == shown


@given(st.integers(min_value=0, max_value=MAX_SIZE))
def test_a_shown_size_is_within_a_twentieth_of_its_unit_of_the_bytes(nbytes: int) -> None:
    match = re.fullmatch(r"([0-9]+(?:\.[0-9])?)(B|KiB|MiB|GiB|TiB|PiB)", format_size(nbytes))
    assert match, format_size(nbytes)
    number, unit = float(match.group(1)), match.group(2)
    assert abs(number * FACTOR[unit] - nbytes) <= 0.05 * FACTOR[unit] + 1e-6 * nbytes
    assert unit == "B" or number >= 1


@given(st.integers(min_value=0, max_value=1023), st.sampled_from([u for u, _ in UNITS]))
def test_a_whole_number_of_a_unit_reads_back_exactly(count: int, unit: str) -> None:
    nbytes = count * FACTOR[unit]
    assert parse_size(format_size(nbytes)) == nbytes
