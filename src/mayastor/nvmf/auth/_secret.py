"""DH-HMAC-CHAP secrets in their textual form, ``DHHC-1:XX:<base64>:``.

XX names the hash that transforms the secret before use (00 none, 01 SHA-256,
02 SHA-384, 03 SHA-512); the base64 text holds the secret (32, 48 or 64 bytes; with a
transformation hash, exactly that hash's length) followed by its CRC-32 (the zlib
polynomial) in little-endian order. The form `nvme gen-dhchap-key` prints and
`nvme connect --dhchap-secret` and the Linux target take.
"""

from __future__ import annotations

import base64
import binascii
import os
import zlib
from dataclasses import dataclass, field

from mayastor.nvmf.auth._crypto import HashId

PREFIX = "DHHC-1"
SECRET_LENGTHS = (32, 48, 64)
TRANSFORM_SUFFIX = b"NVMe-over-Fabrics"


class SecretError(ValueError):
    """Text that is not a valid DHHC-1 secret (says which part is wrong)."""


@dataclass(frozen=True, slots=True)
class DhchapSecret:
    """A DH-HMAC-CHAP secret.

    Attributes:
        key: the secret bytes (32, 48 or 64).
        transform: the hash that transforms it with an NQN before use; None: used as is.
    """

    key: bytes = field(repr=False)
    transform: HashId | None = None

    def __post_init__(self) -> None:
        if len(self.key) not in SECRET_LENGTHS:
            raise SecretError(f"a secret is 32, 48 or 64 bytes, not {len(self.key)}")
        if self.transform is not None and len(self.key) != self.transform.length:
            raise SecretError(
                f"a secret transformed with {self.transform.name} is "
                f"{self.transform.length} bytes, not {len(self.key)}"
            )

    def __repr__(self) -> str:
        return f"DhchapSecret(<{len(self.key)} bytes>, transform={self.transform!r})"

    @classmethod
    def parse(cls, text: str) -> DhchapSecret:
        """Read ``DHHC-1:XX:<base64>:`` (a missing final colon is accepted).

        Raises:
            SecretError: wrong prefix, unknown hash, bad base64, length or CRC.
        """
        if not isinstance(text, str):
            raise SecretError("a secret is text")
        parts = text.strip().split(":")
        if parts and parts[-1] == "":
            parts.pop()
        if len(parts) != 3 or parts[0] != PREFIX:
            raise SecretError("a secret looks like DHHC-1:XX:<base64>:")
        hash_text, encoded = parts[1], parts[2]
        if len(hash_text) != 2 or not hash_text.isdigit():
            raise SecretError(f"transformation hash {hash_text!r} is not two digits")
        code = int(hash_text)
        if code > max(HashId):
            raise SecretError(f"transformation hash {code:02} is not 00..03")
        try:
            raw = base64.b64decode(encoded.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise SecretError("the secret is not valid base64") from exc
        key, crc = raw[:-4], raw[-4:]
        if len(key) not in SECRET_LENGTHS:
            raise SecretError(f"a secret is 32, 48 or 64 bytes, not {max(0, len(key))}")
        if zlib.crc32(key).to_bytes(4, "little") != crc:
            raise SecretError("the secret's CRC-32 does not match")
        return cls(key, HashId(code) if code else None)

    def format(self) -> str:
        """The textual form (`parse` reads it back)."""
        raw = self.key + zlib.crc32(self.key).to_bytes(4, "little")
        code = int(self.transform) if self.transform is not None else 0
        return f"{PREFIX}:{code:02}:{base64.b64encode(raw).decode('ascii')}:"

    @classmethod
    def generate(cls, length: int = 32, transform: HashId | None = None) -> DhchapSecret:
        """A new random secret."""
        return cls(os.urandom(length), transform)

    def transformed(self, nqn: str) -> bytes:
        """The key used in responses: HMAC(secret, NQN || "NVMe-over-Fabrics") with the
        transformation hash, or the secret itself when it names none."""
        if self.transform is None:
            return self.key
        return self.transform.hmac(self.key, nqn.encode(), TRANSFORM_SUFFIX)
