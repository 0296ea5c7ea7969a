"""The state watcher turns what two looks show of a volume's children into events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from mayastor.control import state_watch
from mayastor.control.models import ChildState, ReplicaState, ReplicaTopology
from mayastor.control.state_watch import StateWatcher

VOLUME = uuid.uuid4()


@dataclass
class Looks:
    """What the watcher sees of one volume: a child's state per look."""

    child: ChildState = ChildState.ONLINE
    emitted: list[str] = field(default_factory=list)


@pytest.fixture
def watcher(monkeypatch: pytest.MonkeyPatch) -> tuple[StateWatcher, Looks]:
    looks = Looks()

    @dataclass
    class Status:
        value: str = "Online"

    @dataclass
    class State:
        status: Status
        replica_topology: dict[str, ReplicaTopology]

    @dataclass
    class View:
        state: State

    def volume_view(cluster: Any, spec: Any) -> View:
        child = ReplicaTopology(node="node-3", state=ReplicaState.ONLINE, child_status=looks.child)
        return View(State(Status(), {"r3": child}))

    @dataclass
    class Spec:
        uuid: uuid.UUID = VOLUME

    class Specs:
        def view(self, kind: type) -> list[Spec]:
            return [Spec()]

    class Cluster:
        specs = Specs()

    class Events:
        def emit(self, category: Any, action: str, target: str, message: str, **_: Any) -> None:
            looks.emitted.append(action)

    monkeypatch.setattr(state_watch, "volume_view", volume_view)
    return StateWatcher(Cluster(), Events()), looks  # type: ignore[arg-type]


def test_a_child_rebuilt_between_two_looks_records_the_rebuild_finished(
    watcher: tuple[StateWatcher, Looks],
) -> None:
    watch, looks = watcher
    watch.look()
    looks.child = ChildState.FAULTED
    watch.look()
    looks.child = ChildState.ONLINE
    watch.look()
    assert looks.emitted == ["ChildFaulted", "RebuildFinished"]


def test_a_rebuild_seen_under_way_records_its_start_and_end(
    watcher: tuple[StateWatcher, Looks],
) -> None:
    watch, looks = watcher
    watch.look()
    for state in (ChildState.FAULTED, ChildState.DEGRADED, ChildState.ONLINE):
        looks.child = state
        watch.look()
    assert looks.emitted == ["ChildFaulted", "RebuildStarted", "RebuildFinished"]
