"""A control-plane cluster for tests: a core agent, io-engines on file disks, a pool each.

`TestCluster` starts real processes on loopback (the core agent on the embedded store
or on an etcd the caller started), registers N io-engines with it, makes one pool per
node through REST, and offers a small synchronous REST client (`rest`) that returns the
decoded JSON and the status code. Everything it started is stopped by `close`.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from mayastor.cluster.processes import CoreAgentProcess, EngineProcess, free_port
from tests.support.netns import TestNetwork
from tests.support.offline_pool import replica_images
from tests.support.polling import wait_for

FAST_CORE_FLAGS = (
    "--poll-period",
    "500ms",
    "--reconcile-period",
    "1s",
    "--reconcile-idle-period",
    "2s",
    "--lease-ttl",
    "3s",
)
"""Short periods, so tests see the core react within seconds."""


class Rest:
    """Synchronous REST calls that return (status, decoded JSON or None)."""

    def __init__(self, base_url: str, timeout: float = 120.0) -> None:
        self.base_url = base_url
        self.client = httpx.Client(base_url=f"{base_url}/v0", timeout=timeout)

    def close(self) -> None:
        self.client.close()

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> tuple[int, Any]:
        reply = self.client.request(method, path, json=body, params=params or None)
        data = reply.json() if reply.content else None
        return reply.status_code, data

    def get(self, path: str, **params: Any) -> Any:
        """GET that must succeed (200)."""
        status, data = self.call("GET", path, **params)
        assert status == 200, (path, status, data)
        return data

    def put(self, path: str, body: Any = None, **params: Any) -> Any:
        """PUT that must succeed (200, or 204 with no body)."""
        status, data = self.call("PUT", path, body, **params)
        assert status in (200, 204), (path, status, data)
        return data

    def delete(self, path: str, **params: Any) -> Any:
        status, data = self.call("DELETE", path, **params)
        assert status in (200, 204), (path, status, data)
        return data


class TestCluster:
    """Core agent plus io-engines, each with a pool ``pool-<node>`` on a sparse file.

    Args:
        workdir: where logs, disks and state go.
        nodes: how many io-engines (``node-1`` ...).
        disk_size: bytes of each pool disk.
        store: the core agent's ``--store`` (default: embedded); with etcd, the io-engines
            keep nexus info there directly (``--ps-endpoint``).
        core_flags: flags for the core agent.
        engine_flags: flags for every io-engine.
        metrics: each io-engine serves /metrics on a port of its own (`metrics_ports`).
        network: a started `TestNetwork`: each io-engine runs in a network namespace of
            its own on it (`network.cut(node)` partitions it) and the core agent's gRPC
            binds to the network's bridge; REST stays on 127.0.0.1.
    """

    __test__ = False

    def __init__(
        self,
        workdir: Path,
        *,
        nodes: int = 3,
        disk_size: int = 256 << 20,
        store: str | None = None,
        core_flags: Sequence[str] = FAST_CORE_FLAGS,
        engine_flags: Sequence[str] = ("--child-io-timeout", "2", "--registration-interval", "1"),
        metrics: bool = False,
        network: TestNetwork | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.node_count = nodes
        self.disk_size = disk_size
        self.network = network
        self.core = CoreAgentProcess(
            self.workdir,
            store=store,
            extra_args=core_flags,
            grpc_host=network.gateway if network else "127.0.0.1",
        )
        self.engine_flags = list(engine_flags)
        if store is not None and store.startswith("etcd://"):
            self.engine_flags += ["--ps-endpoint", store]
        self.engines: dict[str, EngineProcess] = {}
        self.metrics = metrics
        self.metrics_ports: dict[str, int] = {}
        self.rest = Rest(self.core.rest_url)

    def disk(self, node: str) -> Path:
        return self.workdir / f"{node}.img"

    def start(self, *, pools: bool = True) -> TestCluster:
        self.core.start()
        names = [f"node-{n}" for n in range(1, self.node_count + 1)]
        for name in names:
            self.add_engine(name, wait=False)
        for name in names:
            self.engines[name].wait_ready()
        self.wait_nodes_online(names)
        if pools:
            for name in self.engines:
                self.create_pool(name)
        return self

    def add_engine(self, name: str, *, wait: bool = True) -> EngineProcess:
        disk = self.disk(name)
        if not disk.exists():
            with open(disk, "wb") as fh:
                fh.truncate(self.disk_size)
        flags = list(self.engine_flags)
        host, netns = "127.0.0.1", None
        if self.network is not None:
            node = self.network.add_node(name)
            host, netns = node.address, node.netns
        if self.metrics:
            port = self.metrics_ports.setdefault(name, free_port())
            flags += ["--metrics-endpoint", f"{host}:{port}"]
        engine = EngineProcess(
            name,
            self.workdir,
            registration_endpoint=self.core.grpc_endpoint,
            extra_args=flags,
            disk_allow=[f"{self.workdir.resolve()}/*"],
            host=host,
            netns=netns,
        )
        engine.launch()
        self.engines[name] = engine
        if wait:
            engine.wait_ready()
        return engine

    def create_pool(self, node: str) -> Any:
        return self.rest.put(f"/nodes/{node}/pools/pool-{node}", {"disks": [str(self.disk(node))]})

    def node_status(self, node: str) -> str | None:
        status, data = self.rest.call("GET", f"/nodes/{node}")
        if status != 200 or "state" not in data:
            return None
        return str(data["state"]["status"])

    def wait_nodes_online(self, nodes: Sequence[str], timeout: float = 30.0) -> None:
        wait_for(
            lambda: all(self.node_status(n) == "Online" for n in nodes),
            f"nodes {', '.join(nodes)} online",
            timeout,
        )

    def volume(self, volume_id: str) -> Any:
        return self.rest.get(f"/volumes/{volume_id}")

    def new_volume(
        self,
        size: int = 32 << 20,
        *,
        replicas: int = 3,
        target: str | None = "node-1",
        frontend: str = "app-1",
        self_heal: bool = True,
    ) -> tuple[str, str]:
        """Create a thick volume and publish it for `frontend` (on `target`, or where the
        core chooses when None); returns its uuid and its target's URI."""
        volume = str(uuid.uuid4())
        body = {
            "size": size,
            "replicas": replicas,
            "thin": False,
            "policy": {"self_heal": self_heal},
        }
        self.rest.put(f"/volumes/{volume}", body)
        publish: dict[str, Any] = {
            "protocol": "nvmf",
            "publish_context": {},
            "frontend_node": frontend,
        }
        if target is not None:
            publish["node"] = target
        published = self.rest.put(f"/volumes/{volume}/target", publish)
        return volume, published["state"]["target"]["deviceUri"]

    def volume_status(self, volume_id: str) -> str:
        return str(self.volume(volume_id)["state"]["status"])

    def replica_nodes(self, volume_id: str) -> list[str]:
        """The nodes of the volume's replicas, sorted."""
        topology = self.volume(volume_id)["state"]["replica_topology"]
        return sorted(r["node"] for r in topology.values())

    def target_node(self, volume_id: str) -> str | None:
        target = self.volume(volume_id)["spec"].get("target")
        return str(target["node"]) if target else None

    def stop_and_read_replicas(self, volumes: Mapping[str, int]) -> dict[str, set[bytes]]:
        """Stop the cluster, then read every replica of `volumes` (uuid -> bytes to
        compare) from the pool files; per volume, the distinct contents found (one when
        its replicas are identical)."""
        topologies = {v: set(self.volume(v)["state"]["replica_topology"]) for v in volumes}
        self.close()
        images: dict[str, bytes] = {}
        for name in self.engines:
            images.update(replica_images(self.disk(name)))
        return {v: {images[r][:size] for r in topologies[v]} for v, size in volumes.items()}

    def diagnosis(self, log_lines: int = 40) -> str:
        """What a failed test needs to be explained: each volume's status, target and
        children as the core agent reports them (asked with a short timeout: the core
        agent may be the process the test stopped), the end of the core agent's log and
        the warnings and errors at the end of each io-engine's log."""
        parts = [self._volumes_now()]
        parts.append(f"--- {self.core.log_path.name} (end)\n{self.core.log_tail(log_lines)}")
        for name, engine in self.engines.items():
            with contextlib.suppress(OSError):
                lines = engine.log_path.read_text(errors="replace").splitlines()
                noted = [line for line in lines if " WARNING " in line or " ERROR " in line]
                parts.append(f"--- {name}: last warnings and errors\n" + "\n".join(noted[-10:]))
        return "\n".join(parts)

    def _volumes_now(self) -> str:
        try:
            reply = self.rest.client.get("/volumes", timeout=5.0)
            entries = reply.json()["entries"]
        except (httpx.HTTPError, RuntimeError, ValueError, KeyError, TypeError) as exc:
            return f"volumes: not read from the core agent ({type(exc).__name__}: {exc})"
        lines = []
        for volume in entries:
            state = volume.get("state", {})
            children = {
                uuid: (
                    r.get("node"),
                    r.get("state"),
                    r.get("child-status"),
                    r.get("child-status-reason"),
                    r.get("rebuild-progress"),
                )
                for uuid, r in state.get("replica_topology", {}).items()
            }
            spec = volume.get("spec", {})
            lines.append(
                f"volume {spec.get('uuid')}: {state.get('status')}, target "
                f"{spec.get('target')}, replicas {children}"
            )
        return "\n".join(lines) or "volumes: none"

    def close(self) -> None:
        self.rest.close()
        for engine in self.engines.values():
            with contextlib.suppress(Exception):
                engine.stop()
        self.core.stop()

    def __enter__(self) -> TestCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
