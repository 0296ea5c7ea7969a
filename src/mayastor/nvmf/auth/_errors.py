"""The one error of the authentication protocol, and the reasons it carries."""

from __future__ import annotations

import enum


class FailureReason(enum.IntEnum):
    """Reason code explanations of AUTH_Failure1 and AUTH_Failure2 (reason code 01h,
    "authentication failure")."""

    FAILED = 0x01  # the response did not prove the secret
    PROTOCOL_NOT_USABLE = 0x02  # no DH-HMAC-CHAP descriptor in the negotiation
    CONCAT_MISMATCH = 0x03  # secure channel concatenation asked for or refused
    HASH_UNUSABLE = 0x04  # no hash function in common
    DHGROUP_UNUSABLE = 0x05  # no DH group in common
    INCORRECT_PAYLOAD = 0x06  # a message's fields are malformed
    INCORRECT_MESSAGE = 0x07  # a message that does not belong at this step


FAILURE_REASON_CODE = 0x01
"""The reason code (RESCODE) of every failure message: authentication failure."""


class AuthError(ValueError):
    """Authentication cannot go on: a malformed or unexpected message, nothing in
    common, or a response that does not prove the secret.

    Attributes:
        reason: what to put in the AUTH_Failure message that ends the transaction.
    """

    def __init__(self, message: str, reason: FailureReason) -> None:
        super().__init__(message)
        self.reason = reason
