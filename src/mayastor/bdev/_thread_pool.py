"""Worker threads for blocking system calls, completed in batches on the event loop.

`asyncio.run_in_executor` pays for a `concurrent.futures.Future` with its condition
variable and wakes the loop once per completion. Here the loop puts work on a
`SimpleQueue`; a worker runs it and appends the outcome to a list, and only the worker
that finds the list empty wakes the loop, which then completes everything finished so
far in one go. Under load that is one wake-up for many I/Os.

Threads start on demand, up to `threads`, and stop at `close`, which first waits for
every submitted call, including those whose awaiting task was cancelled: a cancelled
write still runs to its end, so the file descriptor must stay open until it has.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any

from mayastor.errors import InvalidArgument

_Work = tuple["asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]
_Done = tuple["asyncio.Future[Any]", Any, BaseException | None]


class IoThreadPool:
    """Up to `threads` threads running blocking calls for one event loop.

    Args:
        threads: the most calls that run at once (the device's useful queue depth).
        name: prefix of the thread names.

    Raises:
        InvalidArgument: fewer than one thread.
    """

    def __init__(self, threads: int, name: str) -> None:
        if threads < 1:
            raise InvalidArgument(f"{name}: a thread pool needs at least one thread, not {threads}")
        self._max_threads = threads
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._done: list[_Done] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._outstanding = 0
        self._idle: asyncio.Event | None = None
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Run ``fn(*args)`` on a worker; the future completes on the calling loop.

        Raises:
            RuntimeError: the pool is closed.
        """
        if self._closed:
            raise RuntimeError(f"thread pool {self._name!r} is closed")
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._outstanding += 1
        running = len(self._threads)
        if running < self._max_threads and self._outstanding > running:
            self._start_thread()
        self._work.put((future, fn, args))
        return future

    async def close(self) -> None:
        """Wait for every submitted call to finish, then stop the threads."""
        self._closed = True
        if self._outstanding:
            self._idle = asyncio.Event()
            await self._idle.wait()
        for _ in self._threads:
            self._work.put(None)
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    # ------------------------------------------------------------------ internals

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._run, name=f"{self._name}-{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _run(self) -> None:
        get = self._work.get
        lock = self._lock
        loop = self._loop
        assert loop is not None
        while True:
            item = get()
            if item is None:
                return
            future, fn, args = item
            error: BaseException | None = None
            result: Any = None
            try:
                result = fn(*args)
            except BaseException as exc:
                error = exc
            with lock:
                self._done.append((future, result, error))
                wake = len(self._done) == 1
            if wake:
                try:
                    loop.call_soon_threadsafe(self._complete)
                except RuntimeError:  # the loop is closed; nobody is waiting any more
                    pass

    def _complete(self) -> None:
        with self._lock:
            done, self._done = self._done, []
        self._outstanding -= len(done)
        for future, result, error in done:
            if future.cancelled():
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)
        if not self._outstanding and self._idle is not None:
            self._idle.set()
