"""The I/O gate: front-end I/O held while the nexus is paused, and drained.

Reconfiguration (adding, removing or retiring children, starting a rebuild) runs with
the nexus paused: I/O already in flight completes first (`_drain`), new I/O waits at
the gate until the last `resume`, so no write in flight misses a change of the write
path. The gate is also shut while the nexus serves no I/O; `_gate_closed` lets the hot
path skip the gate with one test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from mayastor.errors import FailedPrecondition
from mayastor.nexus._persistence import InfoPersistence


class IoGate(InfoPersistence):
    """The I/O gate layer (see `_core` for the stack)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._io_active = 0
        self._io_idle = asyncio.Event()
        self._pauses = 0
        self._gate_closed = True
        self._gate_changed = asyncio.Event()

    async def _pass_gate(self) -> None:
        while True:
            if not self.state.serves_io:
                raise self._not_serving()
            if not self._pauses:
                return
            await self._gate_changed.wait()

    def _io_done(self) -> None:
        self._io_active -= 1
        if not self._io_active:
            self._io_idle.set()

    def _state_changed(self) -> None:
        self._open_gate_if_ready()

    def _open_gate_if_ready(self) -> None:
        self._gate_closed = bool(self._pauses) or not self.state.serves_io
        changed, self._gate_changed = self._gate_changed, asyncio.Event()
        changed.set()

    async def _drain(self) -> None:
        while self._io_active:
            self._io_idle.clear()
            await self._io_idle.wait()

    async def pause(self) -> None:
        """Hold new front-end I/O and wait until the I/O in flight has completed.

        Pauses nest: I/O goes on after as many `resume` calls as `pause` calls.
        """
        self._pauses += 1
        self._open_gate_if_ready()
        try:
            await self._drain()
        except BaseException:
            self.resume()
            raise

    def resume(self) -> None:
        """Undo one `pause`; the last one lets the held I/O go on.

        Raises:
            FailedPrecondition: the nexus is not paused.
        """
        if not self._pauses:
            raise FailedPrecondition(f"nexus {self.name!r} is not paused")
        self._pauses -= 1
        self._open_gate_if_ready()

    @property
    def paused(self) -> bool:
        """True while at least one `pause` is in force."""
        return bool(self._pauses)

    @contextlib.asynccontextmanager
    async def _paused(self) -> AsyncIterator[None]:
        await self.pause()
        try:
            yield
        finally:
            self.resume()
