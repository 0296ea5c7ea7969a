"""ControllerOptions: refusals of bad values, the host ID, KATO on the wire."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from mayastor.errors import InvalidArgument
from mayastor.nvmf.host import DEFAULT_HOSTNQN, ControllerOptions, hostid_for

NODE = "nqn.2019-05.io.openebs:node-name:node-1"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hostnqn": "not-an-nqn"},
        {"hostnqn": "nqn.2019-13.io.openebs:bad-month"},
        {"io_queues": -1},
        {"io_queues": 65},
        {"queue_size": 1},
        {"queue_size": 4096},
        {"io_timeout": 0},
        {"io_timeout": float("nan")},
        {"connect_timeout": -1},
        {"reconnect_delay": 0},
        {"keep_alive_timeout": -1},
        {"keep_alive_timeout": 0.001},
        {"ctrl_loss_timeout": -5},
        {"fast_io_fail_timeout": float("inf")},
    ],
)
def test_a_bad_value_is_an_invalid_argument_naming_it(kwargs: dict[str, object]) -> None:
    (name,) = kwargs
    with pytest.raises(InvalidArgument, match=name.split("_")[0]):
        ControllerOptions(**kwargs)  # type: ignore[arg-type]


def test_the_host_id_is_derived_from_the_host_nqn_and_stable() -> None:
    options = ControllerOptions(hostnqn=NODE)
    assert (
        options.host_identifier
        == hostid_for(NODE)
        == ControllerOptions(hostnqn=NODE).host_identifier
    )
    assert options.host_identifier != ControllerOptions().host_identifier


def test_an_explicit_host_id_wins() -> None:
    chosen = uuid.UUID(int=42)
    assert ControllerOptions(hostid=chosen).host_identifier == chosen


def test_replacing_the_host_nqn_derives_a_new_host_id() -> None:
    options = dataclasses.replace(ControllerOptions(), hostnqn=NODE)
    assert options.host_identifier == hostid_for(NODE)
    assert ControllerOptions().hostnqn == DEFAULT_HOSTNQN


def test_kato_goes_on_the_wire_in_whole_milliseconds() -> None:
    assert ControllerOptions(keep_alive_timeout=2.5).kato_ms == 2500
    assert ControllerOptions(keep_alive_timeout=0.0105).kato_ms == 11
    assert ControllerOptions(keep_alive_timeout=0).kato_ms == 0
