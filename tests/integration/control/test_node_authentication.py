"""The core agent's ``--dhchap``: per-node DH-HMAC-CHAP secrets on every share.

Two io-engines and a core agent, real processes on loopback. A two-replica volume is
published on node-1 for app-1: its replica on node-2 is shared with node-1's secret
(which node-1's io-engine got when it registered), and the nexus with app-1's (which
app-1 asks the REST API for). Our own initiator then plays app-1.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mayastor.bdev.nvmf import NvmfDevice
from mayastor.control.specs import node_nqn
from mayastor.csi._dhchap import RestDhchapSecret
from mayastor.errors import ConnectRefused
from mayastor.nvmf.auth import DhchapSecret
from mayastor.nvmf.host import ControllerOptions
from mayastor.restclient import AsyncRestClient
from tests.support.cluster import FAST_CORE_FLAGS, TestCluster

APP_NODE = "app-1"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestCluster, str, str]]:
    """A ``--dhchap`` cluster of two io-engines and a two-replica volume published on
    node-1 for app-1: (cluster, volume uuid, the target's URI)."""
    workdir: Path = tmp_path_factory.mktemp("dhchap")
    cluster = TestCluster(workdir, nodes=2, core_flags=(*FAST_CORE_FLAGS, "--dhchap"))
    try:
        cluster.start()
        volume, uri = cluster.new_volume(replicas=2, target="node-1", frontend=APP_NODE)
        yield cluster, volume, uri
    finally:
        cluster.close()


def replicas_listed(cluster: TestCluster, node: str) -> list[dict[str, Any]]:
    result = cluster.engines[node].client("-o", "json", "replica", "list", check=True)
    listed: list[dict[str, Any]] = json.loads(result.stdout)
    return listed


def app_node_secret(cluster: TestCluster) -> DhchapSecret:
    status, body = cluster.rest.call("POST", f"/app-nodes/{APP_NODE}/dhchap-secret")
    assert status == 200, body
    assert body["host_nqn"] == node_nqn(APP_NODE)
    return DhchapSecret.parse(body["secret"])


def write_and_read(uri: str, options: ControllerOptions) -> bytes:
    async def run() -> bytes:
        device = await NvmfDevice.open(uri, options=options)
        try:
            await device.write_at(4096, b"\x5a" * 4096)
            return bytes(await device.read_at(4096, 4096))
        finally:
            await device.close()

    return asyncio.run(run())


def csi_secret(cluster: TestCluster) -> str | None:
    """What the CSI node plugin (and the ha-node agent) of app-1 would connect with."""

    async def ask() -> str | None:
        async with AsyncRestClient(cluster.core.rest_url) as rest:
            return await RestDhchapSecret(rest, APP_NODE)()

    return asyncio.run(ask())


def test_the_remote_replica_is_shared_with_a_secret(
    secured: tuple[TestCluster, str, str],
) -> None:
    cluster, _, _ = secured
    (remote,) = replicas_listed(cluster, "node-2")
    assert remote["share"] == "NVMF"
    assert remote["host_authentication"] is True


def test_the_nexus_reaches_its_remote_child_with_the_secret_from_registration(
    secured: tuple[TestCluster, str, str],
) -> None:
    cluster, volume, _ = secured
    state = cluster.volume(volume)["state"]
    assert state["status"] == "Online"
    children = state["target"]["children"]
    assert len(children) == 2
    assert {c["state"] for c in children} == {"Online"}


def test_the_app_node_writes_and_reads_with_its_secret(
    secured: tuple[TestCluster, str, str],
) -> None:
    cluster, _, uri = secured
    options = ControllerOptions(hostnqn=node_nqn(APP_NODE), dhchap_secret=app_node_secret(cluster))
    assert write_and_read(uri, options) == b"\x5a" * 4096


@pytest.mark.parametrize(
    "secret",
    [lambda: None, DhchapSecret.generate],
    ids=["no secret", "another secret"],
)
def test_the_app_node_without_its_secret_is_refused(
    secured: tuple[TestCluster, str, str], secret: Callable[[], DhchapSecret | None]
) -> None:
    _, _, uri = secured
    options = ControllerOptions(hostnqn=node_nqn(APP_NODE), dhchap_secret=secret())
    with pytest.raises(ConnectRefused):
        write_and_read(uri, options)


def test_the_csi_node_plugin_gets_the_app_nodes_secret_from_rest(
    secured: tuple[TestCluster, str, str],
) -> None:
    cluster, _, _ = secured
    assert csi_secret(cluster) == app_node_secret(cluster).format()


def test_the_secret_is_the_same_when_asked_again(
    secured: tuple[TestCluster, str, str],
) -> None:
    cluster, _, _ = secured
    assert app_node_secret(cluster) == app_node_secret(cluster)


def test_the_secrets_outlive_a_restart_of_the_core_agent(
    make_cluster: Callable[..., TestCluster],
) -> None:
    cluster = make_cluster(nodes=1, core_flags=(*FAST_CORE_FLAGS, "--dhchap"))
    before = app_node_secret(cluster)
    cluster.core.stop()
    cluster.core.start()
    assert app_node_secret(cluster) == before


def test_without_dhchap_shares_carry_no_secret_and_none_is_given(
    make_cluster: Callable[..., TestCluster],
) -> None:
    cluster = make_cluster(nodes=2)
    volume, uri = cluster.new_volume(replicas=2, target="node-1", frontend=APP_NODE)
    (remote,) = replicas_listed(cluster, "node-2")
    assert remote["host_authentication"] is False
    status, body = cluster.rest.call("POST", f"/app-nodes/{APP_NODE}/dhchap-secret")
    assert status == 412, body
    assert csi_secret(cluster) is None
    assert cluster.volume_status(volume) == "Online"
    assert write_and_read(uri, ControllerOptions(hostnqn=node_nqn(APP_NODE))) == b"\x5a" * 4096
