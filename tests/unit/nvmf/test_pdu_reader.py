"""The PDU reader: protocol errors with their FES/FEI, digests, limits, buffering."""

from __future__ import annotations

import struct

import pytest

from mayastor.nvmf.pdu import (
    R2T,
    C2HData,
    CapsuleCmd,
    CapsuleResp,
    DataDigestError,
    FatalErrorStatus,
    H2CData,
    ICReq,
    Pdu,
    PduError,
    PduReader,
    PduUsageError,
    PduWriter,
    Role,
)
from tests.unit.nvmf.pdu_streams import digest, drain, ic_prelude, ready_reader, wire

SQE = bytes(range(64))
HOST = PduWriter(Role.HOST)
CONTROLLER = PduWriter(Role.CONTROLLER)


def header(ptype: int, flags: int, hlen: int, pdo: int, plen: int) -> bytes:
    return struct.pack("<BBBBI", ptype, flags, hlen, pdo, plen)


def fail(reader: PduReader, data: bytes) -> PduError:
    reader.feed(data)
    with pytest.raises(PduError) as caught:
        reader.next_pdu()
    return caught.value


# ------------------------------------------------------------------ header fields


def test_an_unknown_pdu_type_is_an_invalid_header_field_at_byte_0() -> None:
    err = fail(ready_reader(Role.CONTROLLER), header(0x08, 0, 24, 0, 24) + bytes(16))
    assert (err.fes, err.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 0)


def test_a_pdu_of_the_other_direction_is_an_invalid_header_field_at_byte_0() -> None:
    c2h = wire(CONTROLLER.encode_c2h_data(1, 0, b"data"))
    err = fail(ready_reader(Role.CONTROLLER), c2h)
    assert (err.fes, err.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 0)
    assert "C2H_DATA" in str(err)


def test_a_wrong_hlen_is_an_invalid_header_field_at_byte_2() -> None:
    err = fail(ready_reader(Role.CONTROLLER), header(0x04, 0, 64, 0, 64) + bytes(56))
    assert (err.fes, err.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 2)


def test_an_icreq_with_a_plen_other_than_128_is_refused_at_byte_4() -> None:
    err = fail(PduReader(Role.CONTROLLER), header(0x00, 0, 128, 0, 132) + bytes(124))
    assert (err.fes, err.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 4)


def test_an_icreq_with_an_unknown_format_version_is_refused_at_byte_8() -> None:
    icreq = bytearray(ic_prelude(Role.CONTROLLER))
    icreq[8] = 1
    err = fail(PduReader(Role.CONTROLLER), bytes(icreq))
    assert (err.fes, err.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 8)


def test_an_icreq_asking_for_alignment_above_31_dwords_is_refused_at_byte_10() -> None:
    icreq = bytearray(ic_prelude(Role.CONTROLLER))
    icreq[10] = 32
    err = fail(PduReader(Role.CONTROLLER), bytes(icreq))
    assert (err.fes, err.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 10)


@pytest.mark.parametrize("maxh2cdata", [0, 4092, 4098])
def test_an_icresp_with_a_bad_maxh2cdata_is_refused_at_byte_12(maxh2cdata: int) -> None:
    icresp = bytearray(ic_prelude(Role.HOST))
    icresp[12:16] = maxh2cdata.to_bytes(4, "little")
    err = fail(PduReader(Role.HOST), bytes(icresp))
    assert (err.fes, err.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 12)


def test_a_capsule_resp_with_extra_bytes_is_refused_at_plen() -> None:
    err = fail(ready_reader(Role.HOST), header(0x05, 0, 24, 24, 28) + bytes(20))
    assert (err.fes, err.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 4)


def test_a_plen_shorter_than_the_header_is_refused_at_byte_4() -> None:
    err = fail(ready_reader(Role.CONTROLLER), header(0x04, 0, 72, 0, 40) + bytes(32))
    assert (err.fes, err.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 4)


def test_a_pdo_inside_the_header_is_refused_at_byte_3() -> None:
    err = fail(ready_reader(Role.CONTROLLER), header(0x04, 0, 72, 40, 80) + SQE + bytes(8))
    assert (err.fes, err.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 3)


def test_a_pdo_past_the_end_of_the_pdu_is_refused_at_byte_3() -> None:
    err = fail(ready_reader(Role.CONTROLLER), header(0x04, 0, 72, 96, 80) + SQE + bytes(8))
    assert (err.fes, err.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 3)


def test_a_pdo_off_the_alignment_we_asked_for_is_refused_at_byte_3() -> None:
    reader = ready_reader(Role.CONTROLLER, pda=3)  # 16-byte alignment
    err = fail(reader, header(0x04, 0, 72, 72, 80) + SQE + bytes(8))
    assert (err.fes, err.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 3)


def test_padding_between_header_and_data_is_skipped() -> None:
    pdu = header(0x04, 0, 72, 80, 84) + SQE + b"padpadpa" + b"DATA"
    reader = ready_reader(Role.CONTROLLER)
    reader.feed(pdu)
    assert reader.next_pdu() == CapsuleCmd(SQE, b"DATA")


def test_data_length_that_disagrees_with_plen_is_refused_at_byte_16() -> None:
    h2c = bytearray(wire(HOST.encode_h2c_data(1, 1, 0, b"abcd")))
    h2c[16:20] = (3).to_bytes(4, "little")
    err = fail(ready_reader(Role.CONTROLLER), bytes(h2c))
    assert (err.fes, err.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 16)


def test_c2h_data_with_success_but_not_last_is_refused_at_byte_1() -> None:
    c2h = bytearray(wire(CONTROLLER.encode_c2h_data(1, 0, b"abcd", last=True, success=True)))
    c2h[1] = 0x08  # SUCCESS alone
    err = fail(ready_reader(Role.HOST), bytes(c2h))
    assert (err.fes, err.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 1)


def test_an_r2t_for_zero_bytes_is_refused() -> None:
    r2t = bytearray(wire(CONTROLLER.encode_r2t(1, 1, 0, 4096)))
    r2t[16:20] = bytes(4)
    err = fail(ready_reader(Role.HOST), bytes(r2t))
    assert err.fes == FatalErrorStatus.INVALID_HEADER_FIELD


def test_a_termination_pdu_over_152_bytes_is_refused_at_byte_4() -> None:
    err = fail(ready_reader(Role.HOST), header(0x03, 0, 24, 0, 153) + bytes(145))
    assert (err.fes, err.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 4)


def test_the_error_carries_the_offending_header_for_the_termination_pdu() -> None:
    bad = header(0x04, 0, 72, 40, 80) + SQE + bytes(8)
    err = fail(ready_reader(Role.CONTROLLER), bad)
    assert err.header == bad[:72]


def test_the_offending_header_copied_is_at_most_128_bytes() -> None:
    bad = header(0x00, 0, 128, 0, 128) + bytes(120)
    err = fail(ready_reader(Role.CONTROLLER), bad + bytes(64))
    assert err.header == bad


# ------------------------------------------------------------------ sequence


def test_a_capsule_before_the_ic_exchange_is_a_pdu_sequence_error() -> None:
    err = fail(PduReader(Role.CONTROLLER), wire(HOST.encode_capsule_cmd(SQE)))
    assert err.fes == FatalErrorStatus.PDU_SEQUENCE_ERROR


def test_a_second_icreq_is_a_pdu_sequence_error() -> None:
    err = fail(ready_reader(Role.CONTROLLER), ic_prelude(Role.CONTROLLER))
    assert err.fes == FatalErrorStatus.PDU_SEQUENCE_ERROR


def test_a_termination_may_come_instead_of_the_icresp() -> None:
    reader = PduReader(Role.HOST)
    reader.feed(wire(CONTROLLER.encode_term_req(FatalErrorStatus.UNSUPPORTED_PARAMETER, 10)))
    pdu = reader.next_pdu()
    assert pdu is not None
    assert reader.closed


def test_after_a_protocol_error_every_call_raises_the_same_error() -> None:
    reader = ready_reader(Role.CONTROLLER)
    first = fail(reader, header(0x08, 0, 24, 0, 24) + bytes(16))
    reader.feed(wire(HOST.encode_capsule_cmd(SQE)))
    with pytest.raises(PduError) as again:
        reader.next_pdu()
    assert again.value is first


# ------------------------------------------------------------------ digests


def test_a_header_digest_flag_that_was_not_negotiated_is_refused_at_byte_1() -> None:
    with_digest = wire(PduWriter(Role.HOST, header_digest=True).encode_capsule_cmd(SQE))
    err = fail(ready_reader(Role.CONTROLLER), with_digest)
    assert (err.fes, err.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 1)


def test_a_missing_header_digest_when_negotiated_is_refused_at_byte_1() -> None:
    err = fail(
        ready_reader(Role.CONTROLLER, header_digest=True), wire(HOST.encode_capsule_cmd(SQE))
    )
    assert (err.fes, err.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 1)


def test_a_missing_data_digest_when_negotiated_is_refused_at_byte_1() -> None:
    plain = wire(HOST.encode_h2c_data(1, 1, 0, b"data"))
    err = fail(ready_reader(Role.CONTROLLER, data_digest=True), plain)
    assert (err.fes, err.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 1)


def test_a_data_digest_flag_on_a_pdu_without_data_is_refused_at_byte_1() -> None:
    resp = bytearray(wire(CONTROLLER.encode_capsule_resp(bytes(16))))
    resp[1] = 0x02
    err = fail(ready_reader(Role.HOST, data_digest=True), bytes(resp))
    assert (err.fes, err.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 1)


def test_a_wrong_header_digest_is_a_header_digest_error() -> None:
    writer = PduWriter(Role.HOST, header_digest=True)
    cmd = bytearray(wire(writer.encode_capsule_cmd(SQE)))
    cmd[20] ^= 0x01  # a bit of the SQE
    err = fail(ready_reader(Role.CONTROLLER, header_digest=True), bytes(cmd))
    assert err.fes == FatalErrorStatus.HEADER_DIGEST_ERROR
    assert err.header == bytes(cmd[:72])


def test_a_header_digest_error_is_found_before_the_data_arrives() -> None:
    writer = PduWriter(Role.HOST, header_digest=True)
    h2c = bytearray(wire(writer.encode_h2c_data(1, 1, 0, bytes(64 * 1024))))
    h2c[8] ^= 0x01  # CCCID
    reader = ready_reader(Role.CONTROLLER, header_digest=True)
    err = fail(reader, bytes(h2c[:28]))
    assert err.fes == FatalErrorStatus.HEADER_DIGEST_ERROR


def test_a_wrong_data_digest_gives_the_pdu_and_reading_goes_on() -> None:
    writer = PduWriter(Role.HOST, header_digest=True, data_digest=True)
    good = wire(writer.encode_h2c_data(7, 3, 0, b"payload"))
    bad = bytearray(good)
    bad[-6] ^= 0xFF  # a data byte
    reader = ready_reader(Role.CONTROLLER, header_digest=True, data_digest=True)
    reader.feed(bytes(bad) + good)
    with pytest.raises(DataDigestError) as caught:
        reader.next_pdu()
    assert isinstance(caught.value.pdu, H2CData)
    assert caught.value.pdu.cccid == 7
    assert caught.value.received != caught.value.expected
    assert reader.next_pdu() == H2CData(7, 3, 0, b"payload")


def test_a_good_data_digest_passes() -> None:
    writer = PduWriter(Role.CONTROLLER, data_digest=True)
    reader = ready_reader(Role.HOST, data_digest=True)
    reader.feed(wire(writer.encode_c2h_data(5, 0, b"x" * 1000, success=True)))
    assert reader.next_pdu() == C2HData(5, 0, b"x" * 1000, True, True)


def test_digests_apply_only_from_configure_on() -> None:
    reader = PduReader(Role.CONTROLLER)
    icreq = wire(HOST.encode_ic_req(hdgst_enable=True, ddgst_enable=True))
    with_digests = PduWriter(Role.HOST, header_digest=True, data_digest=True)
    reader.feed(icreq + wire(with_digests.encode_capsule_cmd(SQE, b"in capsule")))
    assert reader.next_pdu() == ICReq(hdgst_enable=True, ddgst_enable=True)
    reader.configure(header_digest=True, data_digest=True)
    assert reader.next_pdu() == CapsuleCmd(SQE, b"in capsule")


def test_a_data_alignment_above_31_is_a_usage_error() -> None:
    with pytest.raises(PduUsageError):
        PduReader(Role.HOST, pda=32)


# ------------------------------------------------------------------ limits


def test_a_plen_beyond_the_data_limit_is_refused_from_the_common_header_alone() -> None:
    reader = ready_reader(Role.CONTROLLER, max_data_length=8192)
    err = fail(reader, header(0x06, 0x04, 24, 24, 1 << 30))
    assert err.fes == FatalErrorStatus.DATA_LIMIT_EXCEEDED


def test_data_up_to_the_limit_is_accepted() -> None:
    reader = ready_reader(Role.CONTROLLER, max_data_length=8192)
    reader.feed(wire(HOST.encode_h2c_data(1, 1, 0, bytes(8192))))
    assert reader.next_pdu() == H2CData(1, 1, 0, bytes(8192))


def test_raising_the_data_limit_takes_effect_for_the_next_pdu() -> None:
    reader = ready_reader(Role.CONTROLLER, max_data_length=4096)
    reader.max_data_length = 16384
    reader.feed(wire(HOST.encode_capsule_cmd(SQE, bytes(16384))))
    assert reader.next_pdu() == CapsuleCmd(SQE, bytes(16384))


def test_lowering_the_data_limit_takes_effect_for_the_next_pdu() -> None:
    reader = ready_reader(Role.CONTROLLER)
    reader.feed(wire(HOST.encode_capsule_cmd(SQE, bytes(8192))))
    assert reader.next_pdu() is not None
    reader.max_data_length = 4096
    err = fail(reader, wire(HOST.encode_capsule_cmd(SQE, bytes(8192))))
    assert err.fes == FatalErrorStatus.DATA_LIMIT_EXCEEDED


# ------------------------------------------------------------------ buffering


def test_many_pdus_in_one_feed_come_out_in_order() -> None:
    stream = b"".join(
        wire(CONTROLLER.encode_r2t(cid, cid + 1, cid * 4096, 4096)) for cid in range(50)
    )
    reader = ready_reader(Role.HOST)
    reader.feed(stream)
    assert drain(reader) == [R2T(cid, cid + 1, cid * 4096, 4096) for cid in range(50)]


def test_a_stream_split_at_any_byte_gives_the_same_pdus() -> None:
    pdus: list[Pdu] = [
        CapsuleResp(bytes(range(16))),
        C2HData(1, 0, b"first", last=False),
        C2HData(1, 5, b"second", last=True, success=True),
        R2T(2, 9, 0, 512),
    ]
    writer = PduWriter(Role.CONTROLLER, header_digest=True, data_digest=True, pda=1)
    stream = b"".join(wire(writer.encode(p)) for p in pdus)
    for cut in range(1, len(stream)):
        reader = ready_reader(Role.HOST, header_digest=True, data_digest=True, pda=1)
        reader.feed(stream[:cut])
        got = drain(reader)
        reader.feed(stream[cut:])
        assert got + drain(reader) == pdus, f"cut at {cut}"


def test_buffered_counts_the_bytes_of_a_partial_pdu() -> None:
    reader = ready_reader(Role.CONTROLLER)
    reader.feed(wire(HOST.encode_capsule_cmd(SQE))[:30])
    assert reader.next_pdu() is None
    assert reader.buffered == 30


def test_a_large_pdu_fed_one_byte_at_a_time_is_decoded() -> None:
    data = bytes(range(256)) * 256  # 64 KiB
    stream = wire(HOST.encode_h2c_data(3, 4, 0, data))
    reader = ready_reader(Role.CONTROLLER)
    for i in range(len(stream)):
        reader.feed(stream[i : i + 1])
        pdu = reader.next_pdu()
    assert pdu == H2CData(3, 4, 0, data)


def test_payloads_stay_valid_while_more_input_is_read() -> None:
    reader = ready_reader(Role.CONTROLLER)
    reader.feed(wire(HOST.encode_capsule_cmd(SQE, b"keep me")))
    first = reader.next_pdu()
    assert isinstance(first, CapsuleCmd)
    for _ in range(100):
        reader.feed(wire(HOST.encode_capsule_cmd(SQE, b"overwrite?")))
        reader.next_pdu()
    assert bytes(first.data) == b"keep me"


def test_a_bytearray_fed_and_changed_afterwards_does_not_change_payloads() -> None:
    buf = bytearray(wire(HOST.encode_capsule_cmd(SQE, b"original")))
    reader = ready_reader(Role.CONTROLLER)
    reader.feed(buf)
    buf[-8:] = b"changed!"
    pdu = reader.next_pdu()
    assert isinstance(pdu, CapsuleCmd)
    assert bytes(pdu.data) == b"original"


def test_the_header_digest_covers_exactly_the_header() -> None:
    writer = PduWriter(Role.CONTROLLER, header_digest=True)
    resp = wire(writer.encode_capsule_resp(bytes(range(16))))
    assert resp[24:28] == digest(resp[:24])
