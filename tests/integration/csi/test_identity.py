"""CSI conformance of the Identity service of both plugins, over their sockets."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from mayastor import __version__
from mayastor.api.csi.v1 import csi_pb2
from mayastor.cluster.processes import free_port
from tests.integration.csi.conftest import CsiCluster
from tests.integration.csi.plugins import ControllerPlugin, CsiClient, short_socket_dir

pytestmark = pytest.mark.slow


@pytest.fixture(params=["controller", "node"])
def plugin(request: pytest.FixtureRequest, csi_cluster: CsiCluster) -> Iterator[CsiClient]:
    process = csi_cluster.controller if request.param == "controller" else csi_cluster.node
    with process.client() as client:
        yield client


def test_plugin_info_names_the_driver_and_its_version(plugin: CsiClient) -> None:
    info = plugin.identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest())
    assert info.name == "io.openebs.csi-mayastor"
    assert info.vendor_version == __version__


def test_both_plugins_offer_the_controller_service_topology_and_expansion(
    plugin: CsiClient,
) -> None:
    reply = plugin.identity.GetPluginCapabilities(csi_pb2.GetPluginCapabilitiesRequest())
    service = csi_pb2.PluginCapability.Service
    expansion = csi_pb2.PluginCapability.VolumeExpansion
    services = {c.service.type for c in reply.capabilities if c.HasField("service")}
    expansions = {
        c.volume_expansion.type for c in reply.capabilities if c.HasField("volume_expansion")
    }
    assert services == {service.CONTROLLER_SERVICE, service.VOLUME_ACCESSIBILITY_CONSTRAINTS}
    assert expansions == {expansion.ONLINE, expansion.OFFLINE}


def test_the_controller_probe_is_ready_while_the_rest_api_answers(
    csi_cluster: CsiCluster,
) -> None:
    with csi_cluster.controller.client() as client:
        assert client.identity.Probe(csi_pb2.ProbeRequest()).ready.value is True


def test_the_controller_probe_fails_its_precondition_without_the_rest_api(
    tmp_path: Path,
) -> None:
    sockets = short_socket_dir()
    dead = f"http://127.0.0.1:{free_port()}"
    controller = ControllerPlugin(tmp_path, dead, sockets / "controller.sock")
    controller.start()
    try:
        with controller.client() as client:
            with pytest.raises(grpc.RpcError) as refused:
                client.identity.Probe(csi_pb2.ProbeRequest())
            create = client.code_of(
                "controller",
                "CreateVolume",
                csi_pb2.CreateVolumeRequest(
                    name="pvc-1",
                    volume_capabilities=[
                        csi_pb2.VolumeCapability(
                            block=csi_pb2.VolumeCapability.BlockVolume(),
                            access_mode=csi_pb2.VolumeCapability.AccessMode(
                                mode=csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
                            ),
                        )
                    ],
                ),
            )
    finally:
        controller.stop()
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert dead in (refused.value.details() or "")
    assert create == grpc.StatusCode.UNAVAILABLE


def test_the_node_probe_says_whether_this_kernel_can_connect_over_nvme_tcp(
    csi_cluster: CsiCluster,
) -> None:
    has_nvme_tcp = Path("/sys/module/nvme_tcp").exists()
    with csi_cluster.node.client() as client:
        code = client.code_of("identity", "Probe", csi_pb2.ProbeRequest())
        try:
            client.identity.Probe(csi_pb2.ProbeRequest())
            message = ""
        except grpc.RpcError as exc:
            message = exc.details() or ""
    if has_nvme_tcp:
        assert code == grpc.StatusCode.OK
    else:
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert "nvme_tcp" in message


def test_a_second_plugin_on_a_socket_that_is_served_does_not_start(
    csi_cluster: CsiCluster,
) -> None:
    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "mayastor.csi.controller_main",
            "--rest-endpoint",
            csi_cluster.cluster.core.rest_url,
            "--csi-socket",
            str(csi_cluster.controller.socket_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert "another process serves on" in second.stderr
    with csi_cluster.controller.client() as client:
        assert client.code_of("identity", "Probe", csi_pb2.ProbeRequest()).name == "OK"
