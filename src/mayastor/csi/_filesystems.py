"""File systems on a volume: what a device holds, making one on a blank device, growing it.

A device is formatted only when `probe` finds nothing on it (``blkid -p``, which reads
the device itself, not a cache): a file system, a partition table or any other
signature makes it "not blank", and the node plugin then mounts what is there or
refuses. mkfs runs without its force flag, so even a signature blkid missed makes it
refuse rather than write over data.
"""

from __future__ import annotations

from dataclasses import dataclass

from mayastor.csi._commands import run
from mayastor.csi.errors import FailedPrecondition, Internal

MKFS: dict[str, list[str]] = {
    "ext4": ["mkfs.ext4", "-q", "-E", "nodiscard"],
    "xfs": ["mkfs.xfs", "-q", "-K"],
    "btrfs": ["mkfs.btrfs", "-q", "--nodiscard"],
}
"""How each file system is made; discards are skipped: a new volume reads as zeroes."""

EXT = ("ext2", "ext3", "ext4")


@dataclass(frozen=True)
class Signature:
    """What blkid found on a device: a file system (``TYPE``) or a partition table."""

    type: str
    usage: str

    @property
    def filesystem(self) -> str | None:
        return self.type if self.usage == "filesystem" else None


async def probe(device: str, *, volume: str) -> Signature | None:
    """What `device` holds, or None when it is blank.

    Raises:
        Internal: blkid failed for another reason than finding nothing.
    """
    result = await run(
        ["blkid", "-p", "-o", "export", device],
        volume=volume,
        device=device,
        step="blkid",
        check=False,
    )
    if result.returncode == 2:
        return None
    if result.returncode != 0:
        raise Internal(
            f"blkid exited with {result.returncode}: {result.output}",
            volume=volume,
            step="blkid",
            device=device,
        )
    fields = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    if "TYPE" in fields:
        return Signature(fields["TYPE"], fields.get("USAGE", "filesystem"))
    if "PTTYPE" in fields:
        return Signature(fields["PTTYPE"], "partition table")
    return Signature("unknown", fields.get("USAGE", "unknown"))


async def make(fs_type: str, device: str, *, volume: str) -> None:
    """Make a `fs_type` file system on a device `probe` found blank."""
    await run([*MKFS[fs_type], device], volume=volume, device=device, step=f"mkfs.{fs_type}")


async def grow(fs_type: str, device: str, mount_point: str, *, volume: str) -> None:
    """Grow the mounted file system to fill its device (online).

    Raises:
        FailedPrecondition: a file system we cannot grow while mounted.
        Internal: the tool failed.
    """
    if fs_type in EXT:
        argv = ["resize2fs", device]
    elif fs_type == "xfs":
        argv = ["xfs_growfs", mount_point]
    elif fs_type == "btrfs":
        argv = ["btrfs", "filesystem", "resize", "max", mount_point]
    else:
        raise FailedPrecondition(
            f"a {fs_type} file system cannot be grown while mounted",
            volume=volume,
            device=device,
        )
    await run(argv, volume=volume, device=device, step=f"grow {fs_type}")
