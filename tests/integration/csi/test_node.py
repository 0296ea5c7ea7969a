"""CSI conformance of the node plugin over its socket: what needs no NVMe/TCP kernel.

The node plugin runs on this host, whose kernel has no nvme-tcp; here are its answers
that come before any connection (node info, capabilities, every required argument,
unknown volumes, capabilities it cannot offer, calls for volumes that are not staged
or paths that hold nothing). Staging, publishing, stats and expansion of real volumes
run in the kernel VM: tests/interop/test_csi_node.py.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest

from mayastor.api.csi.v1 import csi_pb2
from tests.integration.csi.conftest import HOST_NODE, Cap, mount_capability
from tests.integration.csi.plugins import CsiClient

pytestmark = pytest.mark.slow

VOLUME = str(uuid.UUID(int=0xC51))
URI = f"nvmf://127.0.0.1:4421/nqn.2019-05.io.openebs:{VOLUME}"


@pytest.fixture
def paths(tmp_path: Path) -> tuple[str, str]:
    """A staging folder (made, as the CO does) and a target path inside a pod folder."""
    staging = tmp_path / "staging"
    staging.mkdir()
    (tmp_path / "pod").mkdir()
    return str(staging), str(tmp_path / "pod" / "mount")


def code_and_details(call: Any, request: Any) -> tuple[grpc.StatusCode, str]:
    try:
        call(request, timeout=60)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def stage(staging: str, **fields: Any) -> Any:
    values: dict[str, Any] = {
        "volume_id": VOLUME,
        "publish_context": {"uri": URI},
        "staging_target_path": staging,
        "volume_capability": mount_capability(),
    }
    values.update(fields)
    return csi_pb2.NodeStageVolumeRequest(**values)


def publish(staging: str, target: str, **fields: Any) -> Any:
    values: dict[str, Any] = {
        "volume_id": VOLUME,
        "publish_context": {"uri": URI},
        "staging_target_path": staging,
        "target_path": target,
        "volume_capability": mount_capability(),
    }
    values.update(fields)
    return csi_pb2.NodePublishVolumeRequest(**values)


# ============================================================================ info


def test_node_info_gives_the_node_name_and_its_topology(node_co: CsiClient) -> None:
    info = node_co.node.NodeGetInfo(csi_pb2.NodeGetInfoRequest())
    assert info.node_id == HOST_NODE
    assert dict(info.accessible_topology.segments) == {"openebs.io/nodename": HOST_NODE}
    assert info.max_volumes_per_node == 0


def test_node_capabilities_are_what_the_node_plugin_implements(node_co: CsiClient) -> None:
    rpc = csi_pb2.NodeServiceCapability.RPC
    reply = node_co.node.NodeGetCapabilities(csi_pb2.NodeGetCapabilitiesRequest())
    assert {c.rpc.type for c in reply.capabilities} == {
        rpc.STAGE_UNSTAGE_VOLUME,
        rpc.GET_VOLUME_STATS,
        rpc.EXPAND_VOLUME,
        rpc.VOLUME_CONDITION,
        rpc.SINGLE_NODE_MULTI_WRITER,
    }


# ============================================================================ NodeStageVolume


@pytest.mark.parametrize(
    ("fields", "naming"),
    [
        ({"volume_id": ""}, "volume id"),
        ({"staging_target_path": ""}, "staging_target_path"),
        ({"staging_target_path": "relative/path"}, "absolute"),
        ({"volume_capability": None}, "volume_capability"),
        ({"volume_capability": Cap(mount=Cap.MountVolume())}, "access mode"),
        ({"publish_context": {}}, "uri"),
        ({"publish_context": {"uri": "http://host/x"}}, "nvmf://"),
        (
            {"publish_context": {"uri": "nvmf://127.0.0.1:4421/nqn.2019-05.io.openebs:other"}},
            "not this volume's target",
        ),
        ({"publish_context": {"uri": URI, "nvmeIoTimeout": "soon"}}, "nvmeIoTimeout"),
        ({"volume_context": {"nvmeNrIoQueues": "0"}}, "nvmeNrIoQueues"),
    ],
    ids=[
        "no volume id",
        "no staging path",
        "relative staging path",
        "no capability",
        "no access mode",
        "no uri",
        "not an nvmf uri",
        "another volume's uri",
        "malformed io timeout",
        "malformed queue count",
    ],
)
def test_node_stage_with_a_missing_or_malformed_field_is_invalid_argument_naming_it(
    node_co: CsiClient, paths: tuple[str, str], fields: dict[str, Any], naming: str
) -> None:
    request = stage(paths[0], **{k: v for k, v in fields.items() if v is not None})
    for key, value in fields.items():
        if value is None:
            request.ClearField(key)
    code, message = code_and_details(node_co.node.NodeStageVolume, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert naming in message


@pytest.mark.parametrize(
    "capability",
    [
        mount_capability(mode=Cap.AccessMode.MULTI_NODE_MULTI_WRITER),
        mount_capability(fs_type="zfs"),
    ],
    ids=["multi-node writer", "zfs"],
)
def test_node_stage_with_a_capability_it_cannot_offer_is_failed_precondition(
    node_co: CsiClient, paths: tuple[str, str], capability: Any
) -> None:
    request = stage(paths[0], volume_capability=capability)
    code, _ = code_and_details(node_co.node.NodeStageVolume, request)
    assert code == grpc.StatusCode.FAILED_PRECONDITION


def test_node_stage_of_a_volume_id_that_is_no_volume_is_not_found(
    node_co: CsiClient, paths: tuple[str, str]
) -> None:
    code, _ = code_and_details(node_co.node.NodeStageVolume, stage(paths[0], volume_id="vol-1"))
    assert code == grpc.StatusCode.NOT_FOUND


# ============================================================================ NodePublishVolume


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"volume_id": ""}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"target_path": ""}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"volume_capability": None}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"staging_target_path": ""}, grpc.StatusCode.FAILED_PRECONDITION),
        ({"volume_id": "vol-1"}, grpc.StatusCode.NOT_FOUND),
        (
            {"volume_capability": mount_capability(mode=Cap.AccessMode.MULTI_NODE_READER_ONLY)},
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
    ],
    ids=[
        "no volume id",
        "no target path",
        "no capability",
        "no staging path",
        "no such volume",
        "multi-node reader",
    ],
)
def test_node_publish_refuses_what_the_spec_says_it_must(
    node_co: CsiClient,
    paths: tuple[str, str],
    fields: dict[str, Any],
    expected: grpc.StatusCode,
) -> None:
    request = publish(*paths, **{k: v for k, v in fields.items() if v is not None})
    for key, value in fields.items():
        if value is None:
            request.ClearField(key)
    code, _ = code_and_details(node_co.node.NodePublishVolume, request)
    assert code == expected


def test_node_publish_of_a_volume_not_staged_here_is_failed_precondition(
    node_co: CsiClient, paths: tuple[str, str]
) -> None:
    code, message = code_and_details(node_co.node.NodePublishVolume, publish(*paths))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "not staged" in message
    assert not Path(paths[1]).exists()


# ============================================================================ unpublish, unstage


def test_node_unpublish_of_a_path_holding_nothing_removes_it_and_is_ok(
    node_co: CsiClient, paths: tuple[str, str]
) -> None:
    Path(paths[1]).mkdir()
    request = csi_pb2.NodeUnpublishVolumeRequest(volume_id=VOLUME, target_path=paths[1])
    assert code_and_details(node_co.node.NodeUnpublishVolume, request)[0] == grpc.StatusCode.OK
    assert not Path(paths[1]).exists()
    assert code_and_details(node_co.node.NodeUnpublishVolume, request)[0] == grpc.StatusCode.OK


def test_node_unstage_of_a_volume_not_staged_here_is_ok(
    node_co: CsiClient, paths: tuple[str, str]
) -> None:
    request = csi_pb2.NodeUnstageVolumeRequest(volume_id=VOLUME, staging_target_path=paths[0])
    assert code_and_details(node_co.node.NodeUnstageVolume, request)[0] == grpc.StatusCode.OK


@pytest.mark.parametrize(
    "request_",
    [
        csi_pb2.NodeUnpublishVolumeRequest(target_path="/tmp/x"),
        csi_pb2.NodeUnpublishVolumeRequest(volume_id=VOLUME),
        csi_pb2.NodeUnstageVolumeRequest(staging_target_path="/tmp/x"),
        csi_pb2.NodeUnstageVolumeRequest(volume_id=VOLUME),
    ],
    ids=[
        "unpublish without volume id",
        "unpublish without target path",
        "unstage without volume id",
        "unstage without staging path",
    ],
)
def test_node_unpublish_and_unstage_without_a_required_field_are_invalid_argument(
    node_co: CsiClient, request_: Any
) -> None:
    method = (
        node_co.node.NodeUnpublishVolume
        if isinstance(request_, csi_pb2.NodeUnpublishVolumeRequest)
        else node_co.node.NodeUnstageVolume
    )
    assert code_and_details(method, request_)[0] == grpc.StatusCode.INVALID_ARGUMENT


# ============================================================================ stats, expansion


@pytest.mark.parametrize("method", ["NodeGetVolumeStats", "NodeExpandVolume"])
def test_stats_and_expansion_without_a_required_field_are_invalid_argument(
    node_co: CsiClient, method: str, paths: tuple[str, str]
) -> None:
    kind = getattr(csi_pb2, f"{method}Request")
    call = getattr(node_co.node, method)
    assert code_and_details(call, kind(volume_path=paths[0]))[0] == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert code_and_details(call, kind(volume_id=VOLUME))[0] == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("method", ["NodeGetVolumeStats", "NodeExpandVolume"])
def test_stats_and_expansion_of_a_path_that_does_not_exist_are_not_found(
    node_co: CsiClient, method: str, paths: tuple[str, str]
) -> None:
    kind = getattr(csi_pb2, f"{method}Request")
    request = kind(volume_id=VOLUME, volume_path=paths[1])
    assert code_and_details(getattr(node_co.node, method), request)[0] == (
        grpc.StatusCode.NOT_FOUND
    )


@pytest.mark.parametrize("method", ["NodeGetVolumeStats", "NodeExpandVolume"])
def test_stats_and_expansion_of_a_path_the_volume_is_not_mounted_at_are_not_found(
    node_co: CsiClient, method: str, paths: tuple[str, str]
) -> None:
    kind = getattr(csi_pb2, f"{method}Request")
    request = kind(volume_id=VOLUME, volume_path=paths[0])
    code, message = code_and_details(getattr(node_co.node, method), request)
    assert code == grpc.StatusCode.NOT_FOUND
    assert "not mounted" in message


def test_expansion_with_a_capability_it_cannot_offer_is_invalid_argument(
    node_co: CsiClient, paths: tuple[str, str]
) -> None:
    request = csi_pb2.NodeExpandVolumeRequest(
        volume_id=VOLUME,
        volume_path=paths[0],
        volume_capability=mount_capability(mode=Cap.AccessMode.MULTI_NODE_MULTI_WRITER),
    )
    assert code_and_details(node_co.node.NodeExpandVolume, request)[0] == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


@pytest.mark.parametrize(
    ("method", "request_"),
    [
        ("NodeStageVolume", csi_pb2.NodeStageVolumeRequest(volume_id="vol-1")),
        ("NodeUnstageVolume", csi_pb2.NodeUnstageVolumeRequest(volume_id="vol-1")),
        ("NodePublishVolume", csi_pb2.NodePublishVolumeRequest(volume_id="vol-1")),
        ("NodeUnpublishVolume", csi_pb2.NodeUnpublishVolumeRequest(volume_id="vol-1")),
        ("NodeGetVolumeStats", csi_pb2.NodeGetVolumeStatsRequest(volume_id="vol-1")),
        ("NodeExpandVolume", csi_pb2.NodeExpandVolumeRequest(volume_id="vol-1")),
    ],
)
def test_a_missing_argument_is_reported_before_an_unknown_volume(
    node_co: CsiClient, method: str, request_: Any
) -> None:
    code, _ = code_and_details(getattr(node_co.node, method), request_)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
