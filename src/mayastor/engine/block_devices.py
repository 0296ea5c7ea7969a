"""This machine's block devices, read from /sys/block and /proc/self/mountinfo.

For HostRpc.ListBlockDevices: what an operator (or the control plane) looks at to pick
disks for pools. A device is available when nothing uses it: not mounted, no holders
(device-mapper, md), no partitions in use, and not claimed by one of our pools.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

SYS_BLOCK = Path("/sys/block")


@dataclass
class BlockDeviceInfo:
    devname: str
    devtype: str  # "disk" or "partition"
    devmajor: int
    devminor: int
    devpath: str
    size_sectors: int
    model: str = ""
    parent: str = ""
    partition_number: int = 0
    mountpoints: list[str] = field(default_factory=list)
    holders: list[str] = field(default_factory=list)
    available: bool = True


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _mountpoints() -> dict[str, list[str]]:
    """Mount points by "major:minor"."""
    found: dict[str, list[str]] = {}
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                fields = line.split()
                found.setdefault(fields[2], []).append(fields[4])
    except OSError:
        pass
    return found


def _info(sysdir: Path, devtype: str, parent: str, mounts: dict[str, list[str]]) -> BlockDeviceInfo:
    name = sysdir.name
    major, _, minor = _read(sysdir / "dev").partition(":")
    holders = sorted(os.listdir(sysdir / "holders")) if (sysdir / "holders").is_dir() else []
    return BlockDeviceInfo(
        devname=name,
        devtype=devtype,
        devmajor=int(major or 0),
        devminor=int(minor or 0),
        devpath=f"/dev/{name}",
        size_sectors=int(_read(sysdir / "size") or 0),
        model=_read(sysdir / "device" / "model"),
        parent=parent,
        partition_number=int(_read(sysdir / "partition") or 0),
        mountpoints=mounts.get(f"{major}:{minor}", []),
        holders=holders,
    )


def list_block_devices(claimed: set[str], include_all: bool = False) -> list[BlockDeviceInfo]:
    """Disks and partitions of this machine.

    Args:
        claimed: device paths our own pools hold (``/dev/loop8``).
        include_all: also list devices that are in use (and empty loop devices).
    """
    mounts = _mountpoints()
    result: list[BlockDeviceInfo] = []
    if not SYS_BLOCK.is_dir():
        return result
    for sysdir in sorted(SYS_BLOCK.iterdir()):
        if int(_read(sysdir / "size") or 0) == 0:
            continue  # an unattached loop device, an empty drive
        disk = _info(sysdir, "disk", "", mounts)
        parts = [
            _info(child, "partition", disk.devname, mounts)
            for child in sorted(sysdir.iterdir())
            if (child / "partition").exists()
        ]
        for dev in (disk, *parts):
            dev.available = not (dev.mountpoints or dev.holders or dev.devpath in claimed)
        if parts and not all(p.available for p in parts):
            disk.available = False
        result.extend(d for d in (disk, *parts) if include_all or d.available)
    return result
