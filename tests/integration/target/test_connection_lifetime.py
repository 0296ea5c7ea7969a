"""A closed connection leaves nothing behind in the target's process.

The io-engine's memory under connection churn is bounded only if a connection and its
queue pair are freed once the socket is gone (closed by the host, or by the target's
own limits). Compiled with mypyc, the queue pair once kept every closed connection
alive (an attribute declared twice, see `mayastor.compiled.COMPILED`); this checks it
in the mode the suite runs in.
"""

from __future__ import annotations

import asyncio
import gc
import socket

from mayastor.target import NvmfTarget
from mayastor.target._connection import Connection
from mayastor.target._queue_pair import QueuePair

CONNECTIONS = 200


def alive(kind: type) -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if type(obj) is kind)


async def test_connections_closed_by_their_hosts_are_freed() -> None:
    target = NvmfTarget("127.0.0.1")
    port = await target.listen(0)
    try:
        before = alive(QueuePair), alive(Connection)
        sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(CONNECTIONS)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while target.connection_count(port) < CONNECTIONS and loop.time() < deadline:
            await asyncio.sleep(0.02)
        assert target.connection_count(port) == CONNECTIONS
        assert alive(QueuePair) - before[0] == CONNECTIONS
        for sock in sockets:
            sock.close()
        while target.connection_count(port) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        assert (alive(QueuePair), alive(Connection)) == before
    finally:
        await target.close()
