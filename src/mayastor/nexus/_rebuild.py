"""Rebuild: copy a healthy child into one that is not, while front-end I/O goes on.

The destination already takes every front-end write (it joined the write path before
the job started). The job copies the source into it in extents (consecutive segments
to copy, `EXTENT_BYTES` at most: 16 segments of 64 KiB, 256 of 4 KiB), several extents
in flight, each under exclusive range locks on its segments so that a front-end write
to the extent and its copy never interleave (see `_range_lock`). An extent takes only
the segments it can lock at once: it ends before one that a front-end write holds, and
that segment waits for the write on its own, so a held segment never holds up the copy
of the others. Extents copied before a write are overwritten by that write on both
children; extents copied after it copy its data. When every extent is done the
destination holds what the source holds. Copying large extents keeps the cost per
byte low (one command each way per extent, over NVMe/TCP too), while the segment stays
the unit of the dirty logs.

A full rebuild copies every segment; a partial one only those in a `SegmentMap` of
what the destination missed. The job knows its two children only as BlockDevices
and nothing of the nexus: the nexus watches `wait()` and moves the child on.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mayastor.bdev import BlockDevice
from mayastor.errors import DeviceError, InvalidArgument
from mayastor.nexus._range_lock import RangeLock
from mayastor.nexus._rebuild_state import (
    RebuildEvent,
    RebuildState,
    next_rebuild_state,
)
from mayastor.nexus._segment_map import SegmentMap

DEFAULT_SEGMENT_SIZE = 64 * 1024
"""Bytes copied per segment (Mayastor's rebuild segment)."""
DEFAULT_REBUILD_TASKS = 16
"""Extents in flight at once."""
EXTENT_BYTES = 1 << 20
"""Bytes copied at most by one read and one write (an extent), whatever the segment
size: the largest transfer of our target (larger writes are split into commands of
this size) and the largest I/O whose buffer a file device reuses."""


@dataclass(frozen=True, slots=True)
class RebuildStats:
    """Progress and throughput of one job (a snapshot).

    Attributes:
        blocks_total: blocks of the range the job brings in sync (the nexus size).
        blocks_recovered: blocks known in sync so far (copied, or clean for a partial
            rebuild).
        blocks_transferred: blocks actually copied.
        blocks_remaining: ``blocks_total - blocks_recovered``.
        progress: percent of `blocks_total` recovered.
        segment_size_blks: blocks per segment.
        block_size: bytes per block.
        tasks_total: segments the job may have in flight.
        tasks_active: segments in flight now.
        is_partial: True if only missed segments are copied.
        start_time: when the job started (the job's clock), None before.
        end_time: when it ended, None while it runs.
        bytes_transferred: bytes copied.
        mb_per_s: bytes copied per second of the job's life so far, in MB (10^6).
    """

    blocks_total: int
    blocks_recovered: int
    blocks_transferred: int
    blocks_remaining: int
    progress: int
    segment_size_blks: int
    block_size: int
    tasks_total: int
    tasks_active: int
    is_partial: bool
    start_time: float | None
    end_time: float | None
    bytes_transferred: int
    mb_per_s: float


@dataclass(frozen=True, slots=True)
class RebuildRecord:
    """One finished job, as the nexus's rebuild history keeps it.

    Attributes:
        child_uri: the destination.
        source_uri: the child copied from.
        state: how it ended: Completed, Stopped or Failed.
        reason: why it stopped or failed (None when it completed).
        is_partial, start_time, end_time, blocks_total, blocks_recovered,
        blocks_transferred: as in `RebuildStats` at the end.
    """

    child_uri: str
    source_uri: str
    state: RebuildState
    reason: str | None
    is_partial: bool
    start_time: float | None
    end_time: float | None
    blocks_total: int
    blocks_recovered: int
    blocks_transferred: int


class RebuildJob:
    """Copies `source` into `destination` over ``[0, num_blocks)``.

    Args:
        source: a child in sync.
        destination: the child being rebuilt; it must already take front-end writes.
        source_uri, destination_uri: for stats, history and messages.
        num_blocks: the range to bring in sync (the nexus's size in blocks).
        segment_blocks: blocks per segment (the unit of what needs copying).
        tasks: extents in flight at once.
        range_lock: the lock front-end writes to the nexus hold.
        segments: the segments to copy for a partial rebuild; None copies all.
        clock: wall-clock time in seconds, for start and end times.
        extent_segments: segments one extent copies at most; default as many as fit
            in `EXTENT_BYTES` (at least one).

    Raises:
        InvalidArgument: a segment size or task count below 1, or children whose block
            sizes differ.
    """

    def __init__(
        self,
        *,
        source: BlockDevice,
        destination: BlockDevice,
        source_uri: str,
        destination_uri: str,
        num_blocks: int,
        segment_blocks: int,
        tasks: int,
        range_lock: RangeLock,
        segments: SegmentMap | None = None,
        clock: Callable[[], float] = time.time,
        extent_segments: int | None = None,
    ) -> None:
        if segment_blocks < 1 or tasks < 1:
            raise InvalidArgument(
                f"rebuild of {destination_uri}: segment size ({segment_blocks} blocks) and "
                f"tasks ({tasks}) must be at least 1"
            )
        if source.block_size != destination.block_size:
            raise InvalidArgument(
                f"rebuild of {destination_uri}: block sizes differ "
                f"({source.block_size} vs {destination.block_size})"
            )
        self.source = source
        self.destination = destination
        self.source_uri = source_uri
        self.destination_uri = destination_uri
        self.num_blocks = num_blocks
        self.segment_blocks = segment_blocks
        if extent_segments is None:
            extent_segments = EXTENT_BYTES // (segment_blocks * destination.block_size)
        self.extent_segments = max(1, extent_segments)
        self.tasks = tasks
        self.is_partial = segments is not None
        self.state = RebuildState.INIT
        self.reason: str | None = None
        self.error: BaseException | None = None
        """The device error that failed the job, when one did (the nexus fences itself
        when it is a reservation conflict)."""
        self.start_time: float | None = None
        self.end_time: float | None = None
        self._lock = range_lock
        self._clock = clock
        self._segments = segments
        self._blocks_recovered = 0
        self._blocks_transferred = 0
        self._active = 0
        self._resumed = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._ended = asyncio.Event()

    def __repr__(self) -> str:
        return f"<RebuildJob {self.source_uri} -> {self.destination_uri} {self.state.value}>"

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        """Start copying in the background.

        Raises:
            FailedPrecondition: the job was started before.
        """
        self._event(RebuildEvent.START)
        self.start_time = self._clock()
        self._resumed.set()
        self._runner = asyncio.get_running_loop().create_task(
            self._run(), name=f"rebuild {self.destination_uri}"
        )

    def pause(self) -> None:
        """Start no new segment until `resume`; segments in flight finish.

        Raises:
            FailedPrecondition: the job is not running or paused.
        """
        self._event(RebuildEvent.PAUSE)
        self._resumed.clear()

    def resume(self) -> None:
        """Go on after `pause`.

        Raises:
            FailedPrecondition: the job is not running or paused.
        """
        self._event(RebuildEvent.RESUME)
        self._resumed.set()

    async def stop(self, reason: str = "stopped by request", *, failed: bool = False) -> None:
        """End the job now; segments in flight are abandoned.

        The destination is left part copied: it stays out of sync.

        Args:
            reason: recorded in the history.
            failed: end it Failed rather than Stopped (its source or destination was
                lost to the nexus).

        Raises:
            FailedPrecondition: the job has already ended.
        """
        self._event(RebuildEvent.FAIL if failed else RebuildEvent.STOP)
        self.reason = reason
        runner = self._runner
        if runner is not None:
            runner.cancel()
            await asyncio.wait([runner])
        self._finish()

    async def wait(self) -> RebuildState:
        """Wait until the job has ended.

        Returns:
            Completed, Stopped or Failed.
        """
        await self._ended.wait()
        return self.state

    # ------------------------------------------------------------------ reporting

    @property
    def progress(self) -> int:
        """Percent of the range in sync."""
        if not self.num_blocks:
            return 100
        return self._blocks_recovered * 100 // self.num_blocks

    def stats(self) -> RebuildStats:
        """Progress and throughput now."""
        block_size = self.destination.block_size
        transferred = self._blocks_transferred * block_size
        elapsed = 0.0
        if self.start_time is not None:
            end = self.end_time if self.end_time is not None else self._clock()
            elapsed = max(end - self.start_time, 0.0)
        return RebuildStats(
            blocks_total=self.num_blocks,
            blocks_recovered=self._blocks_recovered,
            blocks_transferred=self._blocks_transferred,
            blocks_remaining=self.num_blocks - self._blocks_recovered,
            progress=self.progress,
            segment_size_blks=self.segment_blocks,
            block_size=block_size,
            tasks_total=self.tasks,
            tasks_active=self._active,
            is_partial=self.is_partial,
            start_time=self.start_time,
            end_time=self.end_time,
            bytes_transferred=transferred,
            mb_per_s=transferred / elapsed / 1e6 if elapsed > 0 else 0.0,
        )

    def record(self) -> RebuildRecord:
        """This job as the history keeps it."""
        return RebuildRecord(
            child_uri=self.destination_uri,
            source_uri=self.source_uri,
            state=self.state,
            reason=self.reason,
            is_partial=self.is_partial,
            start_time=self.start_time,
            end_time=self.end_time,
            blocks_total=self.num_blocks,
            blocks_recovered=self._blocks_recovered,
            blocks_transferred=self._blocks_transferred,
        )

    # ------------------------------------------------------------------ copying

    def _event(self, event: RebuildEvent) -> None:
        self.state = next_rebuild_state(self.destination_uri, self.state, event)

    def _finish(self) -> None:
        if self.end_time is None:
            self.end_time = self._clock()
        self._ended.set()

    def _work(self) -> Iterator[int]:
        num_segments = -(-self.num_blocks // self.segment_blocks)
        if self._segments is None:
            return iter(range(num_segments))
        return (segment for segment in self._segments if segment < num_segments)

    def _extents(self) -> Iterator[tuple[int, int]]:
        """(first segment, segments) of each extent to copy, in ascending order: runs of
        consecutive segments to copy, `extent_segments` at most."""
        most = self.extent_segments
        first = count = 0
        for segment in self._work():
            if count and segment == first + count and count < most:
                count += 1
                continue
            if count:
                yield first, count
            first, count = segment, 1
        if count:
            yield first, count

    def _segment_range(self, segment: int, count: int = 1) -> tuple[int, int]:
        lba = segment * self.segment_blocks
        return lba, min(count * self.segment_blocks, self.num_blocks - lba)

    async def _run(self) -> None:
        if self._segments is not None:
            dirty = sum(self._segment_range(s)[1] for s in self._work())
            self._blocks_recovered = self.num_blocks - dirty
        work = deque(self._extents())
        workers = [asyncio.ensure_future(self._worker(work)) for _ in range(self.tasks)]
        try:
            await asyncio.gather(*workers)
        except asyncio.CancelledError:
            for worker in workers:
                worker.cancel()
            await asyncio.wait(workers)
            raise
        except Exception as exc:
            for worker in workers:
                worker.cancel()
            await asyncio.wait(workers)
            if not self.state.done:
                self.reason = str(exc)
                self.error = exc.__cause__ if isinstance(exc, _SegmentFailed) else exc
                self._event(RebuildEvent.FAIL)
            self._finish()
            return
        if not self.state.done:
            self._event(RebuildEvent.COMPLETE)
        self._finish()

    async def _worker(self, work: deque[tuple[int, int]]) -> None:
        while work:
            await self._resumed.wait()
            if not work:
                return
            first, count = work.popleft()
            tokens, count = await self._lock_extent(first, count, work)
            try:
                await self._copy(first, count)
            finally:
                for token in tokens:
                    self._lock.release(token)
            # Devices that complete without waiting (malloc) would otherwise let the
            # copy hold the event loop until it is done, starving front-end I/O.
            await asyncio.sleep(0)

    async def _lock_extent(
        self, first: int, count: int, work: deque[tuple[int, int]]
    ) -> tuple[list[int], int]:
        """Lock the longest run of the extent's segments that is free now; the rest goes
        back to the front of `work`. When the first segment is busy, wait for it alone.

        Returns:
            the lock tokens, and how many segments from `first` they hold.
        """
        lba, nblocks = self._segment_range(first, count)
        token = self._lock.try_acquire(lba, nblocks, exclusive=True)
        if token is not None:
            return [token], count
        tokens: list[int] = []
        while len(tokens) < count:
            lba, nblocks = self._segment_range(first + len(tokens))
            token = self._lock.try_acquire(lba, nblocks, exclusive=True)
            if token is None:
                break
            tokens.append(token)
        if not tokens:
            if count > 1:
                work.appendleft((first + 1, count - 1))
            lba, nblocks = self._segment_range(first)
            return [await self._lock.acquire(lba, nblocks, exclusive=True)], 1
        if len(tokens) < count:
            work.appendleft((first + len(tokens), count - len(tokens)))
        return tokens, len(tokens)

    async def _copy(self, first: int, count: int) -> None:
        """Copy `count` segments from `first`; the caller holds their locks."""
        lba, nblocks = self._segment_range(first, count)
        self._active += 1
        try:
            try:
                data = await self.source.read(lba, nblocks)
            except DeviceError as exc:
                raise _SegmentFailed(
                    f"source {self.source_uri} failed reading blocks {lba}+{nblocks}: {exc}"
                ) from exc
            try:
                await self.destination.write(lba, data)
            except DeviceError as exc:
                raise _SegmentFailed(
                    f"destination {self.destination_uri} failed writing blocks "
                    f"{lba}+{nblocks}: {exc}"
                ) from exc
        finally:
            self._active -= 1
        self._blocks_recovered += nblocks
        self._blocks_transferred += nblocks


class _SegmentFailed(Exception):
    """A segment could not be copied; the message says which side failed."""
