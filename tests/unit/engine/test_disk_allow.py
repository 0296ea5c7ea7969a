"""--disk-allow: which paths the io-engine opens as disks, and the refusal of the others."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mayastor.engine.config import config_from_args
from mayastor.engine.disk_allow import DiskAllowList, default_patterns
from mayastor.errors import InvalidArgument, PermissionDenied


def test_default_allows_block_devices_and_files_under_the_state_directory(tmp_path: Path) -> None:
    allow = DiskAllowList(default_patterns(str(tmp_path)))
    assert allow.allowed("/dev/sdb")
    assert allow.allowed(str(tmp_path / "pools" / "disk.img"))
    assert not allow.allowed("/etc/passwd")


def test_a_star_spans_folders() -> None:
    allow = DiskAllowList(["/srv/pools/*"])
    assert allow.allowed("/srv/pools/a/b/disk.img")
    assert not allow.allowed("/srv/poolsx/disk.img")


def test_dot_dot_cannot_climb_out_of_an_allowed_folder() -> None:
    allow = DiskAllowList(["/srv/pools/*"])
    assert not allow.allowed("/srv/pools/../../etc/shadow")


def test_a_link_in_an_allowed_folder_to_a_file_outside_is_refused(tmp_path: Path) -> None:
    inside = tmp_path / "allowed"
    inside.mkdir()
    outside = tmp_path / "secret.img"
    outside.write_bytes(b"x")
    (inside / "link.img").symlink_to(outside)
    allow = DiskAllowList([f"{inside.resolve()}/*"])
    assert not allow.allowed(str(inside / "link.img"))
    with pytest.raises(PermissionDenied, match="leads to"):
        allow.check(str(inside / "link.img"))


def test_a_link_allowed_by_name_may_lead_to_a_block_device(tmp_path: Path) -> None:
    names = sorted(os.listdir("/sys/block")) if os.path.isdir("/sys/block") else []
    block = next((f"/dev/{n}" for n in names if Path(f"/dev/{n}").is_block_device()), None)
    if block is None:
        pytest.skip("no block device node in /dev to link to")
    (tmp_path / "by-id").mkdir()
    link = tmp_path / "by-id" / "disk-1"
    link.symlink_to(block)
    allow = DiskAllowList([f"{tmp_path.resolve()}/by-id/*"])
    assert allow.allowed(str(link))


def test_the_refusal_names_the_path_and_the_patterns() -> None:
    allow = DiskAllowList(["/dev/*", "/srv/pools/*"])
    with pytest.raises(PermissionDenied) as refused:
        allow.check("/home/me/disk.img")
    message = str(refused.value)
    assert "/home/me/disk.img" in message
    assert "/dev/* /srv/pools/*" in message


def test_a_relative_pattern_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="absolute"):
        DiskAllowList(["pools/*"])


def test_the_flag_is_repeatable_and_replaces_the_default() -> None:
    config = config_from_args(["--disk-allow", "/srv/a/*", "--disk-allow", "/dev/nvme*"])
    assert config.disk_patterns == ("/srv/a/*", "/dev/nvme*")


def test_without_the_flag_the_state_directory_is_allowed() -> None:
    config = config_from_args(["--state-dir", "/var/lib/ms/n1"])
    assert config.disk_patterns == ("/dev/*", "/var/lib/ms/n1/*")


def test_a_relative_flag_is_a_usage_error() -> None:
    with pytest.raises(SystemExit):
        config_from_args(["--disk-allow", "relative/*"])
