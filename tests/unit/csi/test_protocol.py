"""The CSI protocol modules: current with csi.proto, and the spec's names and numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from mayastor.api._compile import CSI_PROTO_DIR, compile_protos
from mayastor.api.csi.v1 import csi_pb2, csi_pb2_grpc


@pytest.mark.slow
def test_generated_modules_match_csi_proto(tmp_path: Path) -> None:
    generated = compile_protos(tmp_path, CSI_PROTO_DIR)
    assert {p.name for p in generated} == {
        "csi_pb2.py",
        "csi_pb2.pyi",
        "csi_pb2_grpc.py",
        "csi_pb2_grpc.pyi",
    }
    stale = [p.name for p in generated if (CSI_PROTO_DIR / p.name).read_bytes() != p.read_bytes()]
    assert not stale, f"run `python -m mayastor.api._compile`: stale {stale}"


def test_the_services_are_csi_v1s() -> None:
    services = csi_pb2.DESCRIPTOR.services_by_name
    assert {s.full_name for s in services.values()} == {
        "csi.v1.Identity",
        "csi.v1.Controller",
        "csi.v1.Node",
    }
    for service in ("Identity", "Controller", "Node"):
        assert hasattr(csi_pb2_grpc, f"{service}Servicer")
        assert hasattr(csi_pb2_grpc, f"{service}Stub")


@pytest.mark.parametrize(
    ("message", "field", "number"),
    [
        ("CreateVolumeRequest", "accessibility_requirements", 7),
        ("CreateVolumeRequest", "mutable_parameters", 8),
        ("Volume", "accessible_topology", 5),
        ("ControllerPublishVolumeRequest", "volume_context", 6),
        ("NodeStageVolumeRequest", "volume_context", 6),
        ("NodePublishVolumeRequest", "readonly", 6),
        ("NodeGetVolumeStatsResponse", "volume_condition", 2),
        ("NodeExpandVolumeRequest", "staging_target_path", 4),
        ("GetCapacityResponse", "minimum_volume_size", 3),
    ],
)
def test_fields_have_the_numbers_of_the_spec(message: str, field: str, number: int) -> None:
    descriptor = csi_pb2.DESCRIPTOR.message_types_by_name[message]
    assert descriptor.fields_by_name[field].number == number


def test_secrets_carry_the_csi_secret_option() -> None:
    field = csi_pb2.CreateVolumeRequest.DESCRIPTOR.fields_by_name["secrets"]
    assert field.GetOptions().Extensions[csi_pb2.csi_secret] is True
