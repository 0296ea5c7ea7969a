"""The RFC 7919 groups, the responses and the sequence numbers."""

from __future__ import annotations

import hashlib
import hmac
import random

import pytest

from mayastor.nvmf.auth import (
    AuthError,
    DhGroupId,
    FfdheGroup,
    HashId,
    SequenceNumbers,
    augmented_challenge,
    controller_response,
    host_response,
)

# The first and last 16 bytes of each prime as RFC 7919 appendix A prints them.
RFC7919_ENDS = {
    DhGroupId.FFDHE2048: "C6F34A26C1B2EFFA886B423861285C97",
    DhGroupId.FFDHE3072: "3C1B20EE3FD59D7C25E41D2B66C62E37",
    DhGroupId.FFDHE4096: "4DB5A851F44182E1C68A007E5E655F6A",
    DhGroupId.FFDHE6144: "A41D570D7938DAD4A40E329CD0E40E65",
    DhGroupId.FFDHE8192: "011E2A94838FF88CD68C8BB7C5C6424C",
}
RFC7919_START = "FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1"


def _group(gid: DhGroupId) -> FfdheGroup:
    group = gid.group
    assert group is not None
    return group


@pytest.mark.parametrize("gid", list(RFC7919_ENDS))
def test_group_primes_match_rfc_7919(gid: DhGroupId) -> None:
    group = _group(gid)
    text = format(group.prime, "X")
    assert len(text) == group.size * 2 == int(gid.name[5:]) // 4
    assert text.startswith(RFC7919_START)
    assert text.endswith(RFC7919_ENDS[gid] + "F" * 16)


def test_the_2048_bit_prime_is_a_safe_prime_by_fermat() -> None:
    p = _group(DhGroupId.FFDHE2048).prime
    assert pow(3, p - 1, p) == 1
    q = (p - 1) // 2
    assert pow(3, q - 1, q) == 1


def test_the_null_group_has_no_parameters() -> None:
    assert DhGroupId.NULL.group is None


def test_both_sides_of_a_dh_exchange_reach_the_same_secret() -> None:
    group = _group(DhGroupId.FFDHE2048)
    rng = random.Random(1)
    a = group.private_key(rng.randbytes)
    b = group.private_key(rng.randbytes)
    secret = group.shared_secret(a, group.public_value(b))
    assert secret == group.shared_secret(b, group.public_value(a))
    assert len(secret) == 256


@pytest.mark.parametrize(
    "value",
    [b"\x00" * 256, (1).to_bytes(256, "big"), b"\xff" * 256, b"\x02" * 255],
)
def test_a_degenerate_or_wrong_sized_peer_value_is_refused(value: bytes) -> None:
    group = _group(DhGroupId.FFDHE2048)
    if value == b"\xff" * 256:
        value = (group.prime - 1).to_bytes(256, "big")
    with pytest.raises(AuthError):
        group.shared_secret(12345, value)


def test_host_response_follows_the_spec_formula_byte_for_byte() -> None:
    key, c1 = b"k" * 32, bytes(range(32))
    expected = hmac.new(
        key,
        c1 + bytes([0x78, 0x56, 0x34, 0x12]) + bytes([0x05, 0x00]) + b"\x00"
        + b"HostHost" + b"nqn.host" + b"\x00" + b"nqn.sub",
        hashlib.sha256,
    ).digest()  # fmt: skip
    got = host_response(
        HashId.SHA256, key, c1, seqnum=0x12345678, tid=5, hostnqn="nqn.host", subnqn="nqn.sub"
    )
    assert got == expected


def test_controller_response_follows_the_spec_formula_byte_for_byte() -> None:
    key, c2 = b"k" * 48, bytes(range(48))
    expected = hmac.new(
        key,
        c2 + bytes([1, 0, 0, 0]) + bytes([0xFF, 0xFF]) + b"\x00"
        + b"Controller" + b"nqn.sub" + b"\x00" + b"nqn.host",
        hashlib.sha384,
    ).digest()  # fmt: skip
    got = controller_response(
        HashId.SHA384, key, c2, seqnum=1, tid=0xFFFF, hostnqn="nqn.host", subnqn="nqn.sub"
    )
    assert got == expected


def test_augmented_challenge_is_hmac_keyed_by_the_hashed_session_key() -> None:
    session, c = b"s" * 256, b"c" * 64
    hashed = hashlib.sha512(session).digest()
    assert augmented_challenge(HashId.SHA512, session, c) == hmac.new(hashed, c, "sha512").digest()


def test_sequence_numbers_increase_and_skip_zero() -> None:
    numbers = SequenceNumbers(lambda n: b"\xfe\xff\xff\xff")
    assert [numbers.next(), numbers.next(), numbers.next()] == [0xFFFFFFFF, 1, 2]
