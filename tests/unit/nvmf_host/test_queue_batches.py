"""HostQueue, many PDUs per receive: the live queue without digests reads CapsuleResp
and C2HData straight from the bytes and leaves every other form to the codec; either
way the completions, their order and the errors are the same. Also `submit_io`, the
data path's submit that says no instead of raising."""

from __future__ import annotations

import struct

from mayastor.nvmf.host import HostQueue, QueueState
from mayastor.nvmf.pdu import FatalErrorStatus
from mayastor.nvmf.spec import IoOpcode
from tests.unit.nvmf_host.peer import TargetSide, Token, live_queue, term_req

READ = int(IoOpcode.READ)
WRITE = int(IoOpcode.WRITE)
_C2H = struct.Struct("<BBBBIH2xII4x")


def reads(queue: HostQueue, count: int, nbytes: int = 512) -> list[tuple[int, Token]]:
    issued = []
    for i in range(count):
        token = Token(f"read{i}")
        cid = queue.submit(READ, 1, i, 0, nbytes // 512 - 1, read_length=nbytes, token=token)
        issued.append((cid, token))
    return issued


def padded_c2h(cid: int, data: bytes, pad: int) -> bytes:
    """A C2HData with SUCCESS whose data starts `pad` bytes after its header."""
    pdo = 24 + pad
    return _C2H.pack(0x07, 0x0C, 24, pdo, pdo + len(data), cid, 0, len(data)) + bytes(pad) + data


def test_completions_in_one_receive_come_out_in_the_order_the_target_sent_them() -> None:
    queue, target = live_queue(queue_size=8)
    issued = reads(queue, 6)
    target.received(queue)
    order = [4, 0, 5, 2, 1, 3]
    stream = b"".join(
        target.c2h(issued[i][0], 0, bytes([i]) * 512, success=i % 2 == 0)
        + (b"" if i % 2 == 0 else target.completion(issued[i][0]))
        for i in order
    )
    done = queue.receive_data(stream)
    assert [(t, s, bytes(d or b"")) for t, s, _, _, d in done] == [
        (issued[i][1], 0, bytes([i]) * 512) for i in order
    ]
    assert queue.free_slots == queue.queue_size


def test_a_pdu_cut_by_the_end_of_a_receive_completes_with_the_next_bytes() -> None:
    queue, target = live_queue(queue_size=8)
    issued = reads(queue, 4)
    target.received(queue)
    pdus = [target.c2h(cid, 0, bytes([n]) * 512, success=True) for n, (cid, _) in enumerate(issued)]
    first = pdus[0] + pdus[1][:30]
    second = pdus[1][30:] + pdus[2]
    done = queue.receive_data(first)
    assert [t for t, *_ in done] == [issued[0][1]]
    done = queue.receive_data(second)
    assert [(t, bytes(d or b"")) for t, _, _, _, d in done] == [
        (issued[1][1], bytes([1]) * 512),
        (issued[2][1], bytes([2]) * 512),
    ]
    done = queue.receive_data(pdus[3])
    assert [(t, bytes(d or b"")) for t, _, _, _, d in done] == [(issued[3][1], bytes([3]) * 512)]


def test_a_c2hdata_with_padding_before_its_data_is_read_by_the_codec() -> None:
    queue, target = live_queue(queue_size=8)
    [(a, ta), (b, tb)] = reads(queue, 2)
    target.received(queue)
    stream = target.completion(a, 0) + padded_c2h(b, b"\x07" * 512, pad=8)
    queue_a_done = queue.receive_data(stream)
    assert [(t, bytes(d) if d is not None else None) for t, _, _, _, d in queue_a_done] == [
        (ta, None),
        (tb, b"\x07" * 512),
    ]


def test_a_c2hdata_whose_length_fields_disagree_is_fatal_after_the_completions_before_it() -> None:
    queue, target = live_queue(queue_size=8)
    [(a, ta), (b, _)] = reads(queue, 2)
    target.received(queue)
    bad = bytearray(target.c2h(b, 0, bytes(512), success=True))
    struct.pack_into("<I", bad, 16, 256)  # DATAL no longer matches PLEN
    done = queue.receive_data(target.c2h(a, 0, bytes(512), success=True) + bytes(bad))
    assert [t for t, *_ in done] == [ta]
    assert queue.state is QueueState.FAILED
    assert term_req(queue, target).fes == FatalErrorStatus.INVALID_HEADER_FIELD


def test_a_c2hdata_with_success_but_not_last_is_fatal() -> None:
    queue, target = live_queue(queue_size=8)
    [(a, _)] = reads(queue, 1)
    target.received(queue)
    bad = bytearray(target.c2h(a, 0, bytes(512), success=True))
    bad[1] = 0x08  # SUCCESS without LAST_PDU
    assert queue.receive_data(bytes(bad)) == []
    assert queue.state is QueueState.FAILED


def test_data_for_a_cid_not_in_flight_in_a_batch_is_fatal_at_the_cid() -> None:
    queue, target = live_queue(queue_size=8)
    [(a, ta)] = reads(queue, 1)
    target.received(queue)
    done = queue.receive_data(
        target.completion(a) + target.c2h(6, 0, bytes(512), success=True) + target.completion(a)
    )
    assert [t for t, *_ in done] == [ta]
    pdu = term_req(queue, target)
    assert (pdu.fes, pdu.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 8)


def test_a_c2h_term_req_after_completions_in_one_receive_fails_the_queue_after_them() -> None:
    queue, target = live_queue(queue_size=8)
    [(a, ta), (b, tb)] = reads(queue, 2)
    target.received(queue)
    done = queue.receive_data(
        target.completion(a)
        + target.term_req(FatalErrorStatus.PDU_SEQUENCE_ERROR)
        + target.completion(b)
    )
    assert [t for t, *_ in done] == [ta]
    assert queue.state is QueueState.FAILED
    assert queue.close() == [tb]


def test_digests_take_the_codec_path_with_the_same_completions() -> None:
    queue, target = live_queue(TargetSide(header_digest=True, data_digest=True), queue_size=8)
    issued = reads(queue, 3)
    target.received(queue)
    stream = b"".join(
        target.c2h(cid, 0, bytes([n]) * 512, success=True) for n, (cid, _) in enumerate(issued)
    )
    done = queue.receive_data(stream)
    assert [(t, bytes(d or b"")) for t, _, _, _, d in done] == [
        (token, bytes([n]) * 512) for n, (_, token) in enumerate(issued)
    ]


# ------------------------------------------------------------------ submit_io


def test_submit_io_sends_the_same_command_as_submit() -> None:
    queue, target = live_queue(queue_size=4, in_capsule_size=4096)
    token = Token("write")
    assert queue.submit_io(WRITE, 1, 8, 0, 0, b"\x05" * 512, 0, token, 10.0)
    [(cmd, data)] = target.commands(queue)
    assert (cmd.opcode, cmd.nsid, cmd.cdw10, data) == (WRITE, 1, 8, b"\x05" * 512)
    assert queue.receive_data(target.completion(cmd.cid)) == [(token, 0, 0, 0, None)]


def test_submit_io_says_no_and_sends_nothing_when_every_cid_is_in_use() -> None:
    queue, target = live_queue(queue_size=2)
    reads(queue, 2)
    target.received(queue)
    assert not queue.submit_io(READ, 1, 0, 0, 0, None, 512, Token("extra"), 10.0)
    assert queue.data_to_send() == []
    assert queue.in_flight == 2


def test_submit_io_says_no_when_told_to_wait_behind_others() -> None:
    queue, _ = live_queue(queue_size=4)
    assert not queue.submit_io(READ, 1, 0, 0, 0, None, 512, Token("behind"), 10.0, False)
    assert (queue.in_flight, queue.data_to_send()) == (0, [])


def test_submit_io_says_no_on_a_failed_queue() -> None:
    queue, target = live_queue(queue_size=4)
    queue.receive_data(target.term_req(FatalErrorStatus.PDU_SEQUENCE_ERROR))
    assert not queue.submit_io(READ, 1, 0, 0, 0, None, 512, Token("late"), 10.0)
    assert queue.in_flight == 0
