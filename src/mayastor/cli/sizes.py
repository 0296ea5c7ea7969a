"""Sizes on the command line: ``10`` means 10 MiB, ``10GiB`` / ``512KiB`` / ``4096B`` as said.

Binary units (KiB, MiB, GiB, TiB; K/M/G/T and KB/MB/GB/TB are taken as binary too, as
Mayastor's client does) and their display as ``96.0 MiB``.
"""

from __future__ import annotations

import re

_UNITS = {
    "": 1 << 20,  # a bare number is MiB
    "b": 1,
    "k": 1 << 10,
    "m": 1 << 20,
    "g": 1 << 30,
    "t": 1 << 40,
    "p": 1 << 50,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtpb]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str, default_unit: str = "m") -> int:
    """Bytes for a size given on the command line.

    Args:
        text: ``"10"``, ``"10MiB"``, ``"1.5GiB"``, ``"4096B"``.
        default_unit: unit of a bare number (``"m"`` for MiB, ``"b"`` for bytes).

    Raises:
        ValueError: the text is not a size.
    """
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size (e.g. 10, 10MiB, 2GiB, 4096B)")
    number, unit = match.groups()
    unit = unit.lower()
    if not unit:
        unit = default_unit
    value = float(number) * _UNITS[unit]
    if value != int(value):
        raise ValueError(f"{text!r} is not a whole number of bytes")
    return int(value)


def format_size(nbytes: int) -> str:
    """``0 B``, ``512 B``, ``96.0 MiB``, ``1.5 GiB``."""
    if nbytes < 1024:
        return f"{nbytes} B"
    value = float(nbytes)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")
