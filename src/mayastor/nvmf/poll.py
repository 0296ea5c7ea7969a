"""A bounded, adaptive busy-poll of one event loop for its NVMe/TCP connections.

At queue depth 1 a round trip over loopback costs each side only a few microseconds
of CPU; most of its time goes to the event loop sleeping in ``epoll_wait`` and the
kernel waking it again. A connection that has just sent something and expects an
answer soon (the initiator: a command is in flight; the target: it has just answered,
and a host's next command usually follows) calls `Waiter.expect`: for at most the
budget one callback, re-armed with ``call_soon`` every loop turn, keeps the loop from
sleeping (with a callback ready, uvloop and asyncio poll their sockets with timeout
0). `Waiter.arrived` (bytes came on that connection) ends its wait; the spin ends
when no connection of the loop waits any more or the budget of the latest `expect`
is spent.

Contract:

* A spin starts only from `Waiter.expect`: with nothing sent and nothing awaited the
  loop sleeps as before (an idle io-engine costs no CPU).
* A spin ends when the bytes awaited arrive, when its budget is spent, or never
  starts when the budget is 0 (the poll is off).
* Adaptive, per connection: bytes that arrive within the budget of a spin are a hit,
  later ones a miss. After `MISSES_TO_REST` misses in a row (the peer is idle, slow,
  or starved of CPU by our spinning: io-engines sharing one core) a connection stops
  spinning and only every `PROBE_EVERY`-th `expect` spins, to find out whether
  spinning pays again; a hit of such a probe ends the rest. An answer that comes
  quickly while the connection rests does not: a peer on the same core answers
  quickly exactly because nobody spins.

One poll serves all connections of a loop (`for_loop`), so that many waiting
connections still cost one callback per loop turn. `configure` sets the budget of
every poll of the process (the io-engine's ``--poll-budget-us``).

The poll also tells a loop's initiator connections when its target connections are
handing out a receive (`BoundedPoll.receiving`): the commands a nexus fans out for
the commands of one receive then leave together at the end of the loop turn, one
write per child, instead of the first alone at once and the rest after it.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable

DEFAULT_BUDGET_US = 50
"""Microseconds a spin lasts at most unless configured otherwise (measured: the
README's "Speed of the data path")."""
MISSES_TO_REST = 4
"""Misses in a row after which a connection stops spinning (but for probes)."""
PROBE_EVERY = 32
"""While resting, one `expect` in this many spins, to see whether spinning pays again."""


class BoundedPoll:
    """The busy-poll of one event loop.

    Args:
        loop: the loop whose sleep a spin prevents.
        budget_us: microseconds one spin lasts at most; 0 turns the poll off.
        clock: seconds, monotonic (``time.monotonic``; tests pass their own).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        budget_us: float = DEFAULT_BUDGET_US,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loop = loop
        self.clock = clock
        self.budget = 0.0
        """Seconds one spin lasts at most (0: off)."""
        self._waiting: set[Waiter] = set()
        self._deadline = 0.0
        self._scheduled = False
        self.generation = 0
        """Counts budget changes: a waiter's rest ends when the budget changes."""
        self.hits = 0
        """Answers that arrived within the budget (on all connections of the loop)."""
        self.misses = 0
        """Answers that arrived later than the budget."""
        self.turns = 0
        """Loop turns spent spinning."""
        self.receiving = 0
        """Target connections of the loop handing out a receive now (each counts up
        before and down after, exceptions included). While it is not 0, a command
        submitted to an idle initiator queue is written at the end of the loop turn,
        with the others the same receive causes, not at once."""
        self.budget_us = budget_us

    @property
    def budget_us(self) -> float:
        """Microseconds one spin lasts at most; 0 when the poll is off. Setting it ends
        every connection's rest (misses under another budget say nothing of this one)."""
        return self.budget * 1e6

    @budget_us.setter
    def budget_us(self, value: float) -> None:
        if value < 0:
            raise ValueError(f"a poll budget cannot be negative: {value} us")
        self.budget = value / 1e6
        self.generation += 1
        if not value:
            self._waiting.clear()

    @property
    def spinning(self) -> bool:
        """True while some connection waits within its budget and the loop spins."""
        return bool(self._waiting)

    def waiter(self) -> Waiter:
        """A connection's handle on this poll (its own hit/miss record)."""
        return Waiter(self)

    def _spin(self, waiter: Waiter, now: float) -> None:
        self._waiting.add(waiter)
        self._deadline = now + self.budget
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._turn)

    def _done(self, waiter: Waiter) -> None:
        self._waiting.discard(waiter)

    def _turn(self) -> None:
        self._scheduled = False
        waiting = self._waiting
        if not waiting:
            return
        if self.clock() >= self._deadline:
            waiting.clear()
            return
        self.turns += 1
        self._scheduled = True
        self._loop.call_soon(self._turn)


class Waiter:
    """One connection's expectation of bytes, with its own adaptive record (see the
    module): `expect` after sending, `arrived` on receiving, `close` when it is gone."""

    __slots__ = (
        "_expected_at", "_generation", "_misses", "_poll", "_skipped", "_spun", "waiting"
    )  # fmt: skip

    def __init__(self, poll: BoundedPoll) -> None:
        self._poll = poll
        self.waiting = False
        """True from `expect` until bytes arrive (spinning or not)."""
        self._expected_at = 0.0
        self._misses = 0
        self._skipped = 0
        self._spun = False
        self._generation = poll.generation

    @property
    def resting(self) -> bool:
        """True while misses in a row have stopped this connection's spins."""
        return self._misses >= MISSES_TO_REST and self._generation == self._poll.generation

    def expect(self) -> None:
        """Something was sent and an answer is expected: keep the loop from sleeping for
        up to the budget, unless the poll is off or this connection rests."""
        poll = self._poll
        if not poll.budget:
            return
        now = poll.clock()
        self.waiting = True
        self._expected_at = now
        if self._generation != poll.generation:
            self._generation = poll.generation
            self._misses = 0
        if self._misses >= MISSES_TO_REST:
            self._skipped += 1
            if self._skipped < PROBE_EVERY:
                self._spun = False
                return
            self._skipped = 0
        self._spun = True
        poll._spin(self, now)

    def arrived(self) -> None:
        """Bytes came in on this connection: its wait ends, a hit or a miss."""
        if not self.waiting:
            return
        self.waiting = False
        poll = self._poll
        poll._done(self)
        if self._generation != poll.generation:
            self._generation = poll.generation
            self._misses = 0
        if not self._spun:
            return
        if poll.clock() - self._expected_at <= poll.budget:
            poll.hits += 1
            self._misses = 0
        else:
            poll.misses += 1
            self._misses += 1

    def close(self) -> None:
        """The connection is gone: it waits no more."""
        self.waiting = False
        self._poll._done(self)


_budget_us: float = DEFAULT_BUDGET_US
_polls: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, BoundedPoll] = (
    weakref.WeakKeyDictionary()
)


def configure(budget_us: float) -> None:
    """Set the budget (0: off) of every poll of this process, those made from now on
    included.

    Raises:
        ValueError: a negative budget.
    """
    global _budget_us
    if budget_us < 0:
        raise ValueError(f"a poll budget cannot be negative: {budget_us} us")
    _budget_us = budget_us
    for poll in list(_polls.values()):
        poll.budget_us = budget_us


def for_loop(loop: asyncio.AbstractEventLoop) -> BoundedPoll:
    """The poll of `loop` (made on first use, with the process's budget)."""
    poll = _polls.get(loop)
    if poll is None:
        poll = _polls[loop] = BoundedPoll(loop, _budget_us)
    return poll
