"""Bearer tokens of the REST API and what each may do.

A token file has one token a line, ``ROLE TOKEN``, where ROLE is ``admin`` (every
call) or ``read-only`` (GET and HEAD only); blank lines and lines starting with ``#``
are ignored. Tokens are at least 16 printable characters without spaces. The file is
read once, at start; a malformed one stops the process with the line at fault.
"""

from __future__ import annotations

import enum
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

from mayastor.errors import InvalidArgument

MIN_TOKEN_LENGTH = 16
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Role(enum.Enum):
    """What a token may do."""

    ADMIN = "admin"
    READ_ONLY = "read-only"

    def allows(self, method: str) -> bool:
        """Whether a request with HTTP `method` is within this role."""
        return self is Role.ADMIN or method.upper() in READ_METHODS


@dataclass(frozen=True)
class TokenTable:
    """The tokens the REST API accepts, each with its role."""

    roles: tuple[tuple[str, Role], ...]

    @classmethod
    def parse(cls, text: str, source: str = "the token file") -> TokenTable:
        """Parse the lines of a token file.

        Raises:
            InvalidArgument: a line is malformed, a role unknown, a token too short or
                given twice, or no token at all.
        """
        roles: list[tuple[str, Role]] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split()
            if len(fields) != 2:
                raise InvalidArgument(f"{source} line {number}: expected 'ROLE TOKEN'")
            role_name, token = fields
            try:
                role = Role(role_name)
            except ValueError:
                known = ", ".join(r.value for r in Role)
                raise InvalidArgument(
                    f"{source} line {number}: unknown role {role_name!r} (one of {known})"
                ) from None
            if len(token) < MIN_TOKEN_LENGTH or not token.isprintable():
                raise InvalidArgument(
                    f"{source} line {number}: a token has at least {MIN_TOKEN_LENGTH} "
                    "printable characters"
                )
            if any(token == known for known, _ in roles):
                raise InvalidArgument(f"{source} line {number}: the token is given twice")
            roles.append((token, role))
        if not roles:
            raise InvalidArgument(f"{source} holds no token")
        return cls(tuple(roles))

    @classmethod
    def load(cls, path: str | Path) -> TokenTable:
        """Read and parse a token file.

        Raises:
            InvalidArgument: it cannot be read or is malformed.
        """
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"cannot read the token file {path}: {exc}") from None
        return cls.parse(text, source=str(path))

    def role_of(self, token: str) -> Role | None:
        """The role of `token`, or None when it is not one of ours.

        Every known token is compared in constant time, so the answer's timing says
        nothing about how close a guess came.
        """
        found: Role | None = None
        candidate = token.encode()
        for known, role in self.roles:
            if hmac.compare_digest(known.encode(), candidate):
                found = role
        return found


def new_token() -> str:
    """A fresh random token (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header (None when absent)."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
