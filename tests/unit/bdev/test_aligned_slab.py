"""I/O buffers of the file drivers: small ones cut from one aligned allocation, large
ones reused once nothing refers to them."""

from __future__ import annotations

import ctypes

from mayastor.bdev._file_device import _SLAB_BYTES, _AlignedSlab, _ReusedBuffers


def address_of(view: memoryview) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


def test_each_buffer_starts_on_the_alignment_at_the_address_given() -> None:
    slab = _AlignedSlab(512)
    for size in (512, 4096, 1024, 512, 8192):
        view, address = slab.take(size)
        assert len(view) == size
        assert address % 512 == 0
        assert address_of(view) == address


def test_buffers_do_not_overlap() -> None:
    slab = _AlignedSlab(512)
    views = [slab.take(4096)[0] for _ in range(20)]
    for n, view in enumerate(views):
        view[:] = bytes([n]) * 4096
    assert [bytes(v) for v in views] == [bytes([n]) * 4096 for n in range(20)]


def test_a_buffer_that_is_not_a_multiple_of_the_alignment_leaves_the_next_aligned() -> None:
    slab = _AlignedSlab(4096)
    slab.take(512)
    _, address = slab.take(512)
    assert address % 4096 == 0


def test_a_full_slab_is_followed_by_a_new_one_and_old_buffers_stay_valid() -> None:
    slab = _AlignedSlab(512)
    first, _ = slab.take(4096)
    first[:] = b"\xaa" * 4096
    for _ in range(2 * _SLAB_BYTES // 4096):
        view, address = slab.take(4096)
        assert address_of(view) == address
        assert bytes(view) == bytes(4096)  # fresh buffers are zero-filled
    assert bytes(first) == b"\xaa" * 4096


# ------------------------------------------------------------------ large I/O buffers

LARGE = 128 << 10


def test_a_large_buffer_starts_on_the_alignment_at_the_address_given() -> None:
    pool = _ReusedBuffers(512)
    for _ in range(3):
        view, address = pool.take(LARGE)
        assert len(view) == LARGE
        assert address % 512 == 0
        assert address_of(view) == address
        del view


def test_a_large_buffer_its_caller_dropped_is_handed_out_again() -> None:
    pool = _ReusedBuffers(512)
    view, address = pool.take(LARGE)
    del view
    again, address_again = pool.take(LARGE)
    assert address_again == address
    assert address_of(again) == address


def test_a_large_buffer_still_held_is_not_handed_out_again() -> None:
    pool = _ReusedBuffers(512)
    held, address = pool.take(LARGE)
    held[:] = b"\x55" * LARGE
    other, other_address = pool.take(LARGE)
    other[:] = bytes(LARGE)
    assert other_address != address
    assert bytes(held) == b"\x55" * LARGE


def test_a_slice_kept_of_a_large_buffer_keeps_it_from_reuse() -> None:
    pool = _ReusedBuffers(512)
    view, address = pool.take(LARGE)
    view[:] = b"\x66" * LARGE
    tail = view[LARGE - 4096 :]
    del view
    other, other_address = pool.take(LARGE)
    other[:] = bytes(LARGE)
    assert other_address != address
    assert bytes(tail) == b"\x66" * 4096


def test_each_size_has_buffers_of_its_own() -> None:
    pool = _ReusedBuffers(512)
    small, _ = pool.take(LARGE)
    del small
    big, _ = pool.take(2 * LARGE)
    assert len(big) == 2 * LARGE


# ------------------------------------------------------------------ slab reuse


def _fill_slab(slab: _AlignedSlab) -> list[int]:
    return [slab.take(4096)[1] for _ in range(_SLAB_BYTES // 4096)]


def test_a_slab_none_of_whose_buffers_is_held_is_used_again() -> None:
    slab = _AlignedSlab(512)
    first = _fill_slab(slab)
    _fill_slab(slab)
    view, address = slab.take(4096)  # the third slab is the first one again
    assert address == first[0]
    assert address_of(view) == address


def test_a_slab_with_one_buffer_still_held_is_not_used_again() -> None:
    slab = _AlignedSlab(512)
    held, held_address = slab.take(4096)
    held[:] = b"\x77" * 4096
    first = [held_address, *(slab.take(4096)[1] for _ in range(_SLAB_BYTES // 4096 - 1))]
    _fill_slab(slab)
    views = [slab.take(4096) for _ in range(_SLAB_BYTES // 4096)]
    for view, address in views:
        assert address not in first
        view[:] = bytes(4096)
    assert bytes(held) == b"\x77" * 4096
