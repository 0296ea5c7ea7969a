"""Disks are never taken by mistake: a pool create reads the disk and refuses one that
holds a file system, a partition table or another pool (unless forced), and the
io-engine opens no path outside its --disk-allow patterns. A refusal leaves the disk
byte for byte as it was."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mayastor.cluster.processes import EngineProcess
from tests.integration.conftest import make_sparse_file

DISK_BYTES = 64 << 20


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(engine: EngineProcess, *args: str) -> str:
    result = engine.client(*args)
    assert result.returncode == 1, f"{args} was not refused: {result.stdout}"
    return result.stderr


def refused_unchanged(engine: EngineProcess, disk: Path, *args: str) -> str:
    """The refusal of ``mayastor-client ARGS``, after checking that `disk` is unchanged."""
    before = digest(disk)
    message = refused(engine, *args)
    assert digest(disk) == before
    return message


def pool_names(engine: EngineProcess) -> list[str]:
    pools = json.loads(engine.client("-o", "json", "pool", "list", check=True).stdout)
    return [p["name"] for p in pools]


def blkid_type(path: Path) -> str:
    """What blkid finds on `path` when it probes the bytes (-p: no cache)."""
    result = subprocess.run(
        ["blkid", "-p", "-o", "value", "-s", "TYPE", str(path)], capture_output=True, text=True
    )
    return result.stdout.strip()


def ext4_disk(tmp_path: Path) -> Path:
    disk = make_sparse_file(tmp_path / "ext4.img", DISK_BYTES)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "somedata", str(disk)], check=True)
    return disk


def gpt_disk(tmp_path: Path) -> Path:
    """A disk with a protective MBR, a primary GPT header at LBA 1 and its backup at the end."""
    disk = make_sparse_file(tmp_path / "gpt.img", DISK_BYTES)
    mbr = bytearray(512)
    mbr[446 + 4] = 0xEE
    struct.pack_into("<II", mbr, 446 + 8, 1, DISK_BYTES // 512 - 1)
    mbr[510:512] = b"\x55\xaa"
    header = bytearray(512)
    header[:8] = b"EFI PART"
    with open(disk, "r+b") as fh:
        fh.write(bytes(mbr) + bytes(header))
        fh.seek(DISK_BYTES - 512)
        fh.write(bytes(header))
    return disk


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (ext4_disk, ("ext4 file system", "'somedata'")),
        (gpt_disk, ("GPT partition table",)),
    ],
    ids=["ext4", "partition-table"],
)
def test_a_disk_holding_a_file_system_or_partition_table_is_refused_naming_it_unchanged(
    engine: EngineProcess, tmp_path: Path, make: Callable[[Path], Path], named: tuple[str, ...]
) -> None:
    disk = make(tmp_path)
    message = refused_unchanged(engine, disk, "pool", "create", "p1", str(disk))
    assert "failed_precondition" in message
    for text in named:
        assert text in message
    assert "--force" in message
    assert pool_names(engine) == []


def test_a_disk_holding_another_pool_is_refused_and_left_unchanged(
    engine: EngineProcess, tmp_path: Path
) -> None:
    disk = make_sparse_file(tmp_path / "pool.img", DISK_BYTES)
    engine.client("pool", "create", "old", str(disk), check=True)
    engine.client("replica", "create", "old", "r1", "--size=8", check=True)
    engine.client("pool", "export", "old", check=True)
    message = refused_unchanged(engine, disk, "pool", "create", "new", str(disk))
    assert "holds pool 'old'" in message


def test_with_force_a_disk_holding_ext4_becomes_a_pool_and_no_longer_looks_like_ext4(
    engine: EngineProcess, tmp_path: Path
) -> None:
    disk = ext4_disk(tmp_path)
    assert blkid_type(disk) == "ext4"
    engine.client("pool", "create", "p1", str(disk), "--force", check=True)
    assert pool_names(engine) == ["p1"]
    engine.client("replica", "create", "p1", "r1", "--size=8", check=True)
    assert blkid_type(disk) != "ext4"
    assert "created with force" in engine.log_path.read_text()


def test_with_force_a_disk_holding_another_pool_gets_a_new_one(
    engine: EngineProcess, tmp_path: Path
) -> None:
    disk = make_sparse_file(tmp_path / "pool.img", DISK_BYTES)
    engine.client("pool", "create", "old", str(disk), check=True)
    engine.client("pool", "export", "old", check=True)
    engine.client("pool", "create", "new", str(disk), "--force", check=True)
    assert pool_names(engine) == ["new"]


def test_a_disk_outside_disk_allow_is_refused_naming_the_path_and_the_patterns(
    engines: Callable[..., EngineProcess], tmp_path: Path
) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    pattern = f"{allowed.resolve()}/*"
    engine = engines(disk_allow=[pattern])
    outside = make_sparse_file(tmp_path / "outside.img", DISK_BYTES)
    message = refused_unchanged(engine, outside, "pool", "create", "p1", str(outside))
    assert "permission_denied" in message
    assert str(outside) in message
    assert pattern in message
    assert "permission_denied" in refused(engine, "bdev", "create", f"aio://{outside}")
    link = allowed / "link.img"
    link.symlink_to(outside)
    assert "leads to" in refused_unchanged(engine, outside, "pool", "create", "p1", str(link))
    inside = make_sparse_file(allowed / "disk.img", DISK_BYTES)
    engine.client("pool", "create", "p1", str(inside), check=True)
    assert pool_names(engine) == ["p1"]


def test_by_default_files_under_the_state_directory_may_be_pool_disks(
    engines: Callable[..., EngineProcess], tmp_path: Path
) -> None:
    engine = engines(disk_allow=[])
    engine.state_dir.mkdir(parents=True, exist_ok=True)
    inside = make_sparse_file(engine.state_dir / "disk.img", DISK_BYTES)
    engine.client("pool", "create", "p1", str(inside), check=True)
    outside = make_sparse_file(tmp_path / "outside.img", DISK_BYTES)
    assert "permission_denied" in refused(engine, "pool", "create", "p2", str(outside))
