"""HostQueue, connecting: ICReq/ICResp, digests, the Fabrics Connect, and its states."""

from __future__ import annotations

import struct

import pytest

from mayastor.errors import FailedPrecondition, InvalidArgument
from mayastor.nvmf.host import MAX_R2T, HostQueue, QueueState, TransportError
from mayastor.nvmf.pdu import CapsuleCmd, FatalErrorStatus, ICReq, PduWriter, Role
from mayastor.nvmf.spec import (
    AdminOpcode,
    CommandSpecificStatus,
    Connect,
    ConnectData,
    FabricsCommandType,
    NvmeStatus,
    SglDescriptorType,
    SglSubtype,
    StatusCodeType,
)
from tests.unit.nvmf_host.peer import (
    HOSTID,
    HOSTNQN,
    SUBNQN,
    TargetSide,
    Token,
    live_queue,
    wire,
)

REFUSED_HOST = NvmeStatus(
    StatusCodeType.COMMAND_SPECIFIC, CommandSpecificStatus.CONNECT_INVALID_HOST, dnr=True
).field


def started(target: TargetSide, **kwargs: object) -> HostQueue:
    queue = HostQueue(
        0,
        queue_size=32,
        header_digest=target.header_digest,
        data_digest=target.data_digest,
        **kwargs,  # type: ignore[arg-type]
    )
    queue.start(Token("ic"))
    return queue


def test_start_sends_the_exact_icreq_bytes_of_the_spec() -> None:
    queue = HostQueue(0, queue_size=32, header_digest=True, data_digest=False)
    queue.start(Token("ic"))
    sent = wire(queue.data_to_send())
    # type 0, flags 0, HLEN 128, PDO 0, PLEN 128, PFV 0, HPDA 0, DGST (header only),
    # MAXR2T 15 (16 R2Ts outstanding per command, 0-based)
    assert sent == struct.pack("<BBBBIHBBI", 0, 0, 128, 0, 128, 0, 0, 0x01, 15) + bytes(112)
    assert queue.state is QueueState.AWAIT_IC_RESP


def test_icresp_completes_the_ic_token_and_learns_maxh2cdata() -> None:
    target = TargetSide(maxh2cdata=8192)
    token = Token("ic")
    queue = HostQueue(0, queue_size=32)
    queue.start(token)
    assert target.received(queue) == [ICReq(maxr2t=MAX_R2T - 1)]
    done = queue.receive_data(target.ic_resp())
    assert done == [(token, 0, 0, 0, None)]
    assert queue.maxh2cdata == 8192
    assert queue.state is QueueState.CONNECTING


def test_icresp_arriving_one_byte_at_a_time_is_the_same() -> None:
    target = TargetSide(header_digest=True, data_digest=True)
    queue = started(target)
    done = []
    for byte in target.ic_resp():
        done += queue.receive_data(bytes([byte]))
    assert len(done) == 1
    assert queue.state is QueueState.CONNECTING


@pytest.mark.parametrize(
    ("asked", "granted"), [((True, False), (False, False)), ((False, False), (True, True))]
)
def test_a_target_that_does_not_grant_exactly_the_digests_asked_for_fails_the_queue(
    asked: tuple[bool, bool], granted: tuple[bool, bool]
) -> None:
    queue = HostQueue(0, queue_size=32, header_digest=asked[0], data_digest=asked[1])
    ic = Token("ic")
    queue.start(ic)
    target = TargetSide(header_digest=granted[0], data_digest=granted[1])
    assert queue.receive_data(target.ic_resp()) == []
    assert queue.state is QueueState.FAILED
    assert isinstance(queue.error, TransportError)
    assert "digest" in str(queue.error)
    assert queue.close() == [ic]


def test_connect_sends_the_fabrics_connect_with_its_data_in_the_capsule() -> None:
    target = TargetSide()
    queue = started(target, in_capsule_size=8192)
    target.received(queue)
    queue.receive_data(target.ic_resp())
    cid = queue.connect(
        hostid=HOSTID, cntlid=0xFFFF, subnqn=SUBNQN, hostnqn=HOSTNQN, kato_ms=5000, token=Token("c")
    )
    [(cmd, data)] = target.commands(queue)
    assert cmd.opcode == AdminOpcode.FABRICS
    assert cmd.fctype == FabricsCommandType.CONNECT
    assert cmd.cid == cid
    assert Connect.from_command(cmd) == Connect(qid=0, sqsize=31, kato=5000)
    assert (cmd.sgl.type, cmd.sgl.subtype, cmd.sgl.length) == (
        SglDescriptorType.DATA_BLOCK,
        SglSubtype.OFFSET,
        1024,
    )
    assert ConnectData.decode(data) == ConnectData(HOSTID, 0xFFFF, SUBNQN, HOSTNQN)


def test_connect_may_ask_the_target_not_to_track_the_submission_queue_head() -> None:
    target = TargetSide()
    queue = started(target)
    target.received(queue)
    queue.receive_data(target.ic_resp())
    queue.connect(
        hostid=HOSTID,
        cntlid=0xFFFF,
        subnqn=SUBNQN,
        hostnqn=HOSTNQN,
        disable_sq_flow_control=True,
        token=Token("c"),
    )
    [(cmd, _)] = target.commands(queue)
    assert Connect.from_command(cmd).sq_flow_control_disabled


def test_a_successful_connect_makes_the_queue_live_with_the_controller_id() -> None:
    queue, _ = live_queue(cntlid=0x1234)
    assert queue.state is QueueState.LIVE
    assert queue.cntlid == 0x1234


def test_a_refused_connect_returns_its_status_and_fails_the_queue() -> None:
    target = TargetSide()
    queue = started(target)
    target.received(queue)
    queue.receive_data(target.ic_resp())
    token = Token("connect")
    cid = queue.connect(hostid=HOSTID, cntlid=0xFFFF, subnqn=SUBNQN, hostnqn=HOSTNQN, token=token)
    target.received(queue)
    done = queue.receive_data(target.completion(cid, REFUSED_HOST))
    assert done == [(token, REFUSED_HOST, 0, 0, None)]
    assert queue.state is QueueState.FAILED
    assert "CONNECT_INVALID_HOST" in str(queue.error)


def test_commands_before_the_connection_is_live_are_refused() -> None:
    queue = HostQueue(1, queue_size=8)
    with pytest.raises(FailedPrecondition, match="idle"):
        queue.submit(0x02, 1, read_length=512, token=Token("read"))
    target = TargetSide()
    queue.start(Token("ic"))
    target.received(queue)
    queue.receive_data(target.ic_resp())
    with pytest.raises(FailedPrecondition, match="connecting"):
        queue.submit(0x02, 1, read_length=512, token=Token("read"))
    assert queue.data_to_send() == []


def test_connect_is_refused_before_icresp_and_a_second_time() -> None:
    queue = HostQueue(1, queue_size=8)
    queue.start(Token("ic"))
    with pytest.raises(FailedPrecondition):
        queue.connect(hostid=HOSTID, cntlid=1, subnqn=SUBNQN, hostnqn=HOSTNQN, token=Token("c"))
    live, _ = live_queue()
    with pytest.raises(FailedPrecondition):
        live.connect(hostid=HOSTID, cntlid=1, subnqn=SUBNQN, hostnqn=HOSTNQN, token=Token("c"))


def test_start_twice_is_refused() -> None:
    queue = HostQueue(1, queue_size=8)
    queue.start(Token("ic"))
    with pytest.raises(FailedPrecondition, match="start"):
        queue.start(Token("again"))


def test_an_nqn_too_long_for_the_connect_data_is_an_invalid_argument_and_sends_nothing() -> None:
    target = TargetSide()
    queue = started(target)
    target.received(queue)
    queue.receive_data(target.ic_resp())
    with pytest.raises(InvalidArgument):
        queue.connect(
            hostid=HOSTID,
            cntlid=1,
            subnqn="nqn.2019-05.io.x:" + "a" * 300,
            hostnqn=HOSTNQN,
            token=Token("c"),
        )
    assert queue.data_to_send() == []
    assert queue.free_slots == 32


def test_the_ic_exchange_has_a_deadline_like_any_command() -> None:
    queue = HostQueue(1, queue_size=8)
    ic = Token("ic")
    queue.start(ic, deadline=10.0)
    assert queue.expire(9.9) == []
    assert queue.expire(10.0) == [ic]
    assert queue.expire(11.0) == []


def test_a_second_icresp_is_a_fatal_sequence_error() -> None:
    queue, target = live_queue()
    host = PduWriter(Role.CONTROLLER)
    queue.receive_data(wire(host.encode_ic_resp()))
    assert queue.state is QueueState.FAILED
    term = target.received(queue)
    assert len(term) == 1
    assert term[0].fes == FatalErrorStatus.PDU_SEQUENCE_ERROR  # type: ignore[union-attr]


@pytest.mark.parametrize("size", [1, 65537])
def test_an_impossible_queue_size_is_an_invalid_argument(size: int) -> None:
    with pytest.raises(InvalidArgument):
        HostQueue(1, queue_size=size)


def test_capsule_commands_are_what_the_reader_of_a_controller_accepts() -> None:
    queue, target = live_queue()
    queue.submit(0x02, 1, read_length=512, token=Token("read"))
    [pdu] = target.received(queue)
    assert isinstance(pdu, CapsuleCmd)
    assert bytes(pdu.data) == b""


def test_an_io_queue_without_in_capsule_data_still_sends_connect_data_in_the_capsule() -> None:
    target = TargetSide()
    queue = HostQueue(3, queue_size=8, in_capsule_size=0)
    queue.start(Token("ic"))
    target.received(queue)
    queue.receive_data(target.ic_resp())
    queue.connect(hostid=HOSTID, cntlid=5, subnqn=SUBNQN, hostnqn=HOSTNQN, token=Token("c"))
    [(cmd, data)] = target.commands(queue)
    assert cmd.sgl.is_in_capsule
    assert ConnectData.decode(data).cntlid == 5
    assert Connect.from_command(cmd).qid == 3
