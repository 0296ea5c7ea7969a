"""Data through a live target when TCP moves it a few bytes at a time: a relay between
the test host and the target passes at most a few hundred bytes per read each way,
and reads from the target slowly through a small receive buffer, so the target gets
PDUs (and large H2CData payloads) in pieces and its sends are taken in pieces. Every
byte read is compared."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
from collections.abc import AsyncIterator

from tests.integration.target.conftest import Served
from tests.integration.target.nvme_client import HostController

BS = 512


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rng: random.Random
) -> None:
    try:
        while data := await reader.read(rng.randrange(1, 700)):
            writer.write(data)
            await writer.drain()
            if rng.random() < 0.05:
                await asyncio.sleep(0.001)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def trickle_relay(port: int) -> AsyncIterator[int]:
    """A relay to 127.0.0.1:`port`; yields the port it listens on."""
    pumps: list[asyncio.Task[None]] = []
    rng = random.Random(5)

    async def relay(host_r: asyncio.StreamReader, host_w: asyncio.StreamWriter) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        target_r, target_w = await asyncio.open_connection(sock=sock)
        pumps.append(asyncio.create_task(_pump(host_r, target_w, rng)))
        pumps.append(asyncio.create_task(_pump(target_r, host_w, rng)))

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        await server.wait_closed()


async def test_large_writes_and_reads_in_trickles_read_back_whole(served: Served) -> None:
    async with trickle_relay(served.port) as port:
        ctrl = await HostController.connect("127.0.0.1", port, served.nqn)
        try:
            queue = ctrl.io[0]
            data = [os.urandom(size) for size in (128 * 1024, 4096, 64 * 1024 + 512, 8192)]
            lbas = [0, 512, 1024, 2048]
            writes = await asyncio.gather(
                *(queue.write(lba, d, BS) for lba, d in zip(lbas, data, strict=True))
            )
            assert all(w.ok for w in writes)
            reads = await asyncio.gather(
                *(queue.read(lba, len(d) // BS, BS) for lba, d in zip(lbas, data, strict=True))
            )
            assert [r.data for r in reads] == data
            for lba, d in zip(lbas, data, strict=True):
                assert bytes(await served.device.read(lba, len(d) // BS)) == d
        finally:
            await ctrl.close()
