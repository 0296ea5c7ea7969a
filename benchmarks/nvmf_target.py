"""NVMe/TCP target throughput: fio on the raw file, then the same file through our target.

In one run, on one fully written file:

* fio (io_uring, direct) on the file itself: what the disk and kernel give;
* the file opened as a BlockDevice (uring driver, else aio) and served by `NvmfTarget`
  in a process of its own (uvloop, as the io-engine runs), driven over 127.0.0.1 by a
  load generator in a second process: our initiator (`mayastor.nvmf.host`) with one
  I/O queue, then a minimal pipelined NVMe/TCP client (``raw``, SQ flow control off,
  so reads end with C2HData SUCCESS) that costs less per I/O on its core;

four workloads each: 4 KiB random read and write at QD32, 128 KiB sequential read and
write at QD16. Reported: IOPS, MB/s, p50/p99 latency seen by the load generator, and
the target's CPU microseconds per I/O (its process CPU time from /proc/<pid>/stat over
the measured window divided by the I/Os), which does not depend on how fast the client
is; then the target's CPU over 10 idle seconds with the host still connected. Both
processes tune glibc malloc as the io-engine does at start (`tune_malloc`).

Usage: ``.venv/bin/python benchmarks/nvmf_target.py [--dir /var/tmp] [--size-mb 1024]
[--seconds 8] [--clients initiator,raw] [--driver uring|aio|malloc] [--output FILE.json]``.
The ``serve`` and ``load`` subcommands are the two processes; the main command starts
them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from workloads import WORKLOADS, Workload

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "nvmf_target.json"
NQN = "nqn.2019-05.io.openebs:bench-replica"
HOSTNQN = "nqn.2019-05.io.openebs:node-name:bench-host"
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    workload: str
    engine: str
    ops: int
    seconds: float
    iops: float
    mb_per_s: float
    p50_us: float | None
    p99_us: float | None
    target_cpu_us_per_io: float | None = None
    target_cpu_percent: float | None = None
    ratio_to_fio: float | None = None


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


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
    pct = side["clat_ns"]["percentile"]
    return Result(
        work.name,
        "fio",
        int(side["total_ios"]),
        job["job_runtime"] / 1000,
        side["iops"],
        side["bw_bytes"] / 1e6,
        pct["50.000000"] / 1000,
        pct["99.000000"] / 1000,
    )


# ----------------------------------------------------------------------------- serve


async def serve(args: argparse.Namespace) -> None:
    """The target process: serve `args.file` until stdin closes."""
    from mayastor.bdev import (
        AioDevice,
        BlockDevice,
        MallocDevice,
        UringDevice,
        uring_unavailable_reason,
    )
    from mayastor.target import NvmfTarget

    device: BlockDevice
    if args.driver == "malloc":
        device = MallocDevice("bench", args.blocks, 4096)
    elif args.driver == "uring" and uring_unavailable_reason() is None:
        device = await UringDevice.open(args.file, block_size=4096)
    else:
        device = await AioDevice.open(args.file, block_size=4096)
    target = NvmfTarget("127.0.0.1")
    port = await target.listen(0)
    target.add_subsystem(NQN, device, port=port)
    emit(port=port, pid=os.getpid(), driver=device.driver)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), lambda: None if sys.stdin.readline() else done.set())
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    await done.wait()
    if args.profile:
        profiler.disable()
        profiler.dump_stats(args.profile)
    loop.remove_reader(sys.stdin.fileno())
    await target.close()
    await device.close()


# ----------------------------------------------------------------------------- load


class RawClient:
    """A minimal NVMe/TCP host for load: one I/O queue, no digests, pipelined."""

    _CMD = struct.Struct("<BBBBIBBHI16xQI3xBIII12x")
    _DATA = struct.Struct("<BBBBIHHII4x")

    def __init__(self) -> None:
        self._reader: asyncio.StreamReader
        self._writer: asyncio.StreamWriter
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._writes: dict[int, memoryview] = {}
        self._free = list(range(256))
        self._task: asyncio.Task[None] | None = None

    async def connect(self, port: int) -> None:
        from tests.integration.target.nvme_client import HostController

        # Set up with the test client (Connect, enable), then take the I/O socket over.
        self._ctrl = await HostController.connect(
            "127.0.0.1", port, NQN, hostnqn=HOSTNQN, disable_sq_flow_control=True
        )
        self._io = self._ctrl.io[0]
        self._io._task.cancel()
        self._reader = self._io._stream_reader
        self._writer = self._io._stream_writer
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._ctrl.close()

    async def _read_loop(self) -> None:
        buf = b""
        reader = self._reader
        unpack = struct.Struct("<BBBBI").unpack_from
        while True:
            chunk = await reader.read(1 << 20)
            if not chunk:
                return
            buf = buf + chunk if buf else chunk
            pos = 0
            while len(buf) - pos >= 8:
                ptype, flags, _, _, plen = unpack(buf, pos)
                if len(buf) - pos < plen:
                    break
                if ptype == 0x05:  # CapsuleResp
                    (cid,) = struct.unpack_from("<H", buf, pos + 8 + 12)
                    self._done(cid)
                elif ptype == 0x07 and flags & 0x08:  # C2HData with SUCCESS
                    (cid,) = struct.unpack_from("<H", buf, pos + 8)
                    self._done(cid)
                elif ptype == 0x09:  # R2T
                    cid, ttag, offset, length = struct.unpack_from("<HHII", buf, pos + 8)
                    data = self._writes[cid][offset : offset + length]
                    header = self._DATA.pack(
                        0x06, 0x04, 24, 24, 24 + length, cid, ttag, offset, length
                    )
                    self._writer.writelines([header, data])
                pos += plen
            buf = buf[pos:]

    def _done(self, cid: int) -> None:
        self._writes.pop(cid, None)
        self._free.append(cid)
        self._waiting.pop(cid).set_result(None)

    async def io(self, write: bool, lba: int, nblocks: int, data: memoryview) -> None:
        cid = self._free.pop()
        length = nblocks * 4096
        future = asyncio.get_running_loop().create_future()
        self._waiting[cid] = future
        cdw12 = nblocks - 1
        if write and length <= 8192:
            header = self._CMD.pack(
                4,
                0,
                72,
                72,
                72 + length,
                1,
                0x40,
                cid,
                1,
                0,
                length,
                0x01,
                lba & 0xFFFFFFFF,
                lba >> 32,
                cdw12,
            )
            self._writer.writelines([header, data])
        else:
            if write:
                self._writes[cid] = data
            header = self._CMD.pack(
                4,
                0,
                72,
                0,
                72,
                2 if not write else 1,
                0x40,
                cid,
                1,
                0,
                length,
                0x5A,
                lba & 0xFFFFFFFF,
                lba >> 32,
                cdw12,
            )
            self._writer.write(header)
        await future


async def load(args: argparse.Namespace) -> None:
    """The load process: one workload against the target, then its figures."""
    work = next(w for w in WORKLOADS if w.name == args.workload)
    nblocks = work.block_bytes // 4096
    payload = memoryview(bytearray(os.urandom(work.block_bytes)))
    if args.client == "raw":
        raw = RawClient()
        await raw.connect(args.port)

        async def one(lba: int) -> None:
            await raw.io(work.write, lba, nblocks, payload)

        async def close() -> None:
            await raw.close()

        blocks = args.blocks
    else:
        from mayastor.nvmf.host import Controller, ControllerOptions

        options = ControllerOptions(
            hostnqn=HOSTNQN, io_queues=1, queue_size=128, keep_alive_timeout=10
        )
        ctrl = Controller("127.0.0.1", args.port, NQN, options)
        await ctrl.connect()
        namespace = await ctrl.identify_namespace(1)
        blocks = namespace.nsze

        async def one(lba: int) -> None:
            if work.write:
                await ctrl.write(1, lba, nblocks, payload)
            else:
                await ctrl.read(1, lba, nblocks, work.block_bytes)

        async def close() -> None:
            await ctrl.close()

    slots = blocks // nblocks
    rng = random.Random(1)
    cursor = 0
    latencies: list[int] = []
    ops = 0
    state = {"measure": False, "stop": False}

    async def worker() -> None:
        nonlocal cursor, ops
        clock = time.perf_counter_ns
        while not state["stop"]:
            if work.random:
                lba = rng.randrange(slots) * nblocks
            else:
                cursor = (cursor + 1) % slots
                lba = cursor * nblocks
            start = clock()
            await one(lba)
            if state["measure"]:
                latencies.append(clock() - start)
                ops += 1

    tasks = [asyncio.ensure_future(worker()) for _ in range(work.queue_depth)]
    await asyncio.sleep(args.warmup)
    state["measure"] = True
    emit(event="go")
    t0 = time.perf_counter()
    await asyncio.sleep(args.seconds)
    state["measure"] = False
    elapsed = time.perf_counter() - t0
    emit(event="stop")
    state["stop"] = True
    await asyncio.gather(*tasks)
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] / 1000

    emit(event="result", ops=ops, seconds=elapsed, p50_us=pct(0.50), p99_us=pct(0.99))
    if args.idle:
        emit(event="idle")
        await asyncio.sleep(args.idle)
        emit(event="idle-done")
    await close()


# ----------------------------------------------------------------------------- main


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def lay_out(path: str, size: int) -> None:
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as fh:
        for _ in range(size >> 20):
            fh.write(chunk)
        fh.flush()
        os.fsync(fh.fileno())


def run_target_workload(
    args: argparse.Namespace,
    client: str,
    port: int,
    target_pid: int,
    work: Workload,
    idle: float,
) -> tuple[Result, float | None]:
    argv = [
        sys.executable,
        __file__,
        "load",
        "--port",
        str(port),
        "--workload",
        work.name,
        "--seconds",
        str(args.seconds),
        "--client",
        client,
        "--blocks",
        str((args.size_mb << 20) // 4096),
        "--idle",
        str(idle),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    cpu0 = t0 = 0.0
    result: Result | None = None
    idle_cpu = None
    for line in proc.stdout:
        event = json.loads(line)
        kind = event["event"]
        if kind in ("go", "idle"):
            cpu0, t0 = cpu_seconds(target_pid), time.perf_counter()
        elif kind == "stop":
            cpu = cpu_seconds(target_pid) - cpu0
            wall = time.perf_counter() - t0
        elif kind == "result":
            ops = event["ops"]
            iops = ops / event["seconds"]
            result = Result(
                work.name,
                f"target-{client}",
                ops,
                event["seconds"],
                iops,
                iops * work.block_bytes / 1e6,
                event["p50_us"],
                event["p99_us"],
                target_cpu_us_per_io=cpu / ops * 1e6 if ops else None,
                target_cpu_percent=100 * cpu / wall,
            )
        elif kind == "idle-done":
            idle_cpu = 100 * (cpu_seconds(target_pid) - cpu0) / (time.perf_counter() - t0)
    if proc.wait() != 0 or result is None:
        raise SystemExit(f"load generator failed ({proc.returncode})")
    return result, idle_cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    serve_p = sub.add_parser("serve")
    serve_p.add_argument("--file", required=True)
    serve_p.add_argument("--driver", default="uring", choices=["uring", "aio", "malloc"])
    serve_p.add_argument("--profile", help="write cProfile stats here")
    serve_p.add_argument("--blocks", type=int, default=0, help="malloc: 4 KiB blocks")
    load_p = sub.add_parser("load")
    load_p.add_argument("--port", type=int, required=True)
    load_p.add_argument("--workload", required=True)
    load_p.add_argument("--seconds", type=float, default=8.0)
    load_p.add_argument("--warmup", type=float, default=1.0)
    load_p.add_argument("--client", default="initiator", choices=["initiator", "raw"])
    load_p.add_argument("--blocks", type=int, default=0)
    load_p.add_argument("--idle", type=float, default=0.0)
    parser.add_argument("--dir", default="/var/tmp")
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument(
        "--driver",
        default="uring",
        choices=["uring", "aio", "malloc"],
        help="how the target opens the file (malloc: an in-memory device of its size)",
    )
    parser.add_argument(
        "--clients",
        default="initiator,raw",
        help="load generators to run, in order: initiator (ours), raw (minimal client)",
    )
    parser.add_argument("--workloads", default=",".join(w.name for w in WORKLOADS))
    parser.add_argument("--no-fio", action="store_true")
    parser.add_argument("--profile", help="cProfile the target into this file")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.command in ("serve", "load"):
        from mayastor.engine.main import tune_malloc

        tune_malloc()  # as the io-engine does at start
    if args.command == "serve":
        new_loop().run_until_complete(serve(args))
        return 0
    if args.command == "load":
        new_loop().run_until_complete(load(args))
        return 0

    workloads = [w for w in WORKLOADS if w.name in args.workloads.split(",")]
    size = args.size_mb << 20
    results: list[Result] = []
    idle_cpu = None
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="nvmf-target-") as tmp:
        path = os.path.join(tmp, "disk.img")
        lay_out(path, size)
        baselines = {}
        if not args.no_fio:
            for work in workloads:
                baselines[work.name] = run_fio(path, size, work, args.seconds)
                results.append(baselines[work.name])
        serve_argv = [sys.executable, __file__, "serve", "--file", path, "--driver", args.driver]
        serve_argv += ["--blocks", str(size // 4096)]
        if args.profile:
            serve_argv += ["--profile", args.profile]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        target = subprocess.Popen(
            serve_argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        try:
            assert target.stdout is not None
            ready = json.loads(target.stdout.readline())
            driver = ready["driver"]
            clients = [c for c in args.clients.split(",") if c]
            for client in clients:
                for index, work in enumerate(workloads):
                    last = client == clients[-1] and index == len(workloads) - 1
                    result, idle_measured = run_target_workload(
                        args,
                        client,
                        ready["port"],
                        ready["pid"],
                        work,
                        args.idle_seconds if last else 0.0,
                    )
                    if idle_measured is not None:
                        idle_cpu = idle_measured
                    if work.name in baselines:
                        result.ratio_to_fio = result.iops / baselines[work.name].iops
                    results.append(result)
        finally:
            if target.stdin is not None:
                target.stdin.close()
            target.wait(timeout=60)

    row = "{:<20} {:<18} {:>9} {:>8} {:>8} {:>8} {:>6} {:>9} {:>6}"
    print(
        row.format(
            "workload", "engine", "IOPS", "MB/s", "p50 us", "p99 us", "x fio", "CPU us/IO", "CPU%"
        )
    )
    for r in results:
        print(
            row.format(
                r.workload,
                r.engine,
                f"{r.iops:.0f}",
                f"{r.mb_per_s:.1f}",
                f"{r.p50_us:.0f}" if r.p50_us is not None else "-",
                f"{r.p99_us:.0f}" if r.p99_us is not None else "-",
                f"{r.ratio_to_fio:.2f}" if r.ratio_to_fio is not None else "-",
                f"{r.target_cpu_us_per_io:.1f}" if r.target_cpu_us_per_io is not None else "-",
                f"{r.target_cpu_percent:.0f}" if r.target_cpu_percent is not None else "-",
            )
        )
    if idle_cpu is not None:
        print(f"target idle CPU over {args.idle_seconds:.0f} s, host connected: {idle_cpu:.2f}%")
    report = {
        "benchmark": "nvmf_target",
        "machine": {
            "python": sys.version.split()[0],
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "event_loop": "uvloop",
        },
        "file": {"dir": args.dir, "size_mb": args.size_mb, "device_driver": driver},
        "parameters": {
            "seconds": args.seconds,
            "clients": args.clients,
            "block_size": 4096,
            "malloc_tuned": True,
        },
        "results": [asdict(r) for r in results],
        "target_idle_cpu_percent": idle_cpu,
        "idle_seconds": args.idle_seconds,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
