"""A test disk for pools: in memory, with a volatile write cache, power cuts, faults and growth.

`SimDisk` behaves like a drive with a write cache: a write is visible to reads at once
and durable only after a flush (which covers the writes completed before it). It can

* die at the N-th mutating command (`die_at`): that command and everything after it
  fails with `InternalDeviceError` (the dying write may or may not have reached the
  cache: it is kept as an unflushed write);
* give what would survive: a process crash (`image_after_process_crash`, nothing is
  lost) or a power cut (`image_after_power_cut`: the durable image plus any subset of
  the unflushed writes, in order, one of them torn at a block boundary);
* fail chosen commands (`fail`), to see a pool degrade or fault;
* grow (`grow`), to see a pool take the new space;
* yield to the event loop inside every command (`jitter`), so concurrent I/O interleaves.

Blocks are kept sparsely (a block absent from the map reads as zeroes), so large
disks that are mostly empty cost nothing. It is a real BlockDevice; nothing of the
pool under test is mocked.
"""

from __future__ import annotations

import asyncio
import random
import uuid as uuid_mod
from collections.abc import Callable

from mayastor.bdev import BlockDevice, Buffer
from mayastor.errors import InternalDeviceError, WriteFault

FailRule = Callable[[str, int, int], bool]
"""(command, lba, nblocks) -> True to fail that command."""

Image = dict[int, bytes]
"""Block number -> contents; absent blocks are zeroes."""


class SimDisk(BlockDevice):
    driver = "sim"
    product_name = "Simulated disk"

    def __init__(
        self,
        num_blocks: int,
        block_size: int = 512,
        *,
        image: Image | None = None,
        name: str = "sim0",
    ) -> None:
        super().__init__(name, uuid_mod.uuid4(), block_size, num_blocks)
        self.capacity_blocks = num_blocks
        self.current: Image = dict(image or {})
        self.durable: Image = dict(self.current)
        self.pending: list[tuple[int, list[bytes | None]]] = []
        self.mutations = 0
        self.die_at: int | None = None
        self.dead = False
        self.fail: FailRule | None = None
        self.jitter: random.Random | None = None
        self._zero = bytes(block_size)

    @classmethod
    def like(cls, other: SimDisk, image: Image) -> SimDisk:
        """A disk of the same geometry holding `image` (what survived a crash)."""
        return cls(other.capacity_blocks, other.block_size, image=image, name=other.name)

    # ------------------------------------------------------------------ control

    def snapshot(self) -> Image:
        """What reads see now (to compare before and after a refused request)."""
        return dict(self.current)

    def grow(self, extra_blocks: int) -> None:
        """The disk got bigger; the pool sees it after `refresh_size`."""
        self.capacity_blocks += extra_blocks

    def image_after_process_crash(self) -> Image:
        """The process died, the machine did not: every write that reached the cache stays."""
        return dict(self.current)

    def image_after_power_cut(self, rng: random.Random) -> Image:
        """The durable image plus a random, ordered subset of unflushed writes, one torn."""
        image = dict(self.durable)
        kept = [w for w in self.pending if rng.random() < 0.5]
        torn = rng.randrange(len(kept)) if kept and rng.random() < 0.7 else -1
        for i, (lba, blocks) in enumerate(kept):
            for n, block in enumerate(blocks):
                if i == torn and len(blocks) > 1 and rng.random() < 0.5:
                    continue
                _put(image, lba + n, block)
        return image

    def raw(self) -> bytes:
        """Every byte of the disk as reads see it (for small disks)."""
        return b"".join(self.current.get(i, self._zero) for i in range(self.capacity_blocks))

    # ------------------------------------------------------------------ BlockDevice

    async def refresh_size(self) -> int:
        self.num_blocks = self.capacity_blocks
        return self.num_blocks

    async def _yield(self) -> None:
        if self.jitter is not None:
            for _ in range(self.jitter.randrange(3)):
                await asyncio.sleep(0)

    def _check(self, op: str, lba: int, nblocks: int) -> None:
        if self.dead:
            raise InternalDeviceError(f"{self.name}: power is off", device=self.name)
        if self.fail is not None and self.fail(op, lba, nblocks):
            raise WriteFault(f"{self.name}: injected {op} failure", device=self.name, lba=lba)

    def _mutation(self) -> bool:
        """Count a mutating command; True when the power goes off at this one."""
        self.mutations += 1
        if self.die_at is not None and self.mutations >= self.die_at:
            self.dead = True
            return True
        return False

    async def _read(self, lba: int, nblocks: int) -> Buffer:
        self._check("read", lba, nblocks)
        await self._yield()
        get, zero = self.current.get, self._zero
        return b"".join([get(i, zero) for i in range(lba, lba + nblocks)])

    async def _mutate(self, op: str, lba: int, blocks: list[bytes | None]) -> None:
        self._check(op, lba, len(blocks))
        await self._yield()
        self._check(op, lba, len(blocks))
        dying = self._mutation()
        _put_all(self.current, lba, blocks)
        self.pending.append((lba, blocks))
        if dying:
            raise InternalDeviceError(f"{self.name}: power went off", device=self.name)

    async def _write(self, lba: int, data: Buffer) -> None:
        raw = bytes(data)
        bs = self.block_size
        await self._mutate("write", lba, [raw[i : i + bs] for i in range(0, len(raw), bs)])

    async def _write_zeroes(self, lba: int, nblocks: int) -> None:
        await self._mutate("write_zeroes", lba, [None] * nblocks)

    async def _unmap(self, lba: int, nblocks: int) -> None:
        await self._mutate("unmap", lba, [None] * nblocks)

    async def _flush(self) -> None:
        self._check("flush", 0, 0)
        covered = len(self.pending)  # a flush covers the writes completed before it
        await self._yield()
        self._check("flush", 0, 0)
        if self._mutation():
            raise InternalDeviceError(f"{self.name}: power went off", device=self.name)
        for lba, blocks in self.pending[:covered]:
            _put_all(self.durable, lba, blocks)
        del self.pending[:covered]


def _put(image: Image, block_no: int, block: bytes | None) -> None:
    if block is None or block.count(0) == len(block):
        image.pop(block_no, None)
    else:
        image[block_no] = block


def _put_all(image: Image, lba: int, blocks: list[bytes | None]) -> None:
    if blocks and blocks[0] is None:  # zeroes: the whole command is zeroes
        pop = image.pop
        for block_no in range(lba, lba + len(blocks)):
            pop(block_no, None)
        return
    for n, block in enumerate(blocks):
        _put(image, lba + n, block)
