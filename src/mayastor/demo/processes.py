"""io-engines as child processes on loopback: for the demo, the tests and the benchmarks.

`EngineProcess` starts one `mayastor` process with its own ports and node name, waits
until its gRPC API answers, runs `mayastor-client` against it, and stops it with SIGTERM
(or kills it with SIGKILL, for crash tests). It only ever signals the process it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
from google.protobuf.empty_pb2 import Empty

from mayastor.api.v1 import host_pb2_grpc


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EngineProcess:
    """One io-engine child process.

    Args:
        node_name: its --node-name.
        workdir: where its log file goes.
        pools: ``NAME=DISK`` strings for --pool.
        extra_args: more flags for `mayastor`.
        preexec: run in the child before `mayastor` starts (e.g. to restrict it, as a
            container runtime would).
    """

    def __init__(
        self,
        node_name: str,
        workdir: Path,
        *,
        pools: Sequence[str] = (),
        extra_args: Sequence[str] = (),
        grpc_port: int | None = None,
        replica_port: int | None = None,
        nexus_port: int | None = None,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        self.node_name = node_name
        self.preexec = preexec
        self.workdir = Path(workdir)
        self.pools = list(pools)
        self.extra_args = list(extra_args)
        self.grpc_port = grpc_port or free_port()
        self.replica_port = replica_port or free_port()
        self.nexus_port = nexus_port or free_port()
        self.log_path = self.workdir / f"{node_name}.log"
        self.state_dir = self.workdir / f"{node_name}.state"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def hostnqn(self) -> str:
        return f"nqn.2019-05.io.openebs:node-name:{self.node_name}"

    def argv(self) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "mayastor.engine.main",
            "--node-name",
            self.node_name,
            "--grpc-endpoint",
            self.endpoint,
            "--replica-port",
            str(self.replica_port),
            "--nexus-port",
            str(self.nexus_port),
            "--state-dir",
            str(self.state_dir),
        ]
        for pool in self.pools:
            argv += ["--pool", pool]
        return argv + self.extra_args

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until its gRPC API answers.

        Raises:
            RuntimeError: it exited or did not answer in time (the log tail is included).
        """
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"io-engine {self.node_name} is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=self.preexec,
            )
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.endpoint) as channel:
            stub = host_pb2_grpc.HostRpcStub(channel)
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"io-engine {self.node_name} exited with {self.proc.returncode}:\n"
                        + self.log_tail()
                    )
                try:
                    info = stub.GetMayastorInfo(Empty(), timeout=1.0)
                except grpc.RpcError:
                    if time.monotonic() > deadline:
                        self.kill()
                        raise RuntimeError(
                            f"io-engine {self.node_name} did not answer on {self.endpoint} "
                            f"within {timeout} s:\n" + self.log_tail()
                        ) from None
                    time.sleep(0.1)
                    continue
                if info.pid == self.proc.pid:
                    return
                raise RuntimeError(f"another process (pid {info.pid}) answers on {self.endpoint}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; SIGKILL if it does not exit in time. Returns the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash would, and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def pause(self) -> None:
        """SIGSTOP: the process stops answering but keeps its sockets."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(
        self, *args: str, check: bool = False, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``mayastor-client -b <endpoint> ARGS`` and return what it did."""
        result = subprocess.run(
            [sys.executable, "-m", "mayastor.cli.client", "-b", self.endpoint, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"mayastor-client {' '.join(args)} failed ({result.returncode}): "
                f"{result.stderr.strip()}"
            )
        return result

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def __enter__(self) -> EngineProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
