"""The I/O path of the nexus: reads, writes and flushes over the children.

A write (write zeroes, unmap) goes to every child in the write path (Online and
Degraded) at once (`_fan_out`) and is acknowledged only when each has completed it or
been retired, at least one Online child took it, and the nexus info that records the
retirements is stored. Reads go round-robin over the Online children; a failed read
retires its child and is tried on the next.

Reads and writes submitted by callback (the target's path) take a shortcut while
nothing is unusual: the gate is open, the stored nexus info is current, and (while a
rebuild runs) the write's range can be locked at once. A write is then submitted to
every child by callback at once (a local child may complete inline, a remote one by its
initiator's callback), and the last child to finish acknowledges it: no coroutine,
Task or future. Anything else (a child that failed, info to store, a range a rebuild
copy holds or waits for, a pause) goes the awaited way, with the same rules. While a
rebuild runs, writes take shared range locks, so that a segment copy and a write to it
never interleave (a submitted write releases its lock when it settles). Every write is
also noted in the segments written since the last flush, and in the dirty logs of
children that are away, for their partial rebuild.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mayastor.bdev import Buffer, IoDone, IoRequest, run_inline
from mayastor.errors import DeviceError, DeviceNotReady, PathGone, ReservationConflict
from mayastor.nexus._child import NexusChild
from mayastor.nexus._child_state import (
    PARTIAL_REBUILD_REASONS,
    ChildEvent,
    ChildState,
    reason_for_error,
)
from mayastor.nexus._core import as_device_error, device_of, log
from mayastor.nexus._fan_out import ChildOp, Failures, SubmittedWrite, fan_out
from mayastor.nexus._rebuilds import RebuildControl
from mayastor.nexus._segment_map import SegmentMap

_LOST = (DeviceNotReady, PathGone)
"""Errors that say a device cannot serve any more I/O through this handle (a plain
`PathLost` does not: the initiator may still be reconnecting)."""


class IoPath(RebuildControl):
    """The I/O layer (see `_core` for the stack): the BlockDevice hooks of the nexus."""

    _next_reader = 0

    def _submit_read(self, lba: int, nblocks: int, request: IoRequest) -> None:
        readers = self._readers
        if self._gate_closed or not readers:
            super()._submit_read(lba, nblocks, request)
            return
        child = readers[self._next_reader % len(readers)]
        self._next_reader += 1
        self._io_active += 1
        device = child.device
        assert device is not None, child
        device.submit_read(lba, nblocks, self._child_read_done, (request, child))

    def _child_read_done(
        self,
        ctx: tuple[IoRequest, NexusChild],
        data: Buffer | None,
        error: DeviceError | None,
    ) -> None:
        request, child = ctx
        if error is None:
            self._io_done()
            request.finish(data, None)
            return
        nblocks = request.nbytes // self.block_size
        run_inline(
            self._read_elsewhere(request.lba, nblocks, child, error),
            lambda got, failed: self._finish_submitted(request, got, failed),
            f"read on nexus {self.name}",
        )

    def submit_write(self, lba: int, data: Buffer, done: IoDone, ctx: Any) -> None:
        """`BlockDevice.submit_write`, with its checks made inline while the shortcut
        applies (see the module docstring): the front-end write's way to the children
        without a helper call."""
        view = data if type(data) is memoryview else memoryview(data)
        length = view.nbytes
        nblocks, rest = divmod(length, self.block_size)
        if (
            nblocks
            and not rest
            and lba >= 0
            and lba + nblocks <= self.num_blocks
            and not self._closed
            and not self._gate_closed
            and self._readers
            and self._info_stored == self._info_version
        ):
            lock = None
            if self._locking:
                lock = self._range_lock.try_acquire(lba, nblocks, exclusive=False)
                if lock is None:
                    super().submit_write(lba, data, done, ctx)  # waits for the range
                    return
            self._inflight += 1
            self._io_active += 1
            request = IoRequest(self, done, ctx, lba, length, True)
            SubmittedWrite(
                self._settle_submitted, request, lba, nblocks, self._writers, lock
            ).start(view)
            return
        super().submit_write(lba, data, done, ctx)

    def _submit_write(self, lba: int, data: Buffer, request: IoRequest) -> None:
        nblocks = request.nbytes // self.block_size
        lock = None
        if (
            not self._gate_closed
            and self._readers
            and self._info_stored == self._info_version
            and (
                not self._locking
                or (lock := self._range_lock.try_acquire(lba, nblocks, exclusive=False)) is not None
            )
        ):
            self._io_active += 1
            view = data if type(data) is memoryview else memoryview(data)
            SubmittedWrite(
                self._settle_submitted, request, lba, nblocks, self._writers, lock
            ).start(view)
            return
        super()._submit_write(lba, data, request)

    def _settle_submitted(self, write: SubmittedWrite) -> None:
        """Every child ended a submitted write: acknowledge it, or settle it the awaited way."""
        lba, nblocks, failures = write.lba, write.nblocks, write.failures
        if failures is None and self._info_stored == self._info_version:
            self._unflushed.add_blocks(lba, nblocks, self._segment_blocks)
            if self._logging:
                self._note_missed(lba, nblocks)
            if write.lock is not None:
                self._range_lock.release(write.lock)
            self._io_active -= 1
            if not self._io_active:
                self._io_idle.set()
            write.request.finish(None, None)
            return
        run_inline(
            self._settle_slowly(write.targets, failures or [], lba, nblocks, write.lock),
            lambda _none, error: self._finish_submitted(write.request, None, error),
            f"write on nexus {self.name}",
        )

    async def _settle_slowly(
        self,
        targets: tuple[NexusChild, ...],
        failures: Failures,
        lba: int,
        nblocks: int,
        lock: int | None,
    ) -> None:
        try:
            if len(failures) > 1:
                failures.sort(key=lambda failure: targets.index(failure[0]))
            error = self._settle_write(targets, failures, lba, nblocks) if failures else None
            self._note_written(lba, nblocks)
        finally:
            if lock is not None:
                self._range_lock.release(lock)
        if self._info_stored != self._info_version:
            await self._persist_for_io(error)
        if error is not None:
            raise error

    def _finish_submitted(
        self, request: IoRequest, data: Buffer | None, error: DeviceError | None
    ) -> None:
        self._io_done()
        request.finish(data, error)

    def _note_written(self, lba: int, nblocks: int) -> None:
        """A write reached the children: its segments are unflushed, and missed by every
        child that logs what it misses."""
        self._unflushed.add_blocks(lba, nblocks, self._segment_blocks)
        if self._logging:
            self._note_missed(lba, nblocks)

    def _note_missed(self, lba: int, nblocks: int) -> None:
        """A write reached the children: every child that logs what it misses missed it."""
        for child in self._logging:
            assert child.dirty is not None
            child.dirty.add_blocks(lba, nblocks, self._segment_blocks)

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
                raise self._front_error(error)
            remaining = [c for c in self._readers if c not in tried]
            if not remaining:
                await self._persist_for_io(error)
                raise self._front_error(error)
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

    async def _mutate(self, lba: int, nblocks: int, op: ChildOp) -> None:
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
                        await op(device_of(targets[0]))
                    except Exception as exc:
                        failures.append((targets[0], exc))
                else:
                    failures, cancelled = await fan_out(targets, op)
                error = self._settle_write(targets, failures, lba, nblocks) if failures else None
                self._note_written(lba, nblocks)
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
            failures, cancelled = await fan_out(targets, lambda device: device.flush())
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
        if self.fenced is not None:
            return self._fenced_error()  # never acknowledged, whoever took it
        took = [c for c in targets if c not in failed and c.state is ChildState.ONLINE]
        if took:
            return None
        if kept_error is None:
            kept_error = failures[0][1]
        return as_device_error(kept_error, self.name)

    def _retire_for(
        self, child: NexusChild, error: Exception, *, lba: int, nblocks: int | None
    ) -> bool:
        """Take `child` out of the I/O path after `error`, if the rules allow.

        Args:
            nblocks: blocks of the failed write from `lba` (0 for a read, None for a
                flush, after which only a full rebuild is safe).

        Returns:
            True if the child is out of the I/O path (now or already); False if it is
            the last Online child and stays, or the error was a reservation conflict
            (the nexus is fenced then, and no child is retired).
        """
        if isinstance(error, ReservationConflict):
            self._fence(child, error)  # superseded: the child is fine, just not ours
            return False
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
