"""The on-disk format: every structure round-trips, and damage is detected, never decoded."""

from __future__ import annotations

import struct
import uuid as uuid_mod
from array import array

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mayastor.errors import CorruptMetadata, FailedPrecondition, InvalidArgument
from mayastor.lvs.format import (
    CHECKPOINT_HEADER_SIZE,
    FORMAT_VERSION,
    JOURNAL_PAYLOAD,
    MAX_CLUSTERS,
    PAGE_END,
    PAGE_SIZE,
    SUPERBLOCK_MAGIC,
    CheckpointHeader,
    DestroyRecord,
    ExtentsRecord,
    LvolRecord,
    PoolSizeRecord,
    PropertiesRecord,
    Record,
    ResizeRecord,
    Superblock,
    checkpoint_body,
    compute_layout,
    crc_of,
    decode_checkpoint_header,
    decode_journal_page,
    decode_records,
    decode_superblock,
    encode_checkpoint,
    encode_journal_pages,
    encode_record,
    encode_superblock,
)

MIB = 1 << 20
GIB = 1 << 30
TIB = 1 << 40

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
uuids = st.uuids()
names = st.text(min_size=1, max_size=60).filter(lambda s: len(s.encode()) <= 255)
hosts = st.lists(st.text(min_size=1, max_size=40), max_size=4).map(tuple)
entity = st.none() | st.text(max_size=50)
share = st.integers(0, 1)


def superblocks() -> st.SearchStrategy[Superblock]:
    @st.composite
    def build(draw: st.DrawFn) -> Superblock:
        slot = draw(st.integers(1, 10_000))
        journal = draw(st.integers(1, 4096))
        cluster = draw(st.integers(1, 64)) * MIB
        md_end = (2 + 2 * (slot + journal)) * PAGE_SIZE
        return Superblock(
            pool_uuid=draw(uuids),
            name=draw(names),
            nonce=draw(u64),
            block_size=draw(st.sampled_from([512, 4096])),
            cluster_size=cluster,
            copy_pages=(2, 2 + slot + journal),
            slot_pages=slot,
            journal_pages=journal,
            data_offset=-(-md_end // cluster) * cluster,
            max_data_clusters=draw(st.integers(1, MAX_CLUSTERS)),
        )

    return build()


records: st.SearchStrategy[Record] = st.one_of(
    st.builds(
        LvolRecord,
        u32,
        uuids,
        names,
        st.integers(1, 2**63),
        st.booleans(),
        share,
        hosts,
        entity,
    ),
    st.builds(
        ExtentsRecord,
        u32,
        st.lists(u32, max_size=60).map(lambda v: array("I", v[: len(v) - len(v) % 3])),
    ),
    st.builds(DestroyRecord, u32),
    st.builds(ResizeRecord, u32, u64),
    st.builds(PropertiesRecord, u32, share, hosts, entity),
    st.builds(PoolSizeRecord, u64),
)


# ---------------------------------------------------------------------- superblock


@given(superblocks())
def test_superblock_round_trips(sb: Superblock) -> None:
    page = encode_superblock(sb)
    assert len(page) == PAGE_SIZE
    assert decode_superblock(page, where="test") == sb


@given(superblocks(), st.data())
def test_a_bit_flip_anywhere_in_a_superblock_is_detected(
    sb: Superblock, data: st.DataObject
) -> None:
    page = bytearray(encode_superblock(sb))
    bit = data.draw(st.integers(8 * 8, PAGE_SIZE * 8 - 1))  # past the magic
    page[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(CorruptMetadata, match="CRC"):
        decode_superblock(bytes(page), where="test")


@given(superblocks(), st.integers(1, PAGE_SIZE // 512 - 1))
def test_a_superblock_torn_at_a_sector_is_detected(sb: Superblock, sectors: int) -> None:
    page = bytearray(encode_superblock(sb))
    page[sectors * 512 :] = bytes(PAGE_SIZE - sectors * 512)
    if page == encode_superblock(sb):
        return  # the tail was zeroes already (it never is: the CRC is there)
    with pytest.raises(CorruptMetadata):
        decode_superblock(bytes(page), where="test")


@given(st.binary(min_size=1, max_size=512), st.booleans())
def test_random_bytes_are_no_superblock_or_a_damaged_one_never_a_decoded_one(
    chunk: bytes, with_magic: bool
) -> None:
    page = (chunk * (PAGE_SIZE // len(chunk) + 1))[:PAGE_SIZE]
    if with_magic:
        page = SUPERBLOCK_MAGIC + page[len(SUPERBLOCK_MAGIC) :]
        with pytest.raises(CorruptMetadata):
            decode_superblock(page, where="test")
    elif not page.startswith(SUPERBLOCK_MAGIC):
        assert decode_superblock(page, where="test") is None


def test_an_intact_superblock_of_an_unknown_version_is_refused_by_name() -> None:
    sb = Superblock(
        pool_uuid=uuid_mod.uuid4(),
        name="future",
        nonce=7,
        block_size=512,
        cluster_size=4 * MIB,
        copy_pages=(2, 2 + 65 + 65),
        slot_pages=65,
        journal_pages=65,
        data_offset=4 * MIB,
        max_data_clusters=100,
        version=FORMAT_VERSION + 1,
    )
    with pytest.raises(FailedPrecondition, match=f"format version {FORMAT_VERSION + 1}"):
        decode_superblock(encode_superblock(sb), where="disk x")


def test_a_superblock_with_impossible_layout_is_corrupt_even_with_a_good_crc() -> None:
    sb = Superblock(
        pool_uuid=uuid_mod.uuid4(),
        name="odd",
        nonce=7,
        block_size=512,
        cluster_size=4 * MIB,
        copy_pages=(2, 3),  # copy B inside copy A
        slot_pages=65,
        journal_pages=65,
        data_offset=4 * MIB,
        max_data_clusters=100,
    )
    with pytest.raises(CorruptMetadata, match="layout"):
        decode_superblock(encode_superblock(sb), where="disk x")


# ---------------------------------------------------------------------- records


@given(st.lists(records, max_size=8))
def test_records_round_trip(recs: list[Record]) -> None:
    encoded = b"".join(encode_record(r) for r in recs)
    assert decode_records(encoded) == recs


@given(st.binary(max_size=300))
def test_random_bytes_decode_to_records_or_corrupt_metadata_only(data: bytes) -> None:
    try:
        decode_records(data)
    except CorruptMetadata:
        pass


@given(records, st.data())
def test_a_truncated_record_is_corrupt(record: Record, data: st.DataObject) -> None:
    encoded = encode_record(record)
    cut = data.draw(st.integers(1, len(encoded) - 1))
    with pytest.raises(CorruptMetadata):
        decode_records(encoded[:cut])


def test_a_reserved_record_type_is_corrupt_in_format_1() -> None:
    with pytest.raises(CorruptMetadata, match="record type 16"):
        decode_records(struct.pack("<BI", 16, 0))


# ---------------------------------------------------------------------- checkpoints


@given(st.lists(records, max_size=6), u64, u64, uuids)
def test_checkpoints_round_trip(
    recs: list[Record], nonce: int, gen: int, pool: uuid_mod.UUID
) -> None:
    body = b"".join(encode_record(r) for r in recs)
    header = CheckpointHeader(nonce, pool, gen, 5, 10, 3, 1, 0, 0)
    blob, crc = encode_checkpoint(header, body)
    assert len(blob) % PAGE_SIZE == 0
    got = decode_checkpoint_header(blob, nonce)
    assert got is not None
    assert (got.generation, got.pool_uuid, got.body_len, got.crc) == (gen, pool, len(body), crc)
    view = checkpoint_body(got, blob)
    assert view is not None
    assert bytes(view) == body


@given(st.binary(min_size=1, max_size=9000), st.data())
def test_damage_to_a_checkpoint_is_detected(body: bytes, data: st.DataObject) -> None:
    header = CheckpointHeader(1, uuid_mod.uuid4(), 2, 3, 4, 5, 6, 0, 0)
    blob = bytearray(encode_checkpoint(header, body)[0])
    at = data.draw(st.integers(0, CHECKPOINT_HEADER_SIZE + len(body) - 1))
    blob[at] ^= data.draw(st.integers(1, 255))
    got = decode_checkpoint_header(blob, 1)
    assert got is None or checkpoint_body(got, blob) is None


def test_a_checkpoint_of_another_pool_instance_is_not_ours() -> None:
    header = CheckpointHeader(1, uuid_mod.uuid4(), 2, 3, 4, 5, 6, 0, 0)
    blob, _ = encode_checkpoint(header, b"")
    assert decode_checkpoint_header(blob, nonce=2) is None


# ---------------------------------------------------------------------- journal


@given(st.binary(max_size=3 * JOURNAL_PAYLOAD), u64, u32, u64, u32)
def test_journal_pages_round_trip_and_chain(
    payload: bytes, epoch: int, first: int, seq: int, prev: int
) -> None:
    first = first % (2**32 - 8)
    pages, last_crc = encode_journal_pages(
        payload, nonce=9, epoch=epoch, first_index=first, seq=seq, prev_crc=prev, session=1
    )
    got = []
    chain = prev
    for i in range(len(pages) // PAGE_SIZE):
        page = decode_journal_page(memoryview(pages)[i * PAGE_SIZE : (i + 1) * PAGE_SIZE], 9)
        assert page is not None
        assert (page.epoch, page.index, page.seq, page.prev_crc) == (epoch, first + i, seq, chain)
        assert bool(page.flags & PAGE_END) == (i == len(pages) // PAGE_SIZE - 1)
        chain = page.crc
        got.append(bytes(page.payload))
    assert chain == last_crc
    assert b"".join(got) == payload


@given(st.data())
def test_a_torn_journal_page_is_detected(data: st.DataObject) -> None:
    payload = data.draw(st.binary(min_size=1, max_size=JOURNAL_PAYLOAD))
    page = bytearray(
        encode_journal_pages(
            payload, nonce=9, epoch=1, first_index=0, seq=1, prev_crc=0, session=1
        )[0]
    )
    sector = data.draw(st.integers(0, PAGE_SIZE // 512 - 1))
    old = data.draw(st.binary(min_size=512, max_size=512))
    if page[sector * 512 : (sector + 1) * 512] == old:
        return
    page[sector * 512 : (sector + 1) * 512] = old
    assert decode_journal_page(memoryview(page), 9) is None


# ---------------------------------------------------------------------- layout


def test_a_100_mib_disk_with_4_mib_clusters_gives_96_mib() -> None:
    layout = compute_layout(100 * MIB, 4 * MIB, 1000 * MIB)
    assert layout.data_clusters * 4 * MIB == 96 * MIB
    assert layout.data_offset == 4 * MIB


def test_a_10_tib_disk_layout_is_sized_for_2_6_million_clusters_and_small_metadata() -> None:
    layout = compute_layout(10 * TIB, 4 * MIB, 10 * TIB)
    assert layout.data_clusters == (10 * TIB - layout.data_offset) // (4 * MIB)
    assert layout.data_clusters > 2_600_000
    assert layout.max_data_clusters == layout.data_clusters
    # the worst case (every cluster its own extent) fits one checkpoint slot
    assert layout.slot_pages * PAGE_SIZE >= layout.max_data_clusters * 12
    assert layout.data_offset < 10 * TIB // 1000  # metadata under 0.1 % of the disk


def test_a_layout_beyond_what_u32_clusters_can_number_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="larger clusters"):
        compute_layout(TIB, MIB, (MAX_CLUSTERS + 10) * MIB)


def test_a_disk_without_room_for_one_cluster_is_refused_with_the_size_it_needs() -> None:
    with pytest.raises(InvalidArgument, match="at least"):
        compute_layout(4 * MIB, 4 * MIB, 4 * MIB)


def test_crc_is_crc32c() -> None:
    assert crc_of(b"123456789") == 0xE3069283
