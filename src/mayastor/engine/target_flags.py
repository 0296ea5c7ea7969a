"""The io-engine's flags that bound its NVMe/TCP target, and the `TargetConfig` they make.

Every bound on what hosts can make the target hold is a flag with the target's own
default: connections per listener, controllers per subsystem, I/O queues and queue
depth per controller, write data asked for by R2T and not yet received (per
connection and in total), and how long a connection may take to send its ICReq and
its Connect, or to send data it owes.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Callable

from mayastor.errors import InvalidArgument
from mayastor.target import TargetConfig

_DEFAULTS = TargetConfig()
_SIZE = re.compile(r"^(\d+)\s*([KMG]?)(?:i?B)?$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}

_FLAGS: tuple[tuple[str, str, str, str], ...] = (
    # flag, TargetConfig field, kind, help
    (
        "--nvmf-max-connections",
        "max_connections",
        "int",
        "TCP connections one NVMe/TCP port holds; at the limit the oldest connection "
        "not yet connected to a controller is closed, or the new one",
    ),
    (
        "--nvmf-max-controllers",
        "max_controllers",
        "int",
        "controllers one subsystem (replica, nexus, discovery) has at once; a Connect "
        "beyond is refused with Controller Busy",
    ),
    (
        "--nvmf-max-io-queues",
        "max_io_queues",
        "int",
        "I/O queues one controller may have (Set Features Number of Queues grants at most this)",
    ),
    (
        "--nvmf-queue-depth",
        "max_queue_entries",
        "int",
        "entries of one I/O queue (CAP.MQES + 1); a Connect asking for more is refused",
    ),
    (
        "--nvmf-max-pending-write",
        "max_pending_write_bytes",
        "size",
        "write data one connection may owe (asked for by R2T, not yet received); "
        "commands beyond wait for their R2Ts",
    ),
    (
        "--nvmf-max-pending-write-total",
        "max_pending_write_bytes_total",
        "size",
        "the same over every connection of the io-engine",
    ),
    (
        "--nvmf-ic-timeout",
        "ic_timeout",
        "seconds",
        "a new connection that sends no ICReq in this time is closed",
    ),
    (
        "--nvmf-connect-timeout",
        "connect_timeout",
        "seconds",
        "a connection with no successful Fabrics Connect this long after its ICReq is closed",
    ),
    (
        "--nvmf-write-data-timeout",
        "write_data_timeout",
        "seconds",
        "a connection that owes write data and sends none for this long is closed",
    ),
)


def parse_size(text: str) -> int:
    """``8388608``, ``8M``, ``8MiB``, ``256K`` -> bytes (powers of 1024).

    Raises:
        argparse.ArgumentTypeError: not a size.
    """
    found = _SIZE.match(text.strip())
    if found is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 8M, 256MiB, 65536)")
    return int(found.group(1)) * _UNITS[found.group(2).upper()]


_TYPES: dict[str, Callable[[str], object]] = {"int": int, "size": parse_size, "seconds": float}
_METAVARS = {"int": "N", "size": "BYTES", "seconds": "SECONDS"}


def add_target_flags(parser: argparse.ArgumentParser) -> None:
    """Add the NVMe/TCP target's bounds to the io-engine's parser."""
    group = parser.add_argument_group("NVMe/TCP target bounds")
    for flag, name, kind, text in _FLAGS:
        group.add_argument(
            flag,
            dest=f"target_{name}",
            type=_TYPES[kind],
            default=getattr(_DEFAULTS, name),
            metavar=_METAVARS[kind],
            help=f"{text} (default: %(default)s)",
        )


def target_config_from_args(args: argparse.Namespace) -> TargetConfig:
    """The target's config from parsed flags.

    Raises:
        InvalidArgument: values that do not go together (the message names the flag).
    """
    values = {name: getattr(args, f"target_{name}") for _, name, _, _ in _FLAGS}
    try:
        return dataclasses.replace(_DEFAULTS, **values)
    except InvalidArgument as exc:
        named = str(exc)
        for flag, name, _, _ in sorted(_FLAGS, key=lambda f: -len(f[1])):
            named = re.sub(rf"\b{name}\b", flag, named)
        raise InvalidArgument(named) from exc


def describe(config: TargetConfig) -> str:
    """One line naming every bound, for the io-engine's start-up log."""
    return ", ".join(f"{flag}={getattr(config, name)}" for flag, name, _, _ in _FLAGS)
