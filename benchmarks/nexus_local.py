"""Nexus throughput in-process: what mirroring costs over the child alone, and rebuild speed.

For each child kind (malloc; aio on files in ``--dir``) it runs, on one event loop
(uvloop when installed, as in the io-engine):

* the child device alone, then a nexus of 1, 2 and 3 such children, each with four
  workloads: 4 KiB random write and random read at QD32, 128 KiB sequential write and
  read at QD16. Reported: IOPS, MB/s, the ratio to the child alone and CPU
  microseconds per I/O of this process (all threads);
* rebuild of a 1 GiB child (``--rebuild-mb``): a nexus of one child gets a second one
  and copies it in full, once idle and once under a 4 KiB QD32 random write load.
  Reported: the rebuild's MB/s (bytes copied over its wall time) and, under load, the
  write IOPS the nexus kept serving meanwhile.

Usage: ``.venv/bin/python benchmarks/nexus_local.py [--seconds 2] [--size-mb 256]
[--rebuild-mb 1024] [--kinds malloc,aio] [--dir /var/tmp] [--output FILE.json]``.
Prints a table and writes the figures as JSON (default
``benchmarks/results/nexus_local.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass
from pathlib import Path

from mayastor.bdev import BlockDevice, DeviceOpener
from mayastor.nexus import MemoryNexusInfoStore, Nexus
from workloads import WRITES_FIRST as WORKLOADS
from workloads import Workload

RESULTS = Path(__file__).resolve().parent / "results" / "nexus_local.json"


@dataclass
class Result:
    kind: str
    target: str
    workload: str
    ops: int
    seconds: float
    iops: float
    mb_per_s: float
    cpu_us_per_io: float
    ratio_to_child: float | None = None


@dataclass
class RebuildResult:
    kind: str
    load: str
    size_mb: int
    seconds: float
    rebuild_mb_per_s: float
    write_iops_during: float | None


# ----------------------------------------------------------------------------- children


class ChildKind:
    """Makes child URIs of one kind; cleans up what it made."""

    def __init__(self, name: str, directory: Path, opener: DeviceOpener) -> None:
        self.name = name
        self.directory = directory
        self.opener = opener
        self._count = 0

    def uri(self, size_mb: int) -> str:
        self._count += 1
        if self.name == "malloc":
            return f"malloc:///bench{self._count}?size_mb={size_mb}"
        path = self.directory / f"nexus-bench-{os.getpid()}-{self._count}.img"
        with open(path, "wb") as fh:
            fh.truncate(size_mb << 20)
        return f"aio://{path}"

    def cleanup(self) -> None:
        for path in self.directory.glob(f"nexus-bench-{os.getpid()}-*.img"):
            path.unlink()


@contextlib.asynccontextmanager
async def single(kind: ChildKind, size_mb: int) -> AsyncIterator[BlockDevice]:
    device = await kind.opener.open(kind.uri(size_mb))
    try:
        yield device
    finally:
        await device.close()


def nexus_of(children: int) -> Callable[[ChildKind, int], AbstractAsyncContextManager[BlockDevice]]:
    @contextlib.asynccontextmanager
    async def make(kind: ChildKind, size_mb: int) -> AsyncIterator[BlockDevice]:
        nexus = await Nexus.create(
            f"bench{children}",
            uuid.uuid4(),
            size_mb << 20,
            [kind.uri(size_mb) for _ in range(children)],
            opener=kind.opener,
            store=MemoryNexusInfoStore(),
        )
        try:
            yield nexus
        finally:
            await nexus.destroy()

    return make


TARGETS: dict[str, Callable[[ChildKind, int], AbstractAsyncContextManager[BlockDevice]]] = {
    "child": single,
    "nexus-1": nexus_of(1),
    "nexus-2": nexus_of(2),
    "nexus-3": nexus_of(3),
}

# ----------------------------------------------------------------------------- load


async def drive(
    device: BlockDevice,
    workload: Workload,
    seconds: float,
    stop: asyncio.Event | None = None,
    yield_every: int = 64,
) -> tuple[int, float, float]:
    """Run `workload` for `seconds` (or until `stop`); (ops, wall seconds, cpu seconds).

    I/O to malloc children completes without waiting, so a worker gives the event loop
    a turn every `yield_every` I/Os, as I/O arriving from a socket would; otherwise
    nothing else (a rebuild, the `stop` event) would ever run.
    """
    bs = device.block_size
    nblocks = workload.block_bytes // bs
    span = device.num_blocks // nblocks
    payload = memoryview(os.urandom(workload.block_bytes))
    ops = 0
    cursor = 0
    deadline = time.perf_counter() + seconds

    async def worker(seed: int) -> None:
        nonlocal ops, cursor
        rng = random.Random(seed)
        while time.perf_counter() < deadline and not (stop and stop.is_set()):
            if workload.random:
                lba = rng.randrange(span) * nblocks
            else:
                lba = (cursor % span) * nblocks
                cursor += 1
            if workload.write:
                await device.write(lba, payload)
            else:
                await device.read(lba, nblocks)
            ops += 1
            if not ops % yield_every:
                await asyncio.sleep(0)

    cpu = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(workload.queue_depth)))
    return ops, time.perf_counter() - start, time.process_time() - cpu


async def measure(kinds: list[ChildKind], size_mb: int, seconds: float) -> list[Result]:
    results: list[Result] = []
    for kind in kinds:
        baseline: dict[str, float] = {}
        for target, make in TARGETS.items():
            async with make(kind, size_mb) as device:
                for workload in WORKLOADS:
                    ops, wall, cpu = await drive(device, workload, seconds)
                    iops = ops / wall
                    if target == "child":
                        baseline[workload.name] = iops
                    result = Result(
                        kind=kind.name,
                        target=target,
                        workload=workload.name,
                        ops=ops,
                        seconds=round(wall, 3),
                        iops=round(iops),
                        mb_per_s=round(iops * workload.block_bytes / 1e6, 1),
                        cpu_us_per_io=round(cpu / ops * 1e6, 1),
                        ratio_to_child=round(iops / baseline[workload.name], 3),
                    )
                    results.append(result)
                    print(
                        f"{kind.name:7} {target:8} {workload.name:19} {result.iops:>9} IOPS "
                        f"{result.mb_per_s:>8} MB/s {result.cpu_us_per_io:>7} us/IO "
                        f"x{result.ratio_to_child}",
                        flush=True,
                    )
    return results


async def rebuild(kind: ChildKind, size_mb: int, under_load: bool) -> RebuildResult:
    source = kind.uri(size_mb)
    nexus = await Nexus.create(
        "rebuild", uuid.uuid4(), size_mb << 20, [source], opener=kind.opener,
        store=MemoryNexusInfoStore(),
    )  # fmt: skip
    try:
        stop = asyncio.Event()
        load = None
        if under_load:
            load = asyncio.create_task(drive(nexus, WORKLOADS[0], 3600, stop, yield_every=1))
        destination = kind.uri(size_mb)
        await nexus.add_child(destination)
        record = await nexus.wait_rebuild(destination)
        stop.set()
        write_iops = None
        if load is not None:
            ops, wall, _ = await load
            write_iops = round(ops / wall)
        assert record.start_time is not None
        assert record.end_time is not None
        seconds = record.end_time - record.start_time
        copied = record.blocks_transferred * nexus.block_size
        result = RebuildResult(
            kind=kind.name,
            load="4k-randwrite-qd32" if under_load else "idle",
            size_mb=size_mb,
            seconds=round(seconds, 3),
            rebuild_mb_per_s=round(copied / seconds / 1e6, 1),
            write_iops_during=write_iops,
        )
        print(
            f"{kind.name:7} rebuild {size_mb} MiB {result.load:18} {result.seconds:>7} s "
            f"{result.rebuild_mb_per_s:>8} MB/s  writes during: {write_iops}",
            flush=True,
        )
        return result
    finally:
        await nexus.destroy()


async def main(args: argparse.Namespace) -> dict[str, object]:
    opener = DeviceOpener(aio_threads=args.aio_threads)
    kinds = [ChildKind(name, Path(args.dir), opener) for name in args.kinds.split(",")]
    try:
        io = await measure(kinds, args.size_mb, args.seconds)
        rebuilds = [
            await rebuild(kind, args.rebuild_mb, under_load)
            for kind in kinds
            for under_load in (False, True)
        ]
    finally:
        for kind in kinds:
            kind.cleanup()
    return {
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "event_loop": type(asyncio.get_running_loop()).__module__,
        },
        "settings": vars(args),
        "io": [asdict(r) for r in io],
        "rebuild": [asdict(r) for r in rebuilds],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per workload")
    parser.add_argument("--size-mb", type=int, default=256, help="each child, I/O runs")
    parser.add_argument("--rebuild-mb", type=int, default=1024, help="the rebuilt child")
    parser.add_argument("--kinds", default="malloc,aio", help="child kinds: malloc,aio")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where aio files go")
    parser.add_argument("--aio-threads", type=int, default=32)
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        import uvloop

        runner: Callable[..., dict[str, object]] = uvloop.run
    except ImportError:
        runner = asyncio.run
    figures = runner(main(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    figures["settings"] = {k: str(v) for k, v in vars(args).items()}
    args.output.write_text(json.dumps(figures, indent=1) + "\n")
    print(f"written to {args.output}")


if __name__ == "__main__":
    run()
