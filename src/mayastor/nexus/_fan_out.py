"""The fan-out of one I/O to several children, all of which must finish.

See `fan_out` (awaited) and `SubmittedWrite` (by callback). Kept apart from the nexus
so the rules (which child runs inline, what a cancelled caller means, how failures are
gathered) read in one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from mayastor.bdev import BlockDevice, Buffer, IoRequest, finish_in_task
from mayastor.errors import AbortRequested, DeviceError
from mayastor.nexus._child import NexusChild
from mayastor.nexus._core import device_of

ChildOp = Callable[[BlockDevice], Coroutine[Any, Any, object]]
"""One child's part of an I/O: a coroutine function of its device."""
Failures = list[tuple[NexusChild, Exception]]
"""The children an I/O failed on, with their errors."""


async def fan_out(
    children: tuple[NexusChild, ...], op: ChildOp
) -> tuple[list[tuple[NexusChild, Exception]], bool]:
    """Run `op` on every child's device at once.

    An in-process child's coroutine first runs inline, in the caller's task: a device
    that completes without waiting (malloc, a cached lvol write) costs no Task and no
    trip through the event loop; one that has to wait gets a Task to finish in. So the
    in-process drivers must not tie themselves to the current task before their first
    wait (no ``asyncio.timeout`` around it). A remote child always waits (and its
    initiator does use timeouts bound to its task), so it gets a Task at once. The
    caller waits for the Tasks with one future and a countdown.

    Once started, the children's I/O runs to its end even if the caller is
    cancelled: mirrors must not be left differing because one child's write was cut
    short and another's was not. The caller settles the outcome, then passes the
    cancellation on. (A single child's I/O is simply awaited: there is no mirror.)

    Returns:
        the children that failed with their errors, and whether the caller was
        cancelled meanwhile.
    """
    if len(children) == 1:
        child = children[0]
        try:
            await op(device_of(child))
        except Exception as exc:
            return [(child, exc)], False
        return [], False
    failures: list[tuple[NexusChild, Exception]] = []
    waiting: list[tuple[NexusChild, asyncio.Task[object]]] = []
    loop = asyncio.get_running_loop()
    for child in children:
        coro = op(device_of(child))
        if not child.local:
            waiting.append((child, loop.create_task(coro)))
            continue
        try:
            suspended_on = coro.send(None)
        except StopIteration:
            continue
        except asyncio.CancelledError:
            failures.append((child, AbortRequested(f"I/O to {child.uri} was cancelled")))
            continue
        except Exception as exc:
            failures.append((child, exc))
            continue
        waiting.append((child, loop.create_task(finish_in_task(coro, suspended_on))))
    if not waiting:
        return failures, False
    join = _Join(loop, len(waiting))
    for _, task in waiting:
        task.add_done_callback(join.one_done)
    cancelled = False
    while True:
        try:
            await join.future
            break
        except asyncio.CancelledError:
            cancelled = True
            join.renew()
    for child, task in waiting:
        if task.cancelled():
            failures.append((child, AbortRequested(f"I/O to {child.uri} was cancelled")))
            continue
        error = task.exception()
        if error is not None:
            if not isinstance(error, Exception):
                raise error
            failures.append((child, error))
    if len(failures) > 1:
        failures.sort(key=lambda failure: children.index(failure[0]))
    return failures, cancelled


class _Join:
    """Completes `future` once `count` tasks are done; a fresh future after a cancel."""

    __slots__ = ("_loop", "future", "remaining")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self._loop = loop
        self.remaining = count
        self.future: asyncio.Future[None] = loop.create_future()

    def one_done(self, _task: object) -> None:
        self.remaining -= 1
        if not self.remaining and not self.future.done():
            self.future.set_result(None)

    def renew(self) -> None:
        self.future = self._loop.create_future()
        if not self.remaining:
            self.future.set_result(None)


class SubmittedWrite:
    """One front-end write submitted by callback to every child in the write path at once.

    `settle(write)` is called exactly once, when the last child has ended it (never
    before `start` has given it to every child: the count starts one high, so children
    completing inline cannot end it early). `failures` stays None while no child has
    failed (no list per write), else lists the failed children in the order they ended.

    Attributes:
        request: the front-end request, for the nexus to finish.
        lba, nblocks: the range written.
        targets: the children it was given to.
        lock: the token of the shared range lock the write holds while a rebuild
            runs (the nexus releases it when it settles the write), else None.
    """

    __slots__ = (
        "failures",
        "lba",
        "lock",
        "nblocks",
        "remaining",
        "request",
        "settle",
        "targets",
    )

    def __init__(
        self,
        settle: Callable[[SubmittedWrite], None],
        request: IoRequest,
        lba: int,
        nblocks: int,
        targets: tuple[NexusChild, ...],
        lock: int | None = None,
    ) -> None:
        self.settle = settle
        self.lock = lock
        self.request = request
        self.lba = lba
        self.nblocks = nblocks
        self.targets = targets
        self.remaining = len(targets) + 1
        self.failures: Failures | None = None

    def start(self, data: Buffer) -> None:
        """Give `data` to every child's device."""
        lba, done = self.lba, self.child_done
        for child in self.targets:
            device = child.device
            assert device is not None, child
            device.submit_write(lba, data, done, child)
        self.remaining -= 1
        if not self.remaining:
            self.settle(self)

    def child_done(
        self, child: NexusChild, _data: Buffer | None, error: DeviceError | None
    ) -> None:
        if error is not None:
            if self.failures is None:
                self.failures = []
            self.failures.append((child, error))
        self.remaining -= 1
        if not self.remaining:
            self.settle(self)
