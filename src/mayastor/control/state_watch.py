"""Events from what the polls show: volumes changing status, children faulted, rebuilds.

The io-engines report state, they do not announce changes; so after each poll the
watcher compares every volume's status and every child's state with what it saw last,
and records an event for each change, with the reason the nexus gave. What it sees of a
volume the first time is its baseline (no event).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from mayastor.control.cluster import Cluster
from mayastor.control.events import EventCategory, EventLog
from mayastor.control.models import ChildState, ReplicaTopology
from mayastor.control.specs import VolumeSpec
from mayastor.control.views import volume_view

log = logging.getLogger(__name__)


class StateWatcher:
    """Compares volume states pass after pass and records the changes as events.

    Args:
        cluster: what to watch.
        events: where the events go.
        period: seconds between two looks (the poll period).
    """

    def __init__(self, cluster: Cluster, events: EventLog, period: float = 2.0) -> None:
        self.cluster = cluster
        self.events = events
        self.period = period
        self._status: dict[str, str] = {}
        self._children: dict[str, dict[str, ReplicaTopology]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="state watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            self.look()

    def look(self) -> None:
        """Compare now with the last look; record what changed."""
        present: set[str] = set()
        for spec in self.cluster.specs.view(VolumeSpec):
            volume = str(spec.uuid)
            present.add(volume)
            state = volume_view(self.cluster, spec).state
            children = dict(state.replica_topology)
            before = self._status.get(volume)
            if before is not None:
                self._compare_children(volume, self._children.get(volume, {}), children)
                if state.status.value != before:
                    why = self._why(children)
                    self.events.emit(
                        EventCategory.VOLUME,
                        state.status.value,
                        volume,
                        f"volume {volume} is {state.status.value} (was {before})" + why,
                    )
            self._status[volume] = state.status.value
            self._children[volume] = children
        for gone in set(self._status) - present:
            del self._status[gone]
            self._children.pop(gone, None)

    def _compare_children(
        self, volume: str, before: dict[str, ReplicaTopology], now: dict[str, ReplicaTopology]
    ) -> None:
        for replica, child in now.items():
            old = before.get(replica)
            was = old.child_status if old is not None else None
            state = child.child_status
            if state is None or state == was:
                continue
            reason = f" ({child.child_status_reason.value})" if child.child_status_reason else ""
            where = f"replica {replica} on {child.node}"
            if state is ChildState.FAULTED and was is ChildState.DEGRADED:
                self.events.emit(
                    EventCategory.REBUILD,
                    "RebuildFailed",
                    volume,
                    f"the rebuild of {where} failed{reason}",
                    node=child.node,
                )
            elif state is ChildState.FAULTED:
                self.events.emit(
                    EventCategory.REPLICA,
                    "ChildFaulted",
                    volume,
                    f"{where} was retired from volume {volume}'s nexus{reason}",
                    node=child.node,
                )
            elif state is ChildState.DEGRADED:
                self.events.emit(
                    EventCategory.REBUILD,
                    "RebuildStarted",
                    volume,
                    f"{where} is being rebuilt",
                    node=child.node,
                )
            elif state is ChildState.ONLINE and was in (ChildState.DEGRADED, ChildState.FAULTED):
                # From faulted to online: a rebuild began and ended between two looks.
                self.events.emit(
                    EventCategory.REBUILD,
                    "RebuildFinished",
                    volume,
                    f"{where} is rebuilt and in sync",
                    node=child.node,
                )

    @staticmethod
    def _why(children: dict[str, ReplicaTopology]) -> str:
        faulted = [
            f"{r} on {c.node}"
            + (f" {c.child_status_reason.value}" if c.child_status_reason else "")
            for r, c in sorted(children.items())
            if c.child_status in (ChildState.FAULTED, ChildState.DEGRADED)
        ]
        return f": {', '.join(faulted)}" if faulted else ""
