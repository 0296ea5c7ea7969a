"""Host and controller state machines against each other, and against bad peers."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mayastor.nvmf.auth import (
    AuthError,
    AuthRejected,
    ControllerAuthentication,
    ControllerKeys,
    ControllerState,
    DhchapSecret,
    DhGroupId,
    Failure1,
    FailureReason,
    HashId,
    HostAuthentication,
    HostState,
    Negotiate,
    SequenceNumbers,
    Success2,
    decode_message,
)

HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:0f0e0d0c-0b0a-0908-0706-050403020100"
SUBNQN = "nqn.2019-05.io.openebs:replica-1"
HOST_SECRET = DhchapSecret(bytes(range(32)), HashId.SHA256)
CTRL_SECRET = DhchapSecret(bytes(range(64, 112)))
OTHER_SECRET = DhchapSecret(bytes(range(1, 33)), HashId.SHA256)


def _rng(seed: int) -> random.Random:
    return random.Random(seed)


def _controller(
    keys: ControllerKeys,
    hashes: Sequence[HashId] = (HashId.SHA256, HashId.SHA384, HashId.SHA512),
    dhgroups: Sequence[DhGroupId] = (DhGroupId.NULL,),
    seed: int = 1,
) -> ControllerAuthentication:
    rng = _rng(seed)
    return ControllerAuthentication(
        keys,
        hostnqn=HOSTNQN,
        subnqn=SUBNQN,
        seqnums=SequenceNumbers(rng.randbytes),
        hashes=hashes,
        dhgroups=dhgroups,
        random_bytes=rng.randbytes,
    )


def _host(
    host_secret: DhchapSecret = HOST_SECRET,
    ctrl_secret: DhchapSecret | None = None,
    hashes: Sequence[HashId] = (HashId.SHA256, HashId.SHA384, HashId.SHA512),
    dhgroups: Sequence[DhGroupId] = tuple(DhGroupId),
) -> HostAuthentication:
    rng = _rng(2)
    return HostAuthentication(
        host_secret,
        ctrl_secret,
        hostnqn=HOSTNQN,
        subnqn=SUBNQN,
        tid=0x1234,
        seqnums=SequenceNumbers(rng.randbytes),
        hashes=hashes,
        dhgroups=dhgroups,
        random_bytes=rng.randbytes,
    )


def _run(host: HostAuthentication, ctrl: ControllerAuthentication) -> None:
    """The exchange as the host's shell drives it; raises what the host raises."""
    ctrl.send(host.negotiate())
    try:
        ctrl.send(host.challenge(ctrl.receive()))
        success2 = host.success1(ctrl.receive())
    except AuthRejected:
        raise
    except AuthError as exc:
        ctrl.send(host.failure2(exc.reason))
        raise
    if success2 is not None:
        ctrl.send(success2)


@pytest.mark.parametrize("hash_id", list(HashId))
@pytest.mark.parametrize("dhgroup", [DhGroupId.NULL, DhGroupId.FFDHE2048])
def test_the_right_host_secret_authenticates_with_each_hash(
    hash_id: HashId, dhgroup: DhGroupId
) -> None:
    host = _host()
    ctrl = _controller(ControllerKeys(HOST_SECRET), hashes=[hash_id], dhgroups=[dhgroup])
    _run(host, ctrl)
    assert ctrl.authenticated
    assert ctrl.state is ControllerState.DONE
    assert host.state is HostState.DONE
    assert host.chosen == ctrl.chosen == (hash_id, dhgroup)


@pytest.mark.parametrize(
    "dhgroup",
    [DhGroupId.FFDHE3072, DhGroupId.FFDHE4096, DhGroupId.FFDHE6144, DhGroupId.FFDHE8192],
)
def test_every_ffdhe_group_authenticates_bidirectionally(dhgroup: DhGroupId) -> None:
    host = _host(ctrl_secret=CTRL_SECRET)
    ctrl = _controller(ControllerKeys(HOST_SECRET, CTRL_SECRET), dhgroups=[dhgroup])
    _run(host, ctrl)
    assert ctrl.authenticated
    assert host.chosen == (HashId.SHA256, dhgroup)


def test_bidirectional_authentication_needs_success2_before_the_queue_is_admitted() -> None:
    host = _host(ctrl_secret=CTRL_SECRET)
    ctrl = _controller(ControllerKeys(HOST_SECRET, CTRL_SECRET))
    ctrl.send(host.negotiate())
    ctrl.send(host.challenge(ctrl.receive()))
    success2 = host.success1(ctrl.receive())
    assert ctrl.state is ControllerState.SUCCESS2
    assert not ctrl.authenticated
    assert success2 == Success2(0x1234).encode()
    ctrl.send(success2)
    assert ctrl.authenticated


def test_a_wrong_host_secret_is_refused_with_failure1_and_the_connection_ends() -> None:
    host = _host(host_secret=OTHER_SECRET)
    ctrl = _controller(ControllerKeys(HOST_SECRET))
    with pytest.raises(AuthRejected) as caught:
        _run(host, ctrl)
    assert caught.value.reason is FailureReason.FAILED
    assert ctrl.over
    assert not ctrl.authenticated


def test_the_transformation_binds_the_secret_to_the_host_nqn() -> None:
    host = HostAuthentication(
        HOST_SECRET, None, hostnqn=HOSTNQN + "x", subnqn=SUBNQN, tid=1,
        seqnums=SequenceNumbers(_rng(3).randbytes),
    )  # fmt: skip
    ctrl = _controller(ControllerKeys(HOST_SECRET))
    with pytest.raises(AuthRejected):
        _run(host, ctrl)


def test_a_controller_with_the_wrong_secret_is_refused_by_the_host() -> None:
    host = _host(ctrl_secret=CTRL_SECRET)
    ctrl = _controller(ControllerKeys(HOST_SECRET, DhchapSecret(bytes(48))))
    with pytest.raises(AuthError, match="did not prove") as caught:
        _run(host, ctrl)
    assert not isinstance(caught.value, AuthRejected)
    assert host.state is HostState.FAILED
    assert ctrl.over
    assert not ctrl.authenticated


def test_a_host_asking_a_controller_without_secret_to_prove_itself_is_refused() -> None:
    host = _host(ctrl_secret=CTRL_SECRET)
    ctrl = _controller(ControllerKeys(HOST_SECRET))
    with pytest.raises(AuthRejected):
        _run(host, ctrl)
    assert ctrl.over


def test_no_common_hash_fails_with_hash_unusable() -> None:
    host = _host(hashes=[HashId.SHA512])
    ctrl = _controller(ControllerKeys(HOST_SECRET), hashes=[HashId.SHA256])
    with pytest.raises(AuthRejected) as caught:
        _run(host, ctrl)
    assert caught.value.reason is FailureReason.HASH_UNUSABLE


def test_no_common_dh_group_fails_with_dhgroup_unusable() -> None:
    host = _host(dhgroups=[DhGroupId.FFDHE8192])
    ctrl = _controller(ControllerKeys(HOST_SECRET), dhgroups=[DhGroupId.NULL])
    with pytest.raises(AuthRejected) as caught:
        _run(host, ctrl)
    assert caught.value.reason is FailureReason.DHGROUP_UNUSABLE


def test_secure_channel_concatenation_is_refused() -> None:
    ctrl = _controller(ControllerKeys(HOST_SECRET))
    ctrl.send(Negotiate(1, (1,), (0,), sc_c=1).encode())
    assert decode_message(ctrl.receive()) == Failure1(1, FailureReason.CONCAT_MISMATCH)
    assert ctrl.over


def test_a_receive_before_negotiation_gets_failure1_and_ends_the_transaction() -> None:
    ctrl = _controller(ControllerKeys(HOST_SECRET))
    reply = decode_message(ctrl.receive())
    assert reply == Failure1(0, FailureReason.INCORRECT_MESSAGE)
    assert ctrl.over


def test_a_message_with_another_transaction_id_is_refused() -> None:
    host = _host()
    ctrl = _controller(ControllerKeys(HOST_SECRET))
    ctrl.send(host.negotiate())
    reply = bytearray(host.challenge(ctrl.receive()))
    reply[4] ^= 0xFF
    ctrl.send(bytes(reply))
    assert decode_message(ctrl.receive()) == Failure1(0x1234, FailureReason.INCORRECT_MESSAGE)
    assert ctrl.over


def test_a_failure2_from_the_host_ends_the_transaction_at_once() -> None:
    host = _host()
    ctrl = _controller(ControllerKeys(HOST_SECRET))
    ctrl.send(host.negotiate())
    ctrl.send(host.failure2(FailureReason.HASH_UNUSABLE))
    assert ctrl.over
    assert ctrl.failure is FailureReason.HASH_UNUSABLE


def test_each_transaction_gets_a_fresh_challenge_so_a_reply_cannot_be_replayed() -> None:
    host = _host()
    ctrl = _controller(ControllerKeys(HOST_SECRET))
    ctrl.send(host.negotiate())
    first = ctrl.receive()
    replayed = host.challenge(first)
    ctrl2 = _controller(ControllerKeys(HOST_SECRET), seed=99)
    ctrl2.send(Negotiate(0x1234, (1, 2, 3), (0,)).encode())
    assert ctrl2.receive() != first
    ctrl2.send(replayed)
    assert decode_message(ctrl2.receive()) == Failure1(0x1234, FailureReason.FAILED)


def test_an_authenticated_queue_can_authenticate_again() -> None:
    ctrl = _controller(ControllerKeys(HOST_SECRET))
    _run(_host(), ctrl)
    _run(_host(), ctrl)
    assert ctrl.authenticated


def test_the_host_refuses_a_challenge_it_did_not_offer() -> None:
    host = _host(dhgroups=[DhGroupId.NULL, DhGroupId.FFDHE2048])
    ctrl = _controller(ControllerKeys(HOST_SECRET), dhgroups=[DhGroupId.FFDHE3072])
    ctrl.send(Negotiate(0x1234, (1,), (2,)).encode())
    host.negotiate()
    with pytest.raises(AuthError) as caught:
        host.challenge(ctrl.receive())
    assert caught.value.reason is FailureReason.DHGROUP_UNUSABLE


def test_the_host_refuses_messages_out_of_order() -> None:
    host = _host()
    with pytest.raises(AuthError):
        host.challenge(Success2(0x1234).encode())


@settings(max_examples=150)
@given(st.lists(st.binary(max_size=200), max_size=4))
def test_a_controller_fed_arbitrary_sends_never_raises_and_never_admits(
    messages: list[bytes],
) -> None:
    ctrl = _controller(ControllerKeys(HOST_SECRET))
    for data in messages:
        ctrl.send(data)
        ctrl.receive()
    assert not ctrl.authenticated
