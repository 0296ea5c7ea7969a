"""Small I/O buffers of the file drivers, cut from one aligned allocation."""

from __future__ import annotations

import ctypes

from mayastor.bdev._file_device import _SLAB_BYTES, _SLAB_MAX_IO, _AlignedSlab


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


def test_a_large_io_gets_an_aligned_buffer_of_its_own() -> None:
    slab = _AlignedSlab(512)
    small, _ = slab.take(4096)
    large, address = slab.take(_SLAB_MAX_IO + 4096)
    assert address % 512 == 0
    assert large.obj is not small.obj
