"""The product's processes as children on loopback: for the one-machine cluster, the
demo, the tests and the benchmarks.

`EngineProcess` starts one `mayastor` io-engine with its own ports and node name and
waits until its gRPC API answers; `CoreAgentProcess` starts `mayastor-agent-core` and
waits until its REST API answers; `EtcdProcess` starts Debian's `etcd` on a data
directory of its own. Each stops its process with SIGTERM (or kills it with SIGKILL,
for crash tests), and only ever signals the process it started. An io-engine can be
started inside a network namespace (`netns`, made with ``ip netns add``) and bind its
gRPC API and NVMe/TCP targets to an address of it (`host`); the core agent's gRPC and
etcd can bind to another address than loopback, so io-engines in namespaces reach them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
from google.protobuf.empty_pb2 import Empty

from mayastor.api.v1 import host_pb2_grpc
from mayastor.credentials import grpc_tls
from mayastor.credentials.private_ca import IssuedCertificate

_LOWEST_PORT = 10000
_given_ports: set[int] = set()


def _ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for the local ports of outgoing connections (and of bind(0))."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, for a server started next.

    It lies below the kernel's ephemeral range, where outgoing connections take their
    local ports, so no connection made in between can take it before the server binds
    it (a port from bind(0) sometimes was, and an io-engine then failed to start with
    'address in use'); and this process never gives the same port twice.
    """
    low = _ephemeral_ports()[0]
    for _ in range(1000):
        port = random.randrange(_LOWEST_PORT, low) if low > _LOWEST_PORT + 1000 else 0
        if port in _given_ports:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = int(sock.getsockname()[1])
        _given_ports.add(port)
        return port
    raise RuntimeError("no free TCP port found on 127.0.0.1")


CLONE_NEWNET = 0x40000000
"""setns(2)'s flag for a network namespace (Python 3.11 has no os.setns)."""


def netns_entry(name: str) -> tuple[int, Callable[[], None]]:
    """A descriptor of the network namespace `name` (``/run/netns/NAME``, as made by
    ``ip netns add``) and a function that moves the calling process into it; run that
    in a child between fork and exec, then close the descriptor in the parent.

    Raises:
        OSError: no such namespace.
    """
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    setns = ctypes.CDLL(None, use_errno=True).setns

    def enter() -> None:
        if setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into network namespace {name}: {os.strerror(errno)}")

    return fd, enter


class ChildProcess:
    """A child process with a log file, stopped by SIGTERM, killed by SIGKILL."""

    name = "process"

    def __init__(self, workdir: Path, log_name: str) -> None:
        self.workdir = Path(workdir)
        self.log_path = self.workdir / log_name
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def _spawn(self, preexec: Callable[[], None] | None = None) -> subprocess.Popen[bytes]:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"{self.name} is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=preexec,
                cwd=self.workdir,
            )
        return self.proc

    def _wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n" + self.log_tail()
                )
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.name}: {what} within {timeout} s:\n" + self.log_tail())
            time.sleep(0.1)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; SIGKILL if it does not exit in time. Returns the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
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

    def pause(self, timeout: float = 5.0) -> None:
        """SIGSTOP: the process stops answering but keeps its sockets.

        Returns once every thread of the process is stopped: a signal only asks, and
        a thread running on another CPU may still answer a request sent right after
        `kill` returned.
        """
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        tasks = Path(f"/proc/{self.proc.pid}/task")
        deadline = time.monotonic() + timeout
        while not _all_stopped(tasks) and time.monotonic() < deadline:
            time.sleep(0.001)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


class EngineProcess(ChildProcess):
    """One io-engine child process.

    Args:
        node_name: its --node-name.
        workdir: where its log file goes.
        pools: ``NAME=DISK`` strings for --pool.
        extra_args: more flags for `mayastor`.
        preexec: run in the child before `mayastor` starts (e.g. to restrict it, as a
            container runtime would).
        registration_endpoint: the core agent's gRPC endpoint to register with.
        host: the address its gRPC API and NVMe/TCP targets bind to (--nvmf-address).
        netns: the network namespace (``ip netns add NAME``) it runs in; `host` must be
            an address of that namespace.
        tls: its certificate for TLS on gRPC (served, and shown when we call it).
        disk_allow: its --disk-allow patterns: the files and block devices it may
            open as disks (default: the io-engine's own, /dev/* and its state folder).
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
        registration_endpoint: str | None = None,
        host: str = "127.0.0.1",
        netns: str | None = None,
        tls: IssuedCertificate | None = None,
        disk_allow: Sequence[str] = (),
    ) -> None:
        super().__init__(workdir, f"{node_name}.log")
        self.tls = tls
        self.disk_allow = list(disk_allow)
        """--disk-allow patterns (empty: the io-engine's default, /dev/* and its state)."""
        self.name = f"io-engine {node_name}"
        self.node_name = node_name
        self.registration_endpoint = registration_endpoint
        self.preexec = preexec
        self.host = host
        self.netns = netns
        self.workdir = Path(workdir)
        self.pools = list(pools)
        self.extra_args = list(extra_args)
        self.grpc_port = grpc_port or free_port()
        self.replica_port = replica_port or free_port()
        self.nexus_port = nexus_port or free_port()
        self.state_dir = self.workdir / f"{node_name}.state"

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.grpc_port}"

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
            "--nvmf-address",
            self.host,
            "--replica-port",
            str(self.replica_port),
            "--nexus-port",
            str(self.nexus_port),
            "--state-dir",
            str(self.state_dir),
        ]
        for pool in self.pools:
            argv += ["--pool", pool]
        if self.registration_endpoint:
            argv += ["--registration-endpoint", self.registration_endpoint]
        for pattern in self.disk_allow:
            argv += ["--disk-allow", pattern]
        if self.tls is not None:
            argv += self.tls.flags("--grpc-tls")
        return argv + self.extra_args

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until its gRPC API answers.

        Raises:
            RuntimeError: it exited or did not answer in time (the log tail is included).
        """
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process without waiting (several start side by side, then
        `wait_ready` each)."""
        if self.netns is None:
            self._spawn(self.preexec)
            return
        fd, enter = netns_entry(self.netns)
        then = self.preexec

        def preexec() -> None:
            enter()
            if then is not None:
                then()

        try:
            self._spawn(preexec)
        finally:
            os.close(fd)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the process started by `launch` answers on its gRPC API.

        Raises:
            RuntimeError: it exited or did not answer in time (the log tail is included).
        """
        proc = self.proc
        assert proc is not None
        deadline = time.monotonic() + timeout
        tls = self.tls.grpc_tls() if self.tls is not None else None
        with grpc_tls.sync_channel(self.endpoint, tls) as channel:
            stub = host_pb2_grpc.HostRpcStub(channel)
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"io-engine {self.node_name} exited with {proc.returncode}:\n"
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
                if info.pid == proc.pid:
                    return
                raise RuntimeError(f"another process (pid {info.pid}) answers on {self.endpoint}")

    def client(
        self, *args: str, check: bool = False, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``mayastor-client -b <endpoint> ARGS`` and return what it did."""
        tls = self.tls.flags("--tls") if self.tls is not None else []
        result = subprocess.run(
            [sys.executable, "-m", "mayastor.cli.client", "-b", self.endpoint, *tls, *args],
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

    def __enter__(self) -> EngineProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class CoreAgentProcess(ChildProcess):
    """One `mayastor-agent-core` child process.

    Args:
        workdir: where its log file (and, by default, its embedded store) go.
        store: ``--store`` (default: the embedded store in ``workdir/core-state``).
        grpc_port, rest_port: its endpoints (free ports by default); REST is on
            127.0.0.1.
        extra_args: more flags (``--node-deadline 3s``, ...).
        log_name: its log file's name in `workdir`.
        grpc_host: the address its gRPC API (registration) binds to: 127.0.0.1, or an
            address io-engines in other network namespaces reach.
        tls: its certificate for TLS on gRPC and HTTPS on REST.
        token_file: the bearer tokens REST requires (``--rest-token-file``).
        probe_token: the token our readiness probe sends.
    """

    name = "core agent"

    def __init__(
        self,
        workdir: Path,
        *,
        store: str | None = None,
        grpc_port: int | None = None,
        rest_port: int | None = None,
        extra_args: Sequence[str] = (),
        log_name: str = "core-agent.log",
        grpc_host: str = "127.0.0.1",
        tls: IssuedCertificate | None = None,
        token_file: Path | None = None,
        probe_token: str | None = None,
    ) -> None:
        super().__init__(workdir, log_name)
        self.tls = tls
        self.token_file = token_file
        self.probe_token = probe_token
        self.grpc_host = grpc_host
        self.state_dir = self.workdir / "core-state"
        self.store = store or str(self.state_dir / "store.db")
        self.grpc_port = grpc_port or free_port()
        self.rest_port = rest_port or free_port()
        self.extra_args = list(extra_args)

    @property
    def grpc_endpoint(self) -> str:
        return f"{self.grpc_host}:{self.grpc_port}"

    @property
    def rest_url(self) -> str:
        scheme = "http" if self.tls is None else "https"
        return f"{scheme}://127.0.0.1:{self.rest_port}"

    def argv(self) -> list[str]:
        secure: list[str] = []
        if self.tls is not None:
            secure += self.tls.flags("--grpc-tls")
            secure += ["--rest-tls-cert", str(self.tls.certificate)]
            secure += ["--rest-tls-key", str(self.tls.key)]
        if self.token_file is not None:
            secure += ["--rest-token-file", str(self.token_file)]
        return [
            sys.executable,
            "-m",
            "mayastor.control.main",
            "--store",
            self.store,
            "--state-dir",
            str(self.state_dir),
            "--grpc-endpoint",
            self.grpc_endpoint,
            "--rest-endpoint",
            f"127.0.0.1:{self.rest_port}",
            *secure,
            *self.extra_args,
        ]

    def serving(self) -> bool:
        """Whether its REST API answers now."""
        request = urllib.request.Request(f"{self.rest_url}/v0/nodes")
        if self.probe_token is not None:
            request.add_header("Authorization", f"Bearer {self.probe_token}")
        context = None
        if self.tls is not None:
            context = ssl.create_default_context(cafile=str(self.tls.ca))
        try:
            with urllib.request.urlopen(request, timeout=1.0, context=context) as reply:
                return bool(reply.status == 200)
        except (OSError, ValueError):
            return False

    def start(self, timeout: float = 30.0, *, wait_serving: bool = True) -> None:
        """Start it; wait until its REST API answers (a standby never does: pass False).

        Raises:
            RuntimeError: it exited or did not answer in time (the log tail is included).
        """
        self._spawn()
        if wait_serving:
            self.wait_serving(timeout)

    def wait_serving(self, timeout: float = 30.0) -> None:
        self._wait_until(self.serving, timeout, "its REST API did not answer")

    def __enter__(self) -> CoreAgentProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EtcdProcess(ChildProcess):
    """Debian's `etcd` as a child process, one member, on loopback.

    Args:
        workdir: its data directory goes in ``workdir/etcd-data``.
        client_port, peer_port: free ports by default.
        host: the address it serves clients on (127.0.0.1, or one that io-engines in
            other network namespaces reach); peers stay on 127.0.0.1.
    """

    name = "etcd"

    def __init__(
        self,
        workdir: Path,
        *,
        client_port: int | None = None,
        peer_port: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(workdir, "etcd.log")
        self.host = host
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        self.data_dir = self.workdir / "etcd-data"

    @property
    def url(self) -> str:
        """The store location for the core agent: ``etcd://HOST:PORT``."""
        return f"etcd://{self.host}:{self.client_port}"

    def argv(self) -> list[str]:
        client = f"http://{self.host}:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        return [
            shutil.which("etcd") or "/usr/bin/etcd",
            "--name",
            "default",
            "--data-dir",
            str(self.data_dir),
            "--listen-client-urls",
            client,
            "--advertise-client-urls",
            client,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            f"default={peer}",
            "--log-level",
            "warn",
        ]

    def healthy(self) -> bool:
        try:
            url = f"http://{self.host}:{self.client_port}/health"
            with urllib.request.urlopen(url, timeout=1.0) as reply:
                return b"true" in reply.read()
        except (OSError, ValueError):
            return False

    def start(self, timeout: float = 30.0) -> None:
        """Start etcd and wait until it reports itself healthy.

        Raises:
            RuntimeError: etcd is not installed, exited, or was not healthy in time.
        """
        if shutil.which("etcd") is None and not Path("/usr/bin/etcd").exists():
            raise RuntimeError("etcd is not installed (Debian package etcd-server)")
        self._spawn()
        self._wait_until(self.healthy, timeout, "it did not report itself healthy")

    def __enter__(self) -> EtcdProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class NatsProcess(ChildProcess):
    """Debian's `nats-server` as a child process on loopback (the event bus in tests).

    Args:
        workdir: where its log goes.
        port: a free port by default.
    """

    name = "nats-server"

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        super().__init__(workdir, "nats.log")
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        server = shutil.which("nats-server") or "/usr/sbin/nats-server"
        return [server, "-a", "127.0.0.1", "-p", str(self.port)]

    def listening(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def start(self, timeout: float = 30.0) -> None:
        """Start it and wait until it takes connections.

        Raises:
            RuntimeError: nats-server is not installed, exited, or did not listen in time.
        """
        if shutil.which("nats-server") is None and not Path("/usr/sbin/nats-server").exists():
            raise RuntimeError("nats-server is not installed (Debian package nats-server)")
        self._spawn()
        self._wait_until(self.listening, timeout, "it did not listen")


def _all_stopped(tasks: Path) -> bool:
    """True when every thread under /proc/PID/task is stopped (state T) or dead, or
    the process is gone."""
    try:
        for task in tasks.iterdir():
            stat = (task / "stat").read_text()
            if stat[stat.rindex(")") + 2] not in "TtZX":
                return False
    except (FileNotFoundError, ProcessLookupError):
        return True
    return True
