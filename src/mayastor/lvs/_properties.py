"""What a pool and its lvols say about themselves: pool state, share protocol, properties.

Pure values: no I/O. The numbers of `ShareProtocol` are stored on disk (format.py).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mayastor.errors import InvalidArgument
from mayastor.lvs.format import MAX_ENTITY_ID_BYTES, MAX_HOST_BYTES, MAX_HOSTS, MAX_NAME_BYTES

DEFAULT_CLUSTER_SIZE = 4 << 20
"""Bytes per cluster unless the pool is created with another size (Mayastor's default)."""


class PoolState(enum.Enum):
    """How well a pool is doing; it only gets worse until the pool is imported again."""

    ONLINE = "online"  # in normal working order
    DEGRADED = "degraded"  # a data I/O to the disk failed; the pool still serves
    FAULTED = "faulted"  # a metadata write failed: no more changes, no more lvol I/O


class PoolEvent(enum.Enum):
    """What happens to a pool that can change its state."""

    DATA_IO_FAILED = "data I/O failed"  # a read or write of lvol data failed on the disk
    METADATA_WRITE_FAILED = "metadata write failed"  # a journal or checkpoint write failed


POOL_STATE_TABLE: dict[tuple[PoolState, PoolEvent], PoolState] = {
    (PoolState.ONLINE, PoolEvent.DATA_IO_FAILED): PoolState.DEGRADED,
    (PoolState.DEGRADED, PoolEvent.DATA_IO_FAILED): PoolState.DEGRADED,
    (PoolState.FAULTED, PoolEvent.DATA_IO_FAILED): PoolState.FAULTED,
    (PoolState.ONLINE, PoolEvent.METADATA_WRITE_FAILED): PoolState.FAULTED,
    (PoolState.DEGRADED, PoolEvent.METADATA_WRITE_FAILED): PoolState.FAULTED,
    (PoolState.FAULTED, PoolEvent.METADATA_WRITE_FAILED): PoolState.FAULTED,
}
"""(state, event) -> next state; every pair is listed."""


class ShareProtocol(enum.Enum):
    """How an lvol is exported; the value is what the on-disk records store."""

    NONE = 0  # not shared: reachable in-process only
    NVMF = 1  # exported over NVMe/TCP


@dataclass(frozen=True)
class LvolProperties:
    """The properties of an lvol that are persisted with it and changed atomically.

    Attributes:
        share: how the lvol is exported.
        allowed_hosts: host NQNs that may connect (empty: any host).
        entity_id: the control plane's id of the volume this replica belongs to.
    """

    share: ShareProtocol = ShareProtocol.NONE
    allowed_hosts: tuple[str, ...] = ()
    entity_id: str | None = None


def check_properties(props: LvolProperties) -> None:
    """Refuse properties that cannot be stored.

    Raises:
        InvalidArgument: an unknown share protocol, too many or too long host NQNs, an
            empty host NQN, or an entity id longer than the format allows.
    """
    if not isinstance(props.share, ShareProtocol):
        raise InvalidArgument(f"share protocol {props.share!r} is not one of {list(ShareProtocol)}")
    if not isinstance(props.allowed_hosts, tuple):
        raise InvalidArgument("allowed_hosts must be a tuple of host NQNs")
    if len(props.allowed_hosts) > MAX_HOSTS:
        raise InvalidArgument(f"{len(props.allowed_hosts)} allowed hosts; at most {MAX_HOSTS}")
    for host in props.allowed_hosts:
        if not isinstance(host, str) or not host or len(host.encode()) > MAX_HOST_BYTES:
            raise InvalidArgument(
                f"allowed host {host!r} is not a host NQN of 1 to {MAX_HOST_BYTES} bytes"
            )
    if props.entity_id is not None and (
        not isinstance(props.entity_id, str) or len(props.entity_id.encode()) > MAX_ENTITY_ID_BYTES
    ):
        raise InvalidArgument(f"entity id must be a string of at most {MAX_ENTITY_ID_BYTES} bytes")


def check_name(name: object, what: str) -> str:
    """Refuse a pool or lvol name that cannot be stored or addressed.

    A name is 1 to 255 bytes of UTF-8 with no control characters and no ``/`` (names
    end up in bdev URIs such as ``bdev:///<name>``).

    Raises:
        InvalidArgument: naming what is wrong.
    """
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"{what} name must be a non-empty string, got {name!r}")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise InvalidArgument(f"{what} name {name[:40]!r}... is longer than {MAX_NAME_BYTES} bytes")
    if "/" in name or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InvalidArgument(f"{what} name {name!r} contains '/' or a control character")
    return name
