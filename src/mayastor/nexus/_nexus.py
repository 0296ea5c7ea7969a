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
It is built in layers, one job each (`_core` describes the stack); this module adds
creation, shutdown and destroy.
"""

from __future__ import annotations

import asyncio
import time
import uuid as uuid_mod
from collections.abc import Callable, Sequence

from mayastor.bdev import BlockDevice
from mayastor.errors import InvalidArgument, Superseded
from mayastor.nexus._child import ChildOpener, NexusChild, uuid_in_uri
from mayastor.nexus._child_state import ChildState
from mayastor.nexus._core import close_quietly, common_block_size, log
from mayastor.nexus._fan_out import fan_out
from mayastor.nexus._fencing import ReservationPolicy, nexus_host_id
from mayastor.nexus._info import NexusInfoStore
from mayastor.nexus._nexus_state import NexusEvent, NexusState
from mayastor.nexus._rebuild import DEFAULT_REBUILD_TASKS, DEFAULT_SEGMENT_SIZE
from mayastor.nexus._rebuilds import DEFAULT_HISTORY_SIZE
from mayastor.nexus._reconfiguration import Reconfiguration

__all__ = ["DEFAULT_HISTORY_SIZE", "Nexus"]


class Nexus(Reconfiguration):
    """A synchronous N-way mirror over child block devices; see the module docstring.

    Build one with `Nexus.create`; the constructor is internal.
    """

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
        reservation: ReservationPolicy | None = None,
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
            reservation: hold an NVMe reservation on every child (see `_fencing`):
                the children are opened as the nexus's own host (`nexus_host_id`),
                its key registered and the reservation taken, preempting the old
                holder as the policy says. None: no reservation.

        Returns:
            the nexus, Online or Degraded.

        Raises:
            InvalidArgument: no or duplicate children, a size that is not positive or not
                a whole number of blocks, children whose block sizes differ, a child
                smaller than the nexus, two children with one uuid, or bad tuning values.
            FailedPrecondition: the stored info names none of the children healthy.
            ReservationConflict: a child's reservation is held by another host that
                the policy does not preempt.
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
        host_id = nexus_host_id(uuid)
        opened = await asyncio.gather(
            *(opener.open(uri, hostid=host_id) for uri in child_uris), return_exceptions=True
        )
        devices = [d for d in opened if isinstance(d, BlockDevice)]
        for uri, outcome in zip(child_uris, opened, strict=True):
            if isinstance(outcome, BaseException):
                await close_quietly(devices)
                outcome.add_note(f"nexus {name!r}: child {uri!r} cannot be opened")
                raise outcome
        try:
            block_size = common_block_size(name, child_uris, devices)
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
                reservation=reservation, host_id=host_id,
            )  # fmt: skip
            for uri, device, uri_uuid in zip(child_uris, devices, uri_uuids, strict=True):
                nexus._check_fits(uri, device)
                child = NexusChild(uri, device, uri_uuid)
                nexus._check_unique(child)
                nexus._children.append(child)
            claims = await asyncio.gather(
                *(nexus._claim(c.uri, d) for c, d in zip(nexus._children, devices, strict=True)),
                return_exceptions=True,
            )
            for claimed in claims:
                if isinstance(claimed, BaseException):
                    raise claimed
            nexus._trust_children(await store.get(uuid))
            nexus._info_version += 1
            await nexus._persist_info()
        except BaseException:
            await close_quietly(devices)
            raise
        nexus._refresh()
        if auto_rebuild:
            for child in nexus._children:
                if child.state is ChildState.FAULTED:
                    await nexus._start_rebuild(child, None)
        log.info("nexus %s created: %s", name, [c.status() for c in nexus._children])
        return nexus

    async def shutdown(self) -> None:
        """Stop serving: new I/O gets DeviceNotReady, I/O in flight completes.

        Rebuilds stop (their children stay out of sync), the children are flushed (one
        that fails is retired as usual), their reservations are released (best
        effort), and the stored info records a clean shutdown.
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
        failures, _ = await fan_out(flushes, lambda device: device.flush())
        for child, exc in failures:
            self._retire_for(child, exc, lba=0, nblocks=None)
        await self._unclaim_children()
        self._set_state(NexusEvent.SHUTDOWN_DONE)
        await self._wait_background()
        if self.fenced is not None:
            # Another nexus owns the volume now: its info is not ours to write.
            log.info("nexus %s shut down (fenced; its nexus info left as it was)", self.name)
            return
        # Drained and flushed: the children still recorded healthy hold the same data.
        self._clean_shutdown = True
        self._info_version += 1
        try:
            await self._persist_info()
        except Superseded:
            log.info("nexus %s shut down (superseded; its nexus info left as it was)", self.name)
            return
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
