"""A sparse set of segment numbers: which segments of a child are dirty.

The nexus keeps one per child that is away (offline, timed out) and one for the
writes not yet covered by a flush. Both must stay small for a 10 TiB volume and be
cheap to mark on every write, so the set is a bitmap cut into chunks that exist only
where something was marked: at 64 KiB segments a chunk covers 256 MiB in 512 bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

_CHUNK_BITS: Final = 4096
_CHUNK_BYTES: Final = _CHUNK_BITS // 8


class SegmentMap:
    """A set of segment numbers in ``[0, num_segments)``.

    Args:
        num_segments: how many segments the device has.
    """

    __slots__ = ("_chunks", "num_segments")

    def __init__(self, num_segments: int) -> None:
        self.num_segments = num_segments
        self._chunks: dict[int, bytearray] = {}

    def __len__(self) -> int:
        """The number of segments in the set."""
        return sum(int.from_bytes(chunk, "little").bit_count() for chunk in self._chunks.values())

    def __bool__(self) -> bool:
        return any(any(chunk) for chunk in self._chunks.values())

    def __contains__(self, segment: object) -> bool:
        if not isinstance(segment, int):
            return False
        chunk = self._chunks.get(segment // _CHUNK_BITS)
        if chunk is None:
            return False
        bit = segment % _CHUNK_BITS
        return bool(chunk[bit >> 3] & (1 << (bit & 7)))

    def __iter__(self) -> Iterator[int]:
        """The segments in the set, in ascending order."""
        for index in sorted(self._chunks):
            base = index * _CHUNK_BITS
            chunk = self._chunks[index]
            for byte_no in range(len(chunk)):  # not enumerate(): mypyc 2.4.1 fails on it
                byte = chunk[byte_no]
                if not byte:
                    continue
                for bit in range(8):
                    if byte & (1 << bit):
                        yield base + byte_no * 8 + bit

    def add_range(self, first: int, count: int) -> None:
        """Add segments ``first .. first + count - 1`` (clipped to the map)."""
        end = min(first + count, self.num_segments)
        segment = max(first, 0)
        while segment < end:
            index, bit = divmod(segment, _CHUNK_BITS)
            chunk = self._chunks.get(index)
            if chunk is None:
                chunk = self._chunks[index] = bytearray(_CHUNK_BYTES)
            stop = min(end - index * _CHUNK_BITS, _CHUNK_BITS)
            while bit < stop and bit & 7:
                chunk[bit >> 3] |= 1 << (bit & 7)
                bit += 1
            whole = (stop - bit) >> 3
            if whole:
                chunk[bit >> 3 : (bit >> 3) + whole] = b"\xff" * whole
                bit += whole * 8
            while bit < stop:
                chunk[bit >> 3] |= 1 << (bit & 7)
                bit += 1
            segment = index * _CHUNK_BITS + stop

    def add_blocks(self, lba: int, nblocks: int, segment_blocks: int) -> None:
        """Add every segment that blocks ``lba .. lba + nblocks - 1`` touch."""
        if nblocks <= 0:
            return
        first = lba // segment_blocks
        last = (lba + nblocks - 1) // segment_blocks
        if first == last:
            index, bit = divmod(first, _CHUNK_BITS)
            chunk = self._chunks.get(index)
            if chunk is None:
                chunk = self._chunks[index] = bytearray(_CHUNK_BYTES)
            chunk[bit >> 3] |= 1 << (bit & 7)
            return
        self.add_range(first, last - first + 1)

    def update(self, other: SegmentMap) -> None:
        """Add every segment of `other`."""
        for index, theirs in other._chunks.items():
            mine = self._chunks.get(index)
            if mine is None:
                self._chunks[index] = bytearray(theirs)
            else:
                merged = int.from_bytes(mine, "little") | int.from_bytes(theirs, "little")
                mine[:] = merged.to_bytes(_CHUNK_BYTES, "little")

    def copy(self) -> SegmentMap:
        """An independent copy."""
        other = SegmentMap(self.num_segments)
        other._chunks = {index: bytearray(chunk) for index, chunk in self._chunks.items()}
        return other

    def clear(self) -> None:
        self._chunks.clear()
