"""One child of a nexus: its URI, its device, its state and what it missed.

The nexus owns these records and changes them only through the child state table;
`ChildStatus` is the read-only view it hands out. This module also holds what the
nexus needs to know of child URIs (its own small reading of them, so that it does
not depend on how devices are opened): the child's uuid when the URI gives one, and
whether the child is reached in-process (preferred as a rebuild source and as the
one to trust after an unclean shutdown).
"""

from __future__ import annotations

import asyncio
import uuid as uuid_mod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qs, urlsplit

from mayastor.bdev import BlockDevice
from mayastor.errors import InvalidArgument
from mayastor.nexus._child_state import ChildEvent, ChildState, FaultReason, next_child_state

if TYPE_CHECKING:
    from mayastor.nexus._rebuild import RebuildJob
    from mayastor.nexus._segment_map import SegmentMap

REMOTE_SCHEMES = frozenset({"nvmf", "nvmf+tcp"})
"""Schemes of children reached over the network; every other kind is in-process."""


class ChildOpener(Protocol):
    """Turns a child URI into an open BlockDevice (the io-engine's device opener).

    Whatever it returns, the nexus closes when it lets the child go (remove, fault,
    offline, destroy). An opener that hands out devices shared with others (a local
    replica behind ``bdev:///``) should hand out a handle whose close releases only
    the handle.
    """

    async def open(self, uri: str, *, hostid: uuid_mod.UUID | None = None) -> BlockDevice:
        """Open the device `uri` names, as host `hostid` to NVMe reservations (devices
        with no host identity ignore it)."""
        ...


def uuid_in_uri(uri: str) -> uuid_mod.UUID | None:
    """The ``uuid=`` query parameter of a child URI, if it has one.

    Raises:
        InvalidArgument: the parameter is there but is not a uuid.
    """
    if "?" not in uri:
        return None
    values = parse_qs(urlsplit(uri).query).get("uuid")
    if not values:
        return None
    try:
        return uuid_mod.UUID(values[-1])
    except ValueError:
        raise InvalidArgument(f"nexus child {uri!r}: uuid={values[-1]!r} is not a uuid") from None


def is_local_uri(uri: str) -> bool:
    """True if the child is reached in-process (``bdev:///``, ``malloc://``, files)."""
    scheme, sep, _ = uri.partition("://")
    return not sep or scheme.lower() not in REMOTE_SCHEMES


@dataclass(frozen=True, slots=True)
class ChildStatus:
    """A child of a nexus as listings show it (a snapshot).

    Attributes:
        uri: the URI it was added with.
        uuid: its identity in the nexus info.
        state: Online, Degraded or Faulted.
        reason: why it is Faulted; None otherwise.
        healthy: what the nexus info records: True if it holds every acknowledged write.
        rebuild_progress: percent copied while it is being rebuilt, else None.
        partial_rebuild: True if the nexus logs what it misses, so bringing it online
            copies only that.
        local: True if it is reached in-process.
    """

    uri: str
    uuid: uuid_mod.UUID
    state: ChildState
    reason: FaultReason | None
    healthy: bool
    rebuild_progress: int | None
    partial_rebuild: bool
    local: bool


class NexusChild:
    """The nexus's record of one child (mutable; owned by one nexus)."""

    __slots__ = (
        "closing",
        "device",
        "device_uuid",
        "dirty",
        "healthy",
        "local",
        "reason",
        "rebuild",
        "rebuild_source",
        "state",
        "uri",
        "uri_uuid",
        "uuid",
        "watcher",
    )

    def __init__(self, uri: str, device: BlockDevice, uri_uuid: uuid_mod.UUID | None) -> None:
        self.uri = uri
        self.device: BlockDevice | None = device
        self.device_uuid = device.uuid
        self.uri_uuid = uri_uuid
        self.uuid = uri_uuid or device.uuid
        self.local = is_local_uri(uri)
        self.state = ChildState.ONLINE
        self.reason: FaultReason | None = None
        self.healthy = True
        self.dirty: SegmentMap | None = None
        self.rebuild: RebuildJob | None = None
        self.rebuild_source: NexusChild | None = None
        self.watcher: asyncio.Task[None] | None = None
        self.closing: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        reason = f"({self.reason.value})" if self.reason else ""
        return f"<NexusChild {self.uri} {self.state.value}{reason}>"

    def apply(self, event: ChildEvent, reason: FaultReason | None = None) -> None:
        """Move to the state the table gives for `event`.

        Args:
            event: what happened.
            reason: the fault reason where the table leaves it to the caller (a
                retirement by a failed I/O).

        Raises:
            FailedPrecondition: the table has no such transition.
        """
        state, fixed = next_child_state(self.uri, self.state, event)
        self.state = state
        self.reason = None if state is not ChildState.FAULTED else (fixed or reason)
        if state is ChildState.FAULTED and self.reason is None:
            self.reason = FaultReason.IO_ERROR

    def status(self) -> ChildStatus:
        """The read-only view of this child now."""
        job = self.rebuild
        return ChildStatus(
            uri=self.uri,
            uuid=self.uuid,
            state=self.state,
            reason=self.reason,
            healthy=self.healthy,
            rebuild_progress=job.progress if job is not None else None,
            partial_rebuild=self.dirty is not None,
            local=self.local,
        )
