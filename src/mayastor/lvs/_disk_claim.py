"""What a pool does to a disk before it takes it: find what the disk holds, and wipe
what a forced create overwrites.

Reads and writes go through the BlockDevice itself (O_DIRECT for files and block
devices), never through a cache of what the disk holds.
"""

from __future__ import annotations

from mayastor.bdev import BlockDevice
from mayastor.lvs.signatures import Signature, find_signatures, probe_ranges


async def probe_disk(base: BlockDevice) -> list[Signature]:
    """The known signatures on `base`, read from the device itself (head and tail)."""
    parts: list[bytes] = []
    bs = base.block_size
    for offset, length in probe_ranges(base.size):
        parts.append(bytes(await base.read(offset // bs, -(-length // bs))))
    return find_signatures(base.size, *parts)


async def wipe_signatures(base: BlockDevice, signatures: list[Signature]) -> None:
    """Zero the blocks that hold each signature's magic (what a forced create overwrites)."""
    bs = base.block_size
    for sig in signatures:
        first = sig.offset // bs
        count = -(-(sig.offset + sig.length) // bs) - first
        await base.write(first, bytes(count * bs))
    if signatures:
        await base.flush()
