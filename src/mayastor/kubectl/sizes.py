"""Sizes: read from the command line in binary units, shown in tables in binary units.

Accepted: a bare number of bytes (``1048576``), or a number with a binary unit —
``B``, ``KiB``, ``MiB``, ``GiB``, ``TiB``, ``PiB``, or Kubernetes' ``Ki``, ``Mi``,
``Gi``, ``Ti``, ``Pi`` — with or without a space, in any case (``1GiB``, ``1.5 Gi``).
Decimal units (``GB``, ``G``) are refused rather than guessed: Kubernetes reads ``1G``
as 10^9 bytes and Mayastor's own tools as 2^30.

Shown: ``512B``, ``32MiB``, ``381.6MiB``, ``1GiB`` — the largest unit that keeps the
number at least 1, one decimal when it is not whole (as Mayastor's plugin shows them).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

UNITS: tuple[tuple[str, int], ...] = (
    ("PiB", 1 << 50),
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
)
"""Display units, largest first."""

_FACTORS = {
    "": 1,
    "b": 1,
    "kib": 1 << 10,
    "ki": 1 << 10,
    "mib": 1 << 20,
    "mi": 1 << 20,
    "gib": 1 << 30,
    "gi": 1 << 30,
    "tib": 1 << 40,
    "ti": 1 << 40,
    "pib": 1 << 50,
    "pi": 1 << 50,
}
_DECIMAL = {"k", "kb", "m", "mb", "g", "gb", "t", "tb", "p", "pb"}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")

MAX_SIZE = (1 << 63) - 1
"""The API's largest size (a signed 64-bit count of bytes)."""


def parse_size(text: str) -> int:
    """Bytes for a size given on the command line.

    Args:
        text: ``"1073741824"``, ``"1GiB"``, ``"512 MiB"``, ``"1.5Gi"``.

    Raises:
        ValueError: not a size, a decimal or unknown unit, not a whole number of
            bytes, or larger than the API takes.
    """
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size (e.g. 1GiB, 512MiB, 1073741824)")
    number, unit = match.groups()
    unit = unit.lower()
    if unit in _DECIMAL:
        raise ValueError(
            f"{text!r}: decimal units are ambiguous; use a binary one (KiB, MiB, GiB, TiB)"
        )
    if unit not in _FACTORS:
        raise ValueError(f"{text!r}: unknown unit {match.group(2)!r} (use B, KiB, MiB, GiB, TiB)")
    try:
        value = Decimal(number) * _FACTORS[unit]
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only numbers
        raise ValueError(f"{text!r} is not a size") from exc
    if value != value.to_integral_value():
        raise ValueError(f"{text!r} is not a whole number of bytes")
    if value > MAX_SIZE:
        raise ValueError(f"{text!r} is larger than the largest size ({MAX_SIZE} bytes)")
    return int(value)


def format_size(nbytes: int) -> str:
    """A size for a table: ``0B``, ``512B``, ``32MiB``, ``381.6MiB``, ``1GiB``."""
    if nbytes < 1024:
        return f"{nbytes}B"
    for index, (unit, factor) in enumerate(UNITS):
        if nbytes < factor:
            continue
        shown = round(nbytes / factor, 1)
        if shown >= 1024 and index > 0:
            unit, factor = UNITS[index - 1]
            shown = round(nbytes / factor, 1)
        return f"{shown:.0f}{unit}" if shown == int(shown) else f"{shown:.1f}{unit}"
    raise AssertionError("unreachable: every size of 1 KiB or more has a unit")
