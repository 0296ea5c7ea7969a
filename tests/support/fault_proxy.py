"""A TCP proxy between two processes that can cut, black-hole, delay and restore the link.

Runs its own event loop in a thread, so synchronous tests can use it beside real
io-engine processes:

    with FaultProxy("127.0.0.1", replica_port) as proxy:
        uri = f"nvmf://127.0.0.1:{proxy.port}/{nqn}"   # the nexus connects through it
        proxy.blackhole()    # bytes stop flowing both ways; connections stay open
        proxy.restore()      # bytes flow again (what was held is delivered)
        proxy.cut()          # every connection is closed and new ones are refused

Modeled on asyncpg's test fuzzer proxy: it only forwards bytes, it knows no protocol.
"""

from __future__ import annotations

import asyncio
import enum
import threading
from collections.abc import Coroutine
from typing import Any


class LinkMode(enum.Enum):
    PASS = "pass"  # forward everything
    BLACKHOLE = "blackhole"  # hold everything, keep connections open
    CUT = "cut"  # close every connection, refuse new ones


class FaultProxy:
    """Listens on 127.0.0.1:`port` and forwards to `target_host`:`target_port`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.mode = LinkMode.PASS
        self.delay = 0.0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing: asyncio.Event | None = None

    # ------------------------------------------------------------------ control

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self._stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def blackhole(self) -> None:
        self._call(self._set(LinkMode.BLACKHOLE))

    def cut(self) -> None:
        self._call(self._set(LinkMode.CUT))

    def restore(self) -> None:
        self._call(self._set(LinkMode.PASS))

    def set_delay(self, seconds: float) -> None:
        self.delay = seconds

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # ------------------------------------------------------------------ the loop

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        await self._set(LinkMode.CUT)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _set(self, mode: LinkMode) -> None:
        assert self._flowing is not None
        self.mode = mode
        if mode is LinkMode.PASS:
            self._flowing.set()
        else:
            self._flowing.clear()
        if mode is LinkMode.CUT:
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode is LinkMode.CUT:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        while True:
            data = await reader.read(1 << 16)
            if not data:
                writer.transport.abort()
                return
            await self._flowing.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            if writer.transport.is_closing():
                return
            writer.write(data)
            await writer.drain()
