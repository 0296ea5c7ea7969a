"""A Kubernetes node in the kernel VM, for the CSI node plugin: the host's side.

The node plugin needs the kernel's nvme-tcp initiator, which only the VM has, so it
runs there, under the host's own Python and this checkout (shared read-only over 9p
at the same paths, with the interpreter and the libraries it links copied in:
`python_runtime`). `GuestNode` boots the guest once with `guest/csi_node.sh`, which
starts `guest/csi_agent.py`; through the agent (forwarded host ports) the test runs
commands in the guest, starts and SIGKILLs node plugins, and reaches each plugin's
unix socket through a byte relay, so the CSI calls are the plugin's own, unchanged.

The guest reaches the host's 127.0.0.1 as 10.0.2.2 (qemu's user network): a publish
context's target URI is read there with that address (`for_guest`), as a node behind
that NAT would see it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mayastor.api.csi.v1 import csi_pb2
from mayastor.cluster.processes import free_port
from tests.integration.csi.plugins import CsiClient
from tests.interop.kernel_guest import HERE, GuestRun, run_guest_checks

GUEST_SCRIPT = HERE / "guest" / "csi_node.sh"
AGENT = HERE / "guest" / "csi_agent.py"
HOST_IN_GUEST = "10.0.2.2"
PYLIB = "/harness/pylib"
PLUGIN_DIR = "/var/lib/kubelet/plugins/io.openebs.csi-mayastor"
SYSTEM_LIB_DIRS = ("/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/")
_SKIP_MODULES = ("_tkinter", "_curses", "_curses_panel", "readline", "_test", "xxlimited")


@dataclass
class PythonRuntime:
    """What the guest needs to run this checkout's Python: shares, files, environment."""

    shares: list[tuple[Path, str]] = field(default_factory=list)
    files: list[tuple[Path, str]] = field(default_factory=list)
    libdir: Path | None = None

    @property
    def python(self) -> str:
        return sys.executable


def _ldd(binary: Path) -> list[Path]:
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    found = []
    for line in out.splitlines():
        match = re.search(r"=>\s*(/\S+)", line)
        if match:
            found.append(Path(match.group(1)))
    return found


def _covered(path: Path, shared: list[Path]) -> bool:
    return any(path == s or s in path.parents for s in shared)


def python_runtime(workdir: Path) -> PythonRuntime:
    """Share the interpreter's standard library, the venv and the checkout read-only at
    their own paths, and copy in the interpreter and the system libraries it and the
    venv's extension modules link (into `workdir`, then the guest's /harness/pylib)."""
    runtime = PythonRuntime()
    root = Path(__file__).resolve().parents[2]
    venv = Path(sys.prefix)
    stdlib = Path(sysconfig.get_path("stdlib"))
    shared: list[Path] = []
    for path in (root, venv, stdlib):
        if not _covered(path, shared):
            shared.append(path)
    binaries = []
    link = Path(sys.executable)
    real = link.resolve()
    while link.is_symlink():
        target = Path(os.readlink(link))
        link = target if target.is_absolute() else (link.parent / target)
        if not _covered(link, shared):
            runtime.files.append((real, str(link)))
    binaries.append(real)
    dynload = stdlib / "lib-dynload"
    binaries += [p for p in dynload.glob("*.so") if not p.name.startswith(_SKIP_MODULES)]
    binaries += list(venv.rglob("*.so"))
    libdir = workdir / "pylib"
    libdir.mkdir(parents=True, exist_ok=True)
    for binary in binaries:
        for lib in _ldd(binary):
            if str(lib).startswith(SYSTEM_LIB_DIRS):
                dest = libdir / lib.name
                if not dest.exists():
                    shutil.copyfile(lib.resolve(), dest)
            elif not _covered(lib, shared):
                shared.append(lib.parent)
    outermost = [p for p in shared if not any(o in p.parents for o in shared)]
    runtime.shares = [(p, str(p)) for p in outermost]
    runtime.files.append((libdir, PYLIB))
    runtime.libdir = libdir
    return runtime


def for_guest(publish_context: Mapping[str, str]) -> dict[str, str]:
    """The publish context as the guest must read it: the host's loopback is 10.0.2.2."""
    context = dict(publish_context)
    context["uri"] = context["uri"].replace("//127.0.0.1:", f"//{HOST_IN_GUEST}:", 1)
    return context


@dataclass(frozen=True)
class Shell:
    """What a command in the guest did."""

    rc: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


class GuestNode:
    """The VM as a Kubernetes node: its agent, its node plugins, its kernel.

    Args:
        workdir: for the guest's console log and the copied libraries.
        relays: how many node plugin sockets to reach from the host.
        timeout: seconds the guest may run in all.
    """

    def __init__(self, workdir: Path, *, relays: int = 2, timeout: float = 1500.0) -> None:
        self.workdir = Path(workdir)
        self.timeout = timeout
        self.agent_port = free_port()
        self.relay_ports = [free_port() for _ in range(relays)]
        self.sockets = [
            f"{PLUGIN_DIR}/csi.sock" if i == 0 else f"{PLUGIN_DIR}-{i}/csi.sock"
            for i in range(relays)
        ]
        self.run: GuestRun | None = None
        self.plugins: dict[str, int] = {}
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ life

    def __enter__(self) -> GuestNode:
        runtime = python_runtime(self.workdir)
        relays = zip(self.relay_ports, self.sockets, strict=True)
        env = {
            "PYTHON": runtime.python,
            "PYLIB": PYLIB,
            "AGENT_PORT": str(self.agent_port),
            "RELAYS": " ".join(f"{port}={path}" for port, path in relays),
        }

        def boot() -> None:
            try:
                self.run = run_guest_checks(
                    env,
                    script=GUEST_SCRIPT,
                    files=[(AGENT, "/harness/files/csi_agent.py"), *runtime.files],
                    readonly_shares=runtime.shares,
                    hostfwd=[(self.agent_port, self.agent_port)]
                    + [(p, p) for p in self.relay_ports],
                    on_marker={"CSI-AGENT-READY": self._ready.set},
                    timeout=self.timeout,
                )
            except BaseException as exc:
                self._error = exc
            finally:
                self._ready.set()

        self._thread = threading.Thread(target=boot, name="kernel-guest", daemon=True)
        self._thread.start()
        self._ready.wait(300)
        if self.run is not None or self._error is not None or not self._ready.is_set():
            self.__exit__(None, None, None)
            raise RuntimeError(f"the guest did not start its agent: {self.console()[-4000:]}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is None:
            return
        if self._thread.is_alive():
            with contextlib.suppress(OSError, ValueError):
                self._request({"op": "shutdown"}, timeout=30)
            self._thread.join(180)
        self._thread = None
        if self.run is not None:
            (self.workdir / "guest-console.log").write_text(self.run.output)

    def console(self) -> str:
        return self.run.output if self.run is not None else ""

    # ------------------------------------------------------------------ agent

    def _request(self, request: dict[str, Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.agent_port), timeout=10) as sock:
                    sock.settimeout(timeout)
                    sock.sendall(json.dumps(request).encode() + b"\n")
                    data = b""
                    while not data.endswith(b"\n"):
                        chunk = sock.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                if data:
                    return json.loads(data)
            except (ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the guest agent did not answer {request['op']}")
            time.sleep(0.2)

    def sh(self, cmd: str, timeout: float = 300.0) -> Shell:
        """Run `cmd` with the guest's sh; returns its status and output."""
        reply = self._request({"op": "sh", "cmd": cmd, "timeout": timeout}, timeout + 30)
        if "error" in reply:
            raise RuntimeError(f"guest agent: {reply['error']}")
        return Shell(int(reply["rc"]), reply["out"], reply["err"])

    def check(self, cmd: str, timeout: float = 300.0) -> str:
        """Run `cmd`, which must succeed; returns its stdout."""
        result = self.sh(cmd, timeout)
        assert result.ok, (cmd, result)
        return result.out

    def spawn(self, argv: list[str], log: str) -> int:
        """Start `argv` in the guest in the background, its output to `log`; its pid."""
        return int(self._request({"op": "spawn", "argv": argv, "log": log}, 60)["pid"])

    def kill(self, pid: int, signum: int = 15) -> Any:
        """Send `signum` to a process `spawn` started and reap it; its exit status."""
        return self._request({"op": "kill", "pid": pid, "signal": signum}, 120)["rc"]

    # ------------------------------------------------------------------ node plugins

    def start_plugin(self, node_name: str, index: int = 0, wait: float = 180.0) -> int:
        """Start ``mayastor-csi-node --node-name NODE`` on socket `index` and wait until
        Identity answers through its relay; returns its pid in the guest."""
        socket_path = self.sockets[index]
        argv = [
            str(Path(sys.prefix) / "bin" / "mayastor-csi-node"),
            "--node-name",
            node_name,
            "--csi-socket",
            socket_path,
            "--log-level",
            "debug",
        ]
        reply = self._request(
            {"op": "spawn", "argv": argv, "log": f"/tmp/csi-node-{node_name}.log"}, 60
        )
        pid = int(reply["pid"])
        self.plugins[node_name] = pid
        deadline = time.monotonic() + wait
        with self.csi(index) as client:
            while True:
                code = client.code_of("identity", "GetPluginInfo", csi_pb2.GetPluginInfoRequest())
                if code.name == "OK":
                    return pid
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the node plugin {node_name} did not answer: "
                        + self.sh(f"tail -30 /tmp/csi-node-{node_name}.log").out
                    )
                time.sleep(0.5)

    def kill_plugin(self, node_name: str, signum: int = 9) -> Any:
        """Send `signum` (SIGKILL) to the node plugin and reap it; returns its status."""
        pid = self.plugins.pop(node_name)
        return self._request({"op": "kill", "pid": pid, "signal": signum}, 60)["rc"]

    def plugin_log(self, node_name: str) -> str:
        return self.sh(f"cat /tmp/csi-node-{node_name}.log").out

    @contextlib.contextmanager
    def csi(self, index: int = 0) -> Iterator[CsiClient]:
        """A CSI client of node plugin socket `index`, through the agent's relay."""
        client = CsiClient(f"127.0.0.1:{self.relay_ports[index]}", timeout=300.0)
        try:
            yield client
        finally:
            client.close()

    # ------------------------------------------------------------------ kernel state

    def mounts_under(self, prefix: str = "/var/lib/kubelet") -> list[str]:
        """Mount points under `prefix`, from the guest's mount table."""
        out = self.check("cat /proc/self/mountinfo")
        return [line.split()[4] for line in out.splitlines() if line.split()[4].startswith(prefix)]

    def subsystems(self) -> list[str]:
        """NQNs of the NVMe subsystems the guest's kernel is connected to."""
        out = self.sh("cat /sys/class/nvme-subsystem/*/subsysnqn 2>/dev/null").out
        return sorted(line.strip() for line in out.splitlines() if line.strip())
