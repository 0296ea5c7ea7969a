"""The host's side of one DH-HMAC-CHAP transaction on one queue.

Sans-I/O: the shell sends `negotiate()` with Authentication Send, hands what an
Authentication Receive returned to `challenge(data)` and sends the reply it gets,
then hands the next receive to `success1(data)` and sends the Success2 it may get.
A step that fails raises `AuthError`; unless it is `AuthRejected` (the controller
sent AUTH_Failure1 and ends the connection itself) the shell then sends
`failure2(reason)` before giving up.
"""

from __future__ import annotations

import enum
import hmac
import os
from collections.abc import Sequence

from mayastor.nvmf.auth._crypto import (
    DhGroupId,
    HashId,
    RandomBytes,
    SequenceNumbers,
    augmented_challenge,
    controller_response,
    host_response,
)
from mayastor.nvmf.auth._errors import AuthError, FailureReason
from mayastor.nvmf.auth._messages import (
    Challenge,
    Failure1,
    Failure2,
    Message,
    Negotiate,
    Reply,
    Success1,
    Success2,
    decode_message,
)
from mayastor.nvmf.auth._secret import DhchapSecret

ALL_HASHES = (HashId.SHA256, HashId.SHA384, HashId.SHA512)
ALL_DHGROUPS = tuple(DhGroupId)


class AuthRejected(AuthError):
    """The controller refused the host (AUTH_Failure1); it closes the connection."""


class HostState(enum.Enum):
    START = "start"
    NEGOTIATED = "negotiated"  # AUTH_Negotiate sent, the challenge is awaited
    REPLIED = "replied"  # the reply sent, Success1 is awaited
    DONE = "done"
    FAILED = "failed"


_EXPECTED = {
    HostState.NEGOTIATED: Challenge,
    HostState.REPLIED: Success1,
}


class HostAuthentication:
    """One queue's authentication, host side.

    Args:
        host_secret: the host's secret (transformed with `hostnqn`).
        ctrl_secret: when given, the controller must prove it (bidirectional).
        hostnqn: our host NQN, as sent in Connect.
        subnqn: the subsystem NQN.
        tid: the transaction id.
        seqnums: the host's S2 counter.
        hashes: hash functions offered.
        dhgroups: DH groups offered.
    """

    def __init__(
        self,
        host_secret: DhchapSecret,
        ctrl_secret: DhchapSecret | None,
        *,
        hostnqn: str,
        subnqn: str,
        tid: int,
        seqnums: SequenceNumbers,
        hashes: Sequence[HashId] = ALL_HASHES,
        dhgroups: Sequence[DhGroupId] = ALL_DHGROUPS,
        random_bytes: RandomBytes = os.urandom,
    ) -> None:
        self._host_secret = host_secret
        self._ctrl_secret = ctrl_secret
        self._hostnqn = hostnqn
        self._subnqn = subnqn
        self._tid = tid & 0xFFFF
        self._seqnums = seqnums
        self._hashes = tuple(hashes)
        self._dhgroups = tuple(dhgroups)
        self._random = random_bytes
        self.state = HostState.START
        self.chosen: tuple[HashId, DhGroupId] | None = None
        self._expected_r2 = b""

    def __repr__(self) -> str:
        return f"<HostAuthentication {self._subnqn} {self.state.value}>"

    @property
    def bidirectional(self) -> bool:
        return self._ctrl_secret is not None

    def negotiate(self) -> bytes:
        """AUTH_Negotiate, offering every hash and group we were given."""
        if self.state is not HostState.START:
            raise AuthError("negotiation was already sent", FailureReason.INCORRECT_MESSAGE)
        self.state = HostState.NEGOTIATED
        return Negotiate(
            self._tid, tuple(int(h) for h in self._hashes), tuple(int(g) for g in self._dhgroups)
        ).encode()

    def challenge(self, data: bytes) -> bytes:
        """The reply to the controller's challenge.

        Raises:
            AuthRejected: the controller sent AUTH_Failure1.
            AuthError: the challenge is malformed or names what we did not offer.
        """
        message = self._expect(data, HostState.NEGOTIATED)
        assert isinstance(message, Challenge)
        if message.hash_id not in self._hashes:
            raise self._failed(
                "the controller chose a hash we did not offer", FailureReason.HASH_UNUSABLE
            )
        if message.dhgroup not in self._dhgroups:
            raise self._failed(
                "the controller chose a DH group we did not offer", FailureReason.DHGROUP_UNUSABLE
            )
        hash_id = message.hash_id
        self.chosen = (hash_id, message.dhgroup)
        c1 = message.challenge
        c2 = self._random(hash_id.length) if self._ctrl_secret is not None else None
        group = message.dhgroup.group
        dh_value = b""
        if group is None:
            if message.dh_value:
                raise self._failed(
                    "a DH value with the NULL group", FailureReason.INCORRECT_PAYLOAD
                )
        else:
            private = group.private_key(self._random)
            dh_value = group.public_value(private)
            try:
                session_key = group.shared_secret(private, message.dh_value)
            except AuthError as exc:
                raise self._failed(str(exc), exc.reason) from exc
            c1 = augmented_challenge(hash_id, session_key, c1)
        r1 = host_response(
            hash_id,
            self._host_secret.transformed(self._hostnqn),
            c1,
            seqnum=message.seqnum,
            tid=self._tid,
            hostnqn=self._hostnqn,
            subnqn=self._subnqn,
        )
        s2 = 0
        if c2 is not None:
            assert self._ctrl_secret is not None
            s2 = self._seqnums.next()
            augmented = c2 if group is None else augmented_challenge(hash_id, session_key, c2)
            self._expected_r2 = controller_response(
                hash_id,
                self._ctrl_secret.transformed(self._subnqn),
                augmented,
                seqnum=s2,
                tid=self._tid,
                hostnqn=self._hostnqn,
                subnqn=self._subnqn,
            )
        self.state = HostState.REPLIED
        return Reply(self._tid, r1, s2, c2, dh_value).encode()

    def success1(self, data: bytes) -> bytes | None:
        """Check Success1; the Success2 to send when the controller proved its secret,
        None when it was not asked to.

        Raises:
            AuthRejected: the controller sent AUTH_Failure1 (our secret is wrong).
            AuthError: the controller's response does not prove its secret.
        """
        message = self._expect(data, HostState.REPLIED)
        assert isinstance(message, Success1)
        assert self.chosen is not None
        if message.hash_length != self.chosen[0].length:
            raise self._failed(
                "Success1 names another hash length", FailureReason.INCORRECT_PAYLOAD
            )
        if self._ctrl_secret is None:
            self.state = HostState.DONE
            return None
        if message.response is None or not hmac.compare_digest(message.response, self._expected_r2):
            raise self._failed("the controller did not prove its secret", FailureReason.FAILED)
        self.state = HostState.DONE
        return Success2(self._tid).encode()

    def failure2(self, reason: FailureReason) -> bytes:
        """AUTH_Failure2, ending the transaction from our side."""
        self.state = HostState.FAILED
        return Failure2(self._tid, reason).encode()

    def _failed(self, text: str, reason: FailureReason) -> AuthError:
        self.state = HostState.FAILED
        return AuthError(text, reason)

    def _expect(self, data: bytes, state: HostState) -> Message:
        if self.state is not state:
            raise self._failed(
                f"not waiting for a message in state {self.state.value}",
                FailureReason.INCORRECT_MESSAGE,
            )
        try:
            message = decode_message(data)
        except AuthError as exc:
            raise self._failed(str(exc), exc.reason) from exc
        if isinstance(message, Failure1):
            self.state = HostState.FAILED
            raise AuthRejected(
                f"the controller refused authentication: {message.reason.name}", message.reason
            )
        if not isinstance(message, _EXPECTED[state]):
            raise self._failed(
                f"unexpected {type(message).__name__}", FailureReason.INCORRECT_MESSAGE
            )
        if message.tid != self._tid:
            raise self._failed(
                f"transaction id {message.tid}, expected {self._tid}",
                FailureReason.INCORRECT_MESSAGE,
            )
        return message
