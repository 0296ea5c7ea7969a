"""Three io-engines on loopback and a three-way nexus over them, for failure tests.

`cluster` starts three real `mayastor` processes, each with its own node name, ports,
state folder and a pool on a sparse file: ``node-a`` hosts the nexus (with a short
``--child-io-timeout``) and one local replica, ``node-b`` and ``node-c`` one shared
replica each. `published_nexus` builds the nexus over the three and publishes it for
`TESTER_NQN`, so `BackgroundLoad` can write to it.

Everything is driven through `mayastor-client`, as an operator (or the control plane)
would; the helpers parse its ``-o json`` output.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mayastor.cluster.processes import EngineProcess
from tests.integration.conftest import make_sparse_file
from tests.support.fault_proxy import FaultProxy
from tests.support.verified_writes import TESTER_NQN, WriteLedger, read_all, verify_uri

NEXUS_UUID = str(uuid.UUID("6e657875-7300-4000-8000-000000000001"))
NEXUS_SIZE_MIB = 24
POOL_FILE_SIZE = 128 << 20
CHILD_IO_TIMEOUT = 2.0
VERIFIER_NQN = "nqn.2019-05.io.openebs:node-name:verifier"
"""An io-engine-style host NQN: shared replicas admit it without an allow-list change."""
LOAD_UNITS = 512
"""The background load writes 4 KiB units over the first 2 MiB of the nexus."""


def client_json(engine: EngineProcess, *args: str) -> Any:
    """``mayastor-client -o json ARGS`` on `engine`, parsed; fails the test if refused."""
    return json.loads(engine.client("-o", "json", *args, check=True).stdout)


@dataclass
class Node:
    """One io-engine of the cluster, its pool file and the replica it holds."""

    engine: EngineProcess
    pool_file: Path
    size_mib: int = NEXUS_SIZE_MIB
    replica: str = ""
    replica_uri: str = ""

    @property
    def pool_spec(self) -> str:
        return f"pool={self.pool_file}"

    def restart(self) -> None:
        """Start the (killed or stopped) io-engine again with its pool imported."""
        self.engine.pools = [self.pool_spec]
        self.engine.start()

    def create_replica(self, name: str, *, share: bool) -> str:
        """A thick replica of the nexus's size; its URI (shared over NVMe/TCP or bdev://)."""
        args = ["replica", "create", "pool", name, f"--size={self.size_mib}"]
        if share:
            args += ["--share", "nvmf"]
        replica = client_json(self.engine, *args)
        self.replica = name
        self.replica_uri = replica["uri"]
        return self.replica_uri

    def share_replica(self) -> str:
        """Share this node's replica over NVMe/TCP (io-engines only); its URI."""
        return str(client_json(self.engine, "replica", "share", "pool", self.replica)["uri"])


@dataclass
class Cluster:
    """Three io-engines; `a` hosts the nexus, `b` and `c` serve remote replicas."""

    a: Node
    b: Node
    c: Node
    nexus_uri: str = ""
    children: list[str] = field(default_factory=list)

    @property
    def nodes(self) -> tuple[Node, Node, Node]:
        return (self.a, self.b, self.c)

    def nexus(self, *args: str) -> Any:
        """``nexus ARGS`` on the nexus's io-engine, parsed."""
        return client_json(self.a.engine, "nexus", *args)

    def create_nexus(self) -> dict[str, Any]:
        return dict(self.nexus("create", NEXUS_UUID, str(self.a.size_mib), *self.children))

    def child_table(self) -> dict[str, dict[str, Any]]:
        """The nexus's children by URI, as ``nexus list -o json`` shows them."""
        listing = client_json(self.a.engine, "nexus", "list")
        (nexus,) = [n for n in listing if n["uuid"] == NEXUS_UUID]
        return {c["uri"]: c for c in nexus["children"]}

    def child(self, uri: str) -> dict[str, Any]:
        return self.child_table()[uri]

    def child_is(self, uri: str, state: str, reason: str | None = None) -> bool:
        found = self.child_table().get(uri)
        if found is None or found["state"] != f"CHILD_STATE_{state.upper()}":
            return False
        return reason is None or found["state_reason"] == f"CHILD_STATE_REASON_{reason.upper()}"

    def all_online(self) -> bool:
        table = self.child_table()
        return len(table) == len(self.children) and all(
            c["state"] == "CHILD_STATE_ONLINE" for c in table.values()
        )

    def history(self) -> list[dict[str, Any]]:
        return list(client_json(self.a.engine, "rebuild", "history", NEXUS_UUID))

    def verify_nexus(self, ledger: WriteLedger) -> list[Any]:
        """Ledger mismatches read through the published nexus."""
        return asyncio.run(verify_uri(ledger, self.nexus_uri))

    def assert_every_acknowledged_write_on_every_replica(self, ledger: WriteLedger) -> None:
        """Through the nexus, then each replica read directly: every acknowledged write
        is there and the three replicas are byte-identical. Destroys the nexus."""
        assert self.verify_nexus(ledger) == []
        images = self.replica_images(ledger)
        assert [mismatches for _, mismatches in images] == [[], [], []]
        assert images[0][0] == images[1][0] == images[2][0]

    def replica_images(self, ledger: WriteLedger) -> list[tuple[bytes, list[Any]]]:
        """Each replica's whole contents and its ledger mismatches, read directly.

        The nexus is destroyed first (its children are flushed and released); each
        replica is then shared by its own io-engine and read over NVMe/TCP.
        """
        self.a.engine.client("nexus", "destroy", NEXUS_UUID, check=True)
        found = []
        for node in self.nodes:
            uri = node.share_replica()
            found.append(
                (
                    asyncio.run(read_all(uri, hostnqn=VERIFIER_NQN)),
                    asyncio.run(verify_uri(ledger, uri, hostnqn=VERIFIER_NQN)),
                )
            )
        return found


@pytest.fixture
def nexus_size_mib() -> int:
    """The size of the nexus and its replicas; a module overrides it for longer rebuilds."""
    return NEXUS_SIZE_MIB


@pytest.fixture
def cluster(
    engines: Callable[..., EngineProcess], tmp_path: Path, nexus_size_mib: int
) -> Iterator[Cluster]:
    """Three io-engines with a pool each and one replica each (b's and c's shared)."""
    nodes = []
    for name, extra in (
        ("node-a", ["--child-io-timeout", str(CHILD_IO_TIMEOUT)]),
        ("node-b", []),
        ("node-c", []),
    ):
        pool_file = make_sparse_file(tmp_path / f"{name}.img", POOL_FILE_SIZE)
        engine = engines(name, extra_args=extra, pools=[f"pool={pool_file}"])
        nodes.append(Node(engine, pool_file, nexus_size_mib))
    a, b, c = nodes
    found = Cluster(a, b, c)
    found.children = [
        a.create_replica("ra", share=False),
        b.create_replica("rb", share=True),
        c.create_replica("rc", share=True),
    ]
    yield found
    for node in found.nodes:  # a stopped process would ignore SIGTERM until continued
        if node.engine.running:
            node.engine.resume()


@pytest.fixture
def published_nexus(cluster: Cluster) -> Cluster:
    """The three-way nexus on node-a, published for `TESTER_NQN`."""
    created = cluster.create_nexus()
    assert created["state"] == "NEXUS_ONLINE", created
    published = cluster.nexus("publish", NEXUS_UUID, "--allowed-host", TESTER_NQN)
    cluster.nexus_uri = published["device_uri"]
    return cluster


@pytest.fixture
def proxied_nexus(cluster: Cluster) -> Iterator[tuple[Cluster, FaultProxy]]:
    """The nexus with its child on node-b reached through a `FaultProxy`."""
    with FaultProxy("127.0.0.1", cluster.b.engine.replica_port) as proxy:
        direct = f"127.0.0.1:{cluster.b.engine.replica_port}/"
        proxied = cluster.b.replica_uri.replace(direct, f"127.0.0.1:{proxy.port}/")
        assert proxied != cluster.b.replica_uri
        cluster.children[1] = proxied
        cluster.create_nexus()
        published = cluster.nexus("publish", NEXUS_UUID, "--allowed-host", TESTER_NQN)
        cluster.nexus_uri = published["device_uri"]
        yield cluster, proxy
