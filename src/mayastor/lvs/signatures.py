"""What a disk already holds: known on-disk signatures, found in bytes (no I/O here).

A pool is created only on a disk that holds nothing anyone would miss; this module
says what a disk holds, from bytes its caller read from the disk itself (never from a
cache such as blkid's or udev's). The caller reads the ranges `probe_ranges` names
and hands them to `find_signatures`, which returns every signature found, in disk
order; none means the disk looks unused.

Signatures (published magic numbers at their published offsets):

* ext2/3/4: superblock at byte 1024, magic 0xEF53 (LE) at 1024+0x38, with a block size
  of 1 to 64 KiB and revision 0 or 1; the kind from its feature flags (ext4: extents,
  64bit, flex_bg, ...; ext3: a journal; else ext2);
* XFS: ``XFSB`` at byte 0;
* btrfs: ``_BHRfS_M`` at 64 KiB + 0x40 (primary superblock);
* swap: ``SWAPSPACE2`` or ``SWAP-SPACE`` in the last 10 bytes of the first page, for
  page sizes 4 KiB to 64 KiB;
* GPT: ``EFI PART`` at LBA 1 (512- or 4096-byte sectors), or a backup header in the
  last sector of the disk;
* MBR / boot sector: 0x55 0xAA at byte 510, with valid partition entry status bytes
  (0x00 or 0x80);
* LVM2 physical volume: ``LABELONE`` with type ``LVM2 001`` at byte 24 of one of the
  first four 512-byte sectors;
* Linux md RAID: magic 0xA92B4EFC with major version 0 (0.90: host byte order, at the
  end of the disk rounded down to 64 KiB, minus 64 KiB) or 1 (LE; 1.0 at the end minus
  8 KiB rounded down to 4 KiB, 1.1 at 0, 1.2 at 4 KiB);
* LUKS (1 and 2): ``LUKS\\xba\\xbe`` at byte 0;
* a Mayastor pool (ours): the superblock magic of `mayastor.lvs.format` in page 0 or 1,
  intact or not.

Anything can be handed in: bytes that are too short for a signature just do not hold
it; this module raises nothing.
"""

from __future__ import annotations

import struct
import uuid as uuid_mod
from collections.abc import Callable
from dataclasses import dataclass

from mayastor.lvs.format import PAGE_SIZE, SUPERBLOCK_MAGIC

PROBE_BYTES = 128 << 10
"""Bytes read at the start and at the end of the disk: every signature above lies in
them (btrfs's magic at 64 KiB + 0x40, swap's up to 64 KiB, md 0.90 within the last
128 KiB)."""

_U16 = struct.Struct("<H")
_U32LE = struct.Struct("<I")
_U32BE = struct.Struct(">I")

_EXT_SUPERBLOCK = 1024
_EXT_MAGIC = 0xEF53
_EXT_COMPAT_HAS_JOURNAL = 0x4
_EXT4_INCOMPAT = 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x2000 | 0x4000 | 0x8000 | 0x10000
"""Incompatible features only ext4 has: extents, 64bit, mmp, flex_bg, ea_inode,
csum_seed, large_dir, inline_data, encrypt."""
_EXT4_RO_COMPAT = 0x8 | 0x10 | 0x20 | 0x40 | 0x400
"""huge_file, gdt_csum, dir_nlink, extra_isize, metadata_csum."""

_MD_MAGIC = 0xA92B4EFC
_LUKS_MAGIC = b"LUKS\xba\xbe"
_GPT_MAGIC = b"EFI PART"
_SWAP_MAGICS = (b"SWAPSPACE2", b"SWAP-SPACE")
_SWAP_PAGE_SIZES = (4096, 8192, 16384, 32768, 65536)


@dataclass(frozen=True, slots=True)
class Signature:
    """One thing found on a disk.

    Attributes:
        kind: what it is, for people: ``ext4 file system``, ``GPT partition table``...
        offset: the byte of the disk where its magic lies.
        length: bytes of the magic (zeroing them makes the signature go away).
        detail: what identifies it (label, uuid, pool name), or empty.
    """

    kind: str
    offset: int
    length: int
    detail: str = ""

    def __str__(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.kind}{detail} at byte {self.offset}"


class DiskSample:
    """The bytes read from the start and the end of a disk of `size` bytes.

    Args:
        size: the disk's size in bytes.
        head: bytes read from byte 0 (up to `PROBE_BYTES`).
        tail: bytes read from `tail_offset(size)` to the end of the disk.
    """

    def __init__(self, size: int, head: bytes, tail: bytes) -> None:
        self.size = max(size, 0)
        self._head = bytes(head)
        self._tail = bytes(tail)
        self._tail_start = tail_offset(self.size)

    def at(self, offset: int, length: int) -> bytes | None:
        """The `length` bytes at `offset`, or None when the sample does not hold them."""
        if offset < 0 or length < 0 or offset + length > self.size:
            return None
        if offset + length <= len(self._head):
            return self._head[offset : offset + length]
        start = offset - self._tail_start
        if start >= 0 and start + length <= len(self._tail):
            return self._tail[start : start + length]
        return None

    def u32(self, offset: int, fmt: struct.Struct = _U32LE) -> int | None:
        raw = self.at(offset, 4)
        return None if raw is None else int(fmt.unpack(raw)[0])


def tail_offset(size: int) -> int:
    """Where the tail read starts: `PROBE_BYTES` before the end, on a 4 KiB boundary."""
    return max(0, (size - PROBE_BYTES) // PAGE_SIZE * PAGE_SIZE)


def probe_ranges(size: int) -> list[tuple[int, int]]:
    """The (offset, length) ranges to read from a disk of `size` bytes: head, then tail.

    Both start on a 4 KiB boundary; the tail's length is whatever is left to the end.
    """
    head = min(size, PROBE_BYTES)
    start = tail_offset(size)
    ranges = [(0, head)] if head > 0 else []
    if size > head:
        ranges.append((start, size - start))
    return ranges


# --------------------------------------------------------------------------- probes


def _text(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", "replace").strip()


def _ext(sample: DiskSample) -> list[Signature]:
    sb = sample.at(_EXT_SUPERBLOCK, 0x88)
    if sb is None or _U16.unpack_from(sb, 0x38)[0] != _EXT_MAGIC:
        return []
    log_block_size = _U32LE.unpack_from(sb, 0x18)[0]
    rev_level = _U32LE.unpack_from(sb, 0x4C)[0]
    if log_block_size > 6 or rev_level > 1:
        return []  # blocks of 1 KiB to 64 KiB, revision 0 or 1: else not an ext superblock
    compat, incompat, ro_compat = struct.unpack_from("<III", sb, 0x5C)
    if incompat & _EXT4_INCOMPAT or ro_compat & _EXT4_RO_COMPAT:
        kind = "ext4"
    elif compat & _EXT_COMPAT_HAS_JOURNAL:
        kind = "ext3"
    else:
        kind = "ext2"
    detail = f"UUID {uuid_mod.UUID(bytes=sb[0x68:0x78])}"
    label = _text(sb[0x78:0x88])
    if label:
        detail += f", label {label!r}"
    return [Signature(f"{kind} file system", _EXT_SUPERBLOCK + 0x38, 2, detail)]


def _xfs(sample: DiskSample) -> list[Signature]:
    sb = sample.at(0, 0x6C + 12)
    if sb is None or sb[:4] != b"XFSB":
        return []
    detail = f"UUID {uuid_mod.UUID(bytes=sb[0x20:0x30])}"
    label = _text(sb[0x6C:0x78])
    if label:
        detail += f", label {label!r}"
    return [Signature("xfs file system", 0, 4, detail)]


def _btrfs(sample: DiskSample) -> list[Signature]:
    base = 0x10000
    sb = sample.at(base, 0x48)
    if sb is None or sb[0x40:0x48] != b"_BHRfS_M":
        return []
    return [
        Signature("btrfs file system", base + 0x40, 8, f"UUID {uuid_mod.UUID(bytes=sb[0x20:0x30])}")
    ]


def _swap(sample: DiskSample) -> list[Signature]:
    for page in _SWAP_PAGE_SIZES:
        raw = sample.at(page - 10, 10)
        if raw in _SWAP_MAGICS:
            return [Signature("swap space", page - 10, 10, f"{page}-byte pages")]
    return []


def _gpt(sample: DiskSample) -> list[Signature]:
    found: list[Signature] = []
    for sector in (512, 4096):
        if sample.at(sector, 8) == _GPT_MAGIC:
            found.append(Signature("GPT partition table", sector, 8, f"{sector}-byte sectors"))
            return found
    for sector in (512, 4096):
        last = sample.size // sector * sector - sector
        if last > sector and sample.at(last, 8) == _GPT_MAGIC:
            return [
                Signature("GPT partition table", last, 8, "backup header at the end of the disk")
            ]
    return found


def _mbr(sample: DiskSample) -> list[Signature]:
    sector = sample.at(0, 512)
    if sector is None or sector[510:512] != b"\x55\xaa":
        return []
    statuses = [sector[446 + 16 * n] for n in range(4)]
    if not all(s in (0x00, 0x80) for s in statuses):
        return [Signature("boot sector", 510, 2, "0x55AA signature")]
    used = sum(1 for n in range(4) if sector[446 + 16 * n + 4] != 0)
    if sample.at(512, 8) == _GPT_MAGIC:
        return []  # the protective MBR of a GPT disk: the GPT is reported
    return [Signature("MBR partition table", 510, 2, f"{used} partition(s)")]


def _lvm2(sample: DiskSample) -> list[Signature]:
    for n in range(4):
        label = sample.at(n * 512, 32)
        if label is not None and label[:8] == b"LABELONE" and label[24:32] == b"LVM2 001":
            pv = sample.at(n * 512 + 32, 32)
            detail = f"PV UUID {pv.decode('ascii', 'replace')}" if pv else ""
            return [Signature("LVM2 physical volume", n * 512, 32, detail)]
    return []


def _md(sample: DiskSample) -> list[Signature]:
    found: list[Signature] = []
    size = sample.size
    old = (size & ~0xFFFF) - 0x10000
    if old >= 0:
        for fmt in (_U32LE, _U32BE):
            if sample.u32(old, fmt) == _MD_MAGIC and sample.u32(old + 4, fmt) == 0:
                found.append(Signature("Linux md RAID member", old, 4, "superblock 0.90"))
                break
    end = ((size // 512 - 16) & ~7) * 512
    for minor, offset in ((0, end), (1, 0), (2, 4096)):
        if offset >= 0 and sample.u32(offset) == _MD_MAGIC and sample.u32(offset + 4) == 1:
            found.append(Signature("Linux md RAID member", offset, 4, f"superblock 1.{minor}"))
    return found


def _luks(sample: DiskSample) -> list[Signature]:
    head = sample.at(0, 8)
    if head is None or head[:6] != _LUKS_MAGIC:
        return []
    version = struct.unpack_from(">H", head, 6)[0]
    return [Signature("LUKS encrypted volume", 0, 6, f"version {version}")]


def _mayastor(sample: DiskSample) -> list[Signature]:
    for copy in (0, 1):
        page = sample.at(copy * PAGE_SIZE, len(SUPERBLOCK_MAGIC))
        if page == SUPERBLOCK_MAGIC:
            return [
                Signature("Mayastor pool", copy * PAGE_SIZE, 8, f"superblock copy {'AB'[copy]}")
            ]
    return []


_PROBES: tuple[Callable[[DiskSample], list[Signature]], ...] = (
    _mayastor,
    _luks,
    _xfs,
    _ext,
    _btrfs,
    _swap,
    _lvm2,
    _md,
    _gpt,
    _mbr,
)


def find_signatures(size: int, head: bytes = b"", tail: bytes = b"") -> list[Signature]:
    """Every known signature in the bytes read from a disk, in disk order.

    Args:
        size: the disk's size in bytes.
        head: the bytes at the start of the disk (`probe_ranges(size)[0]`).
        tail: the bytes from `tail_offset(size)` to the end (`probe_ranges(size)[1]`),
            or empty for a disk no larger than `PROBE_BYTES`.

    Returns:
        the signatures found; an empty list when the disk looks unused.
    """
    sample = DiskSample(size, head, tail)
    found = [sig for probe in _PROBES for sig in probe(sample)]
    return sorted(found, key=lambda s: s.offset)
