"""A small host-side process serving one file-backed device through our NVMe/TCP target.

For the kernel-initiator tests: the guest connects to it through 10.0.2.2. Run as

    python -m tests.interop.target_runner --file F --size-mb N --nqn NQN [--port P]
        [--allow-host HOSTNQN ...] [--uring]

It prints JSON lines on stdout: ``{"event": "ready", "port": P, ...}`` once listening,
then ``{"event": "controllers", ...}`` each time the subsystem's controllers change,
and serves until stdin closes or it gets SIGTERM/SIGINT, when it closes the target
and the device and prints ``{"event": "closed"}``.

The engine wiring will replace this runner with a real `mayastor` replica; the guest
scripts take the port, NQN and expected size as parameters so they work with both.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import sys
from pathlib import Path

from mayastor.bdev import AioDevice, BlockDevice, UringDevice
from mayastor.target import NvmfTarget


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}, default=str), flush=True)


def make_backing_file(path: Path, size_mb: int) -> None:
    """Create `path` as a sparse file of `size_mb` MiB unless it exists."""
    if not path.exists():
        with open(path, "wb") as fh:
            fh.truncate(size_mb << 20)


async def serve(args: argparse.Namespace) -> None:
    path = Path(args.file)
    make_backing_file(path, args.size_mb)
    device: BlockDevice
    if args.uring:
        device = await UringDevice.open(str(path))
    else:
        device = await AioDevice.open(str(path))
    target = NvmfTarget(args.address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.readline() else None)
    try:
        port = await target.listen(args.port)
        hosts = args.allow_host or None
        target.add_subsystem(args.nqn, device, port=port, allowed_hosts=hosts)
        emit(
            "ready",
            port=port,
            nqn=args.nqn,
            blocks=device.num_blocks,
            block_size=device.block_size,
            uuid=str(device.uuid),
        )
        seen: list[dict[str, object]] = []
        while not stop.is_set():
            now = [dataclasses.asdict(info) for info in target.controllers(args.nqn)]
            if now != seen:
                seen = now
                emit("controllers", controllers=now)
            try:
                await asyncio.wait_for(stop.wait(), 0.1)
            except TimeoutError:
                pass
    finally:
        loop.remove_reader(sys.stdin.fileno())
        await target.close()
        await device.close()
        emit("closed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", required=True, help="backing file (created sparse if missing)")
    parser.add_argument("--size-mb", type=int, default=64)
    parser.add_argument("--nqn", required=True)
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--allow-host", action="append", default=[], help="repeatable")
    parser.add_argument("--uring", action="store_true", help="io_uring instead of aio")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args))
    except ImportError:
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
