"""The DiskPool operator's pure parts: reading a spec (`parse_spec`) and the status that
follows a pool (`pool_status`)."""

from __future__ import annotations

from typing import Any

import pytest

from mayastor.operator import DiskPoolSpec, SpecError, parse_spec, pool_status


def test_a_spec_with_one_disk_and_labels_is_read_as_written() -> None:
    spec = parse_spec(
        "pool-a",
        {"node": "worker-1", "disks": ["/dev/sdb"], "topology": {"labelled": {"tier": "fast"}}},
    )
    assert spec == DiskPoolSpec("pool-a", "worker-1", "/dev/sdb", {"tier": "fast"})


def test_a_spec_without_topology_has_no_labels() -> None:
    assert parse_spec("p", {"node": "n", "disks": ["aio:///dev/sdb"]}).labels == {}


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        (None, "spec", "missing"),
        ({"disks": ["/dev/sdb"]}, "spec.node", "missing"),
        ({"node": 7, "disks": ["/dev/sdb"]}, "spec.node", "must be a string, not a number"),
        ({"node": "a b", "disks": ["/dev/sdb"]}, "spec.node", "is not a node name"),
        ({"node": "n"}, "spec.disks", "missing"),
        ({"node": "n", "disks": "/dev/sdb"}, "spec.disks", "must be a list of one disk"),
        ({"node": "n", "disks": []}, "spec.disks", "exactly one disk, not 0"),
        ({"node": "n", "disks": ["/dev/a", "/dev/b"]}, "spec.disks", "exactly one disk, not 2"),
        ({"node": "n", "disks": [3]}, "spec.disks[0]", "must be a string, not a number"),
        ({"node": "n", "disks": [" /dev/sdb"]}, "spec.disks[0]", "not a disk path"),
        ({"node": "n", "disks": ["/d"], "size": 1}, "spec.size", "unknown field"),
        ({"node": "n", "disks": ["/d"], "topology": []}, "spec.topology", "must be an object"),
        (
            {"node": "n", "disks": ["/d"], "topology": {"labelled": {"k": 1}}},
            "spec.topology.labelled.k",
            "must be a string",
        ),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(spec: Any, field: str, reason: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec("pool-a", spec)
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_a_name_that_cannot_name_a_pool_is_refused() -> None:
    with pytest.raises(SpecError, match=r"metadata\.name"):
        parse_spec("-bad-", {"node": "n", "disks": ["/d"]})


def test_the_status_of_an_online_pool_has_its_sizes() -> None:
    pool = {"id": "p", "state": {"status": "Online", "capacity": 1000, "used": 300}}
    assert pool_status(pool, {}) == {
        "pool_status": "Online",
        "capacity": 1000,
        "used": 300,
        "available": 700,
    }


def test_a_degraded_pool_is_reported_degraded() -> None:
    pool = {"state": {"status": "Degraded", "capacity": 10, "used": 1}}
    assert pool_status(pool, {})["pool_status"] == "Degraded"


def test_a_pool_out_of_sight_is_unknown_and_keeps_the_sizes_last_seen() -> None:
    previous = {"pool_status": "Online", "capacity": 1000, "used": 300, "available": 700}
    for pool in (None, {"id": "p", "spec": {}}, {"state": {"status": "Unknown"}}):
        assert pool_status(pool, previous) == {**previous, "pool_status": "Unknown"}


def test_a_state_the_operator_does_not_know_is_unknown_not_an_error() -> None:
    pool = {"state": {"status": "Exploded", "capacity": -5, "used": "x"}}
    assert pool_status(pool, {}) == {
        "pool_status": "Unknown",
        "capacity": 0,
        "used": 0,
        "available": 0,
    }
