"""The target's side of a queue, in bytes, for driving `HostQueue` without a socket.

`TargetSide` encodes what a controller sends (with the codec's controller-role
writer) and decodes what the host sent (with its controller-role reader), so a test
reads like the exchange on the wire.
"""

from __future__ import annotations

import uuid

from mayastor.nvmf.host import HostQueue
from mayastor.nvmf.pdu import (
    Buffer,
    CapsuleCmd,
    H2CTermReq,
    ICReq,
    Pdu,
    PduReader,
    PduWriter,
    Role,
)
from mayastor.nvmf.spec import Command, encode_completion

HOSTID = uuid.UUID("00000000-0000-4000-8000-000000000001")
HOSTNQN = "nqn.2019-05.io.openebs:node-name:test"
SUBNQN = "nqn.2019-05.io.openebs:5d0c1e6c-2b38-4f1e-9a4c-1a2b3c4d5e6f"


def wire(parts: list[Buffer]) -> bytes:
    return b"".join(bytes(p) for p in parts)


class TargetSide:
    """The controller end of one connection, driven by hand."""

    def __init__(
        self, *, header_digest: bool = False, data_digest: bool = False, maxh2cdata: int = 0x20000
    ) -> None:
        self.reader = PduReader(Role.CONTROLLER, max_data_length=1 << 21)
        self.writer = PduWriter(Role.CONTROLLER)
        self.header_digest = header_digest
        self.data_digest = data_digest
        self.maxh2cdata = maxh2cdata

    def ic_resp(self) -> bytes:
        out = wire(
            self.writer.encode_ic_resp(
                hdgst_enable=self.header_digest,
                ddgst_enable=self.data_digest,
                maxh2cdata=self.maxh2cdata,
            )
        )
        self.writer.configure(header_digest=self.header_digest, data_digest=self.data_digest)
        return out

    def received(self, queue: HostQueue) -> list[Pdu]:
        """Every PDU the host has queued for sending, decoded."""
        self.reader.feed(wire(queue.data_to_send()))
        pdus = []
        while (pdu := self.reader.next_pdu()) is not None:
            pdus.append(pdu)
            if isinstance(pdu, ICReq):
                self.reader.configure(
                    header_digest=self.header_digest, data_digest=self.data_digest
                )
        return pdus

    def commands(self, queue: HostQueue) -> list[tuple[Command, bytes]]:
        """The commands the host sent, with their in-capsule data."""
        return [
            (Command.decode(p.sqe), bytes(p.data))
            for p in self.received(queue)
            if isinstance(p, CapsuleCmd)
        ]

    def completion(self, cid: int, status_field: int = 0, dw0: int = 0, dw1: int = 0) -> bytes:
        return wire(
            self.writer.encode_capsule_resp(encode_completion(cid, status_field, dw0=dw0, dw1=dw1))
        )

    def c2h(
        self, cid: int, offset: int, data: bytes, *, last: bool = True, success: bool = False
    ) -> bytes:
        return wire(self.writer.encode_c2h_data(cid, offset, data, last=last, success=success))

    def r2t(self, cid: int, ttag: int, offset: int, length: int) -> bytes:
        return wire(self.writer.encode_r2t(cid, ttag, offset, length))

    def term_req(self, fes: int, fei: int = 0) -> bytes:
        return wire(self.writer.encode_term_req(fes, fei, b"\x04\x00"))


def term_req(queue: HostQueue, target: TargetSide) -> H2CTermReq:
    """The one PDU the host has queued: its H2CTermReq."""
    [pdu] = target.received(queue)
    assert isinstance(pdu, H2CTermReq)
    return pdu


class Token:
    """A caller's token, named for the messages of failing tests."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Token({self.name})"


def live_queue(
    target: TargetSide | None = None,
    *,
    qid: int = 1,
    queue_size: int = 8,
    in_capsule_size: int = 4096,
    cntlid: int = 7,
) -> tuple[HostQueue, TargetSide]:
    """A queue past ICReq/ICResp and a successful Connect, its output drained."""
    target = target or TargetSide()
    queue = HostQueue(
        qid,
        queue_size=queue_size,
        header_digest=target.header_digest,
        data_digest=target.data_digest,
        in_capsule_size=in_capsule_size,
    )
    queue.start(Token("ic"))
    target.received(queue)
    assert queue.receive_data(target.ic_resp())
    cid = queue.connect(
        hostid=HOSTID, cntlid=cntlid, subnqn=SUBNQN, hostnqn=HOSTNQN, token=Token("connect")
    )
    target.received(queue)
    done = queue.receive_data(target.completion(cid, dw0=cntlid))
    assert [d[1] for d in done] == [0]
    return queue, target
