"""CSI conformance of the controller plugin, over its socket, against a live cluster.

Every Controller RPC: what succeeds, that repeating it changes nothing, and each
error code the CSI spec requires of it (missing arguments, unknown volumes,
incompatible capabilities, capacity out of range). What the controller did is read
back from the core agent's REST API.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import grpc
import pytest

from mayastor.api.csi.v1 import csi_pb2
from mayastor.restclient import RestClient
from tests.integration.csi.conftest import (
    Cap,
    CsiCluster,
    VolumeFactory,
    block_capability,
    mount_capability,
)
from tests.integration.csi.plugins import MIB, CsiClient

pytestmark = pytest.mark.slow

WRITER = Cap.AccessMode.SINGLE_NODE_WRITER
NQN = "nqn.2019-05.io.openebs"


def code(call: Any, request: Any) -> grpc.StatusCode:
    try:
        call(request, timeout=60)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def details(call: Any, request: Any) -> str:
    try:
        call(request, timeout=60)
    except grpc.RpcError as exc:
        return exc.details() or ""
    return ""


def create_request(name: str | None = None, size: int = 8 * MIB, **fields: Any) -> Any:
    fields.setdefault("volume_capabilities", [mount_capability()])
    fields.setdefault("parameters", {"repl": "1"})
    return csi_pb2.CreateVolumeRequest(
        name=name or f"pvc-{uuid.uuid4()}",
        capacity_range=csi_pb2.CapacityRange(required_bytes=size),
        **fields,
    )


def publish(co: CsiClient, volume: Any, node: str = "app-1") -> dict[str, str]:
    reply = co.controller.ControllerPublishVolume(
        csi_pb2.ControllerPublishVolumeRequest(
            volume_id=volume.volume_id,
            node_id=node,
            volume_capability=mount_capability(),
            volume_context=volume.volume_context,
        ),
        timeout=60,
    )
    return dict(reply.publish_context)


# ============================================================================ CreateVolume


def test_create_volume_rounds_the_required_size_up_to_whole_512_byte_blocks(
    make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume(size=10_000_000)
    assert volume.capacity_bytes == 10_000_384
    assert rest.get_volume(volume.volume_id)["spec"]["size"] == 10_000_384


def test_create_volume_of_a_pvc_name_takes_the_uuid_in_the_name(
    make_volume: VolumeFactory,
) -> None:
    wanted = uuid.uuid4()
    assert make_volume(name=f"pvc-{wanted}").volume_id == str(wanted)


def test_create_volume_of_any_other_name_gets_a_stable_uuid_and_keeps_the_name(
    make_volume: VolumeFactory, rest: RestClient
) -> None:
    name = f"my volume {uuid.uuid4()}"
    volume = make_volume(name=name)
    assert str(uuid.UUID(volume.volume_id)) == volume.volume_id
    labels = rest.get_volume(volume.volume_id)["spec"]["labels"]
    assert labels == {"openebs.io/csi-volume-name": name}


def test_create_volume_makes_the_replicas_repl_asks_for(
    make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume(parameters={"repl": "3"})
    replicas = rest.get_volume(volume.volume_id)["state"]["replica_topology"].values()
    assert sorted(r["node"] for r in replicas) == ["node-1", "node-2", "node-3"]


def test_create_volume_again_with_the_same_name_returns_the_same_volume(
    co: CsiClient, make_volume: VolumeFactory, rest: RestClient
) -> None:
    name = f"pvc-{uuid.uuid4()}"
    first = make_volume(name=name)
    count = len(rest.all_volumes())
    again = co.controller.CreateVolume(create_request(name), timeout=60).volume
    assert again == first
    assert len(rest.all_volumes()) == count


def test_create_volume_again_with_a_compatible_range_returns_the_volume(
    co: CsiClient, make_volume: VolumeFactory
) -> None:
    name = f"pvc-{uuid.uuid4()}"
    first = make_volume(name=name, size=8 * MIB)
    request = create_request(name, size=4 * MIB)
    request.capacity_range.limit_bytes = 16 * MIB
    again = co.controller.CreateVolume(request, timeout=60).volume
    assert again.volume_id == first.volume_id
    assert again.capacity_bytes == 8 * MIB


def test_create_volume_again_with_another_size_is_already_exists(
    co: CsiClient, make_volume: VolumeFactory
) -> None:
    name = f"pvc-{uuid.uuid4()}"
    make_volume(name=name, size=8 * MIB)
    request = create_request(name, size=12 * MIB)
    assert code(co.controller.CreateVolume, request) == grpc.StatusCode.ALREADY_EXISTS


def test_create_volume_again_with_other_parameters_is_already_exists(
    co: CsiClient, make_volume: VolumeFactory
) -> None:
    name = f"pvc-{uuid.uuid4()}"
    make_volume(name=name)
    request = create_request(name, parameters={"repl": "2"})
    assert code(co.controller.CreateVolume, request) == grpc.StatusCode.ALREADY_EXISTS


def test_create_volume_puts_what_the_node_needs_in_the_volume_context(
    make_volume: VolumeFactory,
) -> None:
    volume = make_volume(
        parameters={"repl": "1", "fsType": "xfs", "nvmeIoTimeout": "30", "nvmeNrIoQueues": "2"}
    )
    context = dict(volume.volume_context)
    assert context["fsType"] == "xfs"
    assert context["protocol"] == "nvmf"
    assert context["nvmeIoTimeout"] == "30"
    assert context["nvmeNrIoQueues"] == "2"


def test_create_volume_leaves_the_accessible_topology_open(make_volume: VolumeFactory) -> None:
    assert list(make_volume().accessible_topology) == []


@pytest.mark.parametrize("missing", ["name", "volume_capabilities"])
def test_create_volume_without_a_required_field_is_invalid_argument(
    co: CsiClient, missing: str
) -> None:
    request = create_request()
    request.ClearField(missing)
    assert code(co.controller.CreateVolume, request) == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "capability",
    [
        mount_capability(mode=Cap.AccessMode.MULTI_NODE_MULTI_WRITER),
        mount_capability(mode=Cap.AccessMode.MULTI_NODE_READER_ONLY),
        mount_capability(fs_type="zfs"),
        Cap(mount=Cap.MountVolume()),
        Cap(access_mode=Cap.AccessMode(mode=WRITER)),
    ],
    ids=["multi-node writer", "multi-node reader", "zfs", "no access mode", "no access type"],
)
def test_create_volume_with_a_capability_it_cannot_offer_is_invalid_argument(
    co: CsiClient, capability: Any
) -> None:
    request = create_request(volume_capabilities=[capability])
    assert code(co.controller.CreateVolume, request) == grpc.StatusCode.INVALID_ARGUMENT


def test_create_volume_offers_single_node_single_and_multi_writer_and_block(
    make_volume: VolumeFactory,
) -> None:
    volume = make_volume(
        capabilities=[
            mount_capability(mode=Cap.AccessMode.SINGLE_NODE_SINGLE_WRITER),
            mount_capability(mode=Cap.AccessMode.SINGLE_NODE_MULTI_WRITER),
            block_capability(),
        ]
    )
    assert volume.volume_id


def test_create_volume_from_a_content_source_is_invalid_argument(co: CsiClient) -> None:
    source = csi_pb2.VolumeContentSource(
        snapshot=csi_pb2.VolumeContentSource.SnapshotSource(snapshot_id="snap-1")
    )
    request = create_request(volume_content_source=source)
    assert code(co.controller.CreateVolume, request) == grpc.StatusCode.INVALID_ARGUMENT


def test_create_volume_with_an_unknown_parameter_is_invalid_argument_naming_it(
    co: CsiClient,
) -> None:
    request = create_request(parameters={"repl": "1", "replicaCount": "3"})
    assert code(co.controller.CreateVolume, request) == grpc.StatusCode.INVALID_ARGUMENT
    assert "replicaCount" in details(co.controller.CreateVolume, request)


def test_create_volume_takes_the_keys_kubernetes_adds(make_volume: VolumeFactory) -> None:
    volume = make_volume(
        parameters={
            "repl": "1",
            "csi.storage.k8s.io/pvc/name": "data",
            "csi.storage.k8s.io/pvc/namespace": "default",
        }
    )
    assert volume.volume_id


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("repl", "three"),
        ("repl", "0"),
        ("protocol", "iscsi"),
        ("fsType", "ntfs"),
        ("thin", "maybe"),
        ("nvmeIoTimeout", "-5"),
        ("nvmeNrIoQueues", "many"),
        ("nvmeCtrlLossTmo", "forever"),
        ("nvmeKeepAliveTmo", "0"),
        ("poolAffinityTopologyLabel", "zone"),
        ("nodeAffinityTopologyLabel", "zone: a b"),
        ("nodeHasTopologyKey", "bad key!"),
        ("stsAffinityGroup", "perhaps"),
    ],
)
def test_create_volume_with_a_malformed_parameter_is_invalid_argument_naming_it(
    co: CsiClient, key: str, value: str
) -> None:
    request = create_request(parameters={key: value})
    assert code(co.controller.CreateVolume, request) == grpc.StatusCode.INVALID_ARGUMENT
    assert key in details(co.controller.CreateVolume, request)


def test_create_volume_with_required_above_limit_is_out_of_range(co: CsiClient) -> None:
    request = create_request(size=16 * MIB)
    request.capacity_range.limit_bytes = 8 * MIB
    assert code(co.controller.CreateVolume, request) == grpc.StatusCode.OUT_OF_RANGE


def test_create_volume_whose_rounded_size_passes_the_limit_is_out_of_range(
    co: CsiClient,
) -> None:
    request = create_request(size=1000)
    request.capacity_range.limit_bytes = 1000
    assert code(co.controller.CreateVolume, request) == grpc.StatusCode.OUT_OF_RANGE


def test_create_volume_with_a_negative_capacity_is_invalid_argument(co: CsiClient) -> None:
    request = create_request(size=-1)
    assert code(co.controller.CreateVolume, request) == grpc.StatusCode.INVALID_ARGUMENT


def test_create_volume_larger_than_any_pool_is_resource_exhausted(
    co: CsiClient, rest: RestClient
) -> None:
    count = len(rest.all_volumes())
    request = create_request(size=4 << 30)
    assert code(co.controller.CreateVolume, request) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(rest.all_volumes()) == count


def test_create_volume_with_more_replicas_than_nodes_is_resource_exhausted(
    co: CsiClient,
) -> None:
    request = create_request(parameters={"repl": "4"})
    assert code(co.controller.CreateVolume, request) == grpc.StatusCode.RESOURCE_EXHAUSTED


# ============================================================================ placement


def replica_nodes(rest: RestClient, volume: Any) -> list[str]:
    replicas = rest.get_volume(volume.volume_id)["state"]["replica_topology"].values()
    return sorted(str(r["node"]) for r in replicas)


def test_thin_makes_thin_replicas(make_volume: VolumeFactory, rest: RestClient) -> None:
    volume = make_volume(parameters={"repl": "1", "thin": "true"})
    assert rest.get_volume(volume.volume_id)["spec"]["thin"] is True


def test_node_affinity_topology_label_places_replicas_on_matching_nodes(
    make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume(parameters={"repl": "2", "nodeAffinityTopologyLabel": "zone: b\n"})
    assert replica_nodes(rest, volume) == ["node-2", "node-3"]


def test_node_has_topology_key_places_replicas_on_nodes_with_the_key(
    make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume(parameters={"repl": "1", "nodeHasTopologyKey": "zone"})
    spec = rest.get_volume(volume.volume_id)["spec"]
    assert spec["topology"]["node_topology"]["labelled"]["inclusion"] == {"zone": ""}


def test_pool_affinity_topology_label_places_replicas_in_matching_pools(
    make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume(parameters={"repl": "1", "poolAffinityTopologyLabel": "tier: fast"})
    assert replica_nodes(rest, volume) == ["node-3"]


def test_a_label_no_node_carries_is_resource_exhausted(co: CsiClient) -> None:
    request = create_request(parameters={"nodeAffinityTopologyLabel": "zone: mars"})
    assert code(co.controller.CreateVolume, request) == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_sts_affinity_group_puts_a_statefulsets_volumes_in_one_group(
    make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume(
        parameters={
            "repl": "1",
            "stsAffinityGroup": "true",
            "csi.storage.k8s.io/pvc/name": "data-web-2",
            "csi.storage.k8s.io/pvc/namespace": "shop",
        }
    )
    assert rest.get_volume(volume.volume_id)["spec"]["affinity_group"] == {"id": "shop/data-web"}


def test_sts_affinity_group_without_the_claims_name_is_invalid_argument(co: CsiClient) -> None:
    request = create_request(parameters={"stsAffinityGroup": "true"})
    assert code(co.controller.CreateVolume, request) == grpc.StatusCode.INVALID_ARGUMENT


def requirement(requisite: list[dict[str, str]], preferred: list[dict[str, str]]) -> Any:
    return csi_pb2.TopologyRequirement(
        requisite=[csi_pb2.Topology(segments=s) for s in requisite],
        preferred=[csi_pb2.Topology(segments=s) for s in preferred],
    )


def test_requisite_topology_prefers_the_io_engine_nodes_it_names(
    make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume(
        parameters={"repl": "1"},
        accessibility_requirements=requirement([{"openebs.io/nodename": "node-2"}], []),
    )
    assert replica_nodes(rest, volume) == ["node-2"]


def test_requisite_topology_matches_node_labels_too(
    make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume(
        parameters={"repl": "1"}, accessibility_requirements=requirement([{"zone": "a"}], [])
    )
    assert replica_nodes(rest, volume) == ["node-1"]


def test_preferred_topology_comes_before_requisite(
    make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume(
        parameters={"repl": "1"},
        accessibility_requirements=requirement(
            [{"zone": "b"}], [{"openebs.io/nodename": "node-3"}]
        ),
    )
    assert replica_nodes(rest, volume) == ["node-3"]


def test_a_topology_of_application_nodes_only_leaves_the_replicas_anywhere(
    make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume(
        parameters={"repl": "3"},
        accessibility_requirements=requirement(
            [{"openebs.io/nodename": "app-1"}, {"openebs.io/nodename": "app-2"}],
            [{"openebs.io/nodename": "app-2"}],
        ),
    )
    assert replica_nodes(rest, volume) == ["node-1", "node-2", "node-3"]


def test_a_requisite_topology_of_one_node_does_not_limit_three_replicas(
    make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume(
        parameters={"repl": "3"},
        accessibility_requirements=requirement(
            [{"openebs.io/nodename": "node-2"}], [{"openebs.io/nodename": "node-2"}]
        ),
    )
    assert replica_nodes(rest, volume) == ["node-1", "node-2", "node-3"]


# ============================================================================ DeleteVolume


def test_delete_volume_removes_the_volume_and_its_replicas(
    co: CsiClient, make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume(parameters={"repl": "2"})
    co.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))
    assert volume.volume_id not in {v["spec"]["uuid"] for v in rest.all_volumes()}
    replicas = rest.get_specs()["replicas"]
    assert [r for r in replicas if r.get("owners", {}).get("volume") == volume.volume_id] == []


def test_delete_volume_again_is_ok(co: CsiClient, make_volume: VolumeFactory) -> None:
    volume = make_volume()
    request = csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id)
    assert code(co.controller.DeleteVolume, request) == grpc.StatusCode.OK
    assert code(co.controller.DeleteVolume, request) == grpc.StatusCode.OK


@pytest.mark.parametrize("volume_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_delete_volume_of_an_unknown_volume_is_ok(co: CsiClient, volume_id: str) -> None:
    request = csi_pb2.DeleteVolumeRequest(volume_id=volume_id)
    assert code(co.controller.DeleteVolume, request) == grpc.StatusCode.OK


def test_delete_volume_without_an_id_is_invalid_argument(co: CsiClient) -> None:
    assert (
        code(co.controller.DeleteVolume, csi_pb2.DeleteVolumeRequest())
        == grpc.StatusCode.INVALID_ARGUMENT
    )


def test_delete_volume_published_to_a_node_is_failed_precondition_naming_it(
    co: CsiClient, make_volume: VolumeFactory
) -> None:
    volume = make_volume()
    publish(co, volume, node="app-7")
    request = csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id)
    assert code(co.controller.DeleteVolume, request) == grpc.StatusCode.FAILED_PRECONDITION
    assert "app-7" in details(co.controller.DeleteVolume, request)


# ================================================================ ControllerPublishVolume


def test_controller_publish_gives_the_target_uri_with_the_namespace_uuid(
    co: CsiClient, make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume()
    context = publish(co, volume)
    target = rest.get_volume(volume.volume_id)["state"]["target"]
    assert context["uri"] == f"{target['deviceUri']}?uuid={volume.volume_id}"
    assert context["uri"].split("?")[0].endswith(f"/{NQN}:{volume.volume_id}")


def test_controller_publish_allows_only_the_nodes_host_nqn(
    co: CsiClient, make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume()
    publish(co, volume, node="app-3")
    target = rest.get_volume(volume.volume_id)["spec"]["target"]
    assert target["frontend_nodes"] == [{"name": "app-3", "nqn": f"{NQN}:node-name:app-3"}]


def test_controller_publish_carries_the_nvme_settings_of_the_volume_context(
    co: CsiClient, make_volume: VolumeFactory
) -> None:
    volume = make_volume(
        parameters={
            "repl": "1",
            "nvmeIoTimeout": "2m",
            "nvmeCtrlLossTmo": "-1",
            "nvmeKeepAliveTmo": "7",
            "nvmeNrIoQueues": "4",
        }
    )
    context = publish(co, volume)
    assert {k: v for k, v in context.items() if k != "uri"} == {
        "nvmeIoTimeout": "120",
        "nvmeCtrlLossTmo": "-1",
        "nvmeKeepAliveTmo": "7",
        "nvmeNrIoQueues": "4",
    }


def test_controller_publish_again_for_the_same_node_gives_the_same_context(
    co: CsiClient, make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume()
    first = publish(co, volume)
    nexus = rest.get_volume(volume.volume_id)["spec"]["target"]["nexus"]
    assert publish(co, volume) == first
    assert rest.get_volume(volume.volume_id)["spec"]["target"]["nexus"] == nexus


def test_controller_publish_to_a_second_node_is_failed_precondition_naming_the_first(
    co: CsiClient, make_volume: VolumeFactory
) -> None:
    volume = make_volume()
    publish(co, volume, node="app-1")
    request = csi_pb2.ControllerPublishVolumeRequest(
        volume_id=volume.volume_id, node_id="app-2", volume_capability=mount_capability()
    )
    assert code(co.controller.ControllerPublishVolume, request) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    assert "app-1" in details(co.controller.ControllerPublishVolume, request)


def test_controller_publish_on_a_node_with_a_replica_puts_the_target_there(
    co: CsiClient, make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume(
        parameters={"repl": "1"},
        accessibility_requirements=requirement([{"openebs.io/nodename": "node-3"}], []),
    )
    publish(co, volume, node="node-3")
    assert rest.get_volume(volume.volume_id)["spec"]["target"]["node"] == "node-3"


@pytest.mark.parametrize("volume_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_controller_publish_of_an_unknown_volume_is_not_found(
    co: CsiClient, volume_id: str
) -> None:
    request = csi_pb2.ControllerPublishVolumeRequest(
        volume_id=volume_id, node_id="app-1", volume_capability=mount_capability()
    )
    assert code(co.controller.ControllerPublishVolume, request) == grpc.StatusCode.NOT_FOUND


def test_controller_publish_to_a_node_id_that_cannot_be_a_node_is_not_found(
    co: CsiClient, make_volume: VolumeFactory
) -> None:
    volume = make_volume()
    request = csi_pb2.ControllerPublishVolumeRequest(
        volume_id=volume.volume_id, node_id="no such/node", volume_capability=mount_capability()
    )
    assert code(co.controller.ControllerPublishVolume, request) == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("missing", ["volume_id", "node_id", "volume_capability"])
def test_controller_publish_without_a_required_field_is_invalid_argument(
    co: CsiClient, missing: str
) -> None:
    request = csi_pb2.ControllerPublishVolumeRequest(
        volume_id=str(uuid.uuid4()), node_id="app-1", volume_capability=mount_capability()
    )
    request.ClearField(missing)  # type: ignore[arg-type]
    assert code(co.controller.ControllerPublishVolume, request) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


def test_controller_publish_with_a_capability_it_cannot_offer_is_invalid_argument(
    co: CsiClient, make_volume: VolumeFactory
) -> None:
    volume = make_volume()
    request = csi_pb2.ControllerPublishVolumeRequest(
        volume_id=volume.volume_id,
        node_id="app-1",
        volume_capability=mount_capability(mode=Cap.AccessMode.MULTI_NODE_MULTI_WRITER),
    )
    assert code(co.controller.ControllerPublishVolume, request) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


# ================================================================ ControllerUnpublishVolume


def unpublish_request(volume: Any, node: str = "app-1") -> Any:
    return csi_pb2.ControllerUnpublishVolumeRequest(volume_id=volume.volume_id, node_id=node)


def test_controller_unpublish_removes_the_target(
    co: CsiClient, make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume()
    publish(co, volume)
    co.controller.ControllerUnpublishVolume(unpublish_request(volume))
    assert "target" not in rest.get_volume(volume.volume_id)["spec"]


def test_controller_unpublish_again_is_ok(co: CsiClient, make_volume: VolumeFactory) -> None:
    volume = make_volume()
    publish(co, volume)
    request = unpublish_request(volume)
    assert code(co.controller.ControllerUnpublishVolume, request) == grpc.StatusCode.OK
    assert code(co.controller.ControllerUnpublishVolume, request) == grpc.StatusCode.OK


def test_controller_unpublish_from_another_node_leaves_the_target(
    co: CsiClient, make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume()
    publish(co, volume, node="app-1")
    co.controller.ControllerUnpublishVolume(unpublish_request(volume, node="app-2"))
    assert rest.get_volume(volume.volume_id)["spec"]["target"]["frontend_nodes"][0]["name"] == (
        "app-1"
    )


def test_controller_unpublish_without_a_node_removes_the_target(
    co: CsiClient, make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume()
    publish(co, volume)
    co.controller.ControllerUnpublishVolume(unpublish_request(volume, node=""))
    assert "target" not in rest.get_volume(volume.volume_id)["spec"]


def test_controller_unpublish_of_an_unknown_volume_is_ok(co: CsiClient) -> None:
    request = csi_pb2.ControllerUnpublishVolumeRequest(volume_id=str(uuid.uuid4()), node_id="x")
    assert code(co.controller.ControllerUnpublishVolume, request) == grpc.StatusCode.OK


def test_controller_unpublish_without_a_volume_id_is_invalid_argument(co: CsiClient) -> None:
    request = csi_pb2.ControllerUnpublishVolumeRequest(node_id="app-1")
    assert code(co.controller.ControllerUnpublishVolume, request) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


# ================================================================ ValidateVolumeCapabilities


def validate(volume_id: str, *capabilities: Any, **fields: Any) -> Any:
    return csi_pb2.ValidateVolumeCapabilitiesRequest(
        volume_id=volume_id, volume_capabilities=list(capabilities), **fields
    )


def test_validate_confirms_what_the_driver_offers(
    co: CsiClient, make_volume: VolumeFactory
) -> None:
    volume = make_volume()
    request = validate(
        volume.volume_id,
        mount_capability("xfs"),
        block_capability(Cap.AccessMode.SINGLE_NODE_MULTI_WRITER),
        volume_context={"fsType": "xfs"},
        parameters={"repl": "1"},
    )
    reply = co.controller.ValidateVolumeCapabilities(request)
    assert list(reply.confirmed.volume_capabilities) == list(request.volume_capabilities)
    assert dict(reply.confirmed.volume_context) == {"fsType": "xfs"}
    assert dict(reply.confirmed.parameters) == {"repl": "1"}


def test_validate_does_not_confirm_a_multi_node_mode_and_says_why(
    co: CsiClient, make_volume: VolumeFactory
) -> None:
    volume = make_volume()
    reply = co.controller.ValidateVolumeCapabilities(
        validate(volume.volume_id, mount_capability(mode=Cap.AccessMode.MULTI_NODE_MULTI_WRITER))
    )
    assert not reply.HasField("confirmed")
    assert "MULTI_NODE_MULTI_WRITER" in reply.message


def test_validate_does_not_confirm_malformed_parameters(
    co: CsiClient, make_volume: VolumeFactory
) -> None:
    volume = make_volume()
    reply = co.controller.ValidateVolumeCapabilities(
        validate(volume.volume_id, mount_capability(), parameters={"repl": "x"})
    )
    assert not reply.HasField("confirmed")
    assert "repl" in reply.message


@pytest.mark.parametrize("volume_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_validate_of_an_unknown_volume_is_not_found(co: CsiClient, volume_id: str) -> None:
    request = validate(volume_id, mount_capability())
    assert code(co.controller.ValidateVolumeCapabilities, request) == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    "request_",
    [validate("", mount_capability()), validate(str(uuid.uuid4()))],
    ids=["no volume id", "no capabilities"],
)
def test_validate_without_a_required_field_is_invalid_argument(
    co: CsiClient, request_: Any
) -> None:
    assert code(co.controller.ValidateVolumeCapabilities, request_) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


# ============================================================================ ListVolumes


def test_list_volumes_pages_through_every_volume(
    co: CsiClient, make_volume: VolumeFactory, rest: RestClient
) -> None:
    made = {make_volume().volume_id for _ in range(3)}
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        reply = co.controller.ListVolumes(
            csi_pb2.ListVolumesRequest(max_entries=2, starting_token=token)
        )
        assert len(reply.entries) <= 2
        seen += [e.volume.volume_id for e in reply.entries]
        pages += 1
        token = reply.next_token
        if not token:
            break
    assert made <= set(seen)
    assert len(seen) == len(set(seen)) == len(rest.all_volumes())
    assert pages == -(-len(seen) // 2)


def test_list_volumes_gives_sizes_and_the_nodes_published_to(
    co: CsiClient, make_volume: VolumeFactory
) -> None:
    volume = make_volume(size=12 * MIB)
    publish(co, volume, node="app-9")
    entries = co.controller.ListVolumes(csi_pb2.ListVolumesRequest()).entries
    (entry,) = [e for e in entries if e.volume.volume_id == volume.volume_id]
    assert entry.volume.capacity_bytes == 12 * MIB
    assert list(entry.status.published_node_ids) == ["app-9"]


@pytest.mark.parametrize("token", ["not-a-token", "100000"])
def test_list_volumes_with_a_token_not_ours_is_aborted(
    co: CsiClient, make_volume: VolumeFactory, token: str
) -> None:
    make_volume()
    request = csi_pb2.ListVolumesRequest(starting_token=token)
    assert code(co.controller.ListVolumes, request) == grpc.StatusCode.ABORTED


def test_list_volumes_with_negative_max_entries_is_invalid_argument(co: CsiClient) -> None:
    request = csi_pb2.ListVolumesRequest(max_entries=-1)
    assert code(co.controller.ListVolumes, request) == grpc.StatusCode.INVALID_ARGUMENT


# ============================================================================ GetCapacity


def free_space(rest: RestClient, nodes: set[str] | None = None) -> dict[str, int]:
    return {
        p["state"]["node"]: p["state"]["capacity"] - p["state"]["used"]
        for p in rest.get_pools()
        if nodes is None or p["state"]["node"] in nodes
    }


def test_get_capacity_is_the_free_space_of_every_online_pool(
    co: CsiClient, rest: RestClient
) -> None:
    reply = co.controller.GetCapacity(csi_pb2.GetCapacityRequest())
    free = free_space(rest)
    assert reply.available_capacity == sum(free.values())
    assert reply.maximum_volume_size.value == max(free.values()) // 512 * 512


def test_get_capacity_by_topology_counts_the_nodes_in_it(co: CsiClient, rest: RestClient) -> None:
    reply = co.controller.GetCapacity(
        csi_pb2.GetCapacityRequest(
            accessible_topology=csi_pb2.Topology(segments={"openebs.io/nodename": "node-2"})
        )
    )
    assert reply.available_capacity == free_space(rest, {"node-2"})["node-2"]
    zone_b = co.controller.GetCapacity(
        csi_pb2.GetCapacityRequest(accessible_topology=csi_pb2.Topology(segments={"zone": "b"}))
    )
    assert zone_b.available_capacity == sum(free_space(rest, {"node-2", "node-3"}).values())


def test_get_capacity_for_three_replicas_limits_the_largest_volume(
    co: CsiClient, rest: RestClient
) -> None:
    reply = co.controller.GetCapacity(csi_pb2.GetCapacityRequest(parameters={"repl": "3"}))
    assert reply.maximum_volume_size.value == min(free_space(rest).values()) // 512 * 512


def test_get_capacity_with_the_storage_class_labels_counts_matching_pools(
    co: CsiClient, rest: RestClient
) -> None:
    reply = co.controller.GetCapacity(
        csi_pb2.GetCapacityRequest(parameters={"poolAffinityTopologyLabel": "tier: fast"})
    )
    assert reply.available_capacity == free_space(rest, {"node-3"})["node-3"]


def test_get_capacity_for_a_capability_it_cannot_offer_is_zero(co: CsiClient) -> None:
    reply = co.controller.GetCapacity(
        csi_pb2.GetCapacityRequest(
            volume_capabilities=[mount_capability(mode=Cap.AccessMode.MULTI_NODE_MULTI_WRITER)]
        )
    )
    assert reply.available_capacity == 0


def test_get_capacity_with_a_malformed_parameter_is_invalid_argument(co: CsiClient) -> None:
    request = csi_pb2.GetCapacityRequest(parameters={"repl": "lots"})
    assert code(co.controller.GetCapacity, request) == grpc.StatusCode.INVALID_ARGUMENT


# ================================================================ ControllerExpandVolume


def expand_request(volume_id: str, required: int, limit: int = 0, **fields: Any) -> Any:
    return csi_pb2.ControllerExpandVolumeRequest(
        volume_id=volume_id,
        capacity_range=csi_pb2.CapacityRange(required_bytes=required, limit_bytes=limit),
        **fields,
    )


def test_controller_expand_grows_the_volume_to_whole_blocks(
    co: CsiClient, make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume(size=8 * MIB, parameters={"repl": "2"})
    reply = co.controller.ControllerExpandVolume(expand_request(volume.volume_id, 12 * MIB + 1))
    assert reply.capacity_bytes == 12 * MIB + 512
    assert reply.node_expansion_required is True
    assert rest.get_volume(volume.volume_id)["spec"]["size"] == 12 * MIB + 512


def test_controller_expand_of_a_published_volume_grows_it_online(
    co: CsiClient, make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume(size=8 * MIB)
    publish(co, volume)
    co.controller.ControllerExpandVolume(expand_request(volume.volume_id, 16 * MIB))
    assert rest.get_volume(volume.volume_id)["state"]["target"]["size"] == 16 * MIB


def test_controller_expand_to_a_size_it_has_already_is_ok_and_changes_nothing(
    co: CsiClient, make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume(size=8 * MIB)
    reply = co.controller.ControllerExpandVolume(expand_request(volume.volume_id, 4 * MIB))
    assert reply.capacity_bytes == 8 * MIB
    assert rest.get_volume(volume.volume_id)["spec"]["size"] == 8 * MIB


def test_controller_expand_of_a_block_volume_needs_no_node_expansion(
    co: CsiClient, make_volume: VolumeFactory
) -> None:
    volume = make_volume(capabilities=[block_capability()])
    reply = co.controller.ControllerExpandVolume(
        expand_request(volume.volume_id, 12 * MIB, volume_capability=block_capability())
    )
    assert reply.node_expansion_required is False


@pytest.mark.parametrize("volume_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_controller_expand_of_an_unknown_volume_is_not_found(co: CsiClient, volume_id: str) -> None:
    request = expand_request(volume_id, 16 * MIB)
    assert code(co.controller.ControllerExpandVolume, request) == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    "request_",
    [
        csi_pb2.ControllerExpandVolumeRequest(
            capacity_range=csi_pb2.CapacityRange(required_bytes=MIB)
        ),
        csi_pb2.ControllerExpandVolumeRequest(volume_id=str(uuid.uuid4())),
    ],
    ids=["no volume id", "no capacity range"],
)
def test_controller_expand_without_a_required_field_is_invalid_argument(
    co: CsiClient, request_: Any
) -> None:
    assert code(co.controller.ControllerExpandVolume, request_) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


def test_controller_expand_with_a_capability_it_cannot_offer_is_invalid_argument(
    co: CsiClient, make_volume: VolumeFactory
) -> None:
    volume = make_volume()
    request = expand_request(
        volume.volume_id,
        16 * MIB,
        volume_capability=mount_capability(mode=Cap.AccessMode.MULTI_NODE_MULTI_WRITER),
    )
    assert code(co.controller.ControllerExpandVolume, request) == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("required", "limit"),
    [(16 * MIB, 12 * MIB), (4 * MIB, 6 * MIB)],
    ids=["required above limit", "limit below the size it has"],
)
def test_controller_expand_outside_what_the_range_allows_is_out_of_range(
    co: CsiClient, make_volume: VolumeFactory, required: int, limit: int
) -> None:
    volume = make_volume(size=8 * MIB)
    request = expand_request(volume.volume_id, required, limit)
    assert code(co.controller.ControllerExpandVolume, request) == grpc.StatusCode.OUT_OF_RANGE


def test_controller_expand_beyond_the_pools_is_resource_exhausted(
    co: CsiClient, make_volume: VolumeFactory, rest: RestClient
) -> None:
    volume = make_volume(size=8 * MIB)
    request = expand_request(volume.volume_id, 4 << 30)
    assert code(co.controller.ControllerExpandVolume, request) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED
    )
    assert rest.get_volume(volume.volume_id)["spec"]["size"] == 8 * MIB


# ================================================================ capabilities, the rest


def test_controller_capabilities_are_what_the_controller_implements(co: CsiClient) -> None:
    rpc = csi_pb2.ControllerServiceCapability.RPC
    reply = co.controller.ControllerGetCapabilities(csi_pb2.ControllerGetCapabilitiesRequest())
    assert {c.rpc.type for c in reply.capabilities} == {
        rpc.CREATE_DELETE_VOLUME,
        rpc.PUBLISH_UNPUBLISH_VOLUME,
        rpc.LIST_VOLUMES,
        rpc.LIST_VOLUMES_PUBLISHED_NODES,
        rpc.GET_CAPACITY,
        rpc.EXPAND_VOLUME,
        rpc.SINGLE_NODE_MULTI_WRITER,
    }


@pytest.mark.parametrize(
    ("method", "request_"),
    [
        ("CreateSnapshot", csi_pb2.CreateSnapshotRequest(source_volume_id="v", name="s")),
        ("DeleteSnapshot", csi_pb2.DeleteSnapshotRequest(snapshot_id="s")),
        ("ListSnapshots", csi_pb2.ListSnapshotsRequest()),
        ("ControllerGetVolume", csi_pb2.ControllerGetVolumeRequest(volume_id="v")),
        ("ControllerModifyVolume", csi_pb2.ControllerModifyVolumeRequest(volume_id="v")),
    ],
)
def test_calls_it_does_not_offer_are_unimplemented(
    co: CsiClient, method: str, request_: Any
) -> None:
    assert code(getattr(co.controller, method), request_) == grpc.StatusCode.UNIMPLEMENTED


def test_a_second_call_for_a_volume_in_flight_is_aborted(
    co: CsiClient, csi_cluster: CsiCluster, rest: RestClient
) -> None:
    name = f"pvc-{uuid.uuid4()}"
    codes: list[grpc.StatusCode] = []
    first = threading.Thread(
        target=lambda: codes.append(code(co.controller.CreateVolume, create_request(name)))
    )
    csi_cluster.cluster.core.pause()
    try:
        first.start()
        time.sleep(1.0)
        second = code(co.controller.CreateVolume, create_request(name))
    finally:
        csi_cluster.cluster.core.resume()
    first.join()
    assert second == grpc.StatusCode.ABORTED
    assert codes == [grpc.StatusCode.OK]
    rest.unpublish_volume(name.removeprefix("pvc-"), force=True)
    rest.delete_volume(name.removeprefix("pvc-"))
