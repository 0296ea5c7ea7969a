"""CSI names and ids of Mayastor volumes, and their sizes.

A CSI volume name is any string the CO picks (Kubernetes: ``pvc-<uuid>``); a Mayastor
volume is a uuid. The uuid is derived from the name, so a repeated CreateVolume finds
the volume it made before without any state of ours: ``pvc-<uuid>`` gives that uuid,
any other name a uuid5 of it. The name itself is kept in the volume's labels
(`NAME_LABEL`) to tell two names apart should their uuids ever meet. The CSI volume
id is the uuid as text; the subsystem NQN of its target is `volume_nqn`.
"""

from __future__ import annotations

import re
import uuid

from mayastor.api.csi.v1 import csi_pb2
from mayastor.csi.errors import InvalidArgument, OutOfRange

DRIVER_NAME = "io.openebs.csi-mayastor"
"""The plugin's name (GetPluginInfo); the StorageClass's ``provisioner``."""

NQN_PREFIX = "nqn.2019-05.io.openebs"
TOPOLOGY_KEY = "openebs.io/nodename"
"""The topology segment every node plugin reports: its node's name."""
PUBLISH_URI = "uri"
"""The publish context's entry with the target's ``nvmf://`` URI."""
NAME_LABEL = "openebs.io/csi-volume-name"
"""The volume label that holds the CSI name the volume was created under."""

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, DRIVER_NAME)
_PVC_NAME = re.compile(
    r"^pvc-([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)
_BANNED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
MAX_STRING = 128
"""The spec's limit for a string field, in bytes (names and ids)."""

BLOCK = 512
"""Volumes are whole 512-byte blocks: the REST API takes no other sizes."""
DEFAULT_SIZE = 1 << 30
"""The size of a volume whose capacity range says nothing (1 GiB)."""


def check_name(name: str) -> str:
    """A CSI volume name as the spec allows it.

    Raises:
        InvalidArgument: empty, longer than 128 bytes, or holding control characters.
    """
    if not name:
        raise InvalidArgument("the volume name is required")
    if len(name.encode()) > MAX_STRING:
        raise InvalidArgument(f"the volume name {name[:40]!r}... is longer than {MAX_STRING} bytes")
    if _BANNED.search(name):
        raise InvalidArgument(f"the volume name {name!r} holds control characters")
    return name


def volume_uuid_for_name(name: str) -> uuid.UUID:
    """The uuid of the volume CSI knows as `name`: the uuid in ``pvc-<uuid>``, else a
    uuid5 of the name (stable across restarts and controllers)."""
    match = _PVC_NAME.match(name)
    if match:
        return uuid.UUID(match.group(1))
    return uuid.uuid5(_NAMESPACE, name)


def parse_volume_id(volume_id: str) -> uuid.UUID | None:
    """The volume uuid a CSI volume id names, or None when it cannot be one of ours.

    Raises:
        InvalidArgument: the id is empty (the spec makes it required everywhere).
    """
    if not volume_id:
        raise InvalidArgument("the volume id is required")
    try:
        parsed = uuid.UUID(volume_id)
    except ValueError:
        return None
    return parsed if str(parsed) == volume_id.lower() else None


def volume_nqn(volume: uuid.UUID | str) -> str:
    """The subsystem NQN of a volume's target, the same on every node."""
    return f"{NQN_PREFIX}:{volume}"


def node_nqn(node_name: str) -> str:
    """The host NQN a node's kernel initiator connects as; targets admit it by name."""
    return f"{NQN_PREFIX}:node-name:{node_name}"


def round_up(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def size_for(capacity: csi_pb2.CapacityRange | None, default: int = DEFAULT_SIZE) -> int:
    """The size to create (or grow) a volume to: at least ``required_bytes`` rounded up to
    whole blocks, never more than ``limit_bytes``; `default` (within the limit) when
    nothing is required.

    Raises:
        InvalidArgument: a negative bound.
        OutOfRange: no whole number of blocks lies within the range.
    """
    required = capacity.required_bytes if capacity is not None else 0
    limit = capacity.limit_bytes if capacity is not None else 0
    if required < 0 or limit < 0:
        raise InvalidArgument(f"capacity range bounds must not be negative ({required}, {limit})")
    if limit and required > limit:
        raise OutOfRange(f"required_bytes {required} is more than limit_bytes {limit}")
    if required:
        size = round_up(required)
    else:
        size = default if not limit else min(default, limit - limit % BLOCK)
    if limit and size > limit:
        raise OutOfRange(
            f"{required} bytes rounded up to whole {BLOCK}-byte blocks is {size}, "
            f"more than limit_bytes {limit}"
        )
    if size < BLOCK:
        raise OutOfRange(f"a volume is at least {BLOCK} bytes; limit_bytes is {limit}")
    return size


def within(size: int, capacity: csi_pb2.CapacityRange | None) -> bool:
    """Whether an existing volume of `size` bytes meets the capacity range."""
    if capacity is None:
        return True
    if capacity.required_bytes and size < capacity.required_bytes:
        return False
    return not (capacity.limit_bytes and size > capacity.limit_bytes)
