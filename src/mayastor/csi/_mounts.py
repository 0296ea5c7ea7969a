"""The node's mount table (``/proc/self/mountinfo``) and the mount commands.

The mount table is the node plugin's record of what is staged and published: a
staging path holds the volume's file system (its device number says which device), a
target path a bind mount of the staging path, or, for raw block volumes, a bind mount
of the device node (a devtmpfs mount whose root is the device's name). Reading it
afresh on every call keeps every call idempotent across plugin restarts.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mayastor.csi._commands import run
from mayastor.csi.errors import FailedPrecondition, Internal

_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), text)


@dataclass(frozen=True)
class Mount:
    """One line of mountinfo.

    Attributes:
        devno: (major, minor) of the file system (the device's for most; an anonymous
            one for btrfs; devtmpfs's for a device node bind).
        root: the path inside that file system mounted here (``/nvme1n1`` for a device
            node bound from devtmpfs, ``/`` for a whole file system).
        mount_point: where it is mounted.
        options: the per-mount options (``rw``/``ro``, ...).
        fstype: the file system type.
        source: the mount source (``/dev/nvme1n1``).
    """

    devno: tuple[int, int]
    root: str
    mount_point: str
    options: tuple[str, ...]
    fstype: str
    source: str

    @property
    def readonly(self) -> bool:
        return "ro" in self.options

    def binds_device(self, name: str) -> bool:
        """Whether this is a bind mount of device node ``/dev/<name>``."""
        return self.fstype == "devtmpfs" and self.root == f"/{name}"

    def on_device(self, devno: tuple[int, int], name: str) -> bool:
        """Whether this mount's file system lives on block device `name` (by number, or
        by source: btrfs reports an anonymous device number)."""
        return self.fstype != "devtmpfs" and (self.devno == devno or self.source == f"/dev/{name}")

    @property
    def device_name(self) -> str | None:
        """The block device named as the source (``nvme1n1``), if it is one."""
        if self.fstype == "devtmpfs":
            return self.root.lstrip("/") or None
        return self.source.removeprefix("/dev/") if self.source.startswith("/dev/") else None


def parse_mountinfo(text: str) -> list[Mount]:
    """Every mount of a mountinfo text, in order (later mounts cover earlier ones)."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields or len(fields) < 10:
            continue
        sep = fields.index("-")
        major, _, minor = fields[2].partition(":")
        mounts.append(
            Mount(
                devno=(int(major), int(minor)),
                root=_unescape(fields[3]),
                mount_point=_unescape(fields[4]),
                options=tuple(fields[5].split(",")),
                fstype=fields[sep + 1],
                source=_unescape(fields[sep + 2]),
            )
        )
    return mounts


class MountTable:
    """Reads the mount table of this process's mount namespace.

    Args:
        path: the mountinfo file (a fixture in tests).
    """

    def __init__(self, path: Path = Path("/proc/self/mountinfo")) -> None:
        self.path = Path(path)

    def all(self) -> list[Mount]:
        return parse_mountinfo(self.path.read_text())

    def at(self, path: str) -> Mount | None:
        """The mount visible at `path` (the last one mounted there), or None."""
        wanted = os.path.normpath(path)
        found = None
        for mount in self.all():
            if mount.mount_point == wanted:
                found = mount
        return found

    def users(self, devno: tuple[int, int], name: str) -> list[Mount]:
        """Mounts of block device `name` (its file system, or a bind of its node)."""
        return [m for m in self.all() if m.on_device(devno, name) or m.binds_device(name)]


def prepare_file_target(path: str, *, volume: str) -> None:
    """A file at `path` for a device node to be bound onto (the SP creates it).

    Raises:
        FailedPrecondition: its parent folder does not exist (the CO makes that).
    """
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise FailedPrecondition(f"the parent of target path {path} does not exist", volume=volume)
    if os.path.isdir(path) and not os.path.islink(path):
        os.rmdir(path)
    Path(path).touch(exist_ok=True)


def remove_target(path: str) -> None:
    """Remove the folder or file a publish made at `path`, if it is still there."""
    with contextlib.suppress(FileNotFoundError):
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)
        else:
            os.unlink(path)


async def mount(
    source: str,
    target: str,
    *,
    fstype: str | None = None,
    options: Sequence[str] = (),
    volume: str,
    device: str | None = None,
) -> None:
    """``mount [-t FSTYPE] [-o OPTIONS] SOURCE TARGET``.

    Raises:
        Internal: mount failed (its message included).
    """
    argv = ["mount"]
    if fstype:
        argv += ["-t", fstype]
    if options:
        argv += ["-o", ",".join(options)]
    await run([*argv, source, target], volume=volume, device=device, step="mount")


async def bind(source: str, target: str, *, readonly: bool, volume: str, device: str) -> None:
    """Bind `source` (a directory or a device node) onto `target`, read-only if asked
    (a bind mount takes ``ro`` only by a remount, so that is a second step)."""
    await run(["mount", "-o", "bind", source, target], volume=volume, device=device, step="mount")
    if readonly:
        await run(
            ["mount", "-o", "remount,bind,ro", target],
            volume=volume,
            device=device,
            step="mount read-only",
        )


async def unmount(table: MountTable, target: str, *, volume: str) -> int:
    """Unmount everything mounted at `target`; returns how many mounts went.

    Raises:
        Internal: umount failed (busy, say) and the path is still a mount point.
    """
    count = 0
    while table.at(target) is not None:
        if count >= 8:
            raise Internal(f"{target} is still mounted after {count} unmounts", volume=volume)
        await run(["umount", target], volume=volume, step="umount")
        count += 1
    return count
