"""DH-HMAC-CHAP messages byte by byte, round trips, and arbitrary bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mayastor.nvmf.auth import (
    AuthError,
    Challenge,
    DhGroupId,
    Failure1,
    Failure2,
    FailureReason,
    HashId,
    Message,
    Negotiate,
    Reply,
    Success1,
    Success2,
    decode_message,
)


def test_negotiate_as_the_linux_host_sends_it() -> None:
    # Linux offers SHA-256/384/512 and the NULL group plus every FFDHE group.
    data = Negotiate(7, (1, 2, 3), (0, 1, 2, 3, 4, 5)).encode()
    ids = bytes([1, 2, 3]) + bytes(27) + bytes([0, 1, 2, 3, 4, 5]) + bytes(24)
    assert data == bytes([0x00, 0x00, 0, 0, 7, 0, 0, 1, 0x01, 0, 3, 6]) + ids
    assert len(data) == 72
    assert decode_message(data) == Negotiate(7, (1, 2, 3), (0, 1, 2, 3, 4, 5))


def test_challenge_layout() -> None:
    msg = Challenge(0x0102, HashId.SHA256, DhGroupId.NULL, 0xA0B0C0D0, bytes(range(32)))
    data = msg.encode()
    head = bytes([0x01, 0x01, 0, 0, 0x02, 0x01, 32, 0, 0x01, 0x00, 0, 0, 0xD0, 0xC0, 0xB0, 0xA0])
    assert data == head + bytes(range(32))
    assert decode_message(data) == msg


def test_challenge_with_a_dh_value_puts_it_after_the_challenge() -> None:
    msg = Challenge(1, HashId.SHA384, DhGroupId.FFDHE2048, 5, b"c" * 48, b"\x02" * 256)
    data = msg.encode()
    assert data[9] == 0x01
    assert data[10:12] == (256).to_bytes(2, "little")
    assert data[16 + 48 :] == b"\x02" * 256


def test_reply_carries_response_then_controller_challenge_then_dh_value() -> None:
    msg = Reply(3, b"r" * 32, 9, b"c" * 32, b"d" * 8)
    data = msg.encode()
    assert data[:16] == bytes([1, 2, 0, 0, 3, 0, 32, 0, 1, 0, 8, 0, 9, 0, 0, 0])
    assert data[16:] == b"r" * 32 + b"c" * 32 + b"d" * 8
    assert decode_message(data) == msg


def test_reply_without_controller_challenge_has_cvalid_clear_and_zero_c2() -> None:
    data = Reply(3, b"r" * 32).encode()
    assert data[8] == 0
    assert data[16 + 32 : 16 + 64] == bytes(32)
    assert decode_message(data) == Reply(3, b"r" * 32)


def test_success_and_failure_layouts() -> None:
    assert Success1(4, 32).encode() == bytes([1, 3, 0, 0, 4, 0, 32, 0, 0]) + bytes(7 + 32)
    assert Success1(4, 32, b"x" * 32).encode()[8] == 1
    assert Success2(4).encode() == bytes([1, 4, 0, 0, 4, 0]) + bytes(10)
    assert Failure1(4, FailureReason.FAILED).encode() == bytes([0, 0xF1, 0, 0, 4, 0, 1, 1])
    assert Failure2(4, FailureReason.HASH_UNUSABLE).encode() == bytes([0, 0xF0, 0, 0, 4, 0, 1, 4])


def test_padding_after_a_message_is_ignored() -> None:
    # An Authentication Receive buffer is the message followed by zeros.
    data = Success1(4, 48, b"y" * 48).encode() + bytes(4000)
    assert decode_message(data) == Success1(4, 48, b"y" * 48)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes([1, 9, 0, 0, 0, 0]), FailureReason.INCORRECT_MESSAGE),
        (bytes([0, 0, 0, 0, 0, 0, 0, 0]), FailureReason.INCORRECT_PAYLOAD),  # no descriptor
        (
            bytes([0, 0, 0, 0, 0, 0, 0, 1]) + bytes([2]) + bytes(63),
            FailureReason.PROTOCOL_NOT_USABLE,
        ),
        (bytes([0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 31, 0]) + bytes(60), FailureReason.INCORRECT_PAYLOAD),
        (
            Challenge(1, HashId.SHA256, DhGroupId.NULL, 1, b"c" * 32).encode()[:40],
            FailureReason.INCORRECT_PAYLOAD,
        ),
        (
            bytes([1, 1, 0, 0, 0, 0, 32, 0, 9, 0, 0, 0, 0, 0, 0, 0]) + bytes(32),
            FailureReason.HASH_UNUSABLE,
        ),
        (
            bytes([1, 1, 0, 0, 0, 0, 32, 0, 1, 9, 0, 0, 0, 0, 0, 0]) + bytes(32),
            FailureReason.DHGROUP_UNUSABLE,
        ),
        (
            bytes([1, 1, 0, 0, 0, 0, 48, 0, 1, 0, 0, 0, 0, 0, 0, 0]) + bytes(48),
            FailureReason.INCORRECT_PAYLOAD,
        ),
        (
            bytes([1, 2, 0, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]) + bytes(40),
            FailureReason.INCORRECT_PAYLOAD,
        ),
        (
            bytes([1, 2, 0, 0, 0, 0, 32, 0, 2, 0, 0, 0, 0, 0, 0, 0]) + bytes(64),
            FailureReason.INCORRECT_PAYLOAD,
        ),
        (bytes([1, 4, 0]), FailureReason.INCORRECT_PAYLOAD),
    ],
)
def test_malformed_messages_are_refused_with_the_reason_to_report(
    data: bytes, reason: FailureReason
) -> None:
    with pytest.raises(AuthError) as caught:
        decode_message(data)
    assert caught.value.reason is reason


def test_an_unknown_failure_explanation_reads_as_failed() -> None:
    assert decode_message(bytes([0, 0xF1, 0, 0, 2, 0, 1, 0x55])) == Failure1(
        2, FailureReason.FAILED
    )


_tid = st.integers(0, 0xFFFF)
_hash = st.sampled_from(list(HashId))
_group = st.sampled_from(list(DhGroupId))


@st.composite
def _messages(draw: st.DrawFn) -> Message:
    kind = draw(st.integers(0, 6))
    tid = draw(_tid)
    if kind == 0:
        ids = st.lists(st.integers(0, 255), max_size=30).map(tuple)
        return Negotiate(tid, draw(ids), draw(ids), draw(st.integers(0, 255)))
    hash_id = draw(_hash)
    value = st.binary(min_size=hash_id.length, max_size=hash_id.length)
    if kind == 1:
        return Challenge(
            tid, hash_id, draw(_group), draw(st.integers(0, 2**32 - 1)), draw(value),
            draw(st.binary(max_size=300)),
        )  # fmt: skip
    if kind == 2:
        return Reply(
            tid, draw(value), draw(st.integers(0, 2**32 - 1)), draw(st.none() | value),
            draw(st.binary(max_size=300)),
        )  # fmt: skip
    if kind == 3:
        return Success1(tid, hash_id.length, draw(st.none() | value))
    if kind == 4:
        return Success2(tid)
    reason = draw(st.sampled_from(list(FailureReason)))
    return Failure1(tid, reason) if kind == 5 else Failure2(tid, reason)


@given(_messages())
def test_every_message_round_trips(msg: Message) -> None:
    assert decode_message(msg.encode()) == msg


@given(st.binary(max_size=400))
def test_arbitrary_bytes_give_a_message_or_auth_error(data: bytes) -> None:
    reason: FailureReason | None = None
    try:
        decode_message(data)
    except AuthError as exc:
        reason = exc.reason
    assert reason is None or isinstance(reason, FailureReason)


@given(_messages(), st.data())
def test_a_truncated_message_gives_auth_error_never_a_crash(
    msg: Message, data: st.DataObject
) -> None:
    encoded = msg.encode()
    cut = data.draw(st.integers(0, len(encoded)))
    try:
        decode_message(encoded[:cut])
    except AuthError:
        pass
