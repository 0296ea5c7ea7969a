"""The reader's quick path: a PDU whose common header was seen before, with digests
off, lying whole in the first buffered chunk, is cut out in place. It must give what
the general path gives and refuse what it refuses."""

from __future__ import annotations

import pytest

from mayastor.nvmf.pdu import (
    CapsuleCmd,
    FatalErrorStatus,
    H2CData,
    H2CTermReq,
    PduError,
    PduWriter,
    Role,
)
from tests.unit.nvmf.pdu_streams import drain, ready_reader, wire

SQE = bytes(range(64))
HOST = PduWriter(Role.HOST)


def capsule(n: int) -> bytes:
    return wire(HOST.encode_capsule_cmd(bytes([n]) * 64, bytes([n]) * 4096))


def test_repeated_capsules_in_one_chunk_come_out_whole_and_in_order() -> None:
    reader = ready_reader(Role.CONTROLLER)
    reader.feed(b"".join(capsule(n) for n in range(40)))
    pdus = drain(reader)
    assert pdus == [CapsuleCmd(bytes([n]) * 64, bytes([n]) * 4096) for n in range(40)]
    assert reader.buffered == 0


def test_a_repeated_capsule_split_across_chunks_is_joined() -> None:
    reader = ready_reader(Role.CONTROLLER)
    stream = capsule(1) + capsule(2) + capsule(3)
    cut = len(capsule(1)) * 2 + 100
    reader.feed(stream[:cut])
    got = drain(reader)
    assert reader.buffered == 100
    reader.feed(stream[cut:])
    assert got + drain(reader) == [
        CapsuleCmd(bytes([n]) * 64, bytes([n]) * 4096) for n in (1, 2, 3)
    ]


def test_a_bad_datal_under_a_known_header_is_refused_with_that_header() -> None:
    reader = ready_reader(Role.CONTROLLER)
    good = wire(HOST.encode_h2c_data(1, 1, 0, bytes(512)))
    bad = bytearray(good)
    bad[16:20] = (500).to_bytes(4, "little")
    reader.feed(good + bytes(bad))
    assert reader.next_pdu() == H2CData(1, 1, 0, bytes(512))
    with pytest.raises(PduError) as caught:
        reader.next_pdu()
    assert (caught.value.fes, caught.value.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 16)
    assert caught.value.header == bytes(bad[:24])


def test_a_known_header_is_checked_again_once_header_digests_are_on() -> None:
    reader = ready_reader(Role.CONTROLLER)
    reader.feed(capsule(1))
    assert drain(reader) != []
    reader.configure(header_digest=True)
    reader.feed(capsule(2))
    with pytest.raises(PduError) as caught:
        reader.next_pdu()
    assert (caught.value.fes, caught.value.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 1)


def test_a_termination_after_known_capsules_still_closes_the_reader() -> None:
    reader = ready_reader(Role.CONTROLLER)
    term = wire(HOST.encode_term_req(FatalErrorStatus.INVALID_HEADER_FIELD))
    reader.feed(capsule(1) + capsule(2) + term + capsule(3))
    pdus = drain(reader)
    assert len(pdus) == 3
    assert isinstance(pdus[2], H2CTermReq)
    assert reader.closed
    reader.feed(capsule(4))
    assert reader.next_pdu() is None
