"""Damage to the metadata: one copy is detected and the other used; both is a clear error.

A pool with lvols, data and a journal is built once; each example damages its image
(random bytes, a bit flip, or a sector torn back to other contents) in one structure
(superblock, checkpoint, journal) of one or both metadata copies, imports it and
compares everything the pool says and holds with the undamaged pool.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import random
import uuid as uuid_mod

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mayastor.errors import CorruptMetadata, NotFound
from mayastor.lvs import LvolProperties, Pool, ShareProtocol
from mayastor.lvs.format import (
    CHECKPOINT_HEADER_SIZE,
    PAGE_SIZE,
    decode_checkpoint_header,
    decode_journal_page,
    decode_superblock,
)
from tests.unit.lvs.disks import Image, SimDisk

MIB = 1 << 20
BS = 512
BPP = PAGE_SIZE // BS

Summary = tuple[object, ...]


async def summary(pool: Pool) -> Summary:
    """Everything a pool says about itself and holds, in comparable form."""
    lvols = []
    for lv in sorted(pool.lvols(), key=lambda lv: lv.name):
        data = await lv.read(0, lv.num_blocks)
        lvols.append(
            (
                lv.uuid,
                lv.name,
                lv.size,
                lv.thin,
                lv.properties,
                bytes(lv.meta.extents),
                hashlib.sha256(data).hexdigest(),
            )
        )
    return (pool.name, pool.uuid, pool.capacity, pool.used, tuple(lvols))


async def _build() -> tuple[SimDisk, Image, Summary, Summary]:
    disk = SimDisk(24 * MIB // BS, BS)
    pool = await Pool.create(disk, "damaged", disk="sim://d", cluster_size=MIB)
    a = await pool.create_lvol("a", 2 * MIB, properties=LvolProperties(entity_id="vol-a"))
    b = await pool.create_lvol("b", 3 * MIB, thin=True)
    c = await pool.create_lvol("c", MIB + 4096, thin=True, uuid=uuid_mod.UUID(int=7))
    rng = random.Random(5)
    for lba in (0, 2048, 4000, 5000):
        await b.write(lba, rng.randbytes(4 * BS))
    await a.write(100, rng.randbytes(8 * BS))
    await c.write(0, rng.randbytes(BS))
    await pool.resize_lvol(c, 2 * MIB)
    await pool.destroy_lvol(await pool.create_lvol("gone", MIB))
    # many small transactions so the journal spans pages of several transactions
    for i in range(12):
        hosts = tuple(f"nqn.2014-08.org.example:h{i}-{j}" for j in range(i))
        await pool.set_lvol_properties(b, LvolProperties(ShareProtocol.NVMF, hosts, f"e{i}"))
    before_last = await summary(pool)
    await pool.set_lvol_properties(a, LvolProperties(ShareProtocol.NVMF, ("nqn.h",), "vol-a2"))
    final = await summary(pool)
    image = disk.image_after_process_crash()
    await pool.export()
    return disk, image, before_last, final


@functools.cache
def built() -> tuple[SimDisk, Image, Summary, Summary]:
    return asyncio.run(_build())


def layout(image: Image) -> tuple[int, int, int, int]:
    """(copy A page, copy B page, slot pages, journal pages) from the intact superblock."""
    page = b"".join(image.get(i, bytes(BS)) for i in range(BPP))
    sb = decode_superblock(page, where="test")
    assert sb is not None
    return sb.copy_pages[0], sb.copy_pages[1], sb.slot_pages, sb.journal_pages


def read_page(image: Image, page: int) -> bytes:
    return b"".join(image.get(page * BPP + i, bytes(BS)) for i in range(BPP))


def write_bytes(image: Image, offset: int, data: bytes) -> None:
    """Put `data` at byte `offset` of the image."""
    first, last = offset // BS, (offset + len(data) - 1) // BS
    buf = bytearray(b"".join(image.get(i, bytes(BS)) for i in range(first, last + 1)))
    start = offset - first * BS
    buf[start : start + len(data)] = data
    for n in range(last - first + 1):
        image[first + n] = bytes(buf[n * BS : (n + 1) * BS])


def structure_span(image: Image, copy: int, what: str) -> tuple[int, int]:
    """(first byte, length) of the used part of `what` in metadata copy `copy`."""
    copy_a, copy_b, slot_pages, _ = layout(image)
    start_page = (copy_a, copy_b)[copy]
    if what == "superblock":
        return copy * PAGE_SIZE, PAGE_SIZE
    if what == "checkpoint":
        nonce = _nonce(image)
        header = decode_checkpoint_header(read_page(image, start_page), nonce)
        assert header is not None
        return start_page * PAGE_SIZE, CHECKPOINT_HEADER_SIZE + header.body_len
    used = journal_pages_used(image, copy)
    assert used >= 2
    return (start_page + slot_pages) * PAGE_SIZE, used * PAGE_SIZE


def _nonce(image: Image) -> int:
    sb = decode_superblock(read_page(image, 0), where="test")
    assert sb is not None
    return sb.nonce


def journal_seqs(image: Image, copy: int) -> list[int]:
    """The transaction number of each valid journal page of the current epoch, in order."""
    copy_a, copy_b, slot_pages, _ = layout(image)
    nonce = _nonce(image)
    header = decode_checkpoint_header(read_page(image, (copy_a, copy_b)[copy]), nonce)
    assert header is not None
    seqs = []
    for i in range(64):
        page = decode_journal_page(
            memoryview(read_page(image, (copy_a, copy_b)[copy] + slot_pages + i)), nonce
        )
        if page is None or page.epoch != header.generation:
            break
        seqs.append(page.seq)
    return seqs


def journal_pages_used(image: Image, copy: int) -> int:
    return len(journal_seqs(image, copy))


def damage(image: Image, offset: int, length: int, kind: str, rng: random.Random) -> None:
    """Change the image somewhere in [offset, offset + length): always a real change."""
    at = offset + rng.randrange(length)
    if kind == "bitflip":
        block = bytearray(image.get(at // BS, bytes(BS)))
        block[at % BS] ^= 1 << rng.randrange(8)
        image[at // BS] = bytes(block)
    elif kind == "random":
        count = min(rng.randrange(1, 64), offset + length - at)
        old = b"".join(image.get(i, bytes(BS)) for i in range(at // BS, (at + count) // BS + 1))
        old = old[at % BS : at % BS + count]
        write_bytes(image, at, bytes(o ^ rng.randrange(1, 256) for o in old))
    else:  # torn: one sector of the structure holds other contents (zeroes or stale)
        sector = at // BS
        old_sector = image.get(sector, bytes(BS))
        new = bytes(BS) if any(old_sector) else b"\xff" * BS
        image[sector] = rng.choice([new, bytes(b ^ 0x5A for b in old_sector)])


async def import_summary(image: Image) -> Summary:
    disk = SimDisk(24 * MIB // BS, BS, image=image)
    pool = await Pool.import_(disk, disk="sim://d")
    try:
        return await summary(pool)
    finally:
        await pool.export()


kinds = st.sampled_from(["bitflip", "random", "torn"])
structures = st.sampled_from(["superblock", "checkpoint", "journal"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 1), structures, kinds, st.randoms(use_true_random=False))
def test_damage_to_one_copy_is_detected_and_the_other_copy_is_used(
    copy: int, what: str, kind: str, rng: random.Random
) -> None:
    _, image, _, final = built()
    damaged = dict(image)
    offset, length = structure_span(image, copy, what)
    damage(damaged, offset, length, kind, rng)
    assert asyncio.run(import_summary(damaged)) == final


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 1), structures, kinds, st.randoms(use_true_random=False))
def test_an_import_repairs_the_damaged_copy_so_the_other_may_fail_later(
    copy: int, what: str, kind: str, rng: random.Random
) -> None:
    _, image, _, final = built()

    async def run() -> Summary:
        damaged = dict(image)
        offset, length = structure_span(image, copy, what)
        damage(damaged, offset, length, kind, rng)
        disk = SimDisk(24 * MIB // BS, BS, image=damaged)
        pool = await Pool.import_(disk, disk="sim://d")
        await pool.export()
        repaired = disk.image_after_process_crash()
        copy_a, copy_b, _, _ = layout(repaired)
        assert read_page(repaired, 0) == read_page(repaired, 1)
        headers = [
            decode_checkpoint_header(read_page(repaired, page), _nonce(repaired))
            for page in (copy_a, copy_b)
        ]
        assert headers[0] is not None
        assert headers[0] == headers[1]
        # now the copy that was good is damaged; the repaired one must carry the pool
        span = structure_span(repaired, 1 - copy, "checkpoint")
        damage(repaired, span[0], span[1], kind, rng)
        return await import_summary(repaired)

    assert asyncio.run(run()) == final


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["superblock", "checkpoint"]), kinds, st.randoms(use_true_random=False))
def test_damage_to_both_copies_is_a_clear_import_error(
    what: str, kind: str, rng: random.Random
) -> None:
    _, image, _, _ = built()
    damaged = dict(image)
    for copy in (0, 1):
        offset, length = structure_span(image, copy, what)
        damage(damaged, offset, length, kind, rng)
    with pytest.raises((CorruptMetadata, NotFound)) as info:
        asyncio.run(import_summary(damaged))
    if isinstance(info.value, NotFound):  # only when both magics were destroyed
        assert kind != "bitflip" or what == "superblock"
    assert "damaged" in str(info.value) or "holds no pool" in str(info.value)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), kinds, st.randoms(use_true_random=False))
def test_a_journal_page_damaged_in_both_copies_before_later_records_is_a_clear_error(
    data: st.DataObject, kind: str, rng: random.Random
) -> None:
    _, image, _, _ = built()
    seqs = journal_seqs(image, 0)
    last = seqs[-1]
    page = data.draw(st.sampled_from([i for i, s in enumerate(seqs) if s < last]))
    damaged = dict(image)
    copy_a, copy_b, slot_pages, _ = layout(image)
    for start in (copy_a, copy_b):
        before = dict(damaged)
        offset = (start + slot_pages + page) * PAGE_SIZE
        damage(damaged, offset, PAGE_SIZE, kind, rng)
        if damaged == before:
            return
    with pytest.raises(CorruptMetadata, match="damaged in both metadata copies"):
        asyncio.run(import_summary(damaged))


def test_a_pool_built_for_these_tests_has_a_multi_transaction_journal() -> None:
    _, image, before_last, final = built()
    seqs = journal_seqs(image, 0)
    assert len(set(seqs)) >= 10
    assert seqs == journal_seqs(image, 1)
    assert before_last != final
