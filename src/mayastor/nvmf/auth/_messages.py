"""The DH-HMAC-CHAP messages carried as the data of Fabrics Authentication Send and
Authentication Receive (NVMe Base 2.0 section 8.13.5; TP 8006).

Every message starts with AUTH_TYPE (00h common, 01h DH-HMAC-CHAP), AUTH_ID and the
16-bit transaction id T_ID at bytes 4-5. `decode_message` reads any of them from bytes
(trailing bytes, such as the zero padding of an Authentication Receive buffer, are
ignored) and `encode` writes them back. Malformed bytes raise `AuthError` with reason
INCORRECT_PAYLOAD (or PROTOCOL_NOT_USABLE for a negotiation without DH-HMAC-CHAP),
never anything else.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from mayastor.nvmf.auth._crypto import DhGroupId, HashId
from mayastor.nvmf.auth._errors import FAILURE_REASON_CODE, AuthError, FailureReason

SECP_DHCHAP = 0xE9
"""SECP of Authentication Send/Receive for NVMe in-band authentication."""
SPSP_DHCHAP = 0x01
"""SPSP0 and SPSP1 of Authentication Send/Receive for DH-HMAC-CHAP."""
DHCHAP_AUTH_ID = 0x01
"""AUTHID of a DH-HMAC-CHAP protocol descriptor in AUTH_Negotiate."""
DESCRIPTOR_SIZE = 64
ID_LIST_HALF = 30
"""IDLIST holds up to 30 hash ids (bytes 0-29) and 30 DH group ids (bytes 30-59)."""
HASH_LENGTHS = frozenset(h.length for h in HashId)


class AuthType(enum.IntEnum):
    COMMON = 0x00  # AUTH_Negotiate and the failure messages
    DHCHAP = 0x01  # the DH-HMAC-CHAP messages


class MessageId(enum.IntEnum):
    NEGOTIATE = 0x00
    CHALLENGE = 0x01
    REPLY = 0x02
    SUCCESS1 = 0x03
    SUCCESS2 = 0x04
    FAILURE2 = 0xF0  # host to controller
    FAILURE1 = 0xF1  # controller to host


def _malformed(text: str) -> AuthError:
    return AuthError(text, FailureReason.INCORRECT_PAYLOAD)


def _need(data: bytes, size: int, what: str) -> None:
    if len(data) < size:
        raise _malformed(f"{what} needs {size} bytes, got {len(data)}")


_NEGOTIATE = struct.Struct("<BBHHBB")
_CHALLENGE = struct.Struct("<BBHHBBBBHI")
_SUCCESS1 = struct.Struct("<BBHHBBB7x")
_SUCCESS2 = struct.Struct("<BBHH10x")
_FAILURE = struct.Struct("<BBHHBB")


@dataclass(frozen=True, slots=True)
class Negotiate:
    """AUTH_Negotiate (host to controller): what the host can do.

    Attributes:
        tid: the transaction id every later message repeats.
        hash_ids: hash identifiers the host accepts (raw, unknown ones kept).
        dhgroup_ids: DH group identifiers the host accepts.
        sc_c: secure channel concatenation (0: none, the only value we take).
    """

    tid: int
    hash_ids: tuple[int, ...]
    dhgroup_ids: tuple[int, ...]
    sc_c: int = 0

    ident: ClassVar = (AuthType.COMMON, MessageId.NEGOTIATE)

    def encode(self) -> bytes:
        if len(self.hash_ids) > ID_LIST_HALF or len(self.dhgroup_ids) > ID_LIST_HALF:
            raise _malformed("at most 30 hash and 30 DH group ids")
        ids = bytearray(ID_LIST_HALF * 2)
        ids[: len(self.hash_ids)] = bytes(self.hash_ids)
        ids[ID_LIST_HALF : ID_LIST_HALF + len(self.dhgroup_ids)] = bytes(self.dhgroup_ids)
        head = _NEGOTIATE.pack(*self.ident, 0, self.tid, self.sc_c, 1)
        descriptor = bytes([DHCHAP_AUTH_ID, 0, len(self.hash_ids), len(self.dhgroup_ids)])
        return head + descriptor + bytes(ids)

    @classmethod
    def decode(cls, data: bytes) -> Negotiate:
        _need(data, _NEGOTIATE.size, "AUTH_Negotiate")
        _, _, _, tid, sc_c, napd = _NEGOTIATE.unpack_from(data)
        if napd == 0:
            raise _malformed("AUTH_Negotiate lists no protocol")
        _need(data, _NEGOTIATE.size + napd * DESCRIPTOR_SIZE, "AUTH_Negotiate")
        for i in range(napd):
            at = _NEGOTIATE.size + i * DESCRIPTOR_SIZE
            authid, _, halen, dhlen = data[at : at + 4]
            if authid != DHCHAP_AUTH_ID:
                continue
            if halen > ID_LIST_HALF or dhlen > ID_LIST_HALF:
                raise _malformed(f"HALEN {halen} or DHLEN {dhlen} above 30")
            ids = data[at + 4 : at + DESCRIPTOR_SIZE]
            return cls(
                tid,
                tuple(ids[:halen]),
                tuple(ids[ID_LIST_HALF : ID_LIST_HALF + dhlen]),
                sc_c,
            )
        raise AuthError("AUTH_Negotiate offers no DH-HMAC-CHAP", FailureReason.PROTOCOL_NOT_USABLE)


@dataclass(frozen=True, slots=True)
class Challenge:
    """DH-HMAC-CHAP_Challenge (controller to host).

    Attributes:
        hash_id: the hash the controller chose.
        dhgroup: the DH group it chose.
        seqnum: S1.
        challenge: C1 (the hash's length in bytes).
        dh_value: the controller's public value (empty for the NULL group).
    """

    tid: int
    hash_id: HashId
    dhgroup: DhGroupId
    seqnum: int
    challenge: bytes
    dh_value: bytes = b""

    ident: ClassVar = (AuthType.DHCHAP, MessageId.CHALLENGE)

    def encode(self) -> bytes:
        head = _CHALLENGE.pack(
            *self.ident, 0, self.tid, len(self.challenge), 0, self.hash_id,
            self.dhgroup, len(self.dh_value), self.seqnum,
        )  # fmt: skip
        return head + self.challenge + self.dh_value

    @classmethod
    def decode(cls, data: bytes) -> Challenge:
        _need(data, _CHALLENGE.size, "DH-HMAC-CHAP_Challenge")
        _, _, _, tid, hl, _, hashid, dhgid, dhvlen, seqnum = _CHALLENGE.unpack_from(data)
        if hashid not in HashId._value2member_map_:
            raise AuthError(f"hash id {hashid} is not known", FailureReason.HASH_UNUSABLE)
        hash_id = HashId(hashid)
        if hl != hash_id.length:
            raise _malformed(f"HL {hl} is not the length of {hash_id.name}")
        if dhgid not in DhGroupId._value2member_map_:
            raise AuthError(f"DH group id {dhgid} is not known", FailureReason.DHGROUP_UNUSABLE)
        end = _CHALLENGE.size + hl
        _need(data, end + dhvlen, "DH-HMAC-CHAP_Challenge")
        return cls(
            tid, hash_id, DhGroupId(dhgid), seqnum,
            bytes(data[_CHALLENGE.size : end]), bytes(data[end : end + dhvlen]),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Reply:
    """DH-HMAC-CHAP_Reply (host to controller).

    Attributes:
        response: R1 (its length is HL).
        seqnum: S2 (0 when no controller challenge).
        challenge: C2 when the host wants the controller to authenticate, else None.
        dh_value: the host's public value (empty for the NULL group).
    """

    tid: int
    response: bytes
    seqnum: int = 0
    challenge: bytes | None = None
    dh_value: bytes = b""

    ident: ClassVar = (AuthType.DHCHAP, MessageId.REPLY)

    def encode(self) -> bytes:
        hl = len(self.response)
        c2 = self.challenge if self.challenge is not None else bytes(hl)
        if len(c2) != hl:
            raise _malformed("C2 must be as long as R1")
        head = _CHALLENGE.pack(
            *self.ident, 0, self.tid, hl, 0, int(self.challenge is not None), 0,
            len(self.dh_value), self.seqnum,
        )  # fmt: skip
        return head + self.response + c2 + self.dh_value

    @classmethod
    def decode(cls, data: bytes) -> Reply:
        _need(data, _CHALLENGE.size, "DH-HMAC-CHAP_Reply")
        _, _, _, tid, hl, _, cvalid, _, dhvlen, seqnum = _CHALLENGE.unpack_from(data)
        if hl not in HASH_LENGTHS:
            raise _malformed(f"HL {hl} is no hash's length")
        if cvalid > 1:
            raise _malformed(f"CVALID {cvalid} is not 0 or 1")
        at = _CHALLENGE.size
        _need(data, at + 2 * hl + dhvlen, "DH-HMAC-CHAP_Reply")
        response = bytes(data[at : at + hl])
        c2 = bytes(data[at + hl : at + 2 * hl]) if cvalid else None
        dh_value = bytes(data[at + 2 * hl : at + 2 * hl + dhvlen])
        return cls(tid, response, seqnum, c2, dh_value)


@dataclass(frozen=True, slots=True)
class Success1:
    """DH-HMAC-CHAP_Success1 (controller to host): the host is authenticated.

    Attributes:
        hash_length: HL, the negotiated hash's length.
        response: R2 when the host asked the controller to authenticate, else None.
    """

    tid: int
    hash_length: int
    response: bytes | None = None

    ident: ClassVar = (AuthType.DHCHAP, MessageId.SUCCESS1)

    def encode(self) -> bytes:
        rval = self.response if self.response is not None else bytes(self.hash_length)
        head = _SUCCESS1.pack(
            *self.ident, 0, self.tid, self.hash_length, 0, int(self.response is not None)
        )
        return head + rval

    @classmethod
    def decode(cls, data: bytes) -> Success1:
        _need(data, _SUCCESS1.size, "DH-HMAC-CHAP_Success1")
        _, _, _, tid, hl, _, rvalid = _SUCCESS1.unpack_from(data)
        if rvalid > 1:
            raise _malformed(f"RVALID {rvalid} is not 0 or 1")
        if not rvalid:
            return cls(tid, hl)
        if hl not in HASH_LENGTHS:
            raise _malformed(f"HL {hl} is no hash's length")
        _need(data, _SUCCESS1.size + hl, "DH-HMAC-CHAP_Success1")
        return cls(tid, hl, bytes(data[_SUCCESS1.size : _SUCCESS1.size + hl]))


@dataclass(frozen=True, slots=True)
class Success2:
    """DH-HMAC-CHAP_Success2 (host to controller): the controller is authenticated."""

    tid: int

    ident: ClassVar = (AuthType.DHCHAP, MessageId.SUCCESS2)

    def encode(self) -> bytes:
        return _SUCCESS2.pack(*self.ident, 0, self.tid)

    @classmethod
    def decode(cls, data: bytes) -> Success2:
        _need(data, _SUCCESS2.size, "DH-HMAC-CHAP_Success2")
        return cls(_SUCCESS2.unpack_from(data)[3])


def _decode_failure(data: bytes) -> tuple[int, FailureReason]:
    _need(data, _FAILURE.size, "AUTH_Failure")
    _, _, _, tid, _, explanation = _FAILURE.unpack_from(data)
    if explanation not in FailureReason._value2member_map_:
        explanation = FailureReason.FAILED
    return tid, FailureReason(explanation)


@dataclass(frozen=True, slots=True)
class Failure1:
    """AUTH_Failure1 (controller to host): the transaction failed; the controller
    closes the connection. An unknown explanation reads as FAILED."""

    tid: int
    reason: FailureReason

    ident: ClassVar = (AuthType.COMMON, MessageId.FAILURE1)

    def encode(self) -> bytes:
        return _FAILURE.pack(*self.ident, 0, self.tid, FAILURE_REASON_CODE, self.reason)

    @classmethod
    def decode(cls, data: bytes) -> Failure1:
        return cls(*_decode_failure(data))


@dataclass(frozen=True, slots=True)
class Failure2:
    """AUTH_Failure2 (host to controller): the host ends the transaction."""

    tid: int
    reason: FailureReason

    ident: ClassVar = (AuthType.COMMON, MessageId.FAILURE2)

    def encode(self) -> bytes:
        return _FAILURE.pack(*self.ident, 0, self.tid, FAILURE_REASON_CODE, self.reason)

    @classmethod
    def decode(cls, data: bytes) -> Failure2:
        return cls(*_decode_failure(data))


Message = Negotiate | Challenge | Reply | Success1 | Success2 | Failure1 | Failure2

_DECODERS: dict[tuple[int, int], Callable[[bytes], Message]] = {
    cls.ident: cls.decode
    for cls in (Negotiate, Challenge, Reply, Success1, Success2, Failure1, Failure2)
}


def decode_message(data: bytes) -> Message:
    """The message in `data` (bytes after it are ignored).

    Raises:
        AuthError: unknown AUTH_TYPE/AUTH_ID (INCORRECT_MESSAGE) or malformed fields.
    """
    _need(data, 6, "an authentication message")
    decoder = _DECODERS.get((data[0], data[1]))
    if decoder is None:
        raise AuthError(
            f"unknown message type {data[0]:#04x}/{data[1]:#04x}",
            FailureReason.INCORRECT_MESSAGE,
        )
    return decoder(bytes(data))
