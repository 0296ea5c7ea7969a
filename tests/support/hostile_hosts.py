"""Hosts that try to make an NVMe/TCP target hold more than it should, and a way to see
what a process holds, for the bounds tests and benchmarks.

* `open_silent`: TCP connections that never send a byte (no ICReq);
* `announce_writes`: a connected host that sends Write commands whose data goes by R2T
  and never sends the data;
* `rss_bytes`: a process's resident set size, from /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket

from mayastor.nvmf.spec import SglDescriptor, Write
from tests.integration.target.nvme_client import HostQueue

FIRST_HOSTILE_CID = 0xF000
"""Command IDs the announced writes use (well above those a HostQueue hands out)."""


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's open-file limit towards `wanted` (up to the hard limit).

    Returns:
        the soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


async def _open_one(host: str, port: int) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except OSError:
        sock.close()
        return None
    return sock


async def open_silent(host: str, port: int, count: int, *, batch: int = 200) -> list[socket.socket]:
    """Open `count` TCP connections that send nothing, `batch` at a time.

    Returns:
        the sockets that connected (the caller closes them; `close_all`).
    """
    opened: list[socket.socket] = []
    for start in range(0, count, batch):
        made = await asyncio.gather(
            *(_open_one(host, port) for _ in range(min(batch, count - start)))
        )
        opened += [sock for sock in made if sock is not None]
    return opened


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.close()
    sockets.clear()


def announce_writes(queue: HostQueue, count: int, size: int, *, lba: int = 0) -> None:
    """Send `count` Writes of `size` bytes each (data by R2T) and never send the data."""
    capsules = []
    for i in range(count):
        cmd = Write(lba, size // 512 - 1).to_command(
            FIRST_HOSTILE_CID + i, 1, SglDescriptor.transport(size)
        )
        capsules += queue.pdu_writer.encode_capsule_cmd(cmd.encode())
    queue.send(capsules)


def rss_bytes(pid: int) -> int:
    """The resident set size of process `pid` (VmRSS), in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")
