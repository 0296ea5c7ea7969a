"""Load generator over our NVMe/TCP initiator: one process, one namespace, JSON out.

Opens ``nvmf://host:port/nqn`` as an `NvmfDevice` (what the nexus uses for a remote
child), then runs one workload for a number of seconds with `--qd` coroutines on one
event loop (uvloop when installed, as in the io-engine), spread over `--queues` I/O
queues. Prints one JSON object on stdout (a human summary goes to stderr), so another
benchmark (e.g. the target's) can run this as its client:

    {"workload": "randread", "block_size": 4096, "queue_depth": 32, "queues": 2,
     "seconds": 5.0, "ops": ..., "iops": ..., "mb_per_s": ..., "lat_p50_us": ...,
     "lat_p99_us": ..., "cpu_us_per_io": ..., "errors": 0, ...}

SQ flow control is off unless `--sq-flow-control` is given, as the io-engine connects to
a nexus child (and as the lean client does): a read then ends with one C2HData PDU.

`cpu_us_per_io` is this process's CPU time (user + system) per I/O: the initiator's
cost, independent of how fast the target is.

Usage: ``.venv/bin/python benchmarks/nvmf_initiator.py nvmf://127.0.0.1:8420/nqn...
[--workload randread|randwrite|seqread|seqwrite] [--bs 4096] [--qd 32] [--queues 2]
[--seconds 5] [--size-mb N] [--digests] [--sq-flow-control] [--hostnqn NQN]
[--loop uvloop|asyncio] [--api await|submit] [--poll-budget-us US]
[--label TEXT] [--output FILE.json]``
(``--output`` appends the result to that file's list).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import sys
import time
from pathlib import Path

from mayastor.bdev import NvmfDevice
from mayastor.errors import DeviceError
from mayastor.nvmf.host import ControllerOptions

try:
    from mayastor.nvmf import poll
except ImportError:  # code from before the bounded poll (speed.py's baseline)
    poll = None  # type: ignore[assignment]

WORKLOADS = ("randread", "randwrite", "seqread", "seqwrite")


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20}
    text = text.strip().lower()
    if text and text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _percentile(sorted_ns: list[int], fraction: float) -> float:
    if not sorted_ns:
        return 0.0
    index = min(len(sorted_ns) - 1, int(fraction * len(sorted_ns)))
    return sorted_ns[index] / 1000.0


async def run(args: argparse.Namespace) -> dict[str, object]:
    options = ControllerOptions(
        hostnqn=args.hostnqn,
        io_queues=args.queues,
        queue_size=max(2, min(1024, args.queue_size or args.qd)),
        header_digest=args.digests,
        data_digest=args.digests,
        disable_sq_flow_control=args.no_sq_flow_control,
        io_timeout=30.0,
    )
    device = await NvmfDevice.open(args.uri, options=options)
    try:
        bs = device.block_size
        if args.bs % bs:
            raise SystemExit(f"--bs {args.bs} is not a multiple of the block size {bs}")
        nblocks = args.bs // bs
        region = (
            device.num_blocks
            if not args.size_mb
            else min(device.num_blocks, (args.size_mb << 20) // bs)
        )
        slots = region // nblocks
        if slots < 1:
            raise SystemExit("the namespace is smaller than one I/O")
        write = args.workload.endswith("write")
        rand = args.workload.startswith("rand")
        latencies: list[int] = []
        errors = [0]
        next_seq = [0]
        stop_at = [0.0]
        loop = asyncio.get_running_loop()

        async def worker(seed: int) -> None:
            rng = random.Random(seed)
            data = os.urandom(args.bs)
            record = latencies.append
            clock = time.perf_counter_ns
            while loop.time() < stop_at[0]:
                if rand:
                    slot = rng.randrange(slots)
                else:
                    slot = next_seq[0] % slots
                    next_seq[0] += 1
                lba = slot * nblocks
                start = clock()
                try:
                    if write:
                        await device.write(lba, data)
                    else:
                        await device.read(lba, nblocks)
                except DeviceError:
                    errors[0] += 1
                    continue
                record(clock() - start)

        async def submitter(seed: int) -> None:
            """`--qd` I/Os kept in flight by callback (the way the nexus uses a child)."""
            rng = random.Random(seed)
            data = os.urandom(args.bs)
            clock = time.perf_counter_ns
            record = latencies.append
            finished = loop.create_future()
            state = {"running": args.qd}

            def start(_: object = None) -> None:
                if rand:
                    slot = rng.randrange(slots)
                else:
                    slot = next_seq[0] % slots
                    next_seq[0] += 1
                if write:
                    device.submit_write(slot * nblocks, data, done, clock())
                else:
                    device.submit_read(slot * nblocks, nblocks, done, clock())

            def done(started: int, _data: object, error: DeviceError | None) -> None:
                if error is not None:
                    errors[0] += 1
                else:
                    record(clock() - started)
                if loop.time() < stop_at[0]:
                    start()
                    return
                state["running"] -= 1
                if not state["running"]:
                    finished.set_result(None)

            for _ in range(args.qd):
                start()
            await finished

        async def load(base: int) -> None:
            if args.api == "submit":
                await submitter(base)
            else:
                await asyncio.gather(*(worker(base + i) for i in range(args.qd)))

        # A short warm-up fills the queues and the connection buffers.
        stop_at[0] = loop.time() + min(1.0, args.seconds / 5)
        await load(0)
        latencies.clear()
        errors[0] = 0
        cpu0, wall0 = _cpu_seconds(), time.perf_counter()
        stop_at[0] = loop.time() + args.seconds
        await load(1000)
        wall = time.perf_counter() - wall0
        cpu = _cpu_seconds() - cpu0
        ops = len(latencies)
        latencies.sort()
        return {
            "label": args.label,
            "uri": args.uri,
            "workload": args.workload,
            "block_size": args.bs,
            "queue_depth": args.qd,
            "queues": device.controller.io_queue_count,
            "digests": args.digests,
            "sq_flow_control": not args.no_sq_flow_control,
            "loop": args.loop,
            "api": args.api,
            "poll_budget_us": poll and poll.for_loop(asyncio.get_running_loop()).budget_us,
            "seconds": round(wall, 3),
            "ops": ops,
            "iops": round(ops / wall, 1),
            "mb_per_s": round(ops * args.bs / wall / 1e6, 2),
            "lat_p50_us": round(_percentile(latencies, 0.50), 1),
            "lat_p99_us": round(_percentile(latencies, 0.99), 1),
            "cpu_us_per_io": round(cpu / ops * 1e6, 1) if ops else None,
            "errors": errors[0],
            "python": platform.python_version(),
        }
    finally:
        await device.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("uri", help="nvmf://host:port/nqn")
    parser.add_argument("--workload", choices=WORKLOADS, default="randread")
    parser.add_argument("--bs", type=_size, default=4096, help="bytes per I/O (4k, 128k, ...)")
    parser.add_argument("--qd", type=int, default=32, help="I/Os in flight")
    parser.add_argument("--queues", type=int, default=2, help="I/O queues (TCP connections)")
    parser.add_argument("--queue-size", type=int, default=0, help="per queue (default: --qd)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--size-mb", type=int, default=0, help="use the first N MiB only")
    parser.add_argument("--digests", action="store_true", help="header and data digests")
    flow = parser.add_mutually_exclusive_group()
    flow.add_argument(
        "--sq-flow-control",
        dest="no_sq_flow_control",
        action="store_false",
        help="keep SQ flow control (every read then ends with a CapsuleResp of its own)",
    )
    flow.add_argument(
        "--no-sq-flow-control",
        dest="no_sq_flow_control",
        action="store_true",
        help="disable SQ flow control, as the io-engine does for a nexus child (the default:"
        " reads may complete with C2HData SUCCESS)",
    )
    parser.set_defaults(no_sq_flow_control=True)
    parser.add_argument("--hostnqn", default="nqn.2019-05.io.openebs:node-name:benchmark")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument(
        "--api",
        choices=("await", "submit"),
        default="await",
        help="await device.read/write per I/O, or submit_read/submit_write by callback",
    )
    parser.add_argument(
        "--poll-budget-us",
        type=float,
        default=None,
        help="microseconds the event loop busy-polls for an answer to a command in flight "
        "(0: off; default: the package's)",
    )
    parser.add_argument("--label", default="", help="what the target is, kept in the result")
    parser.add_argument("--output", type=Path, help="append the result to this JSON list")
    args = parser.parse_args(argv)
    if poll is not None and args.poll_budget_us is not None:
        poll.configure(args.poll_budget_us)
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            args.loop = "asyncio"
            result = asyncio.run(run(args))
        else:
            result = uvloop.run(run(args))
    else:
        result = asyncio.run(run(args))
    print(json.dumps(result))
    print(
        f"{result['workload']} bs={result['block_size']} qd={result['queue_depth']}: "
        f"{result['iops']} IOPS, {result['mb_per_s']} MB/s, p50 {result['lat_p50_us']} us, "
        f"p99 {result['lat_p99_us']} us, {result['cpu_us_per_io']} CPU us/IO",
        file=sys.stderr,
    )
    if args.output is not None:
        previous = json.loads(args.output.read_text()) if args.output.exists() else []
        previous.append(result)
        args.output.write_text(json.dumps(previous, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
