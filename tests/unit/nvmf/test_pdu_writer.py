"""The PDU writer: payloads pass through uncopied, and what cannot go on the wire is refused."""

from __future__ import annotations

import struct

import pytest

from mayastor.nvmf.pdu import (
    R2T,
    C2HTermReq,
    CapsuleCmd,
    CapsuleResp,
    FatalErrorStatus,
    H2CTermReq,
    PduUsageError,
    PduWriter,
    Role,
)
from tests.unit.nvmf.pdu_streams import digest

SQE = bytes(64)
HOST = PduWriter(Role.HOST)
CONTROLLER = PduWriter(Role.CONTROLLER)


def test_the_payload_is_the_callers_object_not_a_copy() -> None:
    data = memoryview(bytearray(b"x" * 4096))
    parts = CONTROLLER.encode_c2h_data(1, 0, data, success=True)
    assert len(parts) == 2
    assert parts[1] is data


def test_with_data_digests_the_digest_follows_the_payload() -> None:
    writer = PduWriter(Role.CONTROLLER, data_digest=True)
    data = memoryview(b"y" * 100)
    parts = writer.encode_c2h_data(1, 0, data)
    assert parts[1] is data
    assert parts[2] == digest(b"y" * 100)


def test_a_pdu_without_data_is_one_part() -> None:
    assert len(CONTROLLER.encode_capsule_resp(bytes(16))) == 1
    assert len(HOST.encode_capsule_cmd(SQE)) == 1


def test_a_memoryview_of_wider_items_is_sized_in_bytes() -> None:
    words = memoryview(bytearray(64)).cast("I")  # 16 items, 64 bytes
    header = CONTROLLER.encode_c2h_data(1, 0, words)[0]
    assert int.from_bytes(header[4:8], "little") == 24 + 64
    assert int.from_bytes(header[16:20], "little") == 64


def test_padding_reaches_the_alignment_the_peer_asked_for() -> None:
    writer = PduWriter(Role.HOST, pda=7)  # 32-byte alignment
    header = writer.encode_capsule_cmd(SQE, b"data")[0]
    assert header[3] == 96  # PDO: 72 rounded up to 32
    assert len(header) == 96
    assert header[72:] == bytes(24)


def test_a_controller_does_not_send_a_capsule_cmd() -> None:
    with pytest.raises(PduUsageError, match="CAPSULE_CMD"):
        CONTROLLER.encode_capsule_cmd(SQE)


def test_a_host_does_not_send_an_r2t() -> None:
    with pytest.raises(PduUsageError, match="R2T"):
        HOST.encode(R2T(1, 1, 0, 512))


def test_a_host_does_not_send_a_c2h_term_req() -> None:
    with pytest.raises(PduUsageError, match="C2H_TERM_REQ"):
        HOST.encode(C2HTermReq(1))


def test_the_termination_pdu_type_follows_the_role() -> None:
    assert HOST.encode_term_req(FatalErrorStatus.PDU_SEQUENCE_ERROR)[0][0] == 0x02
    assert CONTROLLER.encode_term_req(FatalErrorStatus.PDU_SEQUENCE_ERROR)[0][0] == 0x03
    assert HOST.encode(H2CTermReq(2))[0][0] == 0x02


@pytest.mark.parametrize("size", [0, 63, 65])
def test_an_sqe_that_is_not_64_bytes_is_refused(size: int) -> None:
    with pytest.raises(PduUsageError, match="SQE"):
        HOST.encode(CapsuleCmd(bytes(size)))


def test_a_cqe_that_is_not_16_bytes_is_refused() -> None:
    with pytest.raises(PduUsageError, match="CQE"):
        CONTROLLER.encode(CapsuleResp(bytes(15)))


def test_success_without_last_is_refused() -> None:
    with pytest.raises(PduUsageError, match="SUCCESS"):
        CONTROLLER.encode_c2h_data(1, 0, b"x", last=False, success=True)


def test_a_data_pdu_without_data_is_refused() -> None:
    with pytest.raises(PduUsageError):
        HOST.encode_h2c_data(1, 1, 0, b"")
    with pytest.raises(PduUsageError):
        CONTROLLER.encode_c2h_data(1, 0, b"")


def test_h2c_data_over_the_controllers_maxh2cdata_is_refused() -> None:
    writer = PduWriter(Role.HOST, max_h2c_data=4096)
    assert writer.encode_h2c_data(1, 1, 0, bytes(4096))
    with pytest.raises(PduUsageError, match="MAXH2CDATA"):
        writer.encode_h2c_data(1, 1, 0, bytes(4097))


def test_an_r2t_for_no_bytes_is_refused() -> None:
    with pytest.raises(PduUsageError):
        CONTROLLER.encode_r2t(1, 1, 0, 0)


@pytest.mark.parametrize("cccid", [-1, 0x10000])
def test_a_cccid_outside_16_bits_is_refused(cccid: int) -> None:
    with pytest.raises(PduUsageError, match="out of range"):
        CONTROLLER.encode_c2h_data(cccid, 0, b"x")


def test_a_data_offset_outside_32_bits_is_refused() -> None:
    with pytest.raises(PduUsageError, match="out of range"):
        CONTROLLER.encode_r2t(1, 1, 1 << 32, 512)


def test_a_field_out_of_range_names_the_packing_error_as_its_cause() -> None:
    with pytest.raises(PduUsageError) as info:
        CONTROLLER.encode_r2t(1, 1, 1 << 32, 512)
    assert isinstance(info.value.__cause__, struct.error)
    assert info.value.__suppress_context__


def test_termination_error_data_over_128_bytes_is_refused() -> None:
    assert CONTROLLER.encode_term_req(1, 0, bytes(128))
    with pytest.raises(PduUsageError, match="128"):
        CONTROLLER.encode_term_req(1, 0, bytes(129))


@pytest.mark.parametrize("pda", [-1, 32])
def test_a_data_alignment_outside_0_to_31_is_refused(pda: int) -> None:
    with pytest.raises(PduUsageError):
        PduWriter(Role.HOST, pda=pda)
    with pytest.raises(PduUsageError):
        HOST.encode_ic_req(hpda=pda)


@pytest.mark.parametrize("maxh2cdata", [4092, 4098, 0])
def test_an_icresp_maxh2cdata_below_4096_or_unaligned_is_refused(maxh2cdata: int) -> None:
    with pytest.raises(PduUsageError, match="MAXH2CDATA"):
        CONTROLLER.encode_ic_resp(maxh2cdata=maxh2cdata)


def test_a_non_contiguous_payload_is_refused() -> None:
    strided = memoryview(bytes(64))[::2]
    with pytest.raises(PduUsageError, match="contiguous"):
        CONTROLLER.encode_c2h_data(1, 0, strided)


def test_ic_pdus_never_carry_digests_even_when_digests_are_on() -> None:
    writer = PduWriter(Role.CONTROLLER, header_digest=True, data_digest=True)
    (icresp,) = writer.encode_ic_resp(hdgst_enable=True, ddgst_enable=True)
    assert len(icresp) == 128
    assert icresp[1] == 0
