"""Volume capabilities: which access modes and access types the driver offers.

A Mayastor volume is attached to one node at a time (its target is published to that
node's host NQN only), as a block device or a mounted file system: the single-node
access modes, block and mount access types, and the file systems of `FILESYSTEMS`.
"""

from __future__ import annotations

from collections.abc import Sequence

from mayastor.api.csi.v1 import csi_pb2
from mayastor.csi._parameters import FILESYSTEMS
from mayastor.csi.errors import InvalidArgument

Mode = csi_pb2.VolumeCapability.AccessMode.Mode
SUPPORTED_MODES = (
    csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER,
    csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_SINGLE_WRITER,
    csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_MULTI_WRITER,
)
MULTI_WRITER = csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_MULTI_WRITER
"""The one mode under which a node may publish the volume at several target paths."""


def mode_name(mode: int) -> str:
    return csi_pb2.VolumeCapability.AccessMode.Mode.Name(mode)  # type: ignore[arg-type]


def check_present(capability: csi_pb2.VolumeCapability, what: str = "volume_capability") -> None:
    """A capability with its required parts: an access type and an access mode.

    Raises:
        InvalidArgument: a part is missing.
    """
    if capability.WhichOneof("access_type") is None:
        raise InvalidArgument(f"{what} has no access type (block or mount)")
    if not capability.HasField("access_mode") or capability.access_mode.mode == 0:
        raise InvalidArgument(f"{what} has no access mode")


def unsupported(capability: csi_pb2.VolumeCapability) -> str | None:
    """Why the driver cannot offer `capability`, or None when it can."""
    mode = capability.access_mode.mode
    if mode not in SUPPORTED_MODES:
        return (
            f"access mode {mode_name(mode)} is not supported "
            f"(only {', '.join(mode_name(m) for m in SUPPORTED_MODES)})"
        )
    if capability.HasField("mount"):
        fs_type = capability.mount.fs_type
        if fs_type and fs_type not in FILESYSTEMS:
            return f"file system {fs_type!r} is not supported (one of {', '.join(FILESYSTEMS)})"
        if capability.mount.volume_mount_group:
            return "volume_mount_group is not supported"
    return None


def check_all(
    capabilities: Sequence[csi_pb2.VolumeCapability], what: str = "volume_capabilities"
) -> None:
    """Every capability present and supported.

    Raises:
        InvalidArgument: none given, one incomplete, or one the driver does not offer.
    """
    if not capabilities:
        raise InvalidArgument(f"{what} is required")
    for capability in capabilities:
        check_present(capability, what)
        reason = unsupported(capability)
        if reason is not None:
            raise InvalidArgument(f"{what}: {reason}")


def is_block(capability: csi_pb2.VolumeCapability) -> bool:
    return capability.WhichOneof("access_type") == "block"
