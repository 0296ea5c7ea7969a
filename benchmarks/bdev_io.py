"""Block device throughput: fio as the baseline, then our drivers in-process.

On one fully written file (so no read hits a hole) runs, in this order:

* fio with ioengine=io_uring, direct=1: the most this file and kernel give;
* each device kind of `DEVICE_KINDS` driven in-process by `QD` coroutines on one
  event loop (uvloop when installed, as in the io-engine): the aio driver (worker
  threads) and the uring driver (io_uring, raw system calls), then a replica (a thick
  lvol filling a pool) on a second file of the same kind, its pool's disk opened with
  either driver (`replica-aio`, `replica-uring`); the lvol is written in full before
  the workloads, so its reads too hit written blocks;

each with four workloads: 4 KiB random read and random write at QD32, 128 KiB
sequential read and write at QD16. Reported per run: IOPS, MB/s, the ratio to fio
and, for ours, CPU microseconds per I/O of this process (all threads), the figure that
does not depend on how fast the disk is.

Another device kind is one more entry in `DEVICE_KINDS`: an async context manager that
yields an open BlockDevice given the file's path.

Usage: ``.venv/bin/python benchmarks/bdev_io.py [--dir /var/tmp] [--size-mb 1024]
[--seconds 5] [--kinds aio,uring] [--aio-threads 32] [--output FILE.json]``.
Prints a table and writes the figures as JSON (default
``benchmarks/results/bdev_io.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass
from pathlib import Path

from mayastor.bdev import AioDevice, BlockDevice, UringDevice, uring_unavailable_reason
from mayastor.lvs import Pool
from workloads import WORKLOADS, Workload

RESULTS = Path(__file__).resolve().parent / "results" / "bdev_io.json"


@dataclass
class Result:
    workload: str
    engine: str
    ops: int
    seconds: float
    iops: float
    mb_per_s: float
    cpu_us_per_io: float | None = None
    ratio_to_fio: float | None = None


# ----------------------------------------------------------------------------- kinds

OpenDevice = Callable[[str, argparse.Namespace], AbstractAsyncContextManager[BlockDevice]]


async def _open_aio(path: str, args: argparse.Namespace) -> BlockDevice:
    return await AioDevice.open(path, block_size=4096, threads=args.aio_threads)


async def _open_uring(path: str, args: argparse.Namespace) -> BlockDevice:
    return await UringDevice.open(path, block_size=4096, entries=args.uring_entries)


@contextlib.asynccontextmanager
async def aio_kind(path: str, args: argparse.Namespace) -> AsyncIterator[BlockDevice]:
    device = await _open_aio(path, args)
    try:
        yield device
    finally:
        await device.close()


@contextlib.asynccontextmanager
async def uring_kind(path: str, args: argparse.Namespace) -> AsyncIterator[BlockDevice]:
    device = await _open_uring(path, args)
    try:
        yield device
    finally:
        await device.close()


REPLICA = "bench-replica"


def _sparse_copy_of_size(path: str, disk: str) -> bool:
    """Make `disk` a sparse file as large as `path` unless it exists; True if made."""
    if os.path.exists(disk):
        return False
    with open(disk, "wb") as fh:
        fh.truncate(os.path.getsize(path))
    return True


def replica_kind(driver: str) -> OpenDevice:
    """A thick lvol filling a pool on `path`.replica (created and filled on first use)."""
    open_base = _open_aio if driver == "aio" else _open_uring

    @contextlib.asynccontextmanager
    async def kind(path: str, args: argparse.Namespace) -> AsyncIterator[BlockDevice]:
        disk = path + ".replica"
        fresh = _sparse_copy_of_size(path, disk)
        pool = await Pool.create_or_import(await open_base(disk, args), "bench", disk=disk)
        try:
            if fresh:
                lvol = await pool.create_lvol(REPLICA, pool.capacity)
                await fill(lvol)
            yield pool.lookup(REPLICA)
        finally:
            await pool.export()

    return kind


async def fill(device: BlockDevice) -> None:
    """Write every block once, 1 MiB at a time, 8 in flight."""
    chunk = os.urandom(1 << 20)
    step = len(chunk) // device.block_size
    lbas = iter(range(0, device.num_blocks - step + 1, step))

    async def writer() -> None:
        for lba in lbas:
            await device.write(lba, chunk)

    await asyncio.gather(*(writer() for _ in range(8)))
    await device.flush()


DEVICE_KINDS: dict[str, OpenDevice] = {
    "aio": aio_kind,
    "uring": uring_kind,
    "replica-aio": replica_kind("aio"),
    "replica-uring": replica_kind("uring"),
}
"""Device kinds driven in-process; add one to benchmark it on the same kind of file."""


# ----------------------------------------------------------------------------- fio


def run_fio(path: str, size: int, work: Workload, seconds: float) -> Result:
    rw = (
        ("randwrite" if work.write else "randread")
        if work.random
        else ("write" if work.write else "read")
    )
    argv = [
        "fio",
        "--name=baseline",
        f"--filename={path}",
        "--ioengine=io_uring",
        "--direct=1",
        f"--rw={rw}",
        f"--bs={work.block_bytes}",
        f"--iodepth={work.queue_depth}",
        f"--size={size}",
        f"--runtime={seconds}",
        "--time_based",
        "--randrepeat=0",
        "--norandommap",
        "--output-format=json",
    ]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    job = json.loads(out[out.index("{") :])["jobs"][0]
    side = job["write" if work.write else "read"]
    elapsed = job["job_runtime"] / 1000
    ops = int(side["total_ios"])
    return Result(work.name, "fio", ops, elapsed, side["iops"], side["bw_bytes"] / 1e6)


# ----------------------------------------------------------------------------- ours


async def drive(device: BlockDevice, work: Workload, seconds: float) -> tuple[int, float, float]:
    """Keep `queue_depth` I/Os in flight for `seconds`; return (ops, elapsed, cpu seconds)."""
    bs = device.block_size
    nblocks = work.block_bytes // bs
    slots = device.num_blocks // nblocks
    payload = bytearray(os.urandom(work.block_bytes))
    rng = random.Random(1)
    cursor = 0
    ops = 0
    stop = False

    def next_lba() -> int:
        nonlocal cursor
        if work.random:
            return rng.randrange(slots) * nblocks
        cursor = (cursor + 1) % slots
        return cursor * nblocks

    async def worker() -> None:
        nonlocal ops
        while not stop:
            lba = next_lba()
            if work.write:
                await device.write(lba, payload)
            else:
                await device.read(lba, nblocks)
            ops += 1

    cpu0, t0 = time.process_time(), time.perf_counter()
    tasks = [asyncio.ensure_future(worker()) for _ in range(work.queue_depth)]
    await asyncio.sleep(seconds)
    stop = True
    await asyncio.gather(*tasks)
    return ops, time.perf_counter() - t0, time.process_time() - cpu0


async def run_ours(kind: str, path: str, work: Workload, args: argparse.Namespace) -> Result:
    async with DEVICE_KINDS[kind](path, args) as device:
        ops, elapsed, cpu = await drive(device, work, args.seconds)
        if work.write:
            await device.flush()
    iops = ops / elapsed
    return Result(
        work.name,
        kind,
        ops,
        elapsed,
        iops,
        iops * work.block_bytes / 1e6,
        cpu_us_per_io=cpu / ops * 1e6 if ops else None,
    )


# ----------------------------------------------------------------------------- main


def lay_out(path: str, size: int) -> None:
    """Write the whole file once, so reads hit written blocks (as fio lays files out)."""
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as fh:
        for _ in range(size >> 20):
            fh.write(chunk)
        fh.flush()
        os.fsync(fh.fileno())


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default="/var/tmp", help="where the test file lives")
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=5.0, help="per workload and engine")
    parser.add_argument("--kinds", default=",".join(DEVICE_KINDS))
    parser.add_argument("--workloads", default=",".join(w.name for w in WORKLOADS))
    parser.add_argument("--aio-threads", type=int, default=32)
    parser.add_argument("--uring-entries", type=int, default=128)
    parser.add_argument("--no-fio", action="store_true")
    parser.add_argument("--no-uvloop", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    if reason := uring_unavailable_reason():
        print(f"uring left out: {reason}", file=sys.stderr)
        kinds = [k for k in kinds if "uring" not in k]
    workloads = [w for w in WORKLOADS if w.name in args.workloads.split(",")]
    size = args.size_mb << 20

    results: list[Result] = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bdev-io-") as tmp:
        path = os.path.join(tmp, "disk.img")
        lay_out(path, size)
        for work in workloads:
            baseline = None
            if not args.no_fio:
                baseline = run_fio(path, size, work, args.seconds)
                results.append(baseline)
            for kind in kinds:
                loop = asyncio.new_event_loop() if args.no_uvloop else new_loop()
                try:
                    result = loop.run_until_complete(run_ours(kind, path, work, args))
                finally:
                    loop.close()
                if baseline is not None:
                    result.ratio_to_fio = result.iops / baseline.iops
                results.append(result)

    row = "{:<20} {:<14} {:>10} {:>9} {:>7} {:>10}"
    print(row.format("workload", "engine", "IOPS", "MB/s", "x fio", "CPU us/IO"))
    for r in results:
        ratio = f"{r.ratio_to_fio:.2f}" if r.ratio_to_fio is not None else "-"
        cpu = f"{r.cpu_us_per_io:.1f}" if r.cpu_us_per_io is not None else "-"
        print(row.format(r.workload, r.engine, f"{r.iops:.0f}", f"{r.mb_per_s:.1f}", ratio, cpu))
    report = {
        "benchmark": "bdev_io",
        "machine": {
            "python": sys.version.split()[0],
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "event_loop": "asyncio" if args.no_uvloop else "uvloop",
        },
        "file": {"dir": args.dir, "size_mb": args.size_mb},
        "parameters": {
            "seconds": args.seconds,
            "aio_threads": args.aio_threads,
            "uring_entries": args.uring_entries,
        },
        "results": [asdict(r) for r in results],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
