"""The per-I/O objects of callback I/O: a device's counters and a request on its way.

They live apart from `device` so that the build can compile them (`mayastor.compiled`):
every submitted I/O makes one `IoRequest` per layer it passes through and finishes it
once, so their cost is paid several times per I/O. Nothing here knows a driver; the
device a request belongs to is reached through its attributes only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mayastor.bdev.device import BlockDevice
    from mayastor.errors import DeviceError

Buffer = bytes | bytearray | memoryview
"""Bytes-like data passed to and returned from block devices."""

IoDone = Callable[[Any, Buffer | None, "DeviceError | None"], None]
"""The completion of a submitted I/O: ``done(ctx, data, None)`` on success (`data` is
the read's bytes, None for a write), ``done(ctx, None, error)`` on failure."""


@dataclasses.dataclass(slots=True)
class IoStats:
    """I/O counters of one device; latencies are in nanoseconds."""

    num_read_ops: int = 0
    bytes_read: int = 0
    num_write_ops: int = 0
    bytes_written: int = 0
    num_unmap_ops: int = 0
    bytes_unmapped: int = 0
    num_write_zeroes_ops: int = 0
    bytes_zeroed: int = 0
    num_flush_ops: int = 0
    num_errors: int = 0
    read_latency_ns: int = 0
    write_latency_ns: int = 0
    unmap_latency_ns: int = 0
    max_read_latency_ns: int = 0
    max_write_latency_ns: int = 0

    def snapshot(self) -> IoStats:
        """A copy that does not change as I/O goes on."""
        return dataclasses.replace(self)

    def reset(self) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, 0)

    def count_read(self, nbytes: int, elapsed: int) -> None:
        """One read of `nbytes` that took `elapsed` ns."""
        self.num_read_ops += 1
        self.bytes_read += nbytes
        self.read_latency_ns += elapsed
        if elapsed > self.max_read_latency_ns:
            self.max_read_latency_ns = elapsed

    def count_write(self, nbytes: int, elapsed: int) -> None:
        """One write of `nbytes` that took `elapsed` ns."""
        self.num_write_ops += 1
        self.bytes_written += nbytes
        self.write_latency_ns += elapsed
        if elapsed > self.max_write_latency_ns:
            self.max_write_latency_ns = elapsed


class IoRequest:
    """One submitted read or write on its way: the caller's callback and the counters.

    A driver's `_submit_read` or `_submit_write` calls `finish` exactly once.
    """

    __slots__ = ("ctx", "device", "done", "lba", "nbytes", "start", "write")

    def __init__(
        self, device: BlockDevice, done: IoDone, ctx: Any, lba: int, nbytes: int, write: bool
    ) -> None:
        self.device = device
        self.done = done
        self.ctx = ctx
        self.lba = lba
        self.nbytes = nbytes
        self.write = write
        self.start = perf_counter_ns()

    def finish(self, data: Buffer | None, error: DeviceError | None) -> None:
        """The I/O ended: count it, then tell the caller."""
        device = self.device
        device._inflight -= 1  # BlockDevice._end, inline: this runs once per I/O
        if not device._inflight and device._idle is not None:
            device._idle.set()
        stats: IoStats = device.stats
        if error is None:
            if self.write:
                stats.count_write(self.nbytes, perf_counter_ns() - self.start)
            else:
                stats.count_read(self.nbytes, perf_counter_ns() - self.start)
        else:
            stats.num_errors += 1
        self.done(self.ctx, data, error)


def relay(request: IoRequest, data: Buffer | None, error: DeviceError | None) -> None:
    """The `IoDone` of a layer that passes an I/O on as it is (its context being its own
    request): finish the request with the outcome below."""
    request.finish(data, error)
