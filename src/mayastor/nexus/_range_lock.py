"""Range locks over block addresses: front-end writes against rebuild copies.

A rebuild copies a segment by reading the source and writing the destination. If a
front-end write to that segment landed on the source after the read and on the
destination before the copy's write, the copy would put older data over newer. So a
copy holds its segment exclusively, and every front-end write (write, write zeroes,
unmap) holds its range shared: a copy waits for the writes in flight on its range,
and a write to a segment being copied waits for the copy.

Requests are served in arrival order where they overlap, so a stream of writes to a
segment cannot starve its copy, nor the copy the writes. Ranges that do not overlap
never wait for each other.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Request:
    start: int
    end: int
    exclusive: bool
    token: int
    future: asyncio.Future[None] | None = field(default=None)


def _overlap(a: _Request, b: _Request) -> bool:
    return (
        (a.exclusive or b.exclusive)
        and a.start < b.end
        and b.start < a.end
        and a.start < a.end
        and b.start < b.end
    )


class RangeLock:
    """Shared and exclusive locks on ranges of blocks."""

    def __init__(self) -> None:
        self._held: dict[int, _Request] = {}
        self._waiting: deque[_Request] = deque()
        self._next_token = 0

    @property
    def held(self) -> int:
        """How many locks are held now."""
        return len(self._held)

    @property
    def waiting(self) -> int:
        """How many requests wait now."""
        return len(self._waiting)

    async def acquire(self, lba: int, nblocks: int, *, exclusive: bool) -> int:
        """Wait until blocks ``lba .. lba + nblocks - 1`` can be held, then hold them.

        Args:
            lba: first block.
            nblocks: number of blocks (0 holds nothing and never waits).
            exclusive: True for a rebuild copy, False for a front-end write.

        Returns:
            a token for `release`.
        """
        self._next_token += 1
        request = _Request(lba, lba + nblocks, exclusive, self._next_token)
        if self._grantable(request, self._waiting):
            self._held[request.token] = request
            return request.token
        future = request.future = asyncio.get_running_loop().create_future()
        self._waiting.append(request)
        try:
            await future
        except asyncio.CancelledError:
            if request.token in self._held:
                self.release(request.token)
            elif request in self._waiting:
                self._waiting.remove(request)
                self._grant_waiting()
            raise
        return request.token

    def try_acquire(self, lba: int, nblocks: int, *, exclusive: bool) -> int | None:
        """Hold the range now if nothing holds or waits for an overlapping one.

        Returns:
            a token for `release`, or None (nothing is held, nothing waits).
        """
        self._next_token += 1
        request = _Request(lba, lba + nblocks, exclusive, self._next_token)
        if not self._grantable(request, self._waiting):
            return None
        self._held[request.token] = request
        return request.token

    def release(self, token: int) -> None:
        """Give back the range held under `token`; waiters it blocked may go on."""
        del self._held[token]
        if self._waiting:
            self._grant_waiting()

    def _grantable(self, request: _Request, ahead: deque[_Request] | list[_Request]) -> bool:
        for held in self._held.values():
            if _overlap(request, held):
                return False
        return all(not _overlap(request, other) for other in ahead)

    def _grant_waiting(self) -> None:
        still: list[_Request] = []
        for request in self._waiting:
            assert request.future is not None
            if request.future.done():
                continue  # its waiter was cancelled and will not come back for it
            if self._grantable(request, still):
                self._held[request.token] = request
                request.future.set_result(None)
            else:
                still.append(request)
        self._waiting = deque(still)
