"""HostQueue, I/O: SGLs, in-capsule data, R2T/H2CData, C2HData reassembly, statuses."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mayastor.errors import InvalidArgument, ResourceExhausted
from mayastor.nvmf.host import HostQueue, QueueState, TargetProtocolError, TargetTerminated
from mayastor.nvmf.pdu import CapsuleCmd, FatalErrorStatus, H2CData
from mayastor.nvmf.spec import (
    Command,
    GenericStatus,
    IoOpcode,
    NvmeStatus,
    Read,
    SglDescriptor,
    SglDescriptorType,
    SglSubtype,
    StatusCodeType,
    Write,
)
from tests.unit.nvmf_host.peer import TargetSide, Token, live_queue, term_req, wire

READ = int(IoOpcode.READ)
WRITE = int(IoOpcode.WRITE)
LBA_OUT_OF_RANGE = NvmeStatus(
    StatusCodeType.GENERIC, GenericStatus.LBA_OUT_OF_RANGE, dnr=True
).field


def status_name(field: int) -> str:
    return GenericStatus(NvmeStatus.from_field(field).sc).name


def read(queue: HostQueue, nbytes: int, slba: int = 0, name: str = "read") -> tuple[int, Token]:
    token = Token(name)
    cid = queue.submit(
        READ, 1, slba & 0xFFFF_FFFF, slba >> 32, nbytes // 512 - 1, read_length=nbytes, token=token
    )
    return cid, token


def write(queue: HostQueue, data: bytes | bytearray | memoryview) -> tuple[int, Token]:
    token = Token("write")
    nbytes = memoryview(data).nbytes
    cid = queue.submit(WRITE, 1, 0, 0, nbytes // 512 - 1, data_out=data, token=token)
    return cid, token


# ------------------------------------------------------------------ command encoding


def test_a_read_is_encoded_as_the_spec_encodes_it_with_a_transport_sgl() -> None:
    queue, target = live_queue()
    cid, _ = read(queue, 4096, slba=0x1_2345_6789)
    [(cmd, data)] = target.commands(queue)
    want = Read(0x1_2345_6789, 7).to_command(cid, 1, SglDescriptor.transport(4096))
    assert cmd == want
    assert data == b""


def test_a_write_that_fits_the_capsule_carries_its_data_in_the_capsule() -> None:
    queue, target = live_queue(in_capsule_size=4096)
    payload = bytes(range(256)) * 16
    cid, _ = write(queue, payload)
    [(cmd, data)] = target.commands(queue)
    assert cmd == Write(0, 7).to_command(cid, 1, SglDescriptor.in_capsule(4096))
    assert data == payload


def test_a_write_larger_than_the_capsule_waits_for_an_r2t() -> None:
    queue, target = live_queue(in_capsule_size=4096)
    write(queue, bytes(8192))
    [(cmd, data)] = target.commands(queue)
    assert (cmd.sgl.type, cmd.sgl.subtype, cmd.sgl.length) == (
        SglDescriptorType.TRANSPORT_DATA_BLOCK,
        SglSubtype.TRANSPORT_SPECIFIC,
        8192,
    )
    assert data == b""


def test_commands_in_flight_have_distinct_cids_and_the_queue_refuses_one_too_many() -> None:
    queue, target = live_queue(queue_size=8)
    cids = [read(queue, 512, name=f"r{i}")[0] for i in range(8)]
    assert sorted(cids) == list(range(8))
    with pytest.raises(ResourceExhausted):
        read(queue, 512)
    target.received(queue)
    queue.receive_data(target.c2h(cids[3], 0, bytes(512), success=True))
    assert queue.free_slots == 1
    assert read(queue, 512)[0] == cids[3]


def test_data_both_ways_or_empty_write_data_is_an_invalid_argument() -> None:
    queue, _ = live_queue()
    with pytest.raises(InvalidArgument):
        queue.submit(WRITE, 1, data_out=b"x" * 512, read_length=512, token=Token("both"))
    with pytest.raises(InvalidArgument):
        queue.submit(WRITE, 1, data_out=b"", token=Token("empty"))
    assert queue.free_slots == queue.queue_size


# ------------------------------------------------------------------ reads


def test_a_read_in_one_c2hdata_is_handed_out_without_a_copy() -> None:
    queue, target = live_queue()
    cid, token = read(queue, 4096)
    payload = bytes(range(256)) * 16
    done = queue.receive_data(target.c2h(cid, 0, payload) + target.completion(cid))
    [(got, status, _, _, data)] = done
    assert (got, status) == (token, 0)
    assert isinstance(data, memoryview)
    assert data.readonly
    assert bytes(data) == payload


def test_a_read_in_several_c2hdata_fed_a_byte_at_a_time_is_reassembled() -> None:
    queue, target = live_queue()
    cid, token = read(queue, 3 * 512)
    payload = bytes(range(256)) * 6
    stream = (
        target.c2h(cid, 0, payload[:512], last=False)
        + target.c2h(cid, 512, payload[512:1000], last=False)
        + target.c2h(cid, 1000, payload[1000:])
        + target.completion(cid)
    )
    done = []
    for byte in stream:
        done += queue.receive_data(bytes([byte]))
    assert [(t, s, bytes(d or b"")) for t, s, _, _, d in done] == [(token, 0, payload)]


def test_c2hdata_with_success_completes_the_read_without_a_capsule_resp() -> None:
    queue, target = live_queue()
    cid, token = read(queue, 1024)
    done = queue.receive_data(
        target.c2h(cid, 0, bytes(512), last=False)
        + target.c2h(cid, 512, b"\x01" * 512, success=True)
    )
    assert [(t, s) for t, s, *_ in done] == [(token, 0)]
    assert bytes(done[0][4] or b"") == bytes(512) + b"\x01" * 512
    assert queue.free_slots == queue.queue_size


def test_an_error_status_is_returned_with_the_token_and_frees_the_cid() -> None:
    queue, target = live_queue()
    cid, token = read(queue, 512, slba=1 << 40)
    done = queue.receive_data(target.completion(cid, LBA_OUT_OF_RANGE))
    assert done == [(token, LBA_OUT_OF_RANGE, 0, 0, None)]
    assert queue.free_slots == queue.queue_size


def test_a_successful_completion_of_a_read_missing_data_is_a_data_transfer_error() -> None:
    queue, target = live_queue()
    cid, token = read(queue, 1024)
    done = queue.receive_data(target.c2h(cid, 0, bytes(512), last=False) + target.completion(cid))
    [(got, status, *_)] = done
    assert got is token
    assert status_name(status) == "DATA_TRANSFER_ERROR"


def test_a_data_digest_error_fails_only_its_command_with_a_transient_transport_error() -> None:
    target = TargetSide(data_digest=True)
    queue, target = live_queue(target)
    bad_cid, bad = read(queue, 512, name="bad")
    good_cid, good = read(queue, 512, name="good")
    corrupt = bytearray(target.c2h(bad_cid, 0, b"\x07" * 512))
    corrupt[30] ^= 0xFF
    done = queue.receive_data(
        bytes(corrupt)
        + target.completion(bad_cid)
        + target.c2h(good_cid, 0, b"\x08" * 512)
        + target.completion(good_cid)
    )
    assert [(t, status_name(s)) for t, s, *_ in done] == [
        (bad, "TRANSIENT_TRANSPORT_ERROR"),
        (good, "SUCCESS"),
    ]
    assert queue.state is QueueState.LIVE


def test_header_and_data_digests_are_sent_and_checked() -> None:
    target = TargetSide(header_digest=True, data_digest=True)
    queue, target = live_queue(target)
    cid, _ = write(queue, b"\x05" * 1024)
    sent = wire(queue.data_to_send())
    assert sent[1] == 0x03  # HDGSTF | DDGSTF on the capsule
    target.reader.feed(sent)
    capsule = target.reader.next_pdu()
    assert isinstance(capsule, CapsuleCmd)
    assert bytes(capsule.data) == b"\x05" * 1024
    rcid, token = read(queue, 512)
    done = queue.receive_data(target.c2h(rcid, 0, b"\x09" * 512, success=True))
    assert [(t, s, bytes(d or b"")) for t, s, _, _, d in done] == [(token, 0, b"\x09" * 512)]
    assert cid != rcid


# ------------------------------------------------------------------ writes


def test_r2t_is_answered_with_h2cdata_of_at_most_maxh2cdata_slicing_the_callers_buffer() -> None:
    target = TargetSide(maxh2cdata=4096)
    queue, target = live_queue(target, in_capsule_size=0)
    payload = bytes(i % 251 for i in range(10240))
    cid, token = write(queue, payload)
    target.received(queue)
    queue.receive_data(target.r2t(cid, 0x42, 0, 10240))
    pdus = target.received(queue)
    assert all(isinstance(p, H2CData) for p in pdus)
    assert [(p.cccid, p.ttag, p.offset, len(p.data), p.last) for p in pdus] == [  # type: ignore[union-attr]
        (cid, 0x42, 0, 4096, False),
        (cid, 0x42, 4096, 4096, False),
        (cid, 0x42, 8192, 2048, True),
    ]
    assert b"".join(bytes(p.data) for p in pdus) == payload  # type: ignore[union-attr]
    assert queue.receive_data(target.completion(cid)) == [(token, 0, 0, 0, None)]


def test_a_write_may_be_asked_for_in_several_r2ts() -> None:
    queue, target = live_queue(in_capsule_size=0)
    payload = b"\x01" * 512 + b"\x02" * 512
    cid, token = write(queue, memoryview(bytearray(payload)))
    target.received(queue)
    queue.receive_data(target.r2t(cid, 1, 0, 512))
    first = target.received(queue)
    queue.receive_data(target.r2t(cid, 2, 512, 512))
    second = target.received(queue)
    assert [(p.ttag, p.offset, bytes(p.data), p.last) for p in first + second] == [  # type: ignore[union-attr]
        (1, 0, b"\x01" * 512, True),
        (2, 512, b"\x02" * 512, True),
    ]
    assert queue.receive_data(target.completion(cid)) == [(token, 0, 0, 0, None)]


def test_r2ts_outstanding_together_are_answered_in_order_each_with_its_own_data() -> None:
    queue, target = live_queue(in_capsule_size=0)
    payload = b"".join(bytes([i]) * 512 for i in range(1, 5))
    cid, token = write(queue, memoryview(bytearray(payload)))
    target.received(queue)
    r2ts = b"".join(target.r2t(cid, 10 + i, 512 * i, 512) for i in range(4))
    queue.receive_data(r2ts)
    sent = target.received(queue)
    assert [(p.ttag, p.offset, bytes(p.data)) for p in sent] == [  # type: ignore[union-attr]
        (10 + i, 512 * i, bytes([i + 1]) * 512) for i in range(4)
    ]
    assert queue.receive_data(target.completion(cid)) == [(token, 0, 0, 0, None)]


def test_a_success_before_all_write_data_was_asked_for_is_a_data_transfer_error() -> None:
    queue, target = live_queue(in_capsule_size=0)
    cid, _ = write(queue, bytes(1024))
    target.received(queue)
    queue.receive_data(target.r2t(cid, 1, 0, 512))
    [(_, status, *_)] = queue.receive_data(target.completion(cid))
    assert status_name(status) == "DATA_TRANSFER_ERROR"


# ------------------------------------------------------------------ protocol errors


def test_an_r2t_outside_the_write_is_fatal_and_answered_with_a_term_req() -> None:
    queue, target = live_queue(in_capsule_size=0)
    cid, token = write(queue, bytes(1024))
    target.received(queue)
    assert queue.receive_data(target.r2t(cid, 1, 512, 1024)) == []
    assert queue.state is QueueState.FAILED
    assert isinstance(queue.error, TargetProtocolError)
    assert term_req(queue, target).fes == FatalErrorStatus.DATA_OUT_OF_RANGE
    assert queue.close() == [token]


def test_an_r2t_for_a_read_is_fatal() -> None:
    queue, target = live_queue()
    cid, _ = read(queue, 512)
    target.received(queue)
    queue.receive_data(target.r2t(cid, 1, 0, 512))
    assert term_req(queue, target).fes == FatalErrorStatus.DATA_OUT_OF_RANGE


def test_c2hdata_out_of_order_is_fatal() -> None:
    queue, target = live_queue()
    cid, _ = read(queue, 1024)
    target.received(queue)
    queue.receive_data(target.c2h(cid, 512, bytes(512)))
    assert term_req(queue, target).fes == FatalErrorStatus.DATA_OUT_OF_RANGE


def test_a_completion_for_a_cid_not_in_flight_is_an_invalid_header_field_at_the_cid() -> None:
    queue, target = live_queue()
    cid, token = read(queue, 512)
    target.received(queue)
    done = queue.receive_data(target.completion(cid + 1))
    assert done == []
    pdu = term_req(queue, target)
    assert (pdu.fes, pdu.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 20)
    assert queue.close() == [token]


def test_completions_before_a_fatal_error_in_the_same_bytes_are_still_returned() -> None:
    queue, target = live_queue()
    cid, token = read(queue, 512)
    done = queue.receive_data(target.c2h(cid, 0, bytes(512), success=True) + target.completion(5))
    assert [t for t, *_ in done] == [token]
    assert queue.state is QueueState.FAILED


def test_garbage_from_the_target_fails_the_queue_with_the_codecs_fatal_status() -> None:
    queue, target = live_queue()
    read(queue, 512)
    target.received(queue)
    queue.receive_data(struct.pack("<BBBBI", 0x08, 0, 24, 0, 24) + bytes(16))
    pdu = term_req(queue, target)
    assert (pdu.fes, pdu.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 0)
    assert queue.receive_data(target.completion(0)) == []


def test_a_c2h_term_req_fails_the_queue_with_the_targets_status_and_sends_nothing() -> None:
    queue, target = live_queue()
    _, first = read(queue, 512, name="a")
    _, second = read(queue, 512, name="b")
    target.received(queue)
    assert queue.receive_data(target.term_req(FatalErrorStatus.HEADER_DIGEST_ERROR)) == []
    assert isinstance(queue.error, TargetTerminated)
    assert queue.error.fes == FatalErrorStatus.HEADER_DIGEST_ERROR
    assert "HEADER_DIGEST_ERROR" in str(queue.error)
    assert queue.data_to_send() == []
    assert set(queue.close()) == {first, second}
    assert queue.state is QueueState.CLOSED


# ------------------------------------------------------------------ timeouts and giving up


def test_a_command_past_its_deadline_is_reported_once_and_keeps_its_cid_until_completed() -> None:
    queue, target = live_queue(queue_size=4)
    token = Token("slow")
    cid = queue.submit(READ, 1, read_length=512, token=token, deadline=5.0)
    other = Token("other")
    queue.submit(READ, 1, read_length=512, token=other, deadline=50.0)
    assert queue.expire(4.9) == []
    assert queue.expire(5.0) == [token]
    assert queue.expire(6.0) == []
    assert (queue.zombies, queue.free_slots) == (1, 2)
    late = queue.receive_data(target.c2h(cid, 0, bytes(512)) + target.completion(cid))
    assert late == []
    assert (queue.zombies, queue.free_slots) == (0, 3)


def test_a_write_given_up_still_sends_the_data_it_was_issued_with() -> None:
    queue, target = live_queue(in_capsule_size=0)
    buf = bytearray(b"\x11" * 1024)
    token = Token("write")
    cid = queue.submit(WRITE, 1, data_out=buf, token=token, deadline=1.0)
    assert queue.expire(1.0) == [token]
    buf[:] = b"\x22" * 1024
    target.received(queue)
    queue.receive_data(target.r2t(cid, 3, 0, 1024))
    [pdu] = target.received(queue)
    assert bytes(pdu.data) == b"\x11" * 1024  # type: ignore[union-attr]


def test_an_abandoned_command_is_not_reported_and_its_late_completion_is_dropped() -> None:
    queue, target = live_queue()
    cid, token = read(queue, 512)
    queue.abandon(cid, token)
    assert queue.zombies == 1
    assert queue.receive_data(target.completion(cid)) == []
    assert queue.free_slots == queue.queue_size


def test_abandon_of_a_cid_that_now_belongs_to_another_command_does_nothing() -> None:
    queue, target = live_queue(queue_size=2)
    cid, token = read(queue, 512)
    queue.receive_data(target.c2h(cid, 0, bytes(512), success=True))
    again, newer = read(queue, 512)
    assert again == cid
    queue.abandon(cid, token)
    assert queue.zombies == 0
    assert [t for t, *_ in queue.receive_data(target.completion(cid))] == [newer]


def test_close_returns_the_commands_waiting_but_not_those_given_up() -> None:
    queue, _ = live_queue()
    _, waiting = read(queue, 512, name="waiting")
    given_up = Token("given up")
    queue.submit(READ, 1, read_length=512, token=given_up, deadline=0.0)
    queue.expire(1.0)
    assert queue.close() == [waiting]
    assert (queue.free_slots, queue.zombies) == (queue.queue_size, 0)


# ------------------------------------------------------------------ any split of the stream


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12))
def test_completions_do_not_depend_on_how_the_target_bytes_are_split(cuts: list[int]) -> None:
    queue, target = live_queue(queue_size=8, in_capsule_size=0)
    rcid, rtoken = read(queue, 1536, name="read")
    wcid, wtoken = write(queue, bytes(1024))
    target.received(queue)
    payload = bytes(i % 253 for i in range(1536))
    stream = (
        target.r2t(wcid, 9, 0, 1024)
        + target.c2h(rcid, 0, payload[:700], last=False)
        + target.completion(wcid)
        + target.c2h(rcid, 700, payload[700:], success=True)
    )
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    done = []
    for start, end in itertools.pairwise(points):
        done += queue.receive_data(stream[start:end])
    assert [(t, s, bytes(d) if d is not None else None) for t, s, _, _, d in done] == [
        (wtoken, 0, None),
        (rtoken, 0, payload),
    ]
    [h2c] = target.received(queue)
    assert isinstance(h2c, H2CData)
    assert (h2c.cccid, h2c.ttag, len(h2c.data)) == (wcid, 9, 1024)


def test_submit_command_takes_a_spec_command_and_chooses_cid_and_sgl_itself() -> None:
    queue, target = live_queue()
    cmd = Read(10, 0).to_command(0x7777, 1, SglDescriptor.in_capsule(0))
    cid = queue.submit_command(cmd, read_length=512, token=Token("r"))
    [(sent, _)] = target.commands(queue)
    assert sent == Command(
        cmd.opcode, cid, 1, SglDescriptor.transport(512), cdw10=10, cdw11=0, cdw12=0
    )
