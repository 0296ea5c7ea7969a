"""The nexus: a BlockDevice that mirrors every write synchronously onto N children.

Rules it keeps, in order of importance:

1. A write (write zeroes, unmap) is acknowledged only when every child in the write
   path (Online and Degraded) has completed it or has been retired, at least one
   Online child took it, and the nexus info that records the retirements is in the
   store. After a crash the store therefore never names healthy a child that missed
   an acknowledged write.
2. The last Online child is never retired: if it fails, the I/O fails with its error
   and the stored info keeps naming it healthy (it holds the newest data anywhere).
   The nexus stays as it is, and I/O goes on once the child answers again (a remote
   child whose path was lost for a moment: `PathLost`, `IoTimeout`). Only when the
   error says the child is gone for good (`DeviceNotReady`: its device was closed;
   `PathGone`: its initiator gave up reconnecting) can no I/O be served: the nexus
   goes Faulted until it is shut down and created again.
3. Reads go round-robin over Online children; a failed read retires that child and
   is retried on the next one.
4. A rebuild copies a source into a destination that already takes every write;
   each segment copy holds an exclusive range lock that front-end writes respect
   (they take shared locks while any rebuild runs).
5. Reconfiguration (add, remove, fault, offline, online, starting a rebuild) runs
   with front-end I/O paused and drained, so no write in flight misses a change of
   the write path.

Partial rebuild: a child retired while in sync by a timeout or a lost path, or taken
offline, gets a log of the segments it may lack: the writes that completed since the
last flush (a child that comes back may have lost its volatile cache), the write that
retired it, and every write after. Bringing it online copies only those.

The nexus knows its children only as BlockDevices opened through a `ChildOpener`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import types
import uuid as uuid_mod
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Sequence
from typing import Any

from mayastor.bdev import BlockDevice, Buffer
from mayastor.errors import (
    AbortRequested,
    AlreadyExists,
    DeviceError,
    DeviceNotReady,
    FailedPrecondition,
    InternalDeviceError,
    InvalidArgument,
    NotFound,
    PathGone,
)
from mayastor.nexus._child import ChildOpener, ChildStatus, NexusChild, uuid_in_uri
from mayastor.nexus._child_state import (
    PARTIAL_REBUILD_REASONS,
    ChildEvent,
    ChildState,
    FaultReason,
    reason_for_error,
)
from mayastor.nexus._info import ChildInfo, NexusInfo, NexusInfoStore
from mayastor.nexus._nexus_state import NexusEvent, NexusState, next_nexus_state
from mayastor.nexus._range_lock import RangeLock
from mayastor.nexus._rebuild import (
    DEFAULT_REBUILD_TASKS,
    DEFAULT_SEGMENT_SIZE,
    RebuildJob,
    RebuildRecord,
    RebuildStats,
)
from mayastor.nexus._rebuild_state import RebuildState
from mayastor.nexus._segment_map import SegmentMap

log = logging.getLogger(__name__)

DEFAULT_HISTORY_SIZE = 16
"""Finished rebuild jobs kept per nexus."""

_LOST = (DeviceNotReady, PathGone)
"""Errors that say a device cannot serve any more I/O through this handle (a plain
`PathLost` does not: the initiator may still be reconnecting)."""

_ChildOp = Callable[[BlockDevice], Coroutine[Any, Any, object]]


class Nexus(BlockDevice):
    """A synchronous N-way mirror over child block devices; see the module docstring.

    Build one with `Nexus.create`; the constructor is internal.
    """

    driver = "nexus"
    product_name = "Nexus"

    def __init__(
        self,
        name: str,
        uuid: uuid_mod.UUID,
        block_size: int,
        num_blocks: int,
        *,
        opener: ChildOpener,
        store: NexusInfoStore,
        segment_size: int,
        rebuild_tasks: int,
        history_size: int,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(name, uuid, block_size, num_blocks)
        self.state = NexusState.INIT
        self._opener = opener
        self._store = store
        self._segment_blocks = segment_size // block_size
        self._num_segments = -(-num_blocks // self._segment_blocks)
        self._rebuild_tasks = rebuild_tasks
        self._clock = clock
        self._children: list[NexusChild] = []
        self._readers: tuple[NexusChild, ...] = ()
        self._writers: tuple[NexusChild, ...] = ()
        self._logging: tuple[NexusChild, ...] = ()
        self._next_reader = 0
        self._range_lock = RangeLock()
        self._locking = 0
        self._io_active = 0
        self._io_idle = asyncio.Event()
        self._pauses = 0
        self._gate_closed = True
        self._gate_changed = asyncio.Event()
        self._reconfiguring = asyncio.Lock()
        self._clean_shutdown = False
        self._info_version = 0
        self._info_stored = 0
        self._info_writer: asyncio.Task[None] | None = None
        self._unflushed = SegmentMap(self._num_segments)
        self._flushing: list[SegmentMap] = []
        self._history: deque[RebuildRecord] = deque(maxlen=history_size)
        self._background: set[asyncio.Task[None]] = set()

    # ================================================================== creation

    @classmethod
    async def create(
        cls,
        name: str,
        uuid: uuid_mod.UUID,
        size: int,
        child_uris: Sequence[str],
        *,
        opener: ChildOpener,
        store: NexusInfoStore,
        auto_rebuild: bool = True,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        rebuild_tasks: int = DEFAULT_REBUILD_TASKS,
        history_size: int = DEFAULT_HISTORY_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> Nexus:
        """Open the children and bring the nexus up.

        Which children are trusted comes from the stored nexus info of `uuid`: with
        none stored, all are (a new volume); otherwise only those it names healthy,
        and after an unclean shutdown only one of them (a local one if there is
        one). The others join Faulted(OUT_OF_SYNC) and, with `auto_rebuild`, are
        rebuilt at once. The info is then stored with ``clean_shutdown=False``.

        Args:
            name: the nexus's name (Mayastor uses the volume uuid).
            uuid: the nexus's uuid: the key of its stored info.
            size: bytes; a whole number of the children's blocks.
            child_uris: one or more, distinct.
            opener: opens child URIs.
            store: where nexus info is kept.
            auto_rebuild: rebuild out-of-sync children right after creation.
            segment_size: bytes per rebuild segment and per dirty-log bit.
            rebuild_tasks: segments a rebuild copies at once.
            history_size: finished rebuild jobs kept.
            clock: wall-clock seconds, for rebuild start and end times.

        Returns:
            the nexus, Online or Degraded.

        Raises:
            InvalidArgument: no or duplicate children, a size that is not positive or not
                a whole number of blocks, children whose block sizes differ, a child
                smaller than the nexus, two children with one uuid, or bad tuning values.
            FailedPrecondition: the stored info names none of the children healthy.
            Whatever the opener raises for a child that cannot be opened, or the store
            for info it cannot read or write. Nothing is left open after a failure.
        """
        if not child_uris:
            raise InvalidArgument(f"nexus {name!r}: at least one child is needed")
        if len(set(child_uris)) != len(child_uris):
            raise InvalidArgument(f"nexus {name!r}: a child is named twice in {list(child_uris)}")
        if size <= 0:
            raise InvalidArgument(f"nexus {name!r}: size must be positive, not {size}")
        if rebuild_tasks < 1 or history_size < 1:
            raise InvalidArgument(
                f"nexus {name!r}: rebuild_tasks ({rebuild_tasks}) and history_size "
                f"({history_size}) must be at least 1"
            )
        uri_uuids = [uuid_in_uri(uri) for uri in child_uris]
        opened = await asyncio.gather(
            *(opener.open(uri) for uri in child_uris), return_exceptions=True
        )
        devices = [d for d in opened if isinstance(d, BlockDevice)]
        for uri, outcome in zip(child_uris, opened, strict=True):
            if isinstance(outcome, BaseException):
                await _close_quietly(devices)
                outcome.add_note(f"nexus {name!r}: child {uri!r} cannot be opened")
                raise outcome
        try:
            block_size = _common_block_size(name, child_uris, devices)
            if size % block_size:
                raise InvalidArgument(
                    f"nexus {name!r}: size {size} is not a whole number of {block_size}-byte blocks"
                )
            if segment_size < block_size or segment_size % block_size:
                raise InvalidArgument(
                    f"nexus {name!r}: segment size {segment_size} is not a positive multiple "
                    f"of the block size {block_size}"
                )
            nexus = cls(
                name, uuid, block_size, size // block_size,
                opener=opener, store=store, segment_size=segment_size,
                rebuild_tasks=rebuild_tasks, history_size=history_size, clock=clock,
            )  # fmt: skip
            for uri, device, uri_uuid in zip(child_uris, devices, uri_uuids, strict=True):
                nexus._check_fits(uri, device)
                child = NexusChild(uri, device, uri_uuid)
                nexus._check_unique(child)
                nexus._children.append(child)
            nexus._trust_children(await store.get(uuid))
            nexus._info_version += 1
            await nexus._persist_info()
        except BaseException:
            await _close_quietly(devices)
            raise
        nexus._refresh()
        if auto_rebuild:
            for child in nexus._children:
                if child.state is ChildState.FAULTED:
                    await nexus._start_rebuild(child, None)
        log.info("nexus %s created: %s", name, [c.status() for c in nexus._children])
        return nexus

    def _check_fits(self, uri: str, device: BlockDevice) -> None:
        if device.block_size != self.block_size:
            raise InvalidArgument(
                f"nexus {self.name!r}: child {uri!r} has {device.block_size}-byte blocks, "
                f"the nexus {self.block_size}-byte blocks"
            )
        if device.size < self.size:
            raise InvalidArgument(
                f"nexus {self.name!r}: child {uri!r} is smaller than the nexus "
                f"({device.size} bytes < {self.size} bytes)"
            )

    def _check_unique(self, child: NexusChild) -> None:
        for other in self._children:
            if other is not child and other.uuid == child.uuid:
                raise InvalidArgument(
                    f"nexus {self.name!r}: children {other.uri!r} and {child.uri!r} have the "
                    f"same uuid {child.uuid}"
                )

    def _trust_children(self, stored: NexusInfo | None) -> None:
        if stored is None:
            return
        trusted = [
            c
            for c in self._children
            if (entry := stored.child(c.uuid)) is not None and entry.healthy
        ]
        if not trusted:
            raise FailedPrecondition(
                f"nexus {self.name!r}: its stored info names none of "
                f"{[c.uri for c in self._children]} healthy; no child is known to hold "
                "current data (delete the nexus info to start over, or add a healthy child)"
            )
        if not stored.clean_shutdown and len(trusted) > 1:
            # Blocks of writes in flight at the crash may differ: keep one, rebuild the rest.
            trusted = [next((c for c in trusted if c.local), trusted[0])]
        for child in self._children:
            if child not in trusted:
                child.state = ChildState.FAULTED
                child.reason = FaultReason.OUT_OF_SYNC
                child.healthy = False

    # ================================================================== listing

    @property
    def children(self) -> list[ChildStatus]:
        """The children, in order, with their state, reason and rebuild progress."""
        return [c.status() for c in self._children]

    def child(self, uri: str) -> ChildStatus:
        """One child's status.

        Raises:
            NotFound: the nexus has no child `uri`.
        """
        return self._find(uri).status()

    def info(self) -> NexusInfo:
        """The nexus info as it should be stored now."""
        return NexusInfo(
            clean_shutdown=self._clean_shutdown,
            children=tuple(ChildInfo(c.uuid, c.healthy) for c in self._children),
        )

    def _find(self, uri: str) -> NexusChild:
        for child in self._children:
            if child.uri == uri:
                return child
        raise NotFound(
            f"nexus {self.name!r} has no child {uri!r} "
            f"(children: {[c.uri for c in self._children]})"
        )

    # ================================================================== I/O

    async def _read(self, lba: int, nblocks: int) -> Buffer:
        if self._gate_closed:
            await self._pass_gate()
        self._io_active += 1
        try:
            readers = self._readers
            if not readers:
                raise self._not_serving()
            child = readers[self._next_reader % len(readers)]
            self._next_reader += 1
            device = child.device
            assert device is not None
            try:
                return await device.read(lba, nblocks)
            except Exception as exc:
                return await self._read_elsewhere(lba, nblocks, child, exc)
        finally:
            self._io_done()

    async def _read_elsewhere(
        self, lba: int, nblocks: int, failed: NexusChild, error: Exception
    ) -> Buffer:
        tried = {failed}
        while True:
            retired = self._retire_for(failed, error, lba=lba, nblocks=0)
            if not retired:
                await self._persist_for_io(error)
                raise _as_device_error(error, self.name)
            remaining = [c for c in self._readers if c not in tried]
            if not remaining:
                await self._persist_for_io(error)
                raise _as_device_error(error, self.name)
            failed = remaining[0]
            tried.add(failed)
            assert failed.device is not None
            try:
                data = await failed.device.read(lba, nblocks)
            except Exception as exc:
                error = exc
                continue
            await self._persist_for_io(None)
            return data

    async def _write(self, lba: int, data: Buffer) -> None:
        view = data if isinstance(data, memoryview) else memoryview(data)
        nblocks = view.nbytes // self.block_size
        await self._mutate(lba, nblocks, lambda device: device.write(lba, view))

    async def _write_zeroes(self, lba: int, nblocks: int) -> None:
        await self._mutate(lba, nblocks, lambda device: device.write_zeroes(lba, nblocks))

    async def _unmap(self, lba: int, nblocks: int) -> None:
        await self._mutate(lba, nblocks, lambda device: device.unmap(lba, nblocks))

    async def _mutate(self, lba: int, nblocks: int, op: _ChildOp) -> None:
        if self._gate_closed:
            await self._pass_gate()
        self._io_active += 1
        try:
            token = None
            if self._locking:
                token = await self._range_lock.acquire(lba, nblocks, exclusive=False)
            try:
                if not self._readers:
                    raise self._not_serving()
                targets = self._writers
                if len(targets) == 1:
                    # `_fan_out` of one child, inline: a single-replica or degraded volume.
                    failures, cancelled = [], False
                    try:
                        await op(_device_of(targets[0]))
                    except Exception as exc:
                        failures.append((targets[0], exc))
                else:
                    failures, cancelled = await _fan_out(targets, op)
                error = self._settle_write(targets, failures, lba, nblocks) if failures else None
                self._unflushed.add_blocks(lba, nblocks, self._segment_blocks)
                for child in self._logging:
                    assert child.dirty is not None
                    child.dirty.add_blocks(lba, nblocks, self._segment_blocks)
            finally:
                if token is not None:
                    self._range_lock.release(token)
            if self._info_stored != self._info_version:
                await self._persist_for_io(error)
            if cancelled:
                raise asyncio.CancelledError
            if error is not None:
                raise error
        finally:
            self._io_active -= 1
            if not self._io_active:
                self._io_idle.set()

    async def _flush(self) -> None:
        if self._gate_closed:
            await self._pass_gate()
        self._io_active += 1
        pending = self._unflushed
        self._unflushed = SegmentMap(self._num_segments)
        self._flushing.append(pending)
        flushed = False
        try:
            if not self._readers:
                raise self._not_serving()
            targets = self._writers
            failures, cancelled = await _fan_out(targets, lambda device: device.flush())
            error = self._settle_write(targets, failures, 0, None) if failures else None
            # If an in-sync child did not flush, what it holds is still not durable.
            flushed = error is None and not cancelled
            if self._info_stored != self._info_version:
                await self._persist_for_io(error)
            if cancelled:
                raise asyncio.CancelledError
            if error is not None:
                raise error
        finally:
            self._flushing.remove(pending)
            if not flushed:
                self._unflushed.update(pending)
            self._io_done()

    def _settle_write(
        self,
        targets: tuple[NexusChild, ...],
        failures: list[tuple[NexusChild, Exception]],
        lba: int,
        nblocks: int | None,
    ) -> DeviceError | None:
        """Retire the children that failed; the error to raise if no Online child took it."""
        failed = {child for child, _ in failures}
        kept_error: Exception | None = None
        for child, exc in failures:
            if not self._retire_for(child, exc, lba=lba, nblocks=nblocks):
                kept_error = exc
        took = [c for c in targets if c not in failed and c.state is ChildState.ONLINE]
        if took:
            return None
        if kept_error is None:
            kept_error = failures[0][1]
        return _as_device_error(kept_error, self.name)

    def _retire_for(
        self, child: NexusChild, error: Exception, *, lba: int, nblocks: int | None
    ) -> bool:
        """Take `child` out of the I/O path after `error`, if the rules allow.

        Args:
            nblocks: blocks of the failed write from `lba` (0 for a read, None for a
                flush, after which only a full rebuild is safe).

        Returns:
            True if the child is out of the I/O path (now or already); False if it is
            the last Online child and stays.
        """
        if child.state is ChildState.FAULTED:
            return True
        reason = reason_for_error(error)
        if child.state is ChildState.ONLINE and len(self._readers) == 1:
            if isinstance(error, _LOST) and self.state.serves_io:
                log.error(
                    "nexus %s: last healthy child %s is lost: %s", self.name, child.uri, error
                )
                child.apply(ChildEvent.IO_FAILED, reason)
                self._fail_rebuilds_from(child)
                self._refresh()
            return False
        was_in_sync = child.state is ChildState.ONLINE
        log.warning(
            "nexus %s: retiring child %s (%s): %s", self.name, child.uri, reason.value, error
        )
        self._drop_rebuild(child, f"destination {child.uri} faulted ({reason.value}): {error}")
        child.apply(ChildEvent.IO_FAILED, reason)
        if was_in_sync:
            child.healthy = False
            self._info_version += 1
        if was_in_sync and reason in PARTIAL_REBUILD_REASONS and nblocks is not None:
            child.dirty = self._unflushed_segments()
            child.dirty.add_blocks(lba, nblocks, self._segment_blocks)
        self._fail_rebuilds_from(child)
        self._close_in_background(child)
        self._refresh()
        return True

    def _unflushed_segments(self) -> SegmentMap:
        segments = self._unflushed.copy()
        for pending in self._flushing:
            segments.update(pending)
        return segments

    # ------------------------------------------------------------------ I/O gate

    def _not_serving(self) -> DeviceNotReady:
        return DeviceNotReady(
            f"nexus {self.name!r} is {self.state.value}: it serves no I/O", device=self.name
        )

    async def _pass_gate(self) -> None:
        while True:
            if not self.state.serves_io:
                raise self._not_serving()
            if not self._pauses:
                return
            await self._gate_changed.wait()

    def _io_done(self) -> None:
        self._io_active -= 1
        if not self._io_active:
            self._io_idle.set()

    def _open_gate_if_ready(self) -> None:
        self._gate_closed = bool(self._pauses) or not self.state.serves_io
        changed, self._gate_changed = self._gate_changed, asyncio.Event()
        changed.set()

    async def _drain(self) -> None:
        while self._io_active:
            self._io_idle.clear()
            await self._io_idle.wait()

    async def pause(self) -> None:
        """Hold new front-end I/O and wait until the I/O in flight has completed.

        Pauses nest: I/O goes on after as many `resume` calls as `pause` calls.
        """
        self._pauses += 1
        self._open_gate_if_ready()
        try:
            await self._drain()
        except BaseException:
            self.resume()
            raise

    def resume(self) -> None:
        """Undo one `pause`; the last one lets the held I/O go on.

        Raises:
            FailedPrecondition: the nexus is not paused.
        """
        if not self._pauses:
            raise FailedPrecondition(f"nexus {self.name!r} is not paused")
        self._pauses -= 1
        self._open_gate_if_ready()

    @property
    def paused(self) -> bool:
        """True while at least one `pause` is in force."""
        return bool(self._pauses)

    @contextlib.asynccontextmanager
    async def _paused(self) -> AsyncIterator[None]:
        await self.pause()
        try:
            yield
        finally:
            self.resume()

    # ------------------------------------------------------------------ state

    def _refresh(self) -> None:
        """Recompute the I/O sets and the nexus state from the children's states."""
        children = self._children
        self._readers = tuple(c for c in children if c.state is ChildState.ONLINE)
        self._writers = tuple(c for c in children if c.state is not ChildState.FAULTED)
        self._logging = tuple(c for c in children if c.dirty is not None)
        if self.state is NexusState.SHUTDOWN:
            return
        if not self._readers:
            event = NexusEvent.LAST_CHILD_LOST
        elif len(self._readers) == len(children):
            event = NexusEvent.ALL_CHILDREN_IN_SYNC
        else:
            event = NexusEvent.REDUNDANCY_LOST
        self._set_state(event)

    def _set_state(self, event: NexusEvent) -> None:
        state = next_nexus_state(self.name, self.state, event)
        if state is not self.state:
            log.info("nexus %s: %s -> %s", self.name, self.state.value, state.value)
            self.state = state
            self._open_gate_if_ready()

    # ------------------------------------------------------------------ nexus info

    async def _persist_info(self) -> None:
        """Return once the store holds the info as it was when this was called."""
        target = self._info_version
        while self._info_stored < target:
            writer = self._info_writer
            if writer is None:
                writer = self._info_writer = asyncio.get_running_loop().create_task(
                    self._write_info(), name=f"nexus {self.name} info"
                )
                writer.add_done_callback(_retrieve)
            await asyncio.shield(writer)

    async def _write_info(self) -> None:
        version = self._info_version
        try:
            await self._store.put(self.uuid, self.info())
            self._info_stored = max(self._info_stored, version)
        finally:
            self._info_writer = None

    async def _persist_for_io(self, error: Exception | None) -> None:
        try:
            await self._persist_info()
        except Exception as exc:
            if error is not None:
                return  # the I/O fails anyway, with its own error
            raise InternalDeviceError(
                f"nexus {self.name!r}: cannot record its children's health, so the I/O "
                f"cannot be acknowledged: {exc}",
                device=self.name,
            ) from exc

    # ================================================================== rebuild

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

    # ================================================================== reconfiguration

    async def add_child(self, uri: str, norebuild: bool = False) -> ChildStatus:
        """Add a child; it joins out of sync and (unless `norebuild`) is rebuilt.

        Args:
            uri: the child's URI.
            norebuild: leave it Faulted(OUT_OF_SYNC); `start_rebuild` brings it in.

        Returns:
            the child's status.

        Raises:
            AlreadyExists: the nexus has a child `uri`.
            InvalidArgument: its block size differs, it is smaller than the nexus, or
                its uuid is another child's.
            FailedPrecondition: the nexus serves no I/O.
            Whatever the opener or the store raises. Nothing is changed on failure.
        """
        async with self._reconfiguring:
            self._require_serving("add a child")
            if any(c.uri == uri for c in self._children):
                raise AlreadyExists(f"nexus {self.name!r} already has child {uri!r}")
            uri_uuid = uuid_in_uri(uri)
            device = await self._opener.open(uri)
            try:
                self._check_fits(uri, device)
                child = NexusChild(uri, device, uri_uuid)
                self._check_unique(child)
                child.state = ChildState.FAULTED
                child.reason = FaultReason.OUT_OF_SYNC
                child.healthy = False
                async with self._paused():
                    self._children.append(child)
                    self._info_version += 1
                    try:
                        await self._persist_info()
                    except BaseException:
                        self._children.remove(child)
                        self._info_version += 1
                        raise
                    finally:
                        self._refresh()
            except BaseException:
                await _close_quietly([device])
                raise
            if not norebuild:
                await self._start_rebuild(child, None)
            return child.status()

    async def remove_child(self, uri: str) -> None:
        """Remove a child and close it.

        Rebuilds that copy from it stop; their children become Faulted(OUT_OF_SYNC).

        Raises:
            NotFound: no such child.
            FailedPrecondition: it is the only child or the last Online one.
        """
        async with self._reconfiguring:
            child = self._find(uri)
            if len(self._children) == 1 or self._readers == (child,):
                raise FailedPrecondition(
                    f"nexus {self.name!r}: cannot remove {uri!r}, its last healthy child"
                )
            async with self._paused():
                await self._stop_rebuild(child, f"child {uri} removed")
                for other in self._children:
                    if other.rebuild_source is child:
                        await self._stop_rebuild(other, f"source {uri} removed")
                self._children.remove(child)
                self._info_version += 1
                self._refresh()
                await self._persist_info()
            await self._release_device(child)

    async def fault_child(self, uri: str) -> None:
        """Fault a child on request (BY_CLIENT); it needs a full rebuild to come back.

        Raises:
            NotFound: no such child.
            FailedPrecondition: it is the last Online child.
        """
        async with self._reconfiguring:
            child = self._find(uri)
            self._refuse_last_healthy(child, "fault")
            async with self._paused():
                await self._stop_rebuild(child, f"child {uri} faulted by client")
                was_healthy = child.healthy
                child.apply(ChildEvent.FAULTED_BY_CLIENT)
                child.dirty = None
                child.healthy = False
                self._fail_rebuilds_from(child)
                self._refresh()
                if was_healthy:
                    self._info_version += 1
                    await self._persist_info()
            await self._release_device(child)

    async def offline_child(self, uri: str) -> None:
        """Take a child offline: close it and log what it misses from now on.

        An Online child whose flush succeeds comes back with a partial rebuild; one
        that was being rebuilt, or whose flush failed, needs a full one.

        Raises:
            NotFound: no such child.
            FailedPrecondition: it is Faulted already, or the last Online child.
        """
        async with self._reconfiguring:
            child = self._find(uri)
            if child.state is ChildState.FAULTED:
                raise FailedPrecondition(f"nexus {self.name!r}: child {uri!r} is faulted already")
            self._refuse_last_healthy(child, "take offline")
            async with self._paused():
                in_sync = child.state is ChildState.ONLINE
                await self._stop_rebuild(child, f"child {uri} taken offline")
                dirty: SegmentMap | None = None
                if in_sync:
                    assert child.device is not None
                    try:
                        await child.device.flush()
                        dirty = SegmentMap(self._num_segments)
                    except DeviceError as exc:
                        log.warning("nexus %s: flush of %s failed: %s", self.name, uri, exc)
                child.apply(ChildEvent.TAKEN_OFFLINE)
                child.dirty = dirty
                child.healthy = False
                self._fail_rebuilds_from(child)
                self._refresh()
                if in_sync:
                    self._info_version += 1
                    await self._persist_info()
            await self._release_device(child)

    async def online_child(self, uri: str) -> ChildStatus:
        """Bring a Faulted child back: reopen it and rebuild it.

        The rebuild is partial when the nexus logged what the child missed (it was
        taken offline, or retired by a timeout or a lost path, while in sync) and the
        reopened device is the same one (same uuid); otherwise it is full. A child
        that is Online or Degraded is left as it is.

        Returns:
            the child's status.

        Raises:
            NotFound: no such child.
            FailedPrecondition: the nexus serves no I/O, or has no Online child to copy from.
            InvalidArgument: the reopened device no longer fits the nexus.
            Whatever the opener raises; the child is then Faulted(CANT_OPEN).
        """
        async with self._reconfiguring:
            child = self._find(uri)
            if child.state is not ChildState.FAULTED:
                return child.status()
            self._require_serving("bring a child online")
            self._pick_source(child)
            await self._release_device(child)
            try:
                device = await self._opener.open(uri)
            except BaseException:
                child.apply(ChildEvent.OPEN_FAILED)
                raise
            try:
                self._check_fits(uri, device)
            except BaseException:
                await _close_quietly([device])
                raise
            same_device = device.uuid == child.device_uuid
            segments = child.dirty if same_device else None
            child.device = device
            child.device_uuid = device.uuid
            if child.uri_uuid is None and child.uuid != device.uuid:
                child.uuid = device.uuid
                self._info_version += 1
                await self._persist_info()
            await self._start_rebuild(child, segments)
            return child.status()

    async def resize(self, size: int) -> None:
        """Grow the nexus to `size` bytes, once every child has been grown to hold it.

        The children's devices are asked for their capacity now (a replica resized by
        its pool, a remote namespace identified again); I/O is paused meanwhile. The
        dirty logs of children that are away grow with the nexus, so a child that comes
        back is rebuilt over the new range as well.

        Raises:
            InvalidArgument: `size` is smaller than the nexus or not a whole number of
                blocks; a child in the I/O path is smaller than `size`.
            FailedPrecondition: the nexus serves no I/O, or a rebuild is running (its
                range was fixed when it started).
        """
        async with self._reconfiguring:
            self._require_serving("resize")
            if size % self.block_size:
                raise InvalidArgument(
                    f"nexus {self.name!r}: size {size} is not a whole number of "
                    f"{self.block_size}-byte blocks"
                )
            if size < self.size:
                raise InvalidArgument(
                    f"nexus {self.name!r}: cannot shrink from {self.size} to {size} bytes"
                )
            if size == self.size:
                return
            if any(c.rebuild is not None for c in self._children):
                raise FailedPrecondition(
                    f"nexus {self.name!r}: cannot resize while a rebuild is running"
                )
            async with self._paused():
                for child in self._children:
                    device = child.device
                    if device is None or device.closed or child.state is ChildState.FAULTED:
                        continue
                    await device.refresh_size()
                    if device.size < size:
                        raise InvalidArgument(
                            f"nexus {self.name!r}: child {child.uri!r} holds {device.size} "
                            f"bytes, less than the {size} asked for; resize it first"
                        )
                old_segments = self._num_segments
                self.num_blocks = size // self.block_size
                self._num_segments = -(-self.num_blocks // self._segment_blocks)
                for segments in (self._unflushed, *self._flushing):
                    segments.num_segments = self._num_segments
                for child in self._children:
                    if child.dirty is not None:
                        child.dirty.num_segments = self._num_segments
                        child.dirty.add_range(old_segments, self._num_segments - old_segments)
            log.info("nexus %s resized to %d bytes", self.name, size)

    def _require_serving(self, what: str) -> None:
        if not self.state.serves_io:
            raise FailedPrecondition(f"nexus {self.name!r} is {self.state.value}: cannot {what}")

    def _refuse_last_healthy(self, child: NexusChild, what: str) -> None:
        if self._readers == (child,):
            raise FailedPrecondition(
                f"nexus {self.name!r}: cannot {what} {child.uri!r}, its last healthy child"
            )

    # ================================================================== children's devices

    def _close_in_background(self, child: NexusChild) -> None:
        device = child.device
        if device is None or child.closing is not None:
            return
        child.closing = self._spawn(_close_device(device, self.name), f"close {child.uri}")

    async def _release_device(self, child: NexusChild) -> None:
        """Close the child's device (waiting for a close already under way)."""
        if child.closing is None and child.device is not None:
            child.closing = self._spawn(
                _close_device(child.device, self.name), f"close {child.uri}"
            )
        if child.closing is not None:
            await asyncio.shield(child.closing)
        child.closing = None
        child.device = None

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=f"nexus {self.name}: {name}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_retrieve)
        return task

    # ================================================================== shutdown, destroy

    async def shutdown(self) -> None:
        """Stop serving: new I/O gets DeviceNotReady, I/O in flight completes.

        Rebuilds stop (their children stay out of sync), the children are flushed (one
        that fails is retired as usual), and the stored info records a clean shutdown.
        The children stay open and the state is kept; `destroy` or `close` lets them
        go. Calling it again does nothing.

        Raises:
            Whatever the store raises; the nexus is Shutdown all the same, and the
            stored info still says the shutdown was not clean.
        """
        async with self._reconfiguring:
            await self._shut_down()

    async def _shut_down(self) -> None:
        if self.state is NexusState.SHUTDOWN:
            return
        if self.state is not NexusState.SHUTTING_DOWN:
            self._set_state(NexusEvent.SHUTDOWN_STARTED)
        await self._drain()
        for child in self._children:
            await self._stop_rebuild(child, "nexus shut down")
        flushes = tuple(c for c in self._children if c.state is not ChildState.FAULTED)
        failures, _ = await _fan_out(flushes, lambda device: device.flush())
        for child, exc in failures:
            self._retire_for(child, exc, lba=0, nblocks=None)
        self._set_state(NexusEvent.SHUTDOWN_DONE)
        await self._wait_background()
        # Drained and flushed: the children still recorded healthy hold the same data.
        self._clean_shutdown = True
        self._info_version += 1
        await self._persist_info()
        log.info("nexus %s shut down", self.name)

    async def destroy(self) -> None:
        """Shut down, close every child and delete the stored info.

        Raises:
            Whatever the store raises when deleting; the children are closed all the same.
        """
        await self.close()
        await self._store.delete(self.uuid)
        log.info("nexus %s destroyed", self.name)

    async def close(self) -> None:
        """Shut down (as `shutdown`) and close every child; the stored info is kept."""
        if not self.closed and (self.state.serves_io or self.state is NexusState.FAULTED):
            # Wake the I/O held at a pause: it is refused rather than waited for.
            self._set_state(NexusEvent.SHUTDOWN_STARTED)
        await super().close()

    async def _close(self) -> None:
        try:
            async with self._reconfiguring:
                await self._shut_down()
        finally:
            for child in self._children:
                await self._release_device(child)
            await self._wait_background()

    async def _wait_background(self) -> None:
        while self._background:
            await asyncio.wait(list(self._background))


# ====================================================================== helpers


async def _fan_out(
    children: tuple[NexusChild, ...], op: _ChildOp
) -> tuple[list[tuple[NexusChild, Exception]], bool]:
    """Run `op` on every child's device at once.

    An in-process child's coroutine first runs inline, in the caller's task: a device
    that completes without waiting (malloc, a cached lvol write) costs no Task and no
    trip through the event loop; one that has to wait gets a Task to finish in. So the
    in-process drivers must not tie themselves to the current task before their first
    wait (no ``asyncio.timeout`` around it). A remote child always waits (and its
    initiator does use timeouts bound to its task), so it gets a Task at once. The
    caller waits for the Tasks with one future and a countdown.

    Once started, the children's I/O runs to its end even if the caller is
    cancelled: mirrors must not be left differing because one child's write was cut
    short and another's was not. The caller settles the outcome, then passes the
    cancellation on. (A single child's I/O is simply awaited: there is no mirror.)

    Returns:
        the children that failed with their errors, and whether the caller was
        cancelled meanwhile.
    """
    if len(children) == 1:
        child = children[0]
        try:
            await op(_device_of(child))
        except Exception as exc:
            return [(child, exc)], False
        return [], False
    failures: list[tuple[NexusChild, Exception]] = []
    waiting: list[tuple[NexusChild, asyncio.Task[object]]] = []
    loop = asyncio.get_running_loop()
    for child in children:
        coro = op(_device_of(child))
        if not child.local:
            waiting.append((child, loop.create_task(coro)))
            continue
        try:
            suspended_on = coro.send(None)
        except StopIteration:
            continue
        except asyncio.CancelledError:
            failures.append((child, AbortRequested(f"I/O to {child.uri} was cancelled")))
            continue
        except Exception as exc:
            failures.append((child, exc))
            continue
        waiting.append((child, loop.create_task(_finish(coro, suspended_on))))
    if not waiting:
        return failures, False
    join = _Join(loop, len(waiting))
    for _, task in waiting:
        task.add_done_callback(join.one_done)
    cancelled = False
    while True:
        try:
            await join.future
            break
        except asyncio.CancelledError:
            cancelled = True
            join.renew()
    for child, task in waiting:
        if task.cancelled():
            failures.append((child, AbortRequested(f"I/O to {child.uri} was cancelled")))
            continue
        error = task.exception()
        if error is not None:
            if not isinstance(error, Exception):
                raise error
            failures.append((child, error))
    if len(failures) > 1:
        failures.sort(key=lambda failure: children.index(failure[0]))
    return failures, cancelled


async def _finish(coro: Coroutine[Any, Any, object], suspended_on: object) -> object:
    """Run a coroutine that `_fan_out` started inline to its end, in a Task of its own."""
    return await _resume(coro, suspended_on)


@types.coroutine
def _resume(
    coro: Coroutine[Any, Any, object], suspended_on: object
) -> Generator[object, object, object]:
    """Hand the Task what `coro` waits on, and `coro` whatever the Task sends or throws."""
    pending = suspended_on
    while True:
        try:
            sent = yield pending
        except BaseException as exc:
            try:
                pending = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                pending = coro.send(sent)
            except StopIteration as stop:
                return stop.value


def _device_of(child: NexusChild) -> BlockDevice:
    device = child.device
    assert device is not None, child
    return device


class _Join:
    """Completes `future` once `count` tasks are done; a fresh future after a cancel."""

    __slots__ = ("_loop", "future", "remaining")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self._loop = loop
        self.remaining = count
        self.future: asyncio.Future[None] = loop.create_future()

    def one_done(self, _task: object) -> None:
        self.remaining -= 1
        if not self.remaining and not self.future.done():
            self.future.set_result(None)

    def renew(self) -> None:
        self.future = self._loop.create_future()
        if not self.remaining:
            self.future.set_result(None)


def _common_block_size(name: str, uris: Sequence[str], devices: list[BlockDevice]) -> int:
    sizes = {d.block_size for d in devices}
    if len(sizes) != 1:
        listing = ", ".join(f"{u}: {d.block_size}" for u, d in zip(uris, devices, strict=True))
        raise InvalidArgument(f"nexus {name!r}: children's block sizes differ ({listing})")
    return sizes.pop()


def _as_device_error(error: Exception, nexus: str) -> DeviceError:
    if isinstance(error, DeviceError):
        return error
    wrapped = InternalDeviceError(f"nexus {nexus!r}: a child failed: {error!r}", device=nexus)
    wrapped.__cause__ = error
    return wrapped


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("%s ended with %r", task.get_name(), task.exception())


async def _close_device(device: BlockDevice, nexus: str) -> None:
    try:
        await device.close()
    except Exception as exc:
        log.warning("nexus %s: closing %s failed: %s", nexus, device.name, exc)


async def _close_quietly(devices: list[BlockDevice]) -> None:
    for device in devices:
        await _close_device(device, "(creating)")


async def _end_job(job: RebuildJob, reason: str, *, failed: bool) -> None:
    if not job.state.done:
        await job.stop(reason, failed=failed)
