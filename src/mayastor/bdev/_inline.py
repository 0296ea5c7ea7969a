"""Running an I/O coroutine inline, in the caller's frame, and finishing it by callback.

A device that completes without waiting (malloc, a cached write) then costs no Task
and no trip through the event loop; one that has to wait gets a Task to finish in,
resumed exactly where it stopped. The coroutine must not tie itself to the current
task before its first wait (no ``asyncio.timeout`` around it): the caller may be a
protocol callback, with no task at all.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from mayastor.errors import AbortRequested, DeviceError, InternalDeviceError

log = logging.getLogger(__name__)

Finish = Callable[[Any, DeviceError | None], None]
"""Called once with the coroutine's result and None, or None and the DeviceError."""


def run_inline(
    coro: Coroutine[Any, Any, Any], finish: Finish, what: str, inline: bool = True
) -> None:
    """Start `coro` now; `finish` hears how it ended, maybe before this returns.

    A `DeviceError` is passed on as it is; any other exception (a bug in a driver) is
    logged and reported as an `InternalDeviceError`, so the caller can always answer.

    Args:
        coro: the I/O.
        finish: its completion.
        what: names the I/O in the log line of an unexpected exception.
        inline: False for a coroutine that may tie itself to the current task before
            its first wait: it gets a Task at once (and `finish` is never called
            before this returns).
    """
    if not inline:
        task = asyncio.get_running_loop().create_task(coro)
        task.add_done_callback(lambda done: _task_done(done, finish, what))
        return
    try:
        waiting = coro.send(None)
    except StopIteration as stop:
        finish(stop.value, None)
        return
    except DeviceError as exc:
        finish(None, exc)
        return
    except Exception as exc:
        finish(None, _internal(exc, what))
        return
    task = asyncio.get_running_loop().create_task(finish_in_task(coro, waiting))
    task.add_done_callback(lambda done: _task_done(done, finish, what))


async def finish_in_task(coro: Coroutine[Any, Any, Any], suspended_on: object) -> object:
    """Run a coroutine that was started inline and suspended, to its end (in a Task)."""
    return await resume(coro, suspended_on)


@types.coroutine
def resume(
    coro: Coroutine[Any, Any, Any], suspended_on: object
) -> Generator[object, object, object]:
    """Hand the Task what `coro` waits on, and `coro` whatever the Task sends or throws."""
    pending = suspended_on
    while True:
        try:
            sent = yield pending
        except BaseException as exc:
            try:
                pending = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                pending = coro.send(sent)
            except StopIteration as stop:
                return stop.value


def _task_done(task: asyncio.Task[Any], finish: Finish, what: str) -> None:
    if task.cancelled():
        finish(None, AbortRequested(f"{what} was cancelled"))
        return
    error = task.exception()
    if error is None:
        finish(task.result(), None)
    elif isinstance(error, DeviceError):
        finish(None, error)
    elif isinstance(error, Exception):
        finish(None, _internal(error, what))
    else:
        raise error


def _internal(exc: Exception, what: str) -> InternalDeviceError:
    log.error("%s failed unexpectedly", what, exc_info=exc)
    error = InternalDeviceError(f"{what} failed: {exc!r}")
    error.__cause__ = exc
    return error
