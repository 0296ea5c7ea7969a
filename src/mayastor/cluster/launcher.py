"""A cluster on one machine: a core agent on the embedded store, io-engines on file disks.

Everything lives in one folder: ``cluster.json`` (the layout: nodes, ports, disks, and
the process ids while it runs), ``core/`` (the embedded store), ``nodes/<name>/`` (each
io-engine's state), ``disks/<name>.img`` (sparse files standing for disks) and
``logs/``. `up` starts what is not running and makes each node's pool through the REST
API (the same request again is a no-op, so a second `up` on the folder brings back
every pool and volume); `down` stops the processes it recorded, io-engines first, each
with SIGTERM (their pools are exported cleanly) and only if it is still the process
that was started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mayastor.cluster.processes import CoreAgentProcess, EngineProcess
from mayastor.cluster.security import ClusterSecurity
from mayastor.credentials.rest_client import RestClientCredentials
from mayastor.errors import FailedPrecondition, InvalidArgument, Unavailable
from mayastor.restclient import RestClient, RestError

LAYOUT_FILE = "cluster.json"


@dataclass
class NodeLayout:
    name: str
    grpc_port: int
    replica_port: int
    nexus_port: int
    disk: str
    pid: int | None = None


@dataclass
class ClusterLayout:
    """What `up` made, kept in ``cluster.json`` so the next `up` and `down` find it."""

    rest_port: int
    grpc_port: int
    disk_size: int
    nodes: list[NodeLayout] = field(default_factory=list)
    core_pid: int | None = None
    secure: bool = False
    """TLS on gRPC, HTTPS and tokens on REST, from a private CA in ``tls/``."""

    @property
    def rest_url(self) -> str:
        scheme = "https" if self.secure else "http"
        return f"{scheme}://127.0.0.1:{self.rest_port}"

    @property
    def registration_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def save(self, folder: Path) -> None:
        path = folder / LAYOUT_FILE
        temp = path.with_suffix(".tmp")
        temp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        temp.replace(path)

    @classmethod
    def load(cls, folder: Path) -> ClusterLayout | None:
        path = folder / LAYOUT_FILE
        if not path.exists():
            return None
        try:
            doc = json.loads(path.read_text())
            nodes = [NodeLayout(**n) for n in doc.pop("nodes")]
            return cls(**doc, nodes=nodes)
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidArgument(f"{path} is not a cluster layout: {exc}") from exc


def new_layout(
    nodes: int,
    disk_size: int,
    folder: Path,
    rest_port: int,
    grpc_port: int,
    engine_port_base: int,
    secure: bool = False,
) -> ClusterLayout:
    layout = ClusterLayout(
        rest_port=rest_port, grpc_port=grpc_port, disk_size=disk_size, secure=secure
    )
    for n in range(nodes):
        base = engine_port_base + 3 * n
        name = f"node-{n + 1}"
        layout.nodes.append(
            NodeLayout(
                name=name,
                grpc_port=base,
                replica_port=base + 1,
                nexus_port=base + 2,
                disk=str(folder / "disks" / f"{name}.img"),
            )
        )
    return layout


def _alive(pid: int | None, marker: str) -> bool:
    """Whether `pid` runs and is still our process (its command line names `marker`)."""
    if pid is None:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return marker in cmdline


class OneMachineCluster:
    """`up`, `down` and `status` of the cluster in `folder`.

    Args:
        folder: the cluster's folder (created by `up`).
        say: where progress lines go.
    """

    def __init__(self, folder: Path, say: Callable[[str], None] = print) -> None:
        self.folder = Path(folder).resolve()
        self.say = say

    # ------------------------------------------------------------------ up

    def up(
        self,
        *,
        nodes: int = 3,
        disk_size: int = 1 << 30,
        rest_port: int = 8081,
        grpc_port: int = 50051,
        engine_port_base: int = 10124,
        core_flags: tuple[str, ...] = (),
        timeout: float = 60.0,
        secure: bool = False,
    ) -> ClusterLayout:
        """Start what is not running and make every pool; returns the layout.

        `secure` (a new cluster only) makes a private CA and tokens in ``tls/``: gRPC
        over TLS with client certificates, REST over HTTPS with bearer tokens.

        Raises:
            InvalidArgument: a bad node count or disk size.
            Unavailable: a process did not start (its log tail is in the message).
        """
        layout = ClusterLayout.load(self.folder)
        if layout is None:
            if not 1 <= nodes <= 32:
                raise InvalidArgument(f"--nodes must be from 1 to 32, not {nodes}")
            if disk_size < 64 << 20:
                raise InvalidArgument(f"--disk-size must be at least 64MiB, not {disk_size}")
            self.folder.mkdir(parents=True, exist_ok=True)
            layout = new_layout(
                nodes, disk_size, self.folder, rest_port, grpc_port, engine_port_base, secure
            )
            layout.save(self.folder)
            self.say(f"new cluster in {self.folder}: {nodes} node(s), disks of {disk_size} bytes")
            if secure:
                self.say(f"private CA, certificates and REST tokens in {self.security().folder}")
        else:
            self.say(f"cluster in {self.folder}: {len(layout.nodes)} node(s)")
        logs = self.folder / "logs"
        core = self._core(layout, core_flags)
        if _alive(layout.core_pid, "mayastor.control.main"):
            self.say(f"core agent already running (pid {layout.core_pid})")
        else:
            try:
                core.start(timeout)
            except RuntimeError as exc:
                raise Unavailable(f"the core agent did not start: {exc}") from exc
            layout.core_pid = core.pid
            layout.save(self.folder)
            self.say(f"core agent started (pid {core.pid}): REST {layout.rest_url}, logs in {logs}")
        for node in layout.nodes:
            disk = Path(node.disk)
            if not disk.exists():
                disk.parent.mkdir(parents=True, exist_ok=True)
                with open(disk, "wb") as fh:
                    fh.truncate(layout.disk_size)
            if _alive(node.pid, "mayastor.engine.main"):
                self.say(f"{node.name} already running (pid {node.pid})")
                continue
            engine = self.engine(layout, node)
            try:
                engine.start(timeout)
            except RuntimeError as exc:
                raise Unavailable(f"io-engine {node.name} did not start: {exc}") from exc
            node.pid = engine.proc.pid if engine.proc else None
            layout.save(self.folder)
            self.say(f"{node.name} started (pid {node.pid}): gRPC 127.0.0.1:{node.grpc_port}")
        self._make_pools(layout, timeout)
        return layout

    def security(self) -> ClusterSecurity:
        """The cluster's CA, certificates and tokens (made on first use)."""
        return ClusterSecurity.create(self.folder / "tls")

    def rest_credentials(self, layout: ClusterLayout) -> RestClientCredentials | None:
        """What an admin client of the cluster shows REST (None: plain HTTP)."""
        return self.security().rest_credentials() if layout.secure else None

    def _core(self, layout: ClusterLayout, core_flags: tuple[str, ...] = ()) -> CoreAgentProcess:
        security = self.security() if layout.secure else None
        return CoreAgentProcess(
            self.folder / "logs",
            store=str(self.folder / "core" / "store.db"),
            grpc_port=layout.grpc_port,
            rest_port=layout.rest_port,
            extra_args=("--state-dir", str(self.folder / "core"), *core_flags),
            log_name="core-agent.log",
            tls=security.certificate("core") if security else None,
            token_file=security.token_table if security else None,
            probe_token=security.token() if security else None,
        )

    def engine(self, layout: ClusterLayout, node: NodeLayout) -> EngineProcess:
        """The io-engine process of `node` (not started)."""
        engine = EngineProcess(
            node.name,
            self.folder / "logs",
            grpc_port=node.grpc_port,
            replica_port=node.replica_port,
            nexus_port=node.nexus_port,
            registration_endpoint=layout.registration_endpoint,
            disk_allow=[f"{Path(node.disk).resolve().parent}/*"],
            tls=self.security().certificate(node.name) if layout.secure else None,
        )
        engine.state_dir = self.folder / "nodes" / node.name
        return engine

    def _make_pools(self, layout: ClusterLayout, timeout: float) -> None:
        credentials = self.rest_credentials(layout)
        with RestClient(layout.rest_url, timeout=timeout, credentials=credentials) as rest:
            deadline = time.monotonic() + timeout
            waiting = {n.name for n in layout.nodes}
            while waiting:
                for name in list(waiting):
                    try:
                        node = rest.get_node(name)
                    except RestError:
                        continue
                    if node.get("state", {}).get("status") == "Online":
                        waiting.discard(name)
                if waiting and time.monotonic() > deadline:
                    raise Unavailable(
                        f"nodes {sorted(waiting)} did not register within {timeout} s"
                    )
                if waiting:
                    time.sleep(0.2)
            for node_layout in layout.nodes:
                pool = f"pool-{node_layout.name}"
                try:
                    made = rest.create_pool(node_layout.name, pool, [node_layout.disk])
                except RestError as exc:
                    raise FailedPrecondition(f"pool {pool} on {node_layout.name}: {exc}") from exc
                state = made.get("state", {})
                self.say(
                    f"pool {pool} on {node_layout.name}: {state.get('status', 'Unknown')}, "
                    f"{state.get('capacity', 0)} bytes"
                )

    # ------------------------------------------------------------------ down

    def down(self, timeout: float = 30.0) -> None:
        """Stop every process the layout recorded: io-engines first, then the core agent."""
        layout = ClusterLayout.load(self.folder)
        if layout is None:
            self.say(f"no cluster in {self.folder}")
            return
        for node in layout.nodes:
            if self._stop(node.pid, "mayastor.engine.main", node.name, timeout):
                node.pid = None
        if self._stop(layout.core_pid, "mayastor.control.main", "core agent", timeout):
            layout.core_pid = None
        layout.save(self.folder)

    def _stop(self, pid: int | None, marker: str, what: str, timeout: float) -> bool:
        if not _alive(pid, marker):
            return True
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid, marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid, marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self.say(f"{what} (pid {pid}) did not stop in {timeout} s: killed")
        else:
            self.say(f"{what} (pid {pid}) stopped")
        return True

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, bool]:
        """Which processes of the layout run now."""
        layout = ClusterLayout.load(self.folder)
        if layout is None:
            return {}
        found = {"core agent": _alive(layout.core_pid, "mayastor.control.main")}
        for node in layout.nodes:
            found[node.name] = _alive(node.pid, "mayastor.engine.main")
        return found
