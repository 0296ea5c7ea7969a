"""Bounds on what hosts can make the target hold: the shared write-data budget and the
log of limits hit.

`WriteBudget` counts the bytes of host data every connection of a target has asked
for by R2T and not yet received. A connection reserves a command's whole transfer
before its first R2T and gives it back once the data is in (or the connection ends);
a connection that cannot reserve waits in line and is called back, in order, as
others give bytes back. The budget also knows which connections owe data, so that
the target's timer can close those that stopped sending it.

`LimitLog` logs each kind of limit hit at once, then at most once a minute with a
count of the hits in between, so that a flood of refusals cannot flood the log.

Nothing here touches a socket; time is an argument.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger("mayastor.target")

LOG_INTERVAL = 60.0
"""Seconds between two log lines of the same limit."""


class LimitLog:
    """Rate-limited warnings, one stream per limit name."""

    def __init__(self, interval: float = LOG_INTERVAL) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._hidden: dict[str, int] = {}

    def hit(self, limit: str, now: float, message: str, *args: object) -> None:
        """Log `message` for `limit` unless one was logged less than the interval ago."""
        last = self._last.get(limit)
        if last is not None and now - last < self._interval:
            self._hidden[limit] = self._hidden.get(limit, 0) + 1
            return
        hidden = self._hidden.pop(limit, 0)
        self._last[limit] = now
        suffix = f" ({hidden} more since the last report)" if hidden else ""
        log.warning("limit %s: " + message + "%s", limit, *args, suffix)


class Owing(Protocol):
    """A connection that reserves write data (what the budget calls back)."""

    def admit_waiting(self) -> bool:
        """Start the transfers waiting for budget; False while the shared budget still
        blocks the next one (True once none waits, or only its own limit holds it)."""

    def check_write_data(self, now: float) -> None:
        """Close the connection when the data it owes has not moved for too long."""


class WriteBudget:
    """The write data every connection asked for and has not yet received.

    Args:
        limit: the most bytes reserved at once over all connections.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.reserved = 0
        self._waiting: dict[Owing, None] = {}
        self._owing: dict[Owing, None] = {}

    def try_reserve(self, size: int, owner: Owing) -> bool:
        """Reserve `size` bytes for `owner`; False, with `owner` in line, when that
        would pass the limit or when others are in line before it."""
        waiting = self._waiting
        if (waiting and next(iter(waiting)) is not owner) or self.reserved + size > self.limit:
            waiting.setdefault(owner, None)
            return False
        self.reserved += size
        self._owing[owner] = None
        return True

    def leave_line(self, owner: Owing) -> None:
        """`owner` waits for the shared budget no more."""
        self._waiting.pop(owner, None)

    def release(self, size: int) -> None:
        """Give back `size` bytes and let waiting connections in, oldest first."""
        self.reserved -= size
        waiting = self._waiting
        while waiting:
            first = next(iter(waiting))
            if not first.admit_waiting():
                return
            waiting.pop(first, None)

    def settled(self, owner: Owing) -> None:
        """`owner` owes no data any more."""
        self._owing.pop(owner, None)

    def forget(self, owner: Owing) -> None:
        """`owner` is closed: it neither owes nor waits."""
        self._owing.pop(owner, None)
        self._waiting.pop(owner, None)

    @property
    def waiting(self) -> int:
        """Connections in line for the shared budget."""
        return len(self._waiting)

    @property
    def owing(self) -> int:
        """Connections that hold reserved bytes."""
        return len(self._owing)

    def check(self, now: float) -> None:
        """Ask every connection that owes data whether it stalled."""
        for owner in list(self._owing):
            owner.check_write_data(now)
