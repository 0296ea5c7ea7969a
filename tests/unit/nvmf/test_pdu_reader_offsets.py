"""Feeding the reader from an offset in a received chunk, and asking how many bytes
finish the PDU it holds: what a caller that decodes whole PDUs itself relies on."""

from __future__ import annotations

from mayastor.nvmf.pdu import CapsuleCmd, PduWriter, Role
from tests.unit.nvmf.pdu_streams import drain, ready_reader, wire

HOST = PduWriter(Role.HOST)


def capsule(n: int, size: int = 512) -> bytes:
    return wire(HOST.encode_capsule_cmd(bytes([n]) * 64, bytes([n]) * size))


def test_feeding_from_an_offset_skips_the_bytes_before_it() -> None:
    reader = ready_reader(Role.CONTROLLER)
    chunk = capsule(1) + capsule(2)
    reader.feed(chunk, len(capsule(1)))
    assert drain(reader) == [CapsuleCmd(bytes([2]) * 64, bytes([2]) * 512)]
    assert reader.buffered == 0


def test_feeding_from_an_offset_behind_buffered_bytes_keeps_the_order() -> None:
    reader = ready_reader(Role.CONTROLLER)
    one, two = capsule(1), capsule(2)
    reader.feed(one[:10])
    reader.feed(b"junk" + one[10:] + two, 4)
    assert drain(reader) == [
        CapsuleCmd(bytes([1]) * 64, bytes([1]) * 512),
        CapsuleCmd(bytes([2]) * 64, bytes([2]) * 512),
    ]


def test_feeding_from_the_end_of_a_chunk_adds_nothing() -> None:
    reader = ready_reader(Role.CONTROLLER)
    reader.feed(capsule(1), len(capsule(1)))
    assert reader.buffered == 0
    assert drain(reader) == []


def test_needed_counts_to_the_common_header_then_to_the_end_of_the_pdu() -> None:
    reader = ready_reader(Role.CONTROLLER)
    pdu = capsule(3)
    assert reader.needed == 0
    reader.feed(pdu[:5])
    assert reader.needed == 3
    reader.feed(pdu[5:100])
    assert drain(reader) == []
    assert reader.needed == len(pdu) - 100
    reader.feed(pdu[100:])
    assert drain(reader) == [CapsuleCmd(bytes([3]) * 64, bytes([3]) * 512)]
    assert reader.needed == 0
