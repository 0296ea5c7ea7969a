"""The edge of the plugins: errors to status codes, one call per volume, the socket."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import grpc
import pytest

from mayastor.csi import errors
from mayastor.csi._locks import VolumeLocks
from mayastor.csi.controller import csi_error
from mayastor.csi.server import CsiServicer, SocketInUse, claim_socket
from mayastor.restclient import RestError, RestUnreachable


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
        (errors.NotFound, grpc.StatusCode.NOT_FOUND),
        (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
        (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
        (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.OutOfRange, grpc.StatusCode.OUT_OF_RANGE),
        (errors.Aborted, grpc.StatusCode.ABORTED),
        (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
        (errors.Unimplemented, grpc.StatusCode.UNIMPLEMENTED),
        (errors.Internal, grpc.StatusCode.INTERNAL),
    ],
)
def test_each_error_has_the_status_code_it_is_named_after(
    error: type[errors.CsiError], code: grpc.StatusCode
) -> None:
    assert errors.grpc_status_of(error("x")) == code


def test_a_subclass_of_an_error_has_its_code() -> None:
    class NoRoute(errors.Unavailable):
        pass

    assert errors.grpc_status_of(NoRoute("x")) == grpc.StatusCode.UNAVAILABLE


def test_an_error_names_the_volume_the_step_and_the_device() -> None:
    error = errors.Internal("exit 1", volume="v1", step="mkfs.xfs", device="/dev/nvme1n1")
    assert str(error) == "volume v1: mkfs.xfs on /dev/nvme1n1 failed: exit 1"
    assert str(errors.NotFound("gone")) == "gone"
    assert str(errors.NotFound("gone", volume="v1")) == "volume v1: gone"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, errors.InvalidArgument),
        (404, errors.NotFound),
        (409, errors.Aborted),
        (412, errors.FailedPrecondition),
        (503, errors.Unavailable),
        (507, errors.ResourceExhausted),
        (500, errors.Unavailable),
    ],
)
def test_a_rest_refusal_means_a_csi_error_by_status(
    status: int, expected: type[errors.CsiError]
) -> None:
    error = csi_error(RestError(status, "Kind", "why"), volume="v", step="s")
    assert type(error) is expected
    assert "Kind: why" in error.message


def test_a_call_can_say_what_a_status_means_to_it() -> None:
    error = csi_error(
        RestError(412, "FailedPrecondition", "no pools"),
        volume="v",
        step="create",
        overrides={412: errors.ResourceExhausted},
    )
    assert isinstance(error, errors.ResourceExhausted)


def test_no_answer_from_the_rest_api_is_unavailable() -> None:
    error = csi_error(RestUnreachable("http://x", "refused"), volume=None, step="s")
    assert isinstance(error, errors.Unavailable)


def test_a_second_call_for_a_volume_is_aborted_until_the_first_is_done() -> None:
    locks = VolumeLocks()
    with locks.hold("v1", "NodeStageVolume"):
        with (
            pytest.raises(errors.Aborted, match="NodeStageVolume is in flight"),
            locks.hold("v1", "NodeUnstageVolume"),
        ):
            pass
        with locks.hold("v2", "NodeStageVolume"):
            assert locks.busy("v2")
    assert not locks.busy("v1")
    with locks.hold("v1", "NodeUnstageVolume"):
        assert locks.busy("v1")


def test_only_the_rpc_methods_are_wrapped_with_the_error_table() -> None:
    class Service(CsiServicer):
        async def DoIt(self, request: Any, context: Any) -> None:
            return None

        async def helper(self) -> int:
            return 1

    assert Service.DoIt.__wrapped__ is not None  # type: ignore[attr-defined]
    assert not hasattr(Service.helper, "__wrapped__")


def test_a_socket_left_by_a_dead_plugin_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "csi.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))
    claim_socket(path)
    assert not path.exists()


def test_a_socket_a_live_plugin_serves_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "csi.sock"
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(path))
        live.listen()
        with pytest.raises(SocketInUse):
            claim_socket(path)
    assert path.exists()


def test_a_file_that_is_no_socket_is_never_removed(tmp_path: Path) -> None:
    path = tmp_path / "csi.sock"
    path.write_text("data")
    with pytest.raises(FileExistsError):
        claim_socket(path)
    assert path.read_text() == "data"


def test_the_socket_folder_is_made(tmp_path: Path) -> None:
    claim_socket(tmp_path / "a" / "b" / "csi.sock")
    assert (tmp_path / "a" / "b").is_dir()
