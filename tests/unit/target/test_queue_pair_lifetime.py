"""A closed queue pair is freed, even while it and its I/O shell refer to each other.

A queue pair holds tables of its own bound methods, and the shell around it (the
connection) holds the queue pair: cycles only the garbage collector frees. Compiled
by mypyc, an attribute the class declared twice (in a mixin and again in the class)
was visited twice by the collector, which then took the queue pair for referenced
from outside and never freed it; this checks it in the mode the suite runs in.
"""

from __future__ import annotations

import gc
import weakref

from mayastor.nvmf.spec import SglDescriptor, Write
from mayastor.target import TargetConfig
from mayastor.target._queue_pair import QueuePair
from tests.unit.target.wire import RecordingLink, Wire, admin_wire, io_wire, make_registry


class ShellLink(RecordingLink):
    """An I/O shell that, as the real connection does, keeps its queue pair."""

    queue_pair: QueuePair | None = None


def freed(ref: weakref.ref[QueuePair]) -> bool:
    gc.collect()
    return ref() is None


async def test_a_closed_io_queue_pair_with_a_transfer_in_flight_is_freed() -> None:
    registry = make_registry(config=TargetConfig(max_h2c_data=4096))
    admin = await admin_wire(registry)
    io = await io_wire(registry, admin)
    link = ShellLink()
    io.link = link
    io.qp._link = link  # the shell's cycle: shell -> queue pair -> shell
    link.queue_pair = io.qp
    sgl = SglDescriptor.transport(16 * 1024)
    cid = io.next_cid()
    io.send(io.writer.encode_capsule_cmd(Write(0, 31).to_command(cid, 1, sgl).encode()))
    assert io.qp.pending_write_bytes  # windows, transfers and callbacks held
    ref = weakref.ref(io.qp)
    io.qp.transport_closed()
    del io, link
    assert freed(ref)


async def test_a_queue_pair_closed_before_its_connect_is_freed() -> None:
    wire = Wire(make_registry())
    wire.ic()
    ref = weakref.ref(wire.qp)
    wire.qp.transport_closed()
    del wire
    assert freed(ref)
