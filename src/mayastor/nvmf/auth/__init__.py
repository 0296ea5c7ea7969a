"""NVMe in-band authentication, DH-HMAC-CHAP (NVMe Base 2.0 section 8.13; TP 8006).

Sans-I/O: secrets in their ``DHHC-1:XX:...:`` form (`DhchapSecret`), the messages
carried by Fabrics Authentication Send and Receive (`decode_message` and the message
classes), the hashes and RFC 7919 groups, and the two sides of a transaction as
state machines (`HostAuthentication`, `ControllerAuthentication`). Bytes in, objects
and bytes out; imports nothing of ours, touches no socket.
"""

from mayastor.nvmf.auth._controller import (
    DEFAULT_DHGROUPS,
    DEFAULT_HASHES,
    ControllerAuthentication,
    ControllerKeys,
    ControllerState,
)
from mayastor.nvmf.auth._crypto import (
    DhGroupId,
    FfdheGroup,
    HashId,
    SequenceNumbers,
    augmented_challenge,
    controller_response,
    host_response,
)
from mayastor.nvmf.auth._errors import AuthError, FailureReason
from mayastor.nvmf.auth._host import (
    ALL_DHGROUPS,
    ALL_HASHES,
    AuthRejected,
    HostAuthentication,
    HostState,
)
from mayastor.nvmf.auth._messages import (
    SECP_DHCHAP,
    SPSP_DHCHAP,
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
from mayastor.nvmf.auth._secret import DhchapSecret, SecretError

__all__ = [
    "ALL_DHGROUPS",
    "ALL_HASHES",
    "DEFAULT_DHGROUPS",
    "DEFAULT_HASHES",
    "SECP_DHCHAP",
    "SPSP_DHCHAP",
    "AuthError",
    "AuthRejected",
    "Challenge",
    "ControllerAuthentication",
    "ControllerKeys",
    "ControllerState",
    "DhGroupId",
    "DhchapSecret",
    "Failure1",
    "Failure2",
    "FailureReason",
    "FfdheGroup",
    "HashId",
    "HostAuthentication",
    "HostState",
    "Message",
    "Negotiate",
    "Reply",
    "SecretError",
    "SequenceNumbers",
    "Success1",
    "Success2",
    "augmented_challenge",
    "controller_response",
    "decode_message",
    "host_response",
]
