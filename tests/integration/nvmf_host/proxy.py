"""A TCP proxy between our initiator and a target that can break the link on purpose.

It listens on 127.0.0.1 (a free port) and forwards every connection to the target.
A test can then:

* `freeze` the link: bytes (and the end of a stream) stop moving both ways but the
  connections stay open (a hung target, or a network that drops everything); `thaw`
  lets them move again;
* `cut` every connection (both ends see the connection closed);
* `refuse`: accept new connections and close them at once (a target that is down;
  `accept` undoes it);
* `inject_to_host`: send bytes of its own to the host on the newest connections
  (a C2HTermReq, say), as if the target had sent them.
"""

from __future__ import annotations

import asyncio
import contextlib


class _Link:
    def __init__(
        self,
        host_reader: asyncio.StreamReader,
        host_writer: asyncio.StreamWriter,
        target_reader: asyncio.StreamReader,
        target_writer: asyncio.StreamWriter,
        proxy: FaultProxy,
    ) -> None:
        self.host_writer = host_writer
        self.target_writer = target_writer
        self.tasks = [
            asyncio.ensure_future(proxy._pump(host_reader, target_writer)),
            asyncio.ensure_future(proxy._pump(target_reader, host_writer)),
        ]

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for writer in (self.host_writer, self.target_writer):
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class FaultProxy:
    """Forwards 127.0.0.1:`port` to the target at `target_port`; see the module docstring."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: list[_Link] = []
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._refusing = False
        self.connections = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self._refusing:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return
        try:
            target_reader, target_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return
        self._links.append(_Link(reader, writer, target_reader, target_writer, self))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 16):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
            await self._flowing.wait()  # a frozen link holds the end of the stream too
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def freeze(self) -> None:
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    async def cut(self) -> None:
        links, self._links = self._links, []
        await asyncio.gather(*(link.close() for link in links))

    def refuse(self) -> None:
        self._refusing = True

    def accept(self) -> None:
        self._refusing = False

    def inject_to_host(self, data: bytes, *, newest: int = 1) -> None:
        for link in self._links[-newest:]:
            link.host_writer.write(data)

    async def close(self) -> None:
        self.thaw()
        await self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
