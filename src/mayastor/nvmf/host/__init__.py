"""Our NVMe/TCP initiator: what the nexus uses to reach a replica on another node.

Public surface:

* `Controller`: a connection to one controller of a remote subsystem: admin and I/O
  queues, identify, NVM I/O, reservations (register, acquire, release, report, as
  the host identifier of its Connect), keep alive, reconnect after a lost path,
  clean shutdown;
  its run state is a `ControllerState`, moved only along the table of
  `_controller_state`;
* `ControllerOptions`: host NQN, queues, digests and timeouts (`DEFAULT_HOSTNQN`,
  `hostid_for`);
* `discover`: read a target's discovery log page;
* the layers below, for tests and tools: `HostQueue` (one queue connection, sans
  I/O, with its `QueueState`), `QueueConnection` (the same over asyncio) and
  `ReconnectClock` (the timing of a lost path);
* why a connection ended, as the cause of `PathLost`: `TransportError`,
  `ConnectionClosed`, `TargetTerminated`, `TargetProtocolError`, `KeepAliveFailed`.

Errors the caller handles are those of `mayastor.errors`: a failed command raises
the `DeviceError` subclass its completion status names, a lost path `PathLost` (and
`PathGone` once we gave up reconnecting), a command past its timeout `IoTimeout`, an
unreachable target `Unavailable`.

This package knows nothing of block devices (`mayastor.bdev.nvmf` builds one on it).
"""

from mayastor.nvmf.host._commands import MAX_BLOCKS_PER_COMMAND, MAX_DSM_RANGES
from mayastor.nvmf.host._connection import CommandDone, QueueConnection
from mayastor.nvmf.host._controller import MAX_TRANSFER, Controller
from mayastor.nvmf.host._controller_state import (
    ADMISSION,
    TRANSITIONS,
    Admission,
    ControllerEvent,
    ControllerState,
    ReconnectClock,
)
from mayastor.nvmf.host._discovery import discover
from mayastor.nvmf.host._errors import (
    ConnectionClosed,
    KeepAliveFailed,
    TargetProtocolError,
    TargetTerminated,
    TransportError,
)
from mayastor.nvmf.host._options import (
    ADMIN_QUEUE_SIZE,
    DEFAULT_HOSTNQN,
    ControllerOptions,
    hostid_for,
)
from mayastor.nvmf.host._queue import (
    ADMIN_IN_CAPSULE_SIZE,
    MAX_R2T,
    HostQueue,
    QueueEvent,
    QueueState,
)

__all__ = [
    "ADMIN_IN_CAPSULE_SIZE",
    "ADMIN_QUEUE_SIZE",
    "ADMISSION",
    "DEFAULT_HOSTNQN",
    "MAX_BLOCKS_PER_COMMAND",
    "MAX_DSM_RANGES",
    "MAX_R2T",
    "MAX_TRANSFER",
    "TRANSITIONS",
    "Admission",
    "CommandDone",
    "ConnectionClosed",
    "Controller",
    "ControllerEvent",
    "ControllerOptions",
    "ControllerState",
    "HostQueue",
    "KeepAliveFailed",
    "QueueConnection",
    "QueueEvent",
    "QueueState",
    "ReconnectClock",
    "TargetProtocolError",
    "TargetTerminated",
    "TransportError",
    "discover",
    "hostid_for",
]
