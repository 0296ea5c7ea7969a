"""The one error of the spec structures."""

from __future__ import annotations


class SpecError(ValueError):
    """A structure or value does not follow the NVMe layout it claims.

    Raised when decoding bytes that cannot be this structure (wrong length, text that
    is not valid, a field out of its range) and when encoding values that do not fit.
    A target answers with an Invalid Field status (or, for Connect, with the offset).

    Attributes:
        offset: byte offset of the offending field within its structure, when known.
    """

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset
