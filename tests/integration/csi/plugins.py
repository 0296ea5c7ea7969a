"""The CSI plugins as child processes, and a CO's side of their sockets, for the tests.

`ControllerPlugin` runs ``mayastor-csi-controller`` against a core agent's REST API,
`NodePlugin` runs ``mayastor-csi-node``; each serves on a unix socket in a short
temporary folder (socket paths are limited to 107 bytes) and is ready once Identity
answers there. `CsiClient` is the CO: blocking stubs of the three services over one
channel, closed with the client.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from mayastor.api.csi.v1 import csi_pb2, csi_pb2_grpc
from mayastor.cluster.processes import ChildProcess

MIB = 1 << 20


def unix_socket_fds() -> set[str]:
    """This process's unix sockets (``socket:[inode]``)."""
    inodes = set()
    with contextlib.suppress(OSError), open("/proc/self/net/unix") as lines:
        inodes = {line.split()[6] for line in list(lines)[1:] if len(line.split()) > 6}
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:[") and target[8:-1] in inodes:
                found.add(target)
    return found


def short_socket_dir() -> Path:
    """A fresh folder under /tmp whose socket paths stay short."""
    return Path(tempfile.mkdtemp(prefix="csi-", dir="/tmp"))


class CsiClient:
    """A CO's connection to one plugin socket.

    Args:
        target: ``unix:///path/csi.sock`` (or ``127.0.0.1:PORT`` through a relay).
        settle: on close, wait until the unix sockets opened since are closed again (the
            suite checks each test leaves none); only for clients used one at a time.
    """

    def __init__(self, target: str, timeout: float = 60.0, *, settle: bool = True) -> None:
        self.settle = settle and target.startswith("unix:")
        self._before = unix_socket_fds() if self.settle else set()
        self.channel = grpc.insecure_channel(target)
        self.timeout = timeout
        self.identity = csi_pb2_grpc.IdentityStub(self.channel)
        self.controller = csi_pb2_grpc.ControllerStub(self.channel)
        self.node = csi_pb2_grpc.NodeStub(self.channel)

    def call(self, service: str, method: str, request: Any, timeout: float | None = None) -> Any:
        stub = getattr(self, service)
        return getattr(stub, method)(request, timeout=timeout or self.timeout)

    def code_of(self, service: str, method: str, request: Any) -> grpc.StatusCode:
        """The status code a call ends with (OK when it succeeds)."""
        try:
            self.call(service, method, request)
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    def close(self) -> None:
        """Close the channel, and wait (up to 10 s) for gRPC to close its socket, which it
        does in a thread of its own a moment later."""
        self.channel.close()
        deadline = time.monotonic() + 10
        while self.settle and unix_socket_fds() - self._before and time.monotonic() < deadline:
            time.sleep(0.02)

    def __enter__(self) -> CsiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Plugin(ChildProcess):
    def __init__(self, workdir: Path, log_name: str, socket_path: Path) -> None:
        super().__init__(workdir, log_name)
        self.socket_path = socket_path

    @property
    def target(self) -> str:
        return f"unix://{self.socket_path}"

    def client(self, *, settle: bool = True) -> CsiClient:
        return CsiClient(self.target, settle=settle)

    def start(self, timeout: float = 30.0) -> None:
        """Start it and wait until Identity answers on its socket.

        Raises:
            RuntimeError: it exited or did not answer in time (its log tail included).
        """
        self._spawn()

        def answers() -> bool:
            if not self.socket_path.exists():
                return False
            with CsiClient(self.target) as client:
                try:
                    client.identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest(), timeout=1.0)
                except grpc.RpcError:
                    return False
            return True

        self._wait_until(answers, timeout, f"it did not answer on {self.socket_path}")


class ControllerPlugin(_Plugin):
    """``mayastor-csi-controller`` against `rest_url`."""

    name = "csi controller"

    def __init__(self, workdir: Path, rest_url: str, socket_path: Path) -> None:
        super().__init__(workdir, "csi-controller.log", socket_path)
        self.rest_url = rest_url

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mayastor.csi.controller_main",
            "--rest-endpoint",
            self.rest_url,
            "--csi-socket",
            str(self.socket_path),
            "--log-level",
            "debug",
        ]


class NodePlugin(_Plugin):
    """``mayastor-csi-node`` for node `node_name`."""

    name = "csi node"

    def __init__(self, workdir: Path, node_name: str, socket_path: Path) -> None:
        super().__init__(workdir, f"csi-node-{node_name}.log", socket_path)
        self.node_name = node_name

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mayastor.csi.node_main",
            "--node-name",
            self.node_name,
            "--csi-socket",
            str(self.socket_path),
            "--log-level",
            "debug",
        ]


def wait_until(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)
