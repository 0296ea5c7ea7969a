"""Reading the mount table: what is staged and published where."""

from __future__ import annotations

from pathlib import Path

from mayastor.csi._mounts import MountTable, parse_mountinfo

MOUNTINFO = """\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
33 1 259:1 / /var/lib/kubelet/staging/globalmount rw,relatime shared:40 - ext4 /dev/nvme0n1 rw
34 1 259:1 / /var/lib/kubelet/pods/p1/mount rw,relatime shared:40 - ext4 /dev/nvme0n1 rw
35 1 259:1 / /var/lib/kubelet/pods/p1/mount ro,relatime shared:40 - ext4 /dev/nvme0n1 rw
36 1 0:5 /nvme1n1 /var/lib/kubelet/pods/p2/dev rw,relatime - devtmpfs devtmpfs rw,size=1k
37 1 0:47 / /var/lib/kubelet/btrfs\\040staging rw,relatime - btrfs /dev/nvme2n1 rw,space_cache=v2
"""


def test_each_line_gives_device_root_mount_point_options_type_and_source() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    staged = mounts[1]
    assert staged.devno == (259, 1)
    assert staged.root == "/"
    assert staged.mount_point == "/var/lib/kubelet/staging/globalmount"
    assert staged.fstype == "ext4"
    assert staged.source == "/dev/nvme0n1"
    assert staged.readonly is False


def test_octal_escapes_in_paths_are_read_back() -> None:
    assert parse_mountinfo(MOUNTINFO)[-1].mount_point == "/var/lib/kubelet/btrfs staging"


def test_the_last_mount_at_a_path_is_the_one_seen(tmp_path: Path) -> None:
    table = tmp_path / "mountinfo"
    table.write_text(MOUNTINFO)
    seen = MountTable(table).at("/var/lib/kubelet/pods/p1/mount/")
    assert seen is not None
    assert seen.readonly is True


def test_a_bind_of_a_device_node_is_known_by_its_name() -> None:
    bind = parse_mountinfo(MOUNTINFO)[4]
    assert bind.binds_device("nvme1n1")
    assert not bind.binds_device("nvme0n1")
    assert bind.device_name == "nvme1n1"
    assert not bind.on_device((0, 5), "nvme1n1")


def test_a_btrfs_mount_is_on_its_device_by_source() -> None:
    btrfs = parse_mountinfo(MOUNTINFO)[-1]
    assert btrfs.on_device((259, 7), "nvme2n1")
    assert not btrfs.on_device((259, 7), "nvme0n1")
    assert btrfs.device_name == "nvme2n1"


def test_the_users_of_a_device_are_its_file_system_mounts_and_binds(tmp_path: Path) -> None:
    table = tmp_path / "mountinfo"
    table.write_text(MOUNTINFO)
    users = MountTable(table).users((259, 1), "nvme0n1")
    assert [m.mount_point for m in users] == [
        "/var/lib/kubelet/staging/globalmount",
        "/var/lib/kubelet/pods/p1/mount",
        "/var/lib/kubelet/pods/p1/mount",
    ]
    assert [m.mount_point for m in MountTable(table).users((259, 9), "nvme1n1")] == [
        "/var/lib/kubelet/pods/p2/dev"
    ]
