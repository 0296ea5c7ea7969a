"""Reading a pool's replicas straight from its disk file, with its io-engine stopped.

The final check of many control-plane tests: once every io-engine has exported its
pools (SIGTERM), each replica of a volume is read from the disk in this process, so
"the replicas are identical" is checked on the bytes the pools hold, not on what a
nexus chooses to return.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from mayastor.bdev import DeviceOpener
from mayastor.lvs import Pool


async def _read_replicas(disk: Path) -> dict[str, bytes]:
    base = await DeviceOpener().open(f"aio://{disk}")
    pool = await Pool.import_(base, disk=str(disk))
    try:
        images = {}
        for lvol in pool.lvols():
            step = (1 << 20) // lvol.block_size
            parts = [
                bytes(await lvol.read(lba, min(step, lvol.num_blocks - lba)))
                for lba in range(0, lvol.num_blocks, step)
            ]
            images[str(lvol.uuid)] = b"".join(parts)
        return images
    finally:
        await pool.export()


def replica_images(disk: Path) -> dict[str, bytes]:
    """Every replica in the pool on `disk`, by uuid, in full (the io-engine must be stopped)."""
    return asyncio.run(_read_replicas(disk))
