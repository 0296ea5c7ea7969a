"""The state every part of the nexus shares: its children, their I/O sets, its state.

The nexus is one class built in layers, one job each; each module adds a layer on top
of the one below it (imports point down the stack):

* `_core` (`NexusCore`): the children and the sets I/O uses (readers, writers,
  children that log what they miss), the nexus state table, listings, the children's
  devices (closing them, background tasks);
* `_persistence` (`InfoPersistence`): the nexus info, stored before an I/O that
  changed it is acknowledged, and which children a stored info trusts;
* `_gate` (`IoGate`): front-end I/O held while the nexus is paused, and drained;
* `_fencing` (`Fencing`): the NVMe reservation a nexus holds on its children, and the
  fenced state it goes to once another nexus has taken them over;
* `_rebuilds` (`RebuildControl`): rebuild jobs: start, watch, promote, stop, history;
* `_io_path` (`IoPath`): reads, writes and flushes: the fan-out to the children, and
  retiring a child whose I/O failed;
* `_reconfiguration` (`Reconfiguration`): add, remove, fault, offline, online, resize;
* `_nexus` (`Nexus`): creation, shutdown and destroy: the public class.

It knows its children only as BlockDevices.
"""

from __future__ import annotations

import asyncio
import logging
import uuid as uuid_mod
from collections.abc import Coroutine, Sequence
from typing import Any

from mayastor.bdev import BlockDevice
from mayastor.errors import (
    DeviceError,
    DeviceNotReady,
    FailedPrecondition,
    InternalDeviceError,
    InvalidArgument,
    NotFound,
)
from mayastor.nexus._child import ChildOpener, ChildStatus, NexusChild
from mayastor.nexus._child_state import ChildState
from mayastor.nexus._info import ChildInfo, NexusInfo
from mayastor.nexus._nexus_state import NexusEvent, NexusState, next_nexus_state
from mayastor.nexus._segment_map import SegmentMap

log = logging.getLogger("mayastor.nexus")


class NexusCore(BlockDevice):
    """The shared state of a nexus (see the module docstring); not used on its own.

    Args:
        name, uuid, block_size, num_blocks: as for any BlockDevice.
        opener: opens child URIs.
        segment_size: bytes per rebuild segment and per dirty-log bit.
    """

    driver = "nexus"
    product_name = "Nexus"
    inline_io = True

    def __init__(
        self,
        name: str,
        uuid: uuid_mod.UUID,
        block_size: int,
        num_blocks: int,
        *,
        opener: ChildOpener,
        segment_size: int,
    ) -> None:
        super().__init__(name, uuid, block_size, num_blocks)
        self.state = NexusState.INIT
        self._opener = opener
        self._segment_blocks = segment_size // block_size
        self._num_segments = -(-num_blocks // self._segment_blocks)
        self._children: list[NexusChild] = []
        self._readers: tuple[NexusChild, ...] = ()
        self._writers: tuple[NexusChild, ...] = ()
        self._logging: tuple[NexusChild, ...] = ()
        self._reconfiguring = asyncio.Lock()
        self._clean_shutdown = False
        self._unflushed = SegmentMap(self._num_segments)
        self._flushing: list[SegmentMap] = []
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ listing

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
            self._state_changed()

    def _state_changed(self) -> None:
        """Hook: the nexus state just changed (the I/O gate opens or closes on it)."""

    def _not_serving(self) -> DeviceError:
        return DeviceNotReady(
            f"nexus {self.name!r} is {self.state.value}: it serves no I/O", device=self.name
        )

    # ------------------------------------------------------------------ checks

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

    def _require_serving(self, what: str) -> None:
        if not self.state.serves_io:
            raise FailedPrecondition(f"nexus {self.name!r} is {self.state.value}: cannot {what}")

    def _refuse_last_healthy(self, child: NexusChild, what: str) -> None:
        if self._readers == (child,):
            raise FailedPrecondition(
                f"nexus {self.name!r}: cannot {what} {child.uri!r}, its last healthy child"
            )

    # ------------------------------------------------------------------ children's devices

    def _close_in_background(self, child: NexusChild) -> None:
        device = child.device
        if device is None or child.closing is not None:
            return
        child.closing = self._spawn(close_device(device, self.name), f"close {child.uri}")

    async def _release_device(self, child: NexusChild) -> None:
        """Close the child's device (waiting for a close already under way)."""
        if child.closing is None and child.device is not None:
            child.closing = self._spawn(close_device(child.device, self.name), f"close {child.uri}")
        if child.closing is not None:
            await asyncio.shield(child.closing)
        child.closing = None
        child.device = None

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=f"nexus {self.name}: {name}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(retrieve)
        return task

    async def _wait_background(self) -> None:
        while self._background:
            await asyncio.wait(list(self._background))


def device_of(child: NexusChild) -> BlockDevice:
    device = child.device
    assert device is not None, child
    return device


def common_block_size(name: str, uris: Sequence[str], devices: list[BlockDevice]) -> int:
    sizes = {d.block_size for d in devices}
    if len(sizes) != 1:
        listing = ", ".join(f"{u}: {d.block_size}" for u, d in zip(uris, devices, strict=True))
        raise InvalidArgument(f"nexus {name!r}: children's block sizes differ ({listing})")
    return sizes.pop()


def as_device_error(error: Exception, nexus: str) -> DeviceError:
    if isinstance(error, DeviceError):
        return error
    wrapped = InternalDeviceError(f"nexus {nexus!r}: a child failed: {error!r}", device=nexus)
    wrapped.__cause__ = error
    return wrapped


def retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("%s ended with %r", task.get_name(), task.exception())


async def close_device(device: BlockDevice, nexus: str) -> None:
    try:
        await device.close()
    except Exception as exc:
        log.warning("nexus %s: closing %s failed: %s", nexus, device.name, exc)


async def close_quietly(devices: list[BlockDevice]) -> None:
    for device in devices:
        await close_device(device, "(creating)")
