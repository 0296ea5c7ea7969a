"""Sizes on the command line: MiB by default, binary units when given."""

from __future__ import annotations

import pytest

from mayastor.cli.sizes import format_size, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10", 10 << 20),
        ("1000", 1000 << 20),
        ("10MiB", 10 << 20),
        ("10M", 10 << 20),
        ("10mb", 10 << 20),
        ("2GiB", 2 << 30),
        ("1.5GiB", 3 << 29),
        ("512KiB", 512 << 10),
        ("4096B", 4096),
        ("1TiB", 1 << 40),
    ],
)
def test_sizes_parse_to_bytes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_bare_number_uses_the_default_unit_given() -> None:
    assert parse_size("4194304", default_unit="b") == 4 << 20


@pytest.mark.parametrize("text", ["", "ten", "10XiB", "-1", "1.0000001B"])
def test_text_that_is_not_a_size_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize(
    ("nbytes", "text"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (96 << 20, "96.0 MiB"),
        (3 << 29, "1.5 GiB"),
        (1 << 40, "1.0 TiB"),
    ],
)
def test_sizes_display_in_binary_units(nbytes: int, text: str) -> None:
    assert format_size(nbytes) == text
