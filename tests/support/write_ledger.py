"""What each written unit may hold, so a test can prove no acknowledged write was lost.

`WriteLedger` keeps, for every unit written, the contents it may hold now: after an
acknowledged write, exactly the data written; after a write that failed or whose
answer never came (the process died, the path went away), either the old or the new
data. `verify` reads every recorded unit back and reports those that hold anything
else. Only the standard library: the kernel VM's workload (guest/verified_io.py)
imports it too, where every import is slow.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Protocol


class Readable(Protocol):
    """A device as `WriteLedger.verify` reads it (a BlockDevice does)."""

    def read(self, lba: int, nblocks: int) -> Awaitable[bytes | bytearray | memoryview]: ...


def fingerprint(data: bytes | bytearray | memoryview) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


ZEROES: dict[int, bytes] = {}


def zero_fingerprint(size: int) -> bytes:
    if size not in ZEROES:
        ZEROES[size] = fingerprint(bytes(size))
    return ZEROES[size]


@dataclass
class Mismatch:
    lba: int
    allowed: int  # how many contents were acceptable
    reason: str


@dataclass
class WriteLedger:
    """What each written unit (``unit_blocks`` blocks at a multiple of them) may hold.

    Units never written are expected to hold zeroes when `fresh` (a new device).
    """

    block_size: int
    unit_blocks: int
    fresh: bool = True
    may_hold: dict[int, set[bytes]] = field(default_factory=dict)
    acknowledged: int = 0
    failed: int = 0

    @property
    def unit_bytes(self) -> int:
        return self.block_size * self.unit_blocks

    def _current(self, lba: int) -> set[bytes]:
        found = self.may_hold.get(lba)
        if found is None:
            return {zero_fingerprint(self.unit_bytes)} if self.fresh else set()
        return found

    def record(self, lba: int, data: bytes, ok: bool) -> None:
        """Record the outcome of writing `data` to the unit at `lba`."""
        new = fingerprint(data)
        if ok:
            self.may_hold[lba] = {new}
            self.acknowledged += 1
        else:
            self.may_hold[lba] = self._current(lba) | {new}
            self.failed += 1

    def units(self) -> list[int]:
        return sorted(self.may_hold)

    async def verify(self, device: Readable, lbas: Iterable[int] | None = None) -> list[Mismatch]:
        """Read every recorded unit of `device`; the ones holding anything unexpected."""
        wrong: list[Mismatch] = []
        for lba in sorted(lbas if lbas is not None else self.may_hold):
            data = bytes(await device.read(lba, self.unit_blocks))
            allowed = self.may_hold.get(lba) or self._current(lba)
            if fingerprint(data) not in allowed:
                reason = "zeroes" if fingerprint(data) == zero_fingerprint(len(data)) else "other"
                wrong.append(Mismatch(lba, len(allowed), reason))
        return wrong


def unit_data(lba: int, seq: int, size: int, rng: random.Random) -> bytes:
    """Distinct data for each write: the unit's LBA and a sequence number, then noise."""
    head = lba.to_bytes(8, "little") + seq.to_bytes(8, "little")
    return head + rng.randbytes(size - len(head))
