"""The signature detector on what the real tools write: each disk image is made by
Debian's mkfs / mkswap on a sparse file, read through a file device (O_DIRECT) and
must be named for what it is; a pool create on it is refused until forced."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mayastor.bdev import AioDevice
from mayastor.errors import DiskNotBlank
from mayastor.lvs import Pool
from mayastor.lvs._disk_claim import probe_disk
from tests.integration.conftest import make_sparse_file

MIB = 1 << 20

TOOLS = [
    (["mkfs.ext2", "-q", "-F"], 64, "ext2 file system"),
    (["mkfs.ext3", "-q", "-F"], 64, "ext3 file system"),
    (["mkfs.ext4", "-q", "-F"], 64, "ext4 file system"),
    (["mkfs.xfs", "-q", "-f"], 320, "xfs file system"),
    (["mkfs.btrfs", "-q", "-f"], 128, "btrfs file system"),
    (["mkswap"], 16, "swap space"),
]


def blkid_type(path: Path) -> str:
    """What blkid finds on `path` when it probes the bytes (-p: no cache)."""
    result = subprocess.run(
        ["blkid", "-p", "-o", "value", "-s", "TYPE", str(path)], capture_output=True, text=True
    )
    return result.stdout.strip()


@pytest.fixture(params=TOOLS, ids=[kind.split()[0] for _, _, kind in TOOLS])
def written(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    """A sparse disk image the tool formatted, and what the detector must call it."""
    tool, mib, kind = request.param
    image = make_sparse_file(tmp_path / "disk.img", mib * MIB)
    subprocess.run([*tool, str(image)], check=True, capture_output=True)
    return image, kind


async def test_what_a_real_tool_wrote_is_named_and_refused(written: tuple[Path, str]) -> None:
    image, kind = written
    device = await AioDevice.open(str(image))
    try:
        assert [sig.kind for sig in await probe_disk(device)] == [kind]
        with pytest.raises(DiskNotBlank, match=kind):
            await Pool.create(device, "p", disk=str(image))
        pool = await Pool.create(device, "p", disk=str(image), force=True)
        assert [sig.kind for sig in await probe_disk(device)] == ["Mayastor pool"]
        await pool.export()
    finally:
        await device.close()
    assert blkid_type(image) == ""
