"""The signature detector, byte by byte: each magic at its published offset is found and
named, a byte off is not, and arbitrary bytes never make it raise."""

from __future__ import annotations

import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mayastor.lvs.format import SUPERBLOCK_MAGIC
from mayastor.lvs.signatures import (
    PROBE_BYTES,
    Signature,
    find_signatures,
    probe_ranges,
    tail_offset,
)

MIB = 1 << 20
SIZE = 8 * MIB


def disk(size: int = SIZE) -> bytearray:
    return bytearray(size)


def found(image: bytearray) -> list[Signature]:
    """What the detector finds when handed exactly the ranges it asks for."""
    parts = [bytes(image[off : off + length]) for off, length in probe_ranges(len(image))]
    return find_signatures(len(image), *parts)


def kinds(image: bytearray) -> list[str]:
    return [sig.kind for sig in found(image)]


def ext_superblock(image: bytearray, compat: int = 0, incompat: int = 0, ro: int = 0) -> None:
    sb = 1024
    struct.pack_into("<H", image, sb + 0x38, 0xEF53)
    struct.pack_into("<III", image, sb + 0x5C, compat, incompat, ro)
    image[sb + 0x68 : sb + 0x78] = uuid.UUID(int=1).bytes
    image[sb + 0x78 : sb + 0x7D] = b"data1"


def test_a_blank_disk_holds_nothing() -> None:
    assert found(disk()) == []


def test_ext4_is_named_with_its_uuid_and_label() -> None:
    image = disk()
    ext_superblock(image, compat=0x4, incompat=0x40 | 0x200)
    (sig,) = found(image)
    assert (sig.kind, sig.offset, sig.length) == ("ext4 file system", 1080, 2)
    assert str(uuid.UUID(int=1)) in sig.detail
    assert "'data1'" in sig.detail


def test_ext3_is_an_ext_file_system_with_a_journal_and_no_ext4_feature() -> None:
    image = disk()
    ext_superblock(image, compat=0x4)
    assert kinds(image) == ["ext3 file system"]


def test_ext2_has_neither_journal_nor_ext4_feature() -> None:
    image = disk()
    ext_superblock(image)
    assert kinds(image) == ["ext2 file system"]


def test_ext_magic_one_byte_off_is_not_found() -> None:
    image = disk()
    struct.pack_into("<H", image, 1081, 0xEF53)
    assert found(image) == []


def test_ext_magic_with_an_impossible_block_size_is_not_found() -> None:
    image = disk()
    ext_superblock(image, incompat=0x40)
    struct.pack_into("<I", image, 1024 + 0x18, 7)
    assert found(image) == []


def test_xfs_magic_at_byte_zero() -> None:
    image = disk()
    image[0:4] = b"XFSB"
    assert kinds(image) == ["xfs file system"]


def test_btrfs_magic_at_64k_plus_0x40() -> None:
    image = disk()
    image[0x10040:0x10048] = b"_BHRfS_M"
    (sig,) = found(image)
    assert (sig.kind, sig.offset) == ("btrfs file system", 65600)


@pytest.mark.parametrize("page", [4096, 16384, 65536])
@pytest.mark.parametrize("magic", [b"SWAPSPACE2", b"SWAP-SPACE"])
def test_swap_magic_ends_the_first_page(page: int, magic: bytes) -> None:
    image = disk()
    image[page - 10 : page] = magic
    (sig,) = found(image)
    assert (sig.kind, sig.offset) == ("swap space", page - 10)


def test_luks_header_at_byte_zero_with_its_version() -> None:
    image = disk()
    image[0:8] = b"LUKS\xba\xbe\x00\x02"
    (sig,) = found(image)
    assert (sig.kind, sig.detail) == ("LUKS encrypted volume", "version 2")


@pytest.mark.parametrize("sector", [0, 1, 2, 3])
def test_lvm2_label_in_one_of_the_first_four_sectors(sector: int) -> None:
    image = disk()
    base = sector * 512
    image[base : base + 8] = b"LABELONE"
    image[base + 24 : base + 32] = b"LVM2 001"
    image[base + 32 : base + 64] = b"A" * 32
    (sig,) = found(image)
    assert (sig.kind, sig.offset) == ("LVM2 physical volume", base)
    assert "A" * 32 in sig.detail


def test_lvm_label_without_the_lvm2_type_is_not_found() -> None:
    image = disk()
    image[512 : 512 + 8] = b"LABELONE"
    assert found(image) == []


def md_superblock(image: bytearray, offset: int, major: int, fmt: str = "<") -> None:
    struct.pack_into(f"{fmt}II", image, offset, 0xA92B4EFC, major)


@pytest.mark.parametrize(
    ("offset", "version"),
    [
        (0, "1.1"),
        (4096, "1.2"),
        (((SIZE // 512 - 16) & ~7) * 512, "1.0"),
    ],
)
def test_md_1x_superblock_at_its_offset(offset: int, version: str) -> None:
    image = disk()
    md_superblock(image, offset, 1)
    (sig,) = found(image)
    assert (sig.kind, sig.offset, sig.detail) == (
        "Linux md RAID member",
        offset,
        f"superblock {version}",
    )


@pytest.mark.parametrize("fmt", ["<", ">"])
def test_md_090_superblock_64k_before_the_64k_aligned_end(fmt: str) -> None:
    size = SIZE + 12345 * 512  # not a multiple of 64 KiB
    image = disk(size)
    offset = (size & ~0xFFFF) - 0x10000
    md_superblock(image, offset, 0, fmt)
    (sig,) = found(image)
    assert (sig.offset, sig.detail) == (offset, "superblock 0.90")


def test_gpt_header_at_lba_1_is_reported_and_its_protective_mbr_is_not() -> None:
    image = disk()
    image[446 + 4] = 0xEE
    image[510:512] = b"\x55\xaa"
    image[512:520] = b"EFI PART"
    (sig,) = found(image)
    assert (sig.kind, sig.offset) == ("GPT partition table", 512)


def test_gpt_header_of_4k_sectors_at_byte_4096() -> None:
    image = disk()
    image[4096:4104] = b"EFI PART"
    assert [(s.kind, s.offset) for s in found(image)] == [("GPT partition table", 4096)]


def test_backup_gpt_header_in_the_last_sector_is_found() -> None:
    image = disk()
    image[SIZE - 512 : SIZE - 504] = b"EFI PART"
    (sig,) = found(image)
    assert (sig.kind, sig.offset) == ("GPT partition table", SIZE - 512)


def test_mbr_partition_table_counts_its_partitions() -> None:
    image = disk()
    image[446] = 0x80
    image[446 + 4] = 0x83
    image[446 + 16 + 4] = 0x82
    image[510:512] = b"\x55\xaa"
    (sig,) = found(image)
    assert (sig.kind, sig.offset, sig.detail) == ("MBR partition table", 510, "2 partition(s)")


def test_boot_sector_whose_entries_are_not_partitions_is_a_boot_sector() -> None:
    image = disk()
    image[446] = 0x33
    image[510:512] = b"\x55\xaa"
    assert kinds(image) == ["boot sector"]


@pytest.mark.parametrize("copy", [0, 1])
def test_a_mayastor_superblock_in_either_copy_is_another_pool(copy: int) -> None:
    image = disk()
    image[copy * 4096 : copy * 4096 + 8] = SUPERBLOCK_MAGIC
    (sig,) = found(image)
    assert (sig.kind, sig.offset) == ("Mayastor pool", copy * 4096)


def test_several_signatures_are_listed_in_disk_order() -> None:
    image = disk()
    image[0x10040:0x10048] = b"_BHRfS_M"
    image[0:4] = b"XFSB"
    ext_superblock(image)
    assert [s.offset for s in found(image)] == [0, 1080, 65600]


def test_the_probe_reads_the_head_and_the_tail_on_4k_boundaries() -> None:
    size = 10 * MIB + 512
    ranges = probe_ranges(size)
    assert ranges[0] == (0, PROBE_BYTES)
    start, length = ranges[1]
    assert start % 4096 == 0
    assert start + length == size
    assert length >= PROBE_BYTES
    assert tail_offset(size) == start


def test_a_disk_smaller_than_the_probe_is_read_once() -> None:
    assert probe_ranges(64 << 10) == [(0, 64 << 10)]
    image = disk(64 << 10)
    image[0:4] = b"XFSB"
    assert kinds(image) == ["xfs file system"]


def test_a_signature_is_described_with_what_identifies_it() -> None:
    sig = Signature("ext4 file system", 1080, 2, "label 'x'")
    assert str(sig) == "ext4 file system (label 'x') at byte 1080"


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=4 * MIB),
    head=st.binary(max_size=PROBE_BYTES),
    tail=st.binary(max_size=PROBE_BYTES + 8192),
)
def test_arbitrary_bytes_never_make_the_detector_raise(size: int, head: bytes, tail: bytes) -> None:
    for sig in find_signatures(size, head, tail):
        assert sig.kind
        assert sig.length > 0
        assert 0 <= sig.offset < max(size, 1)


@settings(max_examples=50, deadline=None)
@given(size=st.integers(min_value=0, max_value=64 * MIB).map(lambda n: n // 512 * 512))
def test_zeroes_of_any_size_hold_no_signature(size: int) -> None:
    parts = [bytes(length) for _, length in probe_ranges(size)]
    assert find_signatures(size, *parts) == []


@settings(max_examples=200, deadline=None)
@given(noise=st.binary(max_size=8192))
def test_an_ext4_superblock_is_found_among_noise_around_it(noise: bytes) -> None:
    image = disk()
    image[: len(noise)] = noise
    image[1024 : 1024 + 0x88] = bytes(0x88)
    ext_superblock(image, incompat=0x40)
    assert "ext4 file system" in kinds(image)
