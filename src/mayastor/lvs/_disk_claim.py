"""What a pool does to a disk before it takes it: find what the disk holds, wipe what a
forced create overwrites, and reserve the metadata area below a sparse disk file.

Reads and writes go through the BlockDevice itself (O_DIRECT for files and block
devices), never through a cache of what the disk holds.
"""

from __future__ import annotations

from mayastor.bdev import BlockDevice
from mayastor.errors import NoSpace, ResourceExhausted
from mayastor.lvs.format import PAGE_SIZE, Superblock
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


async def reserve_metadata(base: BlockDevice, sb: Superblock, disk: str) -> None:
    """Reserve the blocks of the metadata area below `base` (a sparse disk file), so
    metadata writes never meet a full file system.

    Raises:
        ResourceExhausted: the file system under the disk has no room for it.
    """
    nblocks = min(sb.metadata_pages * PAGE_SIZE // base.block_size, base.num_blocks)
    try:
        await base.reserve_space(0, nblocks)
    except NoSpace as exc:
        raise ResourceExhausted(
            f"disk {disk}: the file system under it has no room for the pool's "
            f"{nblocks * base.block_size} bytes of metadata ({exc})"
        ) from exc
