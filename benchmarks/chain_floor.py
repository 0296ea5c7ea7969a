"""The floor of a QD1 round trip on this machine: one hop against a three-process chain.

A three-way nexus at queue depth 1 is a chain: the client's write reaches the nexus's
process, which sends it to two replicas' processes and answers once both answered. With
the three on one core (as `speed.py`'s nexus section runs them) each write needs several
wake-ups and process switches on that core, whatever the code does. This measures what
the machine itself allows, with processes that do nothing but move the bytes (blocking
sockets, no protocol): a 4 KiB write and a 16-byte answer, the client on CPU 1, the
servers on CPU 0. The ratio of the two latencies bounds what the nexus's QD1 ratio can
reach here, and the servers' CPU per write shows the kernel's share of each shape.

Usage: ``python3 benchmarks/chain_floor.py [--seconds 3] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable

REQUEST = 4096 + 72  # a 4 KiB write in a command capsule
ANSWER = 16  # a response capsule's completion queue entry
SERVER_CPU, CLIENT_CPU = 0, 1


def receive_exactly(sock: socket.socket, size: int) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        count = sock.recv_into(view[got:])
        if not count:
            raise EOFError
        got += count
    return buffer


def listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def accept(sock: socket.socket) -> socket.socket:
    conn, _ = sock.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def replica(sock: socket.socket) -> None:
    """Answer every write: a replica with nothing to do."""
    conn = accept(sock)
    while True:
        receive_exactly(conn, REQUEST)
        conn.sendall(b"a" * ANSWER)


def nexus(sock: socket.socket, ports: list[int]) -> None:
    """Copy every write into memory (the local child) and to both replicas; answer once
    both answered."""
    children = [connect(port) for port in ports]
    conn = accept(sock)
    local = bytearray(REQUEST)
    while True:
        data = receive_exactly(conn, REQUEST)
        for child in children:
            child.sendall(data)
        local[:] = data
        for child in children:
            receive_exactly(child, ANSWER)
        conn.sendall(b"a" * ANSWER)


def start(serve: Callable[..., None], *args: object) -> int:
    pid = os.fork()
    if pid == 0:
        os.sched_setaffinity(0, {SERVER_CPU})
        try:
            serve(*args)
        except (EOFError, ConnectionError):
            pass
        os._exit(0)
    return pid


def client(port: int, seconds: float) -> tuple[float, int]:
    """QD1 writes for `seconds`: (median latency in µs, writes)."""
    sock = connect(port)
    message = b"w" * REQUEST
    latencies = []
    end = time.perf_counter() + seconds
    while (began := time.perf_counter()) < end:
        sock.sendall(message)
        receive_exactly(sock, ANSWER)
        latencies.append(time.perf_counter() - began)
    sock.close()
    return statistics.median(latencies) * 1e6, len(latencies)


def measure(shape: str, seconds: float) -> tuple[float, float]:
    """(p50 µs, the servers' CPU µs per write) of one shape: "hop" or "chain"."""
    if shape == "hop":
        front = listener()
        pids = [start(replica, front)]
    else:
        replicas = [listener(), listener()]
        pids = [start(replica, sock) for sock in replicas]
        front = listener()
        pids.append(start(nexus, front, [sock.getsockname()[1] for sock in replicas]))
    before = os.times()
    p50, writes = client(front.getsockname()[1], seconds)
    for pid in pids:
        os.waitpid(pid, 0)
    after = os.times()
    cpu = after.children_user + after.children_system
    cpu -= before.children_user + before.children_system
    return p50, cpu * 1e6 / writes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {CLIENT_CPU})
    print(f"load average {os.getloadavg()[0]:.2f}")
    for _ in range(args.rounds):
        hop, hop_cpu = measure("hop", args.seconds)
        chain, chain_cpu = measure("chain", args.seconds)
        print(
            f"one hop p50 {hop:.1f} us ({hop_cpu:.1f} us CPU per write)  "
            f"chain p50 {chain:.1f} us ({chain_cpu:.1f} us CPU)  hop / chain {hop / chain:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
