"""NVMe Qualified Names (NVMe Base 1.4 section 7.9).

Two forms: ``nqn.YYYY-MM.reverse.domain`` optionally followed by ``:`` and a string
the naming authority chooses (``nqn.2019-05.io.openebs:<uuid>``), or the UUID form
``nqn.2014-08.org.nvmexpress:uuid:<uuid>``. At most 223 bytes of UTF-8.
"""

from __future__ import annotations

import re
import uuid as uuid_mod

from mayastor.nvmf.spec._errors import SpecError

MAX_NQN_BYTES = 223
DISCOVERY_NQN = "nqn.2014-08.org.nvmexpress.discovery"
"""The well-known NQN of a discovery subsystem."""
UUID_NQN_PREFIX = "nqn.2014-08.org.nvmexpress:uuid:"

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_NQN = re.compile(
    rf"nqn\.(?P<year>\d{{4}})-(?P<month>\d{{2}})\.(?P<domain>{_LABEL}(?:\.{_LABEL})*)"
    r"(?::(?P<rest>.+))?",
    re.DOTALL,
)


def validate_nqn(nqn: str) -> str:
    """Check that `nqn` is a well-formed NQN and return it unchanged.

    Args:
        nqn: the name to check.

    Returns:
        `nqn`.

    Raises:
        SpecError: too long, not of either form, a month outside 01-12, a bad UUID in
            the UUID form, or control characters.
    """
    if not isinstance(nqn, str):
        raise SpecError(f"an NQN is a string, not {type(nqn).__name__}")
    size = len(nqn.encode("utf-8"))
    if size > MAX_NQN_BYTES:
        raise SpecError(f"NQN is {size} bytes, more than {MAX_NQN_BYTES}: {nqn[:40]!r}...")
    if not nqn.isprintable():
        raise SpecError(f"NQN {nqn!r} has control characters")
    if nqn.startswith(UUID_NQN_PREFIX):
        text = nqn[len(UUID_NQN_PREFIX) :]
        try:
            parsed = uuid_mod.UUID(text)
        except ValueError as exc:
            raise SpecError(f"NQN {nqn!r} has an invalid UUID") from exc
        if str(parsed) != text.lower() or len(text) != 36:
            raise SpecError(f"NQN {nqn!r}: the UUID must be in 8-4-4-4-12 form")
        return nqn
    match = _NQN.fullmatch(nqn)
    if match is None:
        raise SpecError(f"NQN {nqn!r} is not of the form nqn.YYYY-MM.reverse.domain[:name]")
    if not 1 <= int(match["month"]) <= 12:
        raise SpecError(f"NQN {nqn!r} has month {match['month']}")
    return nqn


def uuid_nqn(value: uuid_mod.UUID) -> str:
    """The UUID-form NQN (what `nvme gen-hostnqn` makes)."""
    return f"{UUID_NQN_PREFIX}{value}"
