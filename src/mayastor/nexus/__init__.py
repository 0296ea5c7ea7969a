"""The nexus: a volume mirrored synchronously onto N children (DESIGN.md section 8).

Every write lands on all healthy children before it is acknowledged; reads are
spread over the children in sync; a child that fails is retired, and later rebuilt
while I/O goes on. Which children hold current data is kept in a `NexusInfoStore`
before any I/O that changed it is acknowledged. The nexus is itself a `BlockDevice`
and knows its children only as BlockDevices, opened from URIs by a `ChildOpener`
(the io-engine's device opener).

Used as a library, as Mayastor's README shows for Rust: create a nexus over three
children, write 4 KiB of 0xff at offset 0, read it back::

    import uuid

    from mayastor.nexus import MemoryNexusInfoStore, Nexus

    async def main(opener):
        nexus = await Nexus.create(
            "nexus0",
            uuid.uuid4(),
            64 * 1024 * 1024,
            [
                "malloc:///malloc0?size_mb=64",
                "malloc:///malloc1?size_mb=64",
                "malloc:///malloc2?size_mb=64",
            ],
            opener=opener,
            store=MemoryNexusInfoStore(),
        )
        await nexus.write_at(0, b"\\xff" * 4096)
        assert bytes(await nexus.read_at(0, 4096)) == b"\\xff" * 4096
        await nexus.destroy()

Public surface: `Nexus`, its children's `ChildStatus`, `ChildState` and `FaultReason`;
`NexusState`; fencing (NVMe reservations on the children) `ReservationPolicy`,
`PreemptPolicy`, `nexus_host_id`; rebuild `RebuildState`, `RebuildStats`,
`RebuildRecord`; nexus info `NexusInfo`, `ChildInfo`, `NexusInfoStore`,
`FileNexusInfoStore`, `MemoryNexusInfoStore`; `ChildOpener`; the building blocks
`RangeLock`, `SegmentMap` and `RebuildJob`, and the state tables.
"""

from mayastor.nexus._child import ChildOpener, ChildStatus, is_local_uri, uuid_in_uri
from mayastor.nexus._child_state import (
    CHILD_TRANSITIONS,
    ChildEvent,
    ChildState,
    FaultReason,
    next_child_state,
    reason_for_error,
)
from mayastor.nexus._fencing import PreemptPolicy, ReservationPolicy, nexus_host_id
from mayastor.nexus._info import (
    ChildInfo,
    FileNexusInfoStore,
    MemoryNexusInfoStore,
    NexusInfo,
    NexusInfoStore,
)
from mayastor.nexus._nexus import DEFAULT_HISTORY_SIZE, Nexus
from mayastor.nexus._nexus_state import (
    NEXUS_TRANSITIONS,
    NexusEvent,
    NexusState,
    next_nexus_state,
)
from mayastor.nexus._range_lock import RangeLock
from mayastor.nexus._rebuild import (
    DEFAULT_REBUILD_TASKS,
    DEFAULT_SEGMENT_SIZE,
    RebuildJob,
    RebuildRecord,
    RebuildStats,
)
from mayastor.nexus._rebuild_state import (
    REBUILD_TRANSITIONS,
    RebuildEvent,
    RebuildState,
    next_rebuild_state,
)
from mayastor.nexus._segment_map import SegmentMap

__all__ = [
    "CHILD_TRANSITIONS",
    "DEFAULT_HISTORY_SIZE",
    "DEFAULT_REBUILD_TASKS",
    "DEFAULT_SEGMENT_SIZE",
    "NEXUS_TRANSITIONS",
    "REBUILD_TRANSITIONS",
    "ChildEvent",
    "ChildInfo",
    "ChildOpener",
    "ChildState",
    "ChildStatus",
    "FaultReason",
    "FileNexusInfoStore",
    "MemoryNexusInfoStore",
    "Nexus",
    "NexusEvent",
    "NexusInfo",
    "NexusInfoStore",
    "NexusState",
    "PreemptPolicy",
    "RangeLock",
    "RebuildEvent",
    "RebuildJob",
    "RebuildRecord",
    "RebuildState",
    "RebuildStats",
    "ReservationPolicy",
    "SegmentMap",
    "is_local_uri",
    "next_child_state",
    "next_nexus_state",
    "next_rebuild_state",
    "nexus_host_id",
    "reason_for_error",
    "uuid_in_uri",
]
