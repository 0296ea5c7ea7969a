"""The controller's side of one DH-HMAC-CHAP transaction on one queue.

Sans-I/O: `send(data)` takes the data of an Authentication Send, `receive()` gives
the data an Authentication Receive returns. What may come at each step is a table of
(state, what arrived) -> handler; anything else fails the transaction, and the next
Authentication Receive returns AUTH_Failure1, after which the controller closes the
connection. The queue is `authenticated` once the host proved its secret (and, when
the host asked, accepted the controller's proof with Success2).
"""

from __future__ import annotations

import enum
import hmac
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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

DEFAULT_HASHES = (HashId.SHA256, HashId.SHA384, HashId.SHA512)
"""The controller's choice of hash, most preferred first."""
DEFAULT_DHGROUPS = (
    DhGroupId.FFDHE2048,
    DhGroupId.FFDHE3072,
    DhGroupId.FFDHE4096,
    DhGroupId.FFDHE6144,
    DhGroupId.FFDHE8192,
    DhGroupId.NULL,
)
"""The controller's choice of DH group, most preferred first."""


class ControllerState(enum.Enum):
    NEGOTIATE = "negotiate"  # waiting for AUTH_Negotiate (Send)
    CHALLENGE = "challenge"  # the challenge is ready (Receive)
    REPLY = "reply"  # waiting for DH-HMAC-CHAP_Reply (Send)
    SUCCESS1 = "success1"  # Success1 is ready (Receive)
    SUCCESS2 = "success2"  # waiting for Success2 (Send), bidirectional only
    FAILURE1 = "failure1"  # Failure1 is ready (Receive)
    DONE = "done"  # authenticated
    FAILED = "failed"  # over; the connection is to be closed


@dataclass(frozen=True, slots=True)
class ControllerKeys:
    """What the controller holds for one host.

    Attributes:
        host_secret: the secret the host must prove.
        ctrl_secret: the secret the controller proves when the host asks; None: the
            controller cannot authenticate itself and refuses a host that asks.
    """

    host_secret: DhchapSecret
    ctrl_secret: DhchapSecret | None = None


_RECEIVE = "receive"


class ControllerAuthentication:
    """One queue's authentication, controller side.

    Args:
        keys: the host's secrets.
        hostnqn: the host NQN from Connect.
        subnqn: the subsystem NQN.
        seqnums: the controller's S1 counter (shared by its queues).
        hashes: hash functions the controller accepts, most preferred first.
        dhgroups: DH groups the controller accepts, most preferred first.
        random_bytes: randomness for challenges and private exponents.
    """

    def __init__(
        self,
        keys: ControllerKeys,
        *,
        hostnqn: str,
        subnqn: str,
        seqnums: SequenceNumbers,
        hashes: Sequence[HashId] = DEFAULT_HASHES,
        dhgroups: Sequence[DhGroupId] = DEFAULT_DHGROUPS,
        random_bytes: RandomBytes = os.urandom,
    ) -> None:
        self._keys = keys
        self._hostnqn = hostnqn
        self._subnqn = subnqn
        self._seqnums = seqnums
        self._hashes = tuple(hashes)
        self._dhgroups = tuple(dhgroups)
        self._random = random_bytes
        self.state = ControllerState.NEGOTIATE
        self.authenticated = False
        self.failure: FailureReason | None = None
        self.chosen: tuple[HashId, DhGroupId] | None = None
        self._tid = 0
        self._outgoing: bytes = b""
        self._challenge: Challenge | None = None
        self._private = 0
        self._table: dict[tuple[ControllerState, object], Callable[[Message | None], None]] = {
            (ControllerState.NEGOTIATE, Negotiate): self._on_negotiate,
            (ControllerState.DONE, Negotiate): self._on_negotiate,
            (ControllerState.CHALLENGE, _RECEIVE): self._deliver(ControllerState.REPLY),
            (ControllerState.REPLY, Reply): self._on_reply,
            (ControllerState.SUCCESS1, _RECEIVE): self._on_success1_delivered,
            (ControllerState.SUCCESS2, Success2): self._on_success2,
            (ControllerState.FAILURE1, _RECEIVE): self._deliver(ControllerState.FAILED),
        }

    def __repr__(self) -> str:
        return f"<ControllerAuthentication {self._hostnqn} {self.state.value}>"

    @property
    def over(self) -> bool:
        """True when the transaction failed and the connection must be closed."""
        return self.state is ControllerState.FAILED

    def send(self, data: bytes) -> None:
        """Take the data of an Authentication Send. Never raises: a bad message fails
        the transaction (a Failure2 from the host ends it at once)."""
        if self.state is ControllerState.FAILED:
            return
        try:
            message = decode_message(data)
        except AuthError as exc:
            self._fail(exc.reason)
            return
        if isinstance(message, Failure2):
            self.failure = message.reason
            self._end()
            return
        self._step(type(message), message)

    def receive(self) -> bytes:
        """The data for an Authentication Receive (AUTH_Failure1 when nothing else fits)."""
        if self.state is ControllerState.FAILED:
            return Failure1(self._tid, self.failure or FailureReason.FAILED).encode()
        self._step(_RECEIVE, None)
        return self._outgoing

    def _step(self, what: object, message: Message | None) -> None:
        handler = self._table.get((self.state, what))
        if handler is None:
            self._fail(FailureReason.INCORRECT_MESSAGE)
            if what == _RECEIVE:
                self._step(_RECEIVE, None)
            return
        if message is not None and message.tid != self._tid and not isinstance(message, Negotiate):
            self._fail(FailureReason.INCORRECT_MESSAGE)
            return
        try:
            handler(message)
        except AuthError as exc:
            self._fail(exc.reason)

    def _deliver(self, next_state: ControllerState) -> Callable[[Message | None], None]:
        def deliver(_: Message | None) -> None:
            self.state = next_state
            if next_state is ControllerState.FAILED:
                self._end()

        return deliver

    def _fail(self, reason: FailureReason) -> None:
        self.failure = reason
        self.authenticated = False
        self._outgoing = Failure1(self._tid, reason).encode()
        self.state = ControllerState.FAILURE1

    def _end(self) -> None:
        self.authenticated = False
        self.state = ControllerState.FAILED
        self._private = 0

    def _on_negotiate(self, message: Message | None) -> None:
        assert isinstance(message, Negotiate)
        self._tid = message.tid
        if message.sc_c != 0:
            raise AuthError(
                "secure channel concatenation is not offered", FailureReason.CONCAT_MISMATCH
            )
        hash_id = next((h for h in self._hashes if h in message.hash_ids), None)
        if hash_id is None:
            raise AuthError("no hash function in common", FailureReason.HASH_UNUSABLE)
        dhgroup = next((g for g in self._dhgroups if g in message.dhgroup_ids), None)
        if dhgroup is None:
            raise AuthError("no DH group in common", FailureReason.DHGROUP_UNUSABLE)
        self.chosen = (hash_id, dhgroup)
        group = dhgroup.group
        dh_value = b""
        if group is not None:
            self._private = group.private_key(self._random)
            dh_value = group.public_value(self._private)
        self._challenge = Challenge(
            self._tid, hash_id, dhgroup, self._seqnums.next(),
            self._random(hash_id.length), dh_value,
        )  # fmt: skip
        self._outgoing = self._challenge.encode()
        self.state = ControllerState.CHALLENGE

    def _on_reply(self, message: Message | None) -> None:
        assert isinstance(message, Reply)
        assert self._challenge is not None
        hash_id = self._challenge.hash_id
        if len(message.response) != hash_id.length:
            raise AuthError("HL is not the chosen hash's length", FailureReason.INCORRECT_PAYLOAD)
        c1 = self._challenge.challenge
        c2 = message.challenge
        group = self._challenge.dhgroup.group
        if group is None:
            if message.dh_value:
                raise AuthError("a DH value with the NULL group", FailureReason.INCORRECT_PAYLOAD)
        else:
            session_key = group.shared_secret(self._private, message.dh_value)
            self._private = 0
            c1 = augmented_challenge(hash_id, session_key, c1)
            if c2 is not None:
                c2 = augmented_challenge(hash_id, session_key, c2)
        expected = host_response(
            hash_id,
            self._keys.host_secret.transformed(self._hostnqn),
            c1,
            seqnum=self._challenge.seqnum,
            tid=self._tid,
            hostnqn=self._hostnqn,
            subnqn=self._subnqn,
        )
        if not hmac.compare_digest(expected, message.response):
            raise AuthError("the host's response does not prove its secret", FailureReason.FAILED)
        r2 = None
        if c2 is not None:
            if self._keys.ctrl_secret is None or message.seqnum == 0:
                raise AuthError("the controller holds no secret to prove", FailureReason.FAILED)
            r2 = controller_response(
                hash_id,
                self._keys.ctrl_secret.transformed(self._subnqn),
                c2,
                seqnum=message.seqnum,
                tid=self._tid,
                hostnqn=self._hostnqn,
                subnqn=self._subnqn,
            )
        self._outgoing = Success1(self._tid, hash_id.length, r2).encode()
        self.state = ControllerState.SUCCESS1

    def _on_success1_delivered(self, _: Message | None) -> None:
        assert self._outgoing
        bidirectional = Success1.decode(self._outgoing).response is not None
        if bidirectional:
            self.state = ControllerState.SUCCESS2
        else:
            self.state = ControllerState.DONE
            self.authenticated = True

    def _on_success2(self, _: Message | None) -> None:
        self.state = ControllerState.DONE
        self.authenticated = True
