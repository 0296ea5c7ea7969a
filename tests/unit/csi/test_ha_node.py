"""The ha-node agent's rules: when a path is reported, when one is pruned, address maps."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mayastor.csi._nvme import Controller, Subsystem
from mayastor.csi.ha_node import AddressMap, PathWatch, Prune, Report

NQN = "nqn.2019-05.io.openebs:6e1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
HOST = "nqn.2019-05.io.openebs:node-name:app-1"


def ctrl(name: str, state: str, port: int = 4421) -> Controller:
    return Controller(name, state, "tcp", "10.0.2.2", str(port), HOST)


def subsystem(*controllers: Controller, nqn: str = NQN) -> Subsystem:
    return Subsystem("nvme-subsys0", nqn, controllers, ())


def test_a_live_path_is_never_reported() -> None:
    watch = PathWatch(failure_grace=1.0)
    assert watch.step([subsystem(ctrl("nvme0", "live"))], 0.0) == []
    assert watch.step([subsystem(ctrl("nvme0", "live"))], 100.0) == []


def test_the_last_path_down_is_reported_after_the_grace() -> None:
    watch = PathWatch(failure_grace=2.0)
    down = subsystem(ctrl("nvme0", "connecting"))
    assert watch.step([down], 10.0) == []
    assert watch.step([down], 11.9) == []
    assert watch.step([down], 12.0) == [Report(NQN, ctrl("nvme0", "connecting"))]


def test_a_path_that_comes_back_within_the_grace_is_not_reported() -> None:
    watch = PathWatch(failure_grace=2.0)
    assert watch.step([subsystem(ctrl("nvme0", "resetting"))], 0.0) == []
    assert watch.step([subsystem(ctrl("nvme0", "live"))], 1.0) == []
    assert watch.step([subsystem(ctrl("nvme0", "connecting"))], 1.5) == []
    assert watch.step([subsystem(ctrl("nvme0", "connecting"))], 3.0) == []
    assert len(watch.step([subsystem(ctrl("nvme0", "connecting"))], 3.5)) == 1


def test_a_report_is_repeated_only_after_the_retry_period() -> None:
    watch = PathWatch(failure_grace=1.0, retry=5.0)
    down = subsystem(ctrl("nvme0", "connecting"))
    watch.step([down], 0.0)
    assert len(watch.step([down], 1.0)) == 1
    assert watch.step([down], 5.9) == []
    assert len(watch.step([down], 6.0)) == 1


def test_a_failed_path_beside_a_live_one_is_pruned_after_the_grace() -> None:
    watch = PathWatch(failure_grace=1.0)
    old, new = ctrl("nvme0", "connecting"), ctrl("nvme1", "live", port=4422)
    watch.step([subsystem(old)], 0.0)
    assert watch.step([subsystem(old, new)], 0.5) == []
    assert watch.step([subsystem(old, new)], 1.0) == [Prune(NQN, old)]


def test_subsystems_of_other_targets_are_left_alone() -> None:
    watch = PathWatch(failure_grace=0.0)
    other = subsystem(ctrl("nvme0", "connecting"), nqn="nqn.2014-08.org.example:disk")
    assert watch.step([other], 0.0) == []
    assert watch.step([other], 10.0) == []


def test_a_controller_being_deleted_is_neither_a_path_nor_a_failure() -> None:
    watch = PathWatch(failure_grace=0.0)
    going = subsystem(ctrl("nvme0", "deleting"), ctrl("nvme1", "connecting", port=4422))
    assert watch.step([going], 0.0) == [Report(NQN, ctrl("nvme1", "connecting", port=4422))]


STATES = st.sampled_from(["live", "connecting", "resetting", "deleting", "new"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(STATES, min_size=1, max_size=3), st.floats(0.0, 3.0)),
        min_size=1,
        max_size=20,
    )
)
def test_no_live_subsystem_is_reported_and_no_last_path_pruned(
    steps: list[tuple[list[str], float]],
) -> None:
    watch = PathWatch(failure_grace=1.0, retry=2.0)
    now = 0.0
    for states, pause in steps:
        now += pause
        controllers = [ctrl(f"nvme{i}", s, port=4420 + i) for i, s in enumerate(states)]
        actions = watch.step([subsystem(*controllers)], now)
        live = [c for c in controllers if c.state == "live"]
        reports = [a for a in actions if isinstance(a, Report)]
        prunes = [a for a in actions if isinstance(a, Prune)]
        if live:
            assert not reports
        assert not (reports and prunes)
        assert len(reports) <= 1
        assert all(p.controller.state not in ("live", "deleting") for p in prunes)
        if prunes:
            assert live


def test_an_address_map_translates_both_ways() -> None:
    mapping = AddressMap.parse(["127.0.0.1=10.0.2.2"])
    assert mapping.dialled("127.0.0.1") == "10.0.2.2"
    assert mapping.advertised("10.0.2.2") == "127.0.0.1"
    assert mapping.dialled("192.0.2.7") == "192.0.2.7"
    assert mapping.advertised("192.0.2.7") == "192.0.2.7"


@pytest.mark.parametrize("entry", ["127.0.0.1", "=10.0.2.2", "127.0.0.1=", ""])
def test_a_malformed_address_map_entry_is_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="ADVERTISED=DIALLED"):
        AddressMap.parse([entry])
