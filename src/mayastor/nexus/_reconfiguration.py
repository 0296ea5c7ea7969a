"""Reconfiguration of a nexus: children added, removed, faulted, taken offline, brought
back online, and the nexus grown.

Each change runs under one lock (one reconfiguration at a time) and changes the write
path only with front-end I/O paused and drained; what the change means for which
children hold current data is stored in the nexus info before it takes effect.
"""

from __future__ import annotations

from mayastor.errors import AlreadyExists, DeviceError, FailedPrecondition, InvalidArgument
from mayastor.nexus._child import ChildStatus, NexusChild, uuid_in_uri
from mayastor.nexus._child_state import ChildEvent, ChildState, FaultReason
from mayastor.nexus._core import close_quietly, log
from mayastor.nexus._io_path import IoPath
from mayastor.nexus._segment_map import SegmentMap


class Reconfiguration(IoPath):
    """The reconfiguration layer (see `_core` for the stack)."""

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
            ReservationConflict: the nexus reserves its children and another host
                holds this one's reservation (not taken over by the policy).
            Whatever the opener or the store raises. Nothing is changed on failure.
        """
        async with self._reconfiguring:
            self._require_serving("add a child")
            if any(c.uri == uri for c in self._children):
                raise AlreadyExists(f"nexus {self.name!r} already has child {uri!r}")
            uri_uuid = uuid_in_uri(uri)
            device = await self._opener.open(uri, hostid=self.host_id)
            try:
                self._check_fits(uri, device)
                child = NexusChild(uri, device, uri_uuid)
                self._check_unique(child)
                await self._claim(uri, device)
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
                await close_quietly([device])
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
                device = await self._opener.open(uri, hostid=self.host_id)
            except BaseException:
                child.apply(ChildEvent.OPEN_FAILED)
                raise
            try:
                self._check_fits(uri, device)
                await self._claim(uri, device)
            except BaseException:
                await close_quietly([device])
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
