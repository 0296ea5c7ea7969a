"""A subsystem shared with DH-HMAC-CHAP secrets, driven by a raw NVMe/TCP client: the
Connect completion asks for authentication (ATR), nothing but Authentication
Send/Receive is served until the host proved its secret, and a failed transaction
ends with AUTH_Failure1 and a closed connection."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator, Callable

import pytest

from mayastor.bdev import MallocDevice
from mayastor.errors import InvalidArgument
from mayastor.nvmf.auth import (
    AuthRejected,
    ControllerKeys,
    DhchapSecret,
    Failure1,
    FailureReason,
    HashId,
    HostAuthentication,
    Negotiate,
    SequenceNumbers,
    decode_message,
)
from mayastor.nvmf.spec import (
    CONNECT_AUTHREQ_ATR,
    Authentication,
    PropertyOffset,
    SglDescriptor,
    StatusCodeType,
)
from mayastor.target import NvmfTarget, openebs_nqn
from tests.integration.target.conftest import FAST, Served
from tests.integration.target.nvme_client import HOSTNQN, HostQueue, Response

SECRET = DhchapSecret(bytes(range(32)), HashId.SHA256)
CTRL_SECRET = DhchapSecret(bytes(range(100, 148)))
AUTH_REQUIRED = (StatusCodeType.COMMAND_SPECIFIC, 0x91)
INVALID_FIELD = (StatusCodeType.GENERIC, 0x02)
CONNECT_INVALID_HOST = (StatusCodeType.COMMAND_SPECIFIC, 0x84)


@pytest.fixture
async def guarded(served: Served) -> Served:
    served.target.set_host_keys(served.nqn, {HOSTNQN: ControllerKeys(SECRET, CTRL_SECRET)})
    return served


@pytest.fixture
async def queue(guarded: Served) -> AsyncIterator[HostQueue]:
    q = await HostQueue.open("127.0.0.1", guarded.port)
    yield q
    await q.close()


async def _send(q: HostQueue, message: bytes, *, in_capsule: bool | None = None) -> Response:
    cmd = Authentication(True, len(message)).to_command(q.next_cid(), SglDescriptor.transport(0))
    return await q.submit(cmd, message, in_capsule=in_capsule)


async def _receive(q: HostQueue, room: int = 4096) -> Response:
    cmd = Authentication(False, room).to_command(q.next_cid(), SglDescriptor.transport(room))
    return await q.submit(cmd)


def _machine(
    secret: DhchapSecret, subnqn: str, ctrl: DhchapSecret | None = None
) -> HostAuthentication:
    return HostAuthentication(
        secret, ctrl, hostnqn=HOSTNQN, subnqn=subnqn, tid=7, seqnums=SequenceNumbers(os.urandom)
    )


async def _authenticate(
    q: HostQueue, machine: HostAuthentication, *, in_capsule: bool | None = None
) -> None:
    assert (await _send(q, machine.negotiate(), in_capsule=in_capsule)).ok
    challenge = await _receive(q)
    assert challenge.ok
    assert (await _send(q, machine.challenge(challenge.data), in_capsule=in_capsule)).ok
    success1 = await _receive(q)
    assert success1.ok
    success2 = machine.success1(success1.data)
    if success2 is not None:
        assert (await _send(q, success2)).ok


async def test_connect_to_a_guarded_subsystem_asks_for_authentication(
    queue: HostQueue, guarded: Served
) -> None:
    resp = await queue.connect(guarded.nqn)
    assert resp.ok
    assert resp.completion.dw0 & CONNECT_AUTHREQ_ATR


async def test_connect_to_an_open_subsystem_does_not_ask_for_authentication(served: Served) -> None:
    q = await HostQueue.open("127.0.0.1", served.port)
    try:
        resp = await q.connect(served.nqn)
        assert resp.ok
        assert not resp.completion.dw0 & CONNECT_AUTHREQ_ATR
    finally:
        await q.close()


async def test_commands_before_authentication_are_refused_with_authentication_required(
    queue: HostQueue, guarded: Served
) -> None:
    await queue.connect(guarded.nqn)
    resp = await queue.property_get(PropertyOffset.CAP, 8)
    assert resp.sct_sc == AUTH_REQUIRED
    assert resp.completion.status.dnr
    assert (await queue.identify(1)).sct_sc == AUTH_REQUIRED


@pytest.mark.parametrize("in_capsule", [True, False], ids=["in-capsule", "r2t"])
async def test_the_right_secret_admits_the_queue(
    queue: HostQueue, guarded: Served, in_capsule: bool
) -> None:
    await queue.connect(guarded.nqn)
    await _authenticate(queue, _machine(SECRET, guarded.nqn), in_capsule=in_capsule)
    assert (await queue.property_get(PropertyOffset.CAP, 8)).ok


async def test_bidirectional_authentication_proves_the_controller_secret(
    queue: HostQueue, guarded: Served
) -> None:
    await queue.connect(guarded.nqn)
    machine = _machine(SECRET, guarded.nqn, CTRL_SECRET)
    await _authenticate(queue, machine)
    assert (await queue.property_get(PropertyOffset.VS)).ok


async def test_a_wrong_secret_gets_failure1_and_the_connection_is_closed(
    queue: HostQueue, guarded: Served
) -> None:
    await queue.connect(guarded.nqn)
    machine = _machine(DhchapSecret(bytes(32), HashId.SHA256), guarded.nqn)
    assert (await _send(queue, machine.negotiate())).ok
    assert (await _send(queue, machine.challenge((await _receive(queue)).data))).ok
    answer = await _receive(queue)
    with pytest.raises(AuthRejected):
        machine.success1(answer.data)
    assert decode_message(answer.data) == Failure1(7, FailureReason.FAILED)
    await asyncio.wait_for(queue.closed.wait(), 5)
    assert guarded.target.controllers(guarded.nqn) == []


async def test_a_receive_before_negotiation_ends_the_connection(
    queue: HostQueue, guarded: Served
) -> None:
    await queue.connect(guarded.nqn)
    answer = await _receive(queue)
    assert decode_message(answer.data) == Failure1(0, FailureReason.INCORRECT_MESSAGE)
    await asyncio.wait_for(queue.closed.wait(), 5)


async def test_the_receive_buffer_is_padded_to_the_allocation_length(
    queue: HostQueue, guarded: Served
) -> None:
    await queue.connect(guarded.nqn)
    await _send(queue, Negotiate(7, (1,), (0,)).encode())
    answer = await _receive(queue, room=512)
    assert len(answer.data) == 512
    assert answer.data[16 + 32 :] == bytes(512 - 48)


async def test_another_security_protocol_is_an_invalid_field(
    queue: HostQueue, guarded: Served
) -> None:
    await queue.connect(guarded.nqn)
    message = Negotiate(7, (1,), (0,)).encode()
    cmd = Authentication(True, len(message), secp=0xEA).to_command(
        queue.next_cid(), SglDescriptor.transport(0)
    )
    assert (await queue.submit(cmd, message)).sct_sc == INVALID_FIELD


async def test_a_host_without_a_secret_on_a_guarded_subsystem_is_refused_at_connect(
    queue: HostQueue, guarded: Served
) -> None:
    resp = await queue.connect(guarded.nqn, hostnqn="nqn.2019-05.io.openebs:node-name:other")
    assert resp.sct_sc == CONNECT_INVALID_HOST


async def test_io_queues_authenticate_too(guarded: Served) -> None:
    admin = await HostQueue.open("127.0.0.1", guarded.port)
    io = await HostQueue.open("127.0.0.1", guarded.port)
    try:
        cntlid = (await admin.connect(guarded.nqn, kato=10000)).completion.dw0 & 0xFFFF
        await _authenticate(admin, _machine(SECRET, guarded.nqn))
        assert (await admin.property_set(PropertyOffset.CC, 0x460001)).ok
        for _ in range(100):
            if (await admin.property_get(PropertyOffset.CSTS)).completion.dw0 & 1:
                break
            await asyncio.sleep(0.01)
        resp = await io.connect(guarded.nqn, qid=1, cntlid=cntlid)
        assert resp.ok
        assert resp.completion.dw0 & CONNECT_AUTHREQ_ATR
        assert (await io.read(0, 1, 512)).sct_sc == AUTH_REQUIRED
        await _authenticate(io, _machine(SECRET, guarded.nqn))
        assert (await io.read(0, 1, 512)).ok
    finally:
        await io.close()
        await admin.close()


def test_set_host_keys_refuses_what_is_not_keys(target: NvmfTarget, served: Served) -> None:
    with pytest.raises(InvalidArgument):
        target.set_host_keys(served.nqn, {HOSTNQN: SECRET})  # type: ignore[dict-item]


async def test_keep_alive_waits_while_the_host_computes_its_reply(
    target: NvmfTarget, served: Served
) -> None:
    # A host in a slow VM may take longer than KATO for an ffdhe8192 exponentiation,
    # and sends no Keep Alive before it is in: its controller must not be freed.
    served.target.set_host_keys(served.nqn, {HOSTNQN: ControllerKeys(SECRET)})
    q = await HostQueue.open("127.0.0.1", served.port)
    try:
        await q.connect(served.nqn, kato=100)
        machine = _machine(SECRET, served.nqn)
        assert (await _send(q, machine.negotiate())).ok
        challenge = await _receive(q)
        await asyncio.sleep(0.5)
        assert (await _send(q, machine.challenge(challenge.data))).ok
        machine.success1((await _receive(q)).data)
        assert (await q.property_get(PropertyOffset.VS)).ok
        await asyncio.wait_for(q.closed.wait(), 5)  # then KATO applies: silence ends it
    finally:
        await q.close()


async def test_a_host_that_never_authenticates_loses_its_controller(
    devices: Callable[..., MallocDevice],
) -> None:
    target = NvmfTarget("127.0.0.1", config=dataclasses.replace(FAST, authentication_timeout=0.3))
    try:
        port = await target.listen(0)
        device = devices()
        nqn = openebs_nqn(device.uuid)
        target.add_subsystem(nqn, device, port=port, host_keys={HOSTNQN: ControllerKeys(SECRET)})
        q = await HostQueue.open("127.0.0.1", port)
        try:
            await q.connect(nqn)
            assert len(target.controllers(nqn)) == 1
            await asyncio.wait_for(q.closed.wait(), 5)
            assert target.controllers(nqn) == []
        finally:
            await q.close()
    finally:
        await target.close()
