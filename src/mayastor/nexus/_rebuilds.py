"""Rebuild orchestration: which child is copied from, jobs started, watched and ended.

A child joins the write path first (with I/O paused and drained, and front-end writes
taking shared range locks from then on), then a `RebuildJob` copies a healthy child
into it. When the job completes the child is flushed, recorded healthy in the nexus
info and only then read from. A job whose source or destination leaves the write path
is failed; finished jobs are kept in a short history.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from mayastor.errors import DeviceError, FailedPrecondition, NotFound, ReservationConflict
from mayastor.nexus._child import NexusChild
from mayastor.nexus._child_state import ChildEvent, ChildState
from mayastor.nexus._core import log
from mayastor.nexus._fencing import Fencing
from mayastor.nexus._range_lock import RangeLock
from mayastor.nexus._rebuild import (
    DEFAULT_REBUILD_TASKS,
    RebuildJob,
    RebuildRecord,
    RebuildStats,
)
from mayastor.nexus._rebuild_state import RebuildState
from mayastor.nexus._segment_map import SegmentMap

DEFAULT_HISTORY_SIZE = 16
"""Finished rebuild jobs kept per nexus."""


class RebuildControl(Fencing):
    """The rebuild layer (see `_core` for the stack).

    Args:
        rebuild_tasks: segments a rebuild copies at once.
        history_size: finished rebuild jobs kept.
        clock: wall-clock seconds, for rebuild start and end times.
    """

    def __init__(
        self,
        *args: Any,
        rebuild_tasks: int = DEFAULT_REBUILD_TASKS,
        history_size: int = DEFAULT_HISTORY_SIZE,
        clock: Callable[[], float] = time.time,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._rebuild_tasks = rebuild_tasks
        self._clock = clock
        self._range_lock = RangeLock()
        self._locking = 0
        self._history: deque[RebuildRecord] = deque(maxlen=history_size)

    def _pick_source(self, destination: NexusChild) -> NexusChild:
        candidates = [c for c in self._readers if c is not destination]
        if not candidates:
            raise FailedPrecondition(
                f"nexus {self.name!r}: no Online child to rebuild {destination.uri!r} from"
            )
        return next((c for c in candidates if c.local), candidates[0])

    async def _start_rebuild(self, child: NexusChild, segments: SegmentMap | None) -> None:
        if not self.state.serves_io:
            raise FailedPrecondition(
                f"nexus {self.name!r} is {self.state.value}: cannot rebuild {child.uri!r}"
            )
        if child.device is None or child.device.closed:
            raise FailedPrecondition(
                f"nexus {self.name!r}: child {child.uri!r} is closed; bring it back with "
                "online_child"
            )
        source = self._pick_source(child)
        assert source.device is not None
        job = RebuildJob(
            source=source.device,
            destination=child.device,
            source_uri=source.uri,
            destination_uri=child.uri,
            num_blocks=self.num_blocks,
            segment_blocks=self._segment_blocks,
            tasks=self._rebuild_tasks,
            range_lock=self._range_lock,
            segments=segments,
            clock=self._clock,
        )
        async with self._paused():
            # Joining the write path with nothing in flight: every write from now on
            # reaches the destination and, while the job runs, respects its locks.
            child.apply(ChildEvent.REBUILD_STARTED)
            child.dirty = None
            child.rebuild = job
            child.rebuild_source = source
            self._locking += 1
            self._refresh()
        job.start()
        log.info(
            "nexus %s: %s rebuild of %s from %s started",
            self.name, "partial" if segments is not None else "full", child.uri, source.uri,
        )  # fmt: skip
        child.watcher = self._spawn(self._watch_rebuild(child, job), f"watch {job!r}")

    def _release_rebuild(self, child: NexusChild, job: RebuildJob) -> bool:
        """Detach a finished or abandoned job from its child; True the first time."""
        if child.rebuild is not job:
            return False
        child.rebuild = None
        child.rebuild_source = None
        self._locking -= 1
        return True

    def _drop_rebuild(self, child: NexusChild, reason: str) -> None:
        """Abandon the child's rebuild (the child is leaving the write path)."""
        job = child.rebuild
        if job is not None and self._release_rebuild(child, job):
            self._spawn(_end_job(job, reason, failed=True), f"stop {job!r}")

    def _fail_rebuilds_from(self, source: NexusChild) -> None:
        """The source of these rebuilds is out: they must never complete."""
        for child in self._children:
            job = child.rebuild
            if job is not None and child.rebuild_source is source:
                self._release_rebuild(child, job)
                reason = f"source {source.uri} faulted ({source.reason and source.reason.value})"
                self._spawn(_end_job(job, reason, failed=True), f"fail {job!r}")
                child.apply(ChildEvent.REBUILD_FAILED)
                self._close_in_background(child)
        self._refresh()

    async def _stop_rebuild(self, child: NexusChild, reason: str) -> None:
        job = child.rebuild
        if job is None or not self._release_rebuild(child, job):
            return
        if not job.state.done:
            await job.stop(reason)
        child.apply(ChildEvent.REBUILD_STOPPED)
        self._refresh()

    async def _watch_rebuild(self, child: NexusChild, job: RebuildJob) -> None:
        state = await job.wait()
        record = job.record()
        try:
            if not self._release_rebuild(child, job):
                return
            if state is RebuildState.COMPLETED:
                failure = await self._promote(child)
                if failure is not None:
                    record = dataclasses.replace(record, state=RebuildState.FAILED, reason=failure)
            elif isinstance(job.error, ReservationConflict):
                self._fence(child, job.error)  # superseded: nothing to retire
            elif child.state is ChildState.DEGRADED:
                if state is RebuildState.FAILED:
                    log.warning(
                        "nexus %s: rebuild of %s failed: %s", self.name, child.uri, job.reason
                    )
                    child.apply(ChildEvent.REBUILD_FAILED)
                    self._close_in_background(child)
                else:
                    child.apply(ChildEvent.REBUILD_STOPPED)
                self._refresh()
        finally:
            self._history.append(record)

    async def _promote(self, child: NexusChild) -> str | None:
        """Make a rebuilt child Online: durable, recorded healthy, then readable."""
        device = child.device
        assert device is not None
        failure: str | None = None
        try:
            await device.flush()
        except DeviceError as exc:
            failure = f"flushing the rebuilt child failed: {exc}"
        if failure is None and child.state is ChildState.DEGRADED:
            child.healthy = True
            self._info_version += 1
            try:
                await self._persist_info()
            except Exception as exc:
                failure = f"recording the rebuilt child healthy failed: {exc}"
                child.healthy = False
                self._info_version += 1
        if child.state is not ChildState.DEGRADED:
            return failure or f"child left the rebuild as {child.state.value}"
        if failure is not None:
            child.apply(ChildEvent.REBUILD_FAILED)
            self._close_in_background(child)
        else:
            child.apply(ChildEvent.REBUILD_COMPLETED)
            log.info("nexus %s: child %s rebuilt, online", self.name, child.uri)
        self._refresh()
        return failure

    def _job_of(self, uri: str) -> RebuildJob:
        job = self._find(uri).rebuild
        if job is None:
            raise NotFound(f"nexus {self.name!r}: child {uri!r} is not being rebuilt")
        return job

    async def start_rebuild(self, uri: str) -> None:
        """Rebuild a child that is out of sync (full copy).

        Raises:
            NotFound: no such child.
            FailedPrecondition: it is not Faulted, its device is closed (use
                `online_child`), or there is no Online child to copy from.
        """
        async with self._reconfiguring:
            child = self._find(uri)
            if child.state is not ChildState.FAULTED:
                raise FailedPrecondition(
                    f"nexus {self.name!r}: child {uri!r} is {child.state.value}; only a "
                    "faulted child can be rebuilt"
                )
            await self._start_rebuild(child, None)

    async def stop_rebuild(self, uri: str) -> None:
        """Stop a child's rebuild; the child becomes Faulted(OUT_OF_SYNC).

        Raises:
            NotFound: no such child, or it is not being rebuilt.
        """
        async with self._reconfiguring:
            self._job_of(uri)
            await self._stop_rebuild(self._find(uri), "stopped by request")

    def pause_rebuild(self, uri: str) -> None:
        """Pause a child's rebuild; it keeps taking writes.

        Raises:
            NotFound: no such child, or it is not being rebuilt.
            FailedPrecondition: the job is not running.
        """
        self._job_of(uri).pause()

    def resume_rebuild(self, uri: str) -> None:
        """Resume a paused rebuild.

        Raises:
            NotFound: no such child, or it is not being rebuilt.
            FailedPrecondition: the job is not paused.
        """
        self._job_of(uri).resume()

    def rebuild_state(self, uri: str) -> RebuildState:
        """The state of a child's rebuild job.

        Raises:
            NotFound: no such child, or it is not being rebuilt.
        """
        return self._job_of(uri).state

    def rebuild_stats(self, uri: str) -> RebuildStats:
        """Progress and throughput of a child's rebuild.

        Raises:
            NotFound: no such child, or it is not being rebuilt.
        """
        return self._job_of(uri).stats()

    def rebuild_history(self) -> list[RebuildRecord]:
        """The most recent finished rebuilds of this nexus, oldest first."""
        return list(self._history)

    async def wait_rebuild(self, uri: str) -> RebuildRecord:
        """Wait until the child's latest rebuild has ended and the child moved on.

        Returns:
            the job's history record (at once, if it has ended already).

        Raises:
            NotFound: no such child, or no rebuild of it is known.
        """
        child = self._find(uri)
        if child.watcher is not None:
            await asyncio.shield(child.watcher)
        for record in reversed(self._history):
            if record.child_uri == uri:
                return record
        raise NotFound(f"nexus {self.name!r}: no rebuild of {uri!r} is known")


async def _end_job(job: RebuildJob, reason: str, *, failed: bool) -> None:
    if not job.state.done:
        await job.stop(reason, failed=failed)
