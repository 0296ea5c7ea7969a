"""Every PDU type against bytes written by hand from the TP 8000 field tables.

Each case is encoded (must give exactly the hand-written bytes) and decoded whole, one
byte at a time, and with the next PDU's bytes behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import crc32c
import pytest

from mayastor.nvmf.pdu import (
    R2T,
    C2HData,
    C2HTermReq,
    CapsuleCmd,
    CapsuleResp,
    H2CData,
    H2CTermReq,
    ICReq,
    ICResp,
    Pdu,
    PduReader,
    PduWriter,
    Role,
)
from tests.unit.nvmf.pdu_streams import digest, drain, ic_prelude, other, wire

SQE = bytes(range(0x40, 0x80))  # 64 recognisable bytes
CQE = bytes(range(0xA0, 0xB0))  # 16 recognisable bytes


@dataclass(frozen=True)
class Case:
    """One PDU, the end that reads it, the negotiated options and its wire bytes."""

    name: str
    reader: Role
    pdu: Pdu
    spec_bytes: bytes
    options: dict[str, object] = field(default_factory=dict)

    @property
    def is_ic(self) -> bool:
        return isinstance(self.pdu, ICReq | ICResp)

    @property
    def is_term(self) -> bool:
        return isinstance(self.pdu, H2CTermReq | C2HTermReq)


def _capsule_cmd_with_digests() -> bytes:
    header = bytes([0x04, 0x03, 72, 76]) + (72 + 4 + 8 + 4).to_bytes(4, "little") + SQE
    data = b"inline!!"
    return header + digest(header) + data + digest(data)


def _c2h_data_with_digests_and_padding() -> bytes:
    # HPDA 1 asks for 8-byte aligned data: header 24 + digest 4 = 28, so PDO is 32.
    header = (
        bytes([0x07, 0x0F, 24, 32])  # C2HData, HDGSTF|DDGSTF|LAST_PDU|SUCCESS
        + (32 + 5 + 4).to_bytes(4, "little")  # PLEN
        + (0x0102).to_bytes(2, "little")  # CCCID
        + bytes(2)  # reserved
        + (0).to_bytes(4, "little")  # DATAO
        + (5).to_bytes(4, "little")  # DATAL
        + bytes(4)  # reserved
    )
    return header + digest(header) + bytes(4) + b"hello" + digest(b"hello")


def _capsule_resp_with_header_digest() -> bytes:
    header = bytes([0x05, 0x01, 24, 0]) + (28).to_bytes(4, "little") + CQE
    return header + digest(header)


def _r2t_with_header_digest() -> bytes:
    header = (
        bytes([0x09, 0x01, 24, 0])
        + (28).to_bytes(4, "little")
        + (7).to_bytes(2, "little")  # CCCID
        + (3).to_bytes(2, "little")  # TTAG
        + (0x2000).to_bytes(4, "little")  # R2TO
        + (0x1000).to_bytes(4, "little")  # R2TL
        + bytes(4)
    )
    return header + digest(header)


CASES = [
    Case(
        "icreq",
        Role.CONTROLLER,
        ICReq(hpda=1, hdgst_enable=True, ddgst_enable=True, maxr2t=3),
        bytes([0x00, 0x00, 0x80, 0x00])  # ICReq, flags, HLEN 128, PDO
        + bytes([0x80, 0, 0, 0])  # PLEN 128
        + bytes([0x00, 0x00])  # PFV 0
        + bytes([0x01])  # HPDA
        + bytes([0x03])  # DGST: HDGST_ENABLE | DDGST_ENABLE
        + bytes([0x03, 0, 0, 0])  # MAXR2T
        + bytes(112),
    ),
    Case(
        "icresp",
        Role.HOST,
        ICResp(cpda=2, hdgst_enable=False, ddgst_enable=True, maxh2cdata=0x8000),
        bytes([0x01, 0x00, 0x80, 0x00])  # ICResp, flags, HLEN 128, PDO
        + bytes([0x80, 0, 0, 0])  # PLEN 128
        + bytes([0x00, 0x00])  # PFV 0
        + bytes([0x02])  # CPDA
        + bytes([0x02])  # DGST: DDGST_ENABLE
        + bytes([0x00, 0x80, 0, 0])  # MAXH2CDATA 32 KiB
        + bytes(112),
    ),
    Case(
        "h2c_term_req",
        Role.CONTROLLER,
        H2CTermReq(fes=0x01, fei=0x03, error_data=bytes([0x07, 0, 24, 99, 24, 0, 0, 0])),
        bytes([0x02, 0x00, 24, 0x00])  # H2CTermReq, flags, HLEN 24, PDO
        + bytes([32, 0, 0, 0])  # PLEN 24 + 8
        + bytes([0x01, 0x00])  # FES invalid header field
        + bytes([0x03, 0, 0, 0])  # FEI: byte 3 (PDO)
        + bytes(10)  # reserved
        + bytes([0x07, 0, 24, 99, 24, 0, 0, 0]),  # the offending header
    ),
    Case(
        "c2h_term_req",
        Role.HOST,
        C2HTermReq(fes=0x03),
        bytes([0x03, 0x00, 24, 0x00, 24, 0, 0, 0])  # C2HTermReq, HLEN 24, PLEN 24
        + bytes([0x03, 0x00])  # FES header digest error
        + bytes(4)  # FEI
        + bytes(10),
    ),
    Case(
        "capsule_cmd",
        Role.CONTROLLER,
        CapsuleCmd(SQE),
        bytes([0x04, 0x00, 72, 0x00])  # CapsuleCmd, flags, HLEN 72, PDO 0 (no data)
        + bytes([72, 0, 0, 0])  # PLEN
        + SQE,
    ),
    Case(
        "capsule_cmd_in_capsule_data",
        Role.CONTROLLER,
        CapsuleCmd(SQE, b"ABCDEFGH"),
        bytes([0x04, 0x00, 72, 72])  # PDO: data right after the header
        + bytes([80, 0, 0, 0])  # PLEN 72 + 8
        + SQE
        + b"ABCDEFGH",
    ),
    Case(
        "capsule_resp",
        Role.HOST,
        CapsuleResp(CQE),
        bytes([0x05, 0x00, 24, 0x00, 24, 0, 0, 0]) + CQE,
    ),
    Case(
        "h2c_data",
        Role.CONTROLLER,
        H2CData(cccid=0x1234, ttag=5, offset=4096, data=b"wxyz", last=True),
        bytes([0x06, 0x04, 24, 24])  # H2CData, LAST_PDU, HLEN 24, PDO 24
        + bytes([28, 0, 0, 0])  # PLEN
        + bytes([0x34, 0x12])  # CCCID
        + bytes([0x05, 0x00])  # TTAG
        + bytes([0x00, 0x10, 0, 0])  # DATAO 4096
        + bytes([0x04, 0, 0, 0])  # DATAL
        + bytes(4)
        + b"wxyz",
    ),
    Case(
        "h2c_data_not_last",
        Role.CONTROLLER,
        H2CData(cccid=1, ttag=0xFFFF, offset=0, data=b"ab", last=False),
        bytes([0x06, 0x00, 24, 24, 26, 0, 0, 0])
        + bytes([0x01, 0x00, 0xFF, 0xFF])
        + bytes(4)
        + bytes([0x02, 0, 0, 0])
        + bytes(4)
        + b"ab",
    ),
    Case(
        "c2h_data_success",
        Role.HOST,
        C2HData(cccid=0xBEEF, offset=512, data=b"read", last=True, success=True),
        bytes([0x07, 0x0C, 24, 24])  # C2HData, LAST_PDU|SUCCESS
        + bytes([28, 0, 0, 0])
        + bytes([0xEF, 0xBE])  # CCCID
        + bytes(2)  # reserved
        + bytes([0x00, 0x02, 0, 0])  # DATAO 512
        + bytes([0x04, 0, 0, 0])  # DATAL
        + bytes(4)
        + b"read",
    ),
    Case(
        "r2t",
        Role.HOST,
        R2T(cccid=9, ttag=2, offset=0x10000, length=0x20000),
        bytes([0x09, 0x00, 24, 0x00, 24, 0, 0, 0])
        + bytes([0x09, 0x00])  # CCCID
        + bytes([0x02, 0x00])  # TTAG
        + bytes([0x00, 0x00, 0x01, 0x00])  # R2TO
        + bytes([0x00, 0x00, 0x02, 0x00])  # R2TL
        + bytes(4),
    ),
    Case(
        "capsule_cmd_digests",
        Role.CONTROLLER,
        CapsuleCmd(SQE, b"inline!!"),
        _capsule_cmd_with_digests(),
        {"header_digest": True, "data_digest": True},
    ),
    Case(
        "c2h_data_digests_padding",
        Role.HOST,
        C2HData(cccid=0x0102, offset=0, data=b"hello", last=True, success=True),
        _c2h_data_with_digests_and_padding(),
        {"header_digest": True, "data_digest": True, "pda": 1},
    ),
    Case(
        "capsule_resp_header_digest",
        Role.HOST,
        CapsuleResp(CQE),
        _capsule_resp_with_header_digest(),
        {"header_digest": True, "data_digest": True},
    ),
    Case(
        "r2t_header_digest",
        Role.HOST,
        R2T(cccid=7, ttag=3, offset=0x2000, length=0x1000),
        _r2t_with_header_digest(),
        {"header_digest": True},
    ),
]
IDS = [case.name for case in CASES]
ORDINARY = [case for case in CASES if not case.is_term]


def writer_for(case: Case) -> PduWriter:
    return PduWriter(other(case.reader), **case.options)  # type: ignore[arg-type]


def reader_for(case: Case) -> PduReader:
    """A reader in the state to receive the case's PDU."""
    reader = PduReader(case.reader)
    if not case.is_ic:
        reader.feed(ic_prelude(case.reader))
        reader.next_pdu()
        reader.configure(**case.options)  # type: ignore[arg-type]
    return reader


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_encoding_gives_the_bytes_of_the_spec_layout(case: Case) -> None:
    assert wire(writer_for(case).encode(case.pdu)) == case.spec_bytes


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_decoding_the_spec_bytes_whole_gives_the_pdu(case: Case) -> None:
    reader = reader_for(case)
    reader.feed(case.spec_bytes)
    assert reader.next_pdu() == case.pdu
    assert reader.next_pdu() is None
    assert reader.buffered == 0


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_decoding_the_spec_bytes_one_byte_at_a_time_gives_the_pdu(case: Case) -> None:
    reader = reader_for(case)
    for i in range(len(case.spec_bytes) - 1):
        reader.feed(case.spec_bytes[i : i + 1])
        assert reader.next_pdu() is None
    reader.feed(case.spec_bytes[-1:])
    assert reader.next_pdu() == case.pdu


@pytest.mark.parametrize("case", ORDINARY, ids=[c.name for c in ORDINARY])
def test_decoding_leaves_trailing_bytes_for_the_next_pdu(case: Case) -> None:
    reader = reader_for(case)
    following: Pdu = case.pdu
    if case.is_ic:
        following = CapsuleCmd(SQE) if case.reader is Role.CONTROLLER else CapsuleResp(CQE)
    follow_bytes = wire(writer_for(case).encode(following))
    reader.feed(case.spec_bytes + follow_bytes[:5])
    assert reader.next_pdu() == case.pdu
    assert reader.next_pdu() is None
    assert reader.buffered == 5
    reader.feed(follow_bytes[5:])
    assert drain(reader) == [following]


@pytest.mark.parametrize("case", [c for c in CASES if c.is_term], ids=lambda c: c.name)
def test_bytes_after_a_termination_pdu_are_ignored(case: Case) -> None:
    reader = reader_for(case)
    reader.feed(case.spec_bytes + b"\xff" * 40)
    assert reader.next_pdu() == case.pdu
    assert reader.closed
    assert reader.next_pdu() is None
    assert reader.buffered == 0


def test_the_digest_is_the_standard_crc32c_stored_little_endian() -> None:
    # CRC-32C check value: the CRC of the ASCII digits "123456789" is 0xE3069283.
    assert crc32c.crc32c(b"123456789") == 0xE3069283
    assert digest(b"123456789") == bytes([0x83, 0x92, 0x06, 0xE3])


def test_decoded_payloads_are_read_only_views_into_the_received_bytes() -> None:
    case = next(c for c in CASES if c.name == "capsule_cmd_in_capsule_data")
    reader = reader_for(case)
    reader.feed(case.spec_bytes)
    pdu = reader.next_pdu()
    assert isinstance(pdu, CapsuleCmd)
    assert isinstance(pdu.data, memoryview)
    assert isinstance(pdu.sqe, memoryview)
    assert pdu.data.readonly
    assert pdu.data.obj is pdu.sqe.obj
