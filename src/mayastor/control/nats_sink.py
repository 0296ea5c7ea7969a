"""Events published on NATS (``--events nats://HOST:PORT``), in the order they happened.

Subject ``mayastor.events.<category>`` (node, volume, replica, rebuild, target, pool),
the event as JSON. One background task publishes from a bounded queue: a NATS server
that is away is retried every few seconds, and the core agent never waits for it; past
the bound the oldest events are dropped, and the count of dropped ones is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import nats
import nats.errors
from nats.aio.client import Client

from mayastor.control.events import Event

log = logging.getLogger(__name__)

SUBJECT_PREFIX = "mayastor.events"


class NatsEventSink:
    """Publishes events on a NATS server.

    Args:
        url: ``nats://HOST:PORT``.
        bound: events queued at most while NATS is away.
    """

    def __init__(self, url: str, bound: int = 10_000) -> None:
        self.url = url
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=bound)
        self._dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._client: Client | None = None

    def offer(self, event: Event) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self._dropped += 1
        self._queue.put_nowait(event)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="nats events")

    async def _connect(self) -> Client:
        while True:
            try:
                client = await nats.connect(
                    servers=[self.url],
                    connect_timeout=2,
                    reconnect_time_wait=1,
                    max_reconnect_attempts=-1,
                    allow_reconnect=True,
                )
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                log.warning(
                    "events: NATS at %s cannot be reached (%s); trying again", self.url, exc
                )
                await asyncio.sleep(2.0)
                continue
            log.info("events: publishing on NATS at %s", self.url)
            return client

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            if self._client is None:
                self._client = await self._connect()
            if self._dropped:
                log.warning("events: %d events dropped while NATS was away", self._dropped)
                self._dropped = 0
            subject = f"{SUBJECT_PREFIX}.{event.category.value}"
            while True:  # the same event until it is out: the order is kept
                try:
                    await self._client.publish(subject, event.model_dump_json().encode())
                    if self._queue.empty():
                        await self._client.flush(timeout=5)
                    break
                except (nats.errors.Error, OSError, TimeoutError) as exc:
                    log.warning("events: publishing on NATS failed (%s); trying again", exc)
                    await asyncio.sleep(1.0)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            with contextlib.suppress(nats.errors.Error, OSError, TimeoutError):
                await self._client.drain()
