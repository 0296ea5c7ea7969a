"""The fault proxy used by the failure tests forwards, holds and cuts as told."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from tests.support.fault_proxy import FaultProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def roundtrip(port: int, payload: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        return sock.recv(4096)


def test_bytes_pass_through_both_ways(echo_port: int) -> None:
    with FaultProxy("127.0.0.1", echo_port) as proxy:
        assert roundtrip(proxy.port, b"hello") == b"hello"


def test_blackhole_holds_bytes_until_restored(echo_port: int) -> None:
    with (
        FaultProxy("127.0.0.1", echo_port) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock,
    ):
        sock.sendall(b"a")
        assert sock.recv(16) == b"a"
        proxy.blackhole()
        sock.sendall(b"b")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(16)
        proxy.restore()
        sock.settimeout(5)
        assert sock.recv(16) == b"b"


def test_cut_closes_connections_and_refuses_new_ones(echo_port: int) -> None:
    with FaultProxy("127.0.0.1", echo_port) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
            assert roundtrip(proxy.port, b"x") == b"x"
            proxy.cut()
            assert sock.recv(16) == b""
        try:
            answer = roundtrip(proxy.port, b"y")
        except OSError:
            answer = b""
        assert answer == b"", "a new connection got through a cut link"
        proxy.restore()
        assert roundtrip(proxy.port, b"z") == b"z"
