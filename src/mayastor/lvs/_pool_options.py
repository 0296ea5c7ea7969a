"""The options of a pool create, checked before anything is read or written."""

from __future__ import annotations

import re
import uuid as uuid_mod

from mayastor.errors import InvalidArgument
from mayastor.lvs.format import MAX_CLUSTERS, MIB

DEFAULT_MAX_EXPANSION = 10
"""Metadata is sized for the disk growing to this many times its size at create."""
MAX_CLUSTER_SIZE = 1 << 30
"""The largest cluster a pool may have."""

_EXTENTS_HEADER_BYTES = 9
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kib": 1 << 10,
    "kb": 1000,
    "m": 1 << 20,
    "mib": 1 << 20,
    "mb": 1000**2,
    "g": 1 << 30,
    "gib": 1 << 30,
    "gb": 1000**3,
    "t": 1 << 40,
    "tib": 1 << 40,
    "tb": 1000**4,
    "p": 1 << 50,
    "pib": 1 << 50,
    "pb": 1000**5,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")


def check_uuid(value: object, what: str) -> uuid_mod.UUID | None:
    """`value` as a UUID (None stays None).

    Raises:
        InvalidArgument: neither a UUID nor a string holding one.
    """
    if value is None:
        return None
    if isinstance(value, uuid_mod.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid_mod.UUID(value)
        except ValueError:
            pass
    raise InvalidArgument(f"{what} {value!r} is not a UUID")


def check_cluster_size(cluster_size: object) -> None:
    """Raises InvalidArgument unless `cluster_size` is a multiple of 1 MiB up to 1 GiB."""
    if (
        isinstance(cluster_size, bool)
        or not isinstance(cluster_size, int)
        or cluster_size <= 0
        or cluster_size % MIB
        or cluster_size > MAX_CLUSTER_SIZE
    ):
        raise InvalidArgument(
            f"cluster size {cluster_size!r} is not a multiple of 1 MiB between 1 MiB and 1 GiB"
        )


def max_disk_bytes(disk_bytes: int, max_expansion: object, cluster_size: int) -> int:
    """The largest disk the metadata is sized for: `max_expansion` as a factor ("4x"),
    a size ("2TiB", "500GB") or bytes; None: `DEFAULT_MAX_EXPANSION` times the disk.

    Raises:
        InvalidArgument: neither a factor nor a size, a factor below 1, or a size
            smaller than the disk.
    """
    if max_expansion is None:
        wanted = disk_bytes * DEFAULT_MAX_EXPANSION
        return min(wanted, MAX_CLUSTERS * cluster_size)
    if isinstance(max_expansion, bool):
        raise InvalidArgument(f"max_expansion {max_expansion!r} is neither a factor nor a size")
    if isinstance(max_expansion, int):
        wanted = max_expansion
    elif isinstance(max_expansion, str):
        text = max_expansion.strip().lower()
        if text.endswith("x"):
            try:
                factor = float(text[:-1])
            except ValueError:
                raise InvalidArgument(f"max_expansion {max_expansion!r} is not a factor") from None
            if not factor >= 1:
                raise InvalidArgument(f"max_expansion factor {max_expansion!r} is below 1")
            wanted = int(disk_bytes * factor)
        else:
            match = _SIZE_RE.match(text)
            if not match or match.group(2) not in _UNITS:
                raise InvalidArgument(
                    f"max_expansion {max_expansion!r} is neither a factor ('4x') nor a size "
                    "('2TiB', '500GB', bytes)"
                )
            wanted = int(float(match.group(1)) * _UNITS[match.group(2)])
    else:
        raise InvalidArgument(f"max_expansion {max_expansion!r} is neither a factor nor a size")
    if wanted < disk_bytes:
        raise InvalidArgument(
            f"max_expansion {max_expansion!r} ({wanted} bytes) is smaller than the disk "
            f"({disk_bytes} bytes)"
        )
    return wanted
