"""A pool's superblock: two copies at the head of its disk, read and written whole."""

from __future__ import annotations

import dataclasses

from mayastor.bdev import BlockDevice
from mayastor.errors import CorruptMetadata
from mayastor.lvs.format import PAGE_SIZE, Superblock, decode_superblock, encode_superblock


async def write_superblock(
    base: BlockDevice, sb: Superblock, copies: tuple[int, ...] = (0, 1)
) -> None:
    """Write `sb` to the given copies (0 is A, 1 is B), in that order, each flushed
    before the next is written, so that a crash leaves at least one copy whole."""
    page = encode_superblock(sb)
    bpp = PAGE_SIZE // base.block_size
    for copy in copies:
        await base.write(copy * bpp, page)
        await base.flush()


async def read_superblock(
    base: BlockDevice, disk: str, *, forced: bool = False
) -> tuple[Superblock, int | None] | None:
    """The pool superblock on `base` and the copy to repair (None: both fine), or None.

    Args:
        forced: a forced create asks: damaged superblocks count as none.

    Raises:
        CorruptMetadata: superblocks are there but none is intact, or they disagree
            (not when `forced`).
        FailedPrecondition: an intact superblock of an unknown format version.
    """
    if forced:
        try:
            return await read_superblock(base, disk)
        except CorruptMetadata:
            return None
    bpp = PAGE_SIZE // base.block_size
    if base.num_blocks < 2 * bpp:
        return None
    data = memoryview(await base.read(0, 2 * bpp))
    found: list[tuple[int, Superblock]] = []
    damaged: list[CorruptMetadata] = []
    for copy in (0, 1):
        page = data[copy * PAGE_SIZE : (copy + 1) * PAGE_SIZE]
        where = f"disk {disk} (superblock copy {'AB'[copy]})"
        try:
            sb = decode_superblock(page, where=where)
        except CorruptMetadata as exc:
            damaged.append(exc)
            continue
        if sb is not None:
            found.append((copy, sb))
    if not found:
        if damaged:
            raise CorruptMetadata(
                f"disk {disk} holds pool metadata but both superblock copies are damaged: "
                + "; ".join(str(e) for e in damaged)
            )
        return None
    if len(found) == 2:
        (_, a), (_, b) = found
        if a == b:
            return a, None
        # A crash between the two writes that set a feature: the copy with the features
        # wins, and the other is repaired. Anything else is not ours to guess at.
        same = dataclasses.replace(b, incompat_features=0, compat_features=0) == (
            dataclasses.replace(a, incompat_features=0, compat_features=0)
        )
        if same:
            if has_features_of(a, b):
                return a, 1
            if has_features_of(b, a):
                return b, 0
        raise CorruptMetadata(f"disk {disk}: the two superblock copies disagree")
    copy, sb = found[0]
    return sb, 1 - copy


def has_features_of(sb: Superblock, other: Superblock) -> bool:
    """True when `sb` has every feature flag `other` has."""
    return (
        sb.incompat_features | other.incompat_features == sb.incompat_features
        and sb.compat_features | other.compat_features == sb.compat_features
    )
