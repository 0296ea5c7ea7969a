"""The hash functions and Diffie-Hellman groups of DH-HMAC-CHAP (NVMe Base 2.0
section 8.13.5; TP 8006), and the computations built on them: the augmented
challenge, the host's and the controller's responses.

Group primes are the RFC 7919 FFDHE primes, computed here from the formula the RFC
publishes (p = 2^b - 2^(b-64) + (floor(2^(b-130) * e) + X) * 2^64 - 1, with the X the
RFC names for each size); the generator is 2. Pure functions on bytes and integers.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from mayastor.nvmf.auth._errors import AuthError, FailureReason

RandomBytes = Callable[[int], bytes]
"""Where randomness comes from (`os.urandom`; tests pass a seeded source)."""


class HashId(enum.IntEnum):
    """Hash function identifiers of DH-HMAC-CHAP (and of a secret's transformation)."""

    SHA256 = 0x01
    SHA384 = 0x02
    SHA512 = 0x03

    @property
    def digest_name(self) -> str:
        return _HASH_NAMES[self]

    @property
    def length(self) -> int:
        """Bytes of a digest: the HL of the messages and the challenge's length."""
        return _HASH_LENGTHS[self]

    def hmac(self, key: bytes, *parts: bytes) -> bytes:
        """HMAC with this hash over the concatenation of `parts`."""
        mac = hmac.new(key, digestmod=self.digest_name)
        for part in parts:
            mac.update(part)
        return mac.digest()

    def digest(self, data: bytes) -> bytes:
        return hashlib.new(self.digest_name, data).digest()


_HASH_NAMES = {HashId.SHA256: "sha256", HashId.SHA384: "sha384", HashId.SHA512: "sha512"}
_HASH_LENGTHS = {HashId.SHA256: 32, HashId.SHA384: 48, HashId.SHA512: 64}


class DhGroupId(enum.IntEnum):
    """Diffie-Hellman group identifiers; NULL means no DH exchange."""

    NULL = 0x00
    FFDHE2048 = 0x01
    FFDHE3072 = 0x02
    FFDHE4096 = 0x03
    FFDHE6144 = 0x04
    FFDHE8192 = 0x05

    @property
    def group(self) -> FfdheGroup | None:
        """The group's parameters; None for the NULL group."""
        if self is DhGroupId.NULL:
            return None
        return _ffdhe_group(self)


# RFC 7919 section A: the X of each prime, and the private exponent sizes its
# section 5.2 gives as the least for the group's strength (rounded up to bytes).
_RFC7919_X = {
    DhGroupId.FFDHE2048: (2048, 560316, 232),
    DhGroupId.FFDHE3072: (3072, 2625351, 280),
    DhGroupId.FFDHE4096: (4096, 5736041, 328),
    DhGroupId.FFDHE6144: (6144, 15705020, 376),
    DhGroupId.FFDHE8192: (8192, 10965728, 400),
}
GENERATOR = 2


def _e_times_power_of_two(bits: int) -> int:
    """floor(e * 2^bits), from the series sum 1/k! in integers with guard bits."""
    guard = 64
    term = 1 << (bits + guard)
    total = 0
    k = 0
    while term:
        total += term
        k += 1
        term //= k
    return total >> guard


@dataclass(frozen=True, slots=True)
class FfdheGroup:
    """One RFC 7919 group.

    Attributes:
        prime: p.
        size: bytes of p: the length of a public value and of the shared secret.
        exponent_bits: bits of a private exponent we choose.
    """

    prime: int
    size: int
    exponent_bits: int

    def private_key(self, random_bytes: RandomBytes) -> int:
        """A private exponent of `exponent_bits` bits (at least 2)."""
        nbytes = (self.exponent_bits + 7) // 8
        return max(2, int.from_bytes(random_bytes(nbytes), "big"))

    def public_value(self, private: int) -> bytes:
        """g^x mod p, big-endian, padded to the size of p."""
        return pow(GENERATOR, private, self.prime).to_bytes(self.size, "big")

    def shared_secret(self, private: int, peer_value: bytes) -> bytes:
        """The session key (g^xy mod p, padded to the size of p).

        Raises:
            AuthError: the peer's value is not `size` bytes, or lies outside 2..p-2, or
                the secret would be 1 (RFC 7919 section 5.1 checks).
        """
        if len(peer_value) != self.size:
            raise AuthError(
                f"DH value of {len(peer_value)} bytes, the group needs {self.size}",
                FailureReason.INCORRECT_PAYLOAD,
            )
        peer = int.from_bytes(peer_value, "big")
        if not 1 < peer < self.prime - 1:
            raise AuthError("DH value outside 2..p-2", FailureReason.INCORRECT_PAYLOAD)
        secret = pow(peer, private, self.prime)
        if secret == 1:
            raise AuthError("DH value gives a trivial secret", FailureReason.INCORRECT_PAYLOAD)
        return secret.to_bytes(self.size, "big")


@functools.cache
def _ffdhe_group(gid: DhGroupId) -> FfdheGroup:
    bits, x, exponent_bits = _RFC7919_X[gid]
    prime = (1 << bits) - (1 << (bits - 64)) + ((_e_times_power_of_two(bits - 130) + x) << 64) - 1
    return FfdheGroup(prime, bits // 8, exponent_bits)


def augmented_challenge(hash_id: HashId, session_key: bytes, challenge: bytes) -> bytes:
    """Ca = HMAC(H(session key), C): the challenge a DH exchange binds to its key."""
    return hash_id.hmac(hash_id.digest(session_key), challenge)


def _response(
    hash_id: HashId,
    key: bytes,
    challenge: bytes,
    seqnum: int,
    tid: int,
    sc_c: int,
    role: bytes,
    own_nqn: str,
    peer_nqn: str,
) -> bytes:
    return hash_id.hmac(
        key,
        challenge,
        seqnum.to_bytes(4, "little"),
        tid.to_bytes(2, "little"),
        bytes([sc_c]),
        role,
        own_nqn.encode(),
        b"\x00",
        peer_nqn.encode(),
    )


def host_response(
    hash_id: HashId,
    key: bytes,
    challenge: bytes,
    *,
    seqnum: int,
    tid: int,
    hostnqn: str,
    subnqn: str,
    sc_c: int = 0,
) -> bytes:
    """R1 = HMAC(Kh, C1 || S1 || T_ID || SC_C || "HostHost" || NQNh || 00h || NQNc).

    Args:
        key: the host secret transformed with the host NQN (Kh).
        challenge: C1, or the augmented C1 when a DH group is in use.
        seqnum: S1, from the controller's challenge.
        tid: the transaction's T_ID.
    """
    return _response(hash_id, key, challenge, seqnum, tid, sc_c, b"HostHost", hostnqn, subnqn)


def controller_response(
    hash_id: HashId,
    key: bytes,
    challenge: bytes,
    *,
    seqnum: int,
    tid: int,
    hostnqn: str,
    subnqn: str,
    sc_c: int = 0,
) -> bytes:
    """R2 = HMAC(Kc, C2 || S2 || T_ID || SC_C || "Controller" || NQNc || 00h || NQNh).

    Args:
        key: the controller secret transformed with the subsystem NQN (Kc).
        challenge: C2 from the host's reply, or its augmented form.
        seqnum: S2, from the host's reply.
    """
    return _response(hash_id, key, challenge, seqnum, tid, sc_c, b"Controller", subnqn, hostnqn)


class SequenceNumbers:
    """A 32-bit sequence counter that starts at a random value and never yields 0
    (0 means "no sequence number" in a reply without controller authentication)."""

    def __init__(self, random_bytes: RandomBytes) -> None:
        self._value = int.from_bytes(random_bytes(4), "little")

    def next(self) -> int:
        self._value = (self._value + 1) & 0xFFFF_FFFF
        if self._value == 0:
            self._value = 1
        return self._value
