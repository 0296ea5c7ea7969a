"""The write data one connection has asked for by R2T and not yet received (sans I/O).

A queue pair hands each transfer that needs R2Ts to its `OwedWrites` before asking for
any data. The whole transfer is reserved against the connection's bound
(`max_pending_write_bytes`) and the target's (`WriteBudget`); one that does not fit
waits, in order, and is started (its R2Ts sent) as soon as data that came in, or a
connection that went away, makes room. The connection is closed when it owes data
and sends none for `write_data_timeout`: its timer starts when the target's periodic
check first sees the debt, and restarts with every H2CData PDU.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from mayastor.target._config import TargetConfig
from mayastor.target._limits import LimitLog, WriteBudget


class Sized(Protocol):
    @property
    def length(self) -> int:
        """Bytes of host data the transfer needs."""


T = TypeVar("T", bound=Sized)


class OwedWrites(Generic[T]):
    """The reservations and the waiting transfers of one connection.

    Args:
        config: the target's bounds.
        budget: the target's shared write-data budget.
        limits: where limit hits are logged.
        peer: the host's address, for the log.
        start: sends the R2Ts of a transfer once it is reserved.
        stalled: closes the connection (its owed data stopped coming).
    """

    def __init__(
        self,
        config: TargetConfig,
        budget: WriteBudget,
        limits: LimitLog,
        *,
        peer: str,
        start: Callable[[T], None],
        stalled: Callable[[], None],
    ) -> None:
        self._limit = config.max_pending_write_bytes
        self._timeout = config.write_data_timeout
        self._budget = budget
        self._limits = limits
        self._peer = peer
        self._start = start
        self._stalled = stalled
        self.reserved = 0
        self._waiting: deque[T] = deque()
        self._data_seen: float | None = None  # None: the timer starts at the next check

    @property
    def waiting(self) -> int:
        """Transfers whose R2Ts wait for room."""
        return len(self._waiting)

    def begin(self, transfer: T, now: float) -> None:
        """Start `transfer` now if both bounds allow it, else queue it."""
        if self._waiting or not self._reserve(transfer.length, now):
            self._waiting.append(transfer)
            return
        self._start(transfer)

    def arrived(self, now: float) -> None:
        """Owed data came in (an H2CData PDU): the stall timer restarts."""
        self._data_seen = now

    def received(self, length: int) -> None:
        """A transfer's data is all in: its reservation goes back, waiting ones start."""
        self.reserved -= length
        if not self.reserved:
            self._budget.settled(self)
        self._budget.release(length)
        if self._waiting:
            self.admit_waiting()

    def end(self) -> list[T]:
        """The connection ends: release everything; the transfers that never started."""
        never = list(self._waiting)
        self._waiting.clear()
        reserved, self.reserved = self.reserved, 0
        self._budget.forget(self)
        if reserved:
            self._budget.release(reserved)
        return never

    def _reserve(self, length: int, now: float) -> bool:
        if self.reserved + length > self._limit:
            self._limits.hit(
                "max_pending_write_bytes", now, "%s owes %d bytes of write data; the next "
                "command waits for its R2T", self._peer, self.reserved,
            )  # fmt: skip
            return False
        if not self._budget.try_reserve(length, self):
            self._limits.hit(
                "max_pending_write_bytes_total", now, "hosts owe %d bytes of write data; "
                "%s waits for its R2T", self._budget.reserved, self._peer,
            )  # fmt: skip
            return False
        self._take(length)
        return True

    def _take(self, length: int) -> None:
        if not self.reserved:
            self._data_seen = None
        self.reserved += length

    # ------------------------------------------------------------------ budget's calls

    def admit_waiting(self) -> bool:
        """Start the waiting transfers the bounds now allow.

        Returns:
            False while the target's budget still holds the next one back.
        """
        waiting = self._waiting
        while waiting:
            head = waiting[0]
            if self.reserved + head.length > self._limit:
                break
            if not self._budget.try_reserve(head.length, self):
                return False
            self._take(head.length)
            waiting.popleft()
            self._start(head)
        self._budget.leave_line(self)
        return True

    def check_write_data(self, now: float) -> None:
        """Close the connection when it owes data and sent none for the timeout."""
        if not self.reserved:
            return
        if self._data_seen is None:
            self._data_seen = now
        elif now - self._data_seen >= self._timeout:
            self._limits.hit(
                "write_data_timeout", now, "%s owes %d bytes of write data and sent none "
                "for %s s; closed", self._peer, self.reserved, self._timeout,
            )  # fmt: skip
            self._stalled()
