"""Fixtures of the CSI conformance suite: real plugins on unix sockets, a real cluster.

Each test module gets one cluster (a core agent and three io-engines, a 1 GiB sparse
pool each; node-1 labelled zone=a, node-2 and node-3 zone=b, pool-node-3 tier=fast),
one ``mayastor-csi-controller`` against its REST API, and one ``mayastor-csi-node``
on this host (whose kernel has no nvme-tcp: the node calls that need it run in the VM,
tests/interop/test_csi_node.py). Each test gets its own CSI client and REST client,
and the volumes it makes are deleted after it.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mayastor.api.csi.v1 import csi_pb2
from mayastor.restclient import NotFound, RestClient
from tests.integration.csi.plugins import (
    ControllerPlugin,
    CsiClient,
    NodePlugin,
    short_socket_dir,
)
from tests.support.cluster import TestCluster

Cap = csi_pb2.VolumeCapability
HOST_NODE = "csi-host"
"""The node name of the node plugin that runs on this host."""


def mount_capability(
    fs_type: str = "ext4",
    mode: csi_pb2.VolumeCapability.AccessMode.Mode.ValueType = Cap.AccessMode.SINGLE_NODE_WRITER,
) -> csi_pb2.VolumeCapability:
    return Cap(mount=Cap.MountVolume(fs_type=fs_type), access_mode=Cap.AccessMode(mode=mode))


def block_capability(
    mode: csi_pb2.VolumeCapability.AccessMode.Mode.ValueType = Cap.AccessMode.SINGLE_NODE_WRITER,
) -> csi_pb2.VolumeCapability:
    return Cap(block=Cap.BlockVolume(), access_mode=Cap.AccessMode(mode=mode))


@dataclass
class CsiCluster:
    cluster: TestCluster
    controller: ControllerPlugin
    node: NodePlugin
    sockets: Path


@pytest.fixture(scope="module")
def csi_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CsiCluster]:
    workdir = Path(tmp_path_factory.mktemp("csi"))
    sockets = short_socket_dir()
    cluster = TestCluster(workdir, disk_size=1 << 30)
    controller = ControllerPlugin(workdir, cluster.core.rest_url, sockets / "controller.sock")
    node = NodePlugin(workdir, HOST_NODE, sockets / "node.sock")
    try:
        cluster.start()
        with RestClient(cluster.core.rest_url) as rest:
            rest.label_node("node-1", "zone", "a")
            rest.label_node("node-2", "zone", "b")
            rest.label_node("node-3", "zone", "b")
            rest.label_pool("pool-node-3", "tier", "fast")
        controller.start()
        node.start()
        yield CsiCluster(cluster, controller, node, sockets)
    finally:
        node.stop()
        controller.stop()
        cluster.close()
        shutil.rmtree(sockets, ignore_errors=True)


@pytest.fixture
def co(csi_cluster: CsiCluster) -> Iterator[CsiClient]:
    """The CO's connection to the controller plugin's socket."""
    with csi_cluster.controller.client() as client:
        yield client


@pytest.fixture
def node_co(csi_cluster: CsiCluster) -> Iterator[CsiClient]:
    """The CO's connection to the node plugin's socket."""
    with csi_cluster.node.client() as client:
        yield client


@pytest.fixture
def rest(csi_cluster: CsiCluster) -> Iterator[RestClient]:
    """The core agent's REST API, to see what the controller did."""
    with RestClient(csi_cluster.cluster.core.rest_url) as client:
        yield client


VolumeFactory = Callable[..., Any]


@pytest.fixture
def make_volume(co: CsiClient, rest: RestClient) -> Iterator[VolumeFactory]:
    """CreateVolume with a fresh name (or the one given); every volume made is deleted
    (unpublished first) after the test."""
    made: list[str] = []

    def make(
        *,
        name: str | None = None,
        size: int = 8 << 20,
        parameters: dict[str, str] | None = None,
        capabilities: list[csi_pb2.VolumeCapability] | None = None,
        **fields: Any,
    ) -> Any:
        request = csi_pb2.CreateVolumeRequest(
            name=name or f"pvc-{uuid.uuid4()}",
            capacity_range=csi_pb2.CapacityRange(required_bytes=size),
            volume_capabilities=capabilities or [mount_capability()],
            parameters=parameters if parameters is not None else {"repl": "1"},
            **fields,
        )
        volume = co.controller.CreateVolume(request, timeout=60).volume
        made.append(volume.volume_id)
        return volume

    yield make
    for volume_id in made:
        try:
            rest.unpublish_volume(volume_id, force=True)
            rest.delete_volume(volume_id)
        except NotFound:
            pass
