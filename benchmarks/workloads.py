"""The I/O patterns every benchmark measures, so their figures line up.

4 KiB random read and write at queue depth 32 and 128 KiB sequential read and write at
queue depth 16, the shapes the issues ask for. Imported by the benchmark scripts, which
run with this folder on ``sys.path``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Workload:
    name: str
    write: bool
    random: bool
    block_bytes: int
    queue_depth: int


RANDREAD_4K = Workload(
    "randread-4k-qd32", write=False, random=True, block_bytes=4096, queue_depth=32
)
RANDWRITE_4K = Workload(
    "randwrite-4k-qd32", write=True, random=True, block_bytes=4096, queue_depth=32
)
SEQREAD_128K = Workload(
    "seqread-128k-qd16", write=False, random=False, block_bytes=128 << 10, queue_depth=16
)
SEQWRITE_128K = Workload(
    "seqwrite-128k-qd16", write=True, random=False, block_bytes=128 << 10, queue_depth=16
)

WORKLOADS = (RANDREAD_4K, RANDWRITE_4K, SEQREAD_128K, SEQWRITE_128K)
"""Reads first: the file under them was written in full beforehand."""
WRITES_FIRST = (RANDWRITE_4K, RANDREAD_4K, SEQWRITE_128K, SEQREAD_128K)
"""Writes first: the reads then find data the writes left."""
