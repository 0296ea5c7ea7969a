"""Events: what happened in the cluster and why, kept for operators and published.

Every event names what it is about (a node, a volume, a replica) and carries a reason
an operator understands: node Online/Offline, a child faulted, a rebuild started,
finished or failed, a volume Degraded/Online/Faulted, each healing action and each
step of a target switch-over. They are logged, kept in the cluster store (the last
`keep` of them, for `kubectl-mayastor get events` and `GET /v0/events`) and, when a
sink is attached (`--events nats://…`), published there in the order they happened.
Recording an event never holds up the operation it describes: a store that is down
keeps it in memory only, a sink that is slow or away queues it (and drops the oldest
past its bound).
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import time
import uuid as uuid_mod
from collections import deque
from datetime import UTC, datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from mayastor.control.store import ClusterStore, StoreKeys
from mayastor.errors import MayastorError

log = logging.getLogger(__name__)

EVENT_KIND = "Event"


class EventCategory(enum.StrEnum):
    NODE = "node"
    POOL = "pool"
    VOLUME = "volume"
    REPLICA = "replica"
    REBUILD = "rebuild"
    TARGET = "target"


class Event(BaseModel):
    """One thing that happened: its order, time, what it is about, and why."""

    model_config = ConfigDict(extra="ignore")

    id: str
    seq: int
    time: datetime
    category: EventCategory
    action: str
    target: str
    message: str
    node: str | None = None


class EventSink(Protocol):
    """Where events go besides the store (NATS)."""

    def offer(self, event: Event) -> None:
        """Queue `event`; never blocks, never raises."""

    async def close(self) -> None: ...


class EventLog:
    """Records events: log line, memory, store, sinks.

    Args:
        store: the cluster store (events are kept under ``…/Event/<seq>``).
        keys: the cluster's key layout.
        keep: how many events the store and memory hold.
    """

    def __init__(self, store: ClusterStore, keys: StoreKeys, keep: int = 1000) -> None:
        self.store = store
        self.keys = keys
        self.keep = keep
        self.sinks: list[EventSink] = []
        self._recent: deque[Event] = deque(maxlen=keep)
        self._seq = itertools.count(time.time_ns())
        self._pending: asyncio.Queue[Event] = asyncio.Queue(maxsize=keep)
        self._writer: asyncio.Task[None] | None = None

    def _key(self, event: Event) -> str:
        return self.keys.key(EVENT_KIND, f"{event.seq:020d}")

    async def load(self) -> None:
        """Read the events the store holds (after taking the lease)."""
        try:
            entries = await self.store.list(self.keys.prefix(EVENT_KIND))
        except MayastorError as exc:
            log.warning("events: cannot read the kept events: %s", exc)
            return
        self._recent.clear()
        for entry in entries[-self.keep :]:
            try:
                self._recent.append(Event.model_validate_json(entry.value))
            except ValueError:
                continue

    def emit(
        self,
        category: EventCategory,
        action: str,
        target: str,
        message: str,
        *,
        node: str | None = None,
    ) -> Event:
        """Record an event now (the store write and the sinks follow in the background)."""
        event = Event(
            id=str(uuid_mod.uuid4()),
            seq=next(self._seq),
            time=datetime.now(UTC),
            category=category,
            action=action,
            target=target,
            message=message,
            node=node,
        )
        log.info("event %s %s %s: %s", category.value, action, target, message)
        self._recent.append(event)
        for sink in self.sinks:
            sink.offer(event)
        if self._pending.full():
            self._pending.get_nowait()
        self._pending.put_nowait(event)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write(), name="events")
        return event

    def recent(self, *, category: str | None = None, target: str | None = None) -> list[Event]:
        """The events kept, oldest first, optionally of one category or object."""
        return [
            e
            for e in self._recent
            if (category is None or e.category == category)
            and (target is None or e.target == target)
        ]

    async def _write(self) -> None:
        while not self._pending.empty():
            event = self._pending.get_nowait()
            try:
                await self.store.put(self._key(event), event.model_dump_json().encode())
                await self._prune()
            except MayastorError as exc:
                log.warning("event %s kept in memory only: %s", event.action, exc)

    async def _prune(self) -> None:
        entries = await self.store.list(self.keys.prefix(EVENT_KIND))
        for entry in entries[: max(0, len(entries) - self.keep)]:
            await self.store.delete(entry.key)

    async def flush(self) -> None:
        """Wait until the events recorded so far are written (or given up)."""
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                pass
        for sink in self.sinks:
            await sink.close()
