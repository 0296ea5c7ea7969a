"""Our target in a process of its own, serving one file, for tests that kill it.

    python -m tests.integration.nvmf_host.target_process --file F --nqn NQN --uuid U
        [--port P]

Prints ``READY <port>`` once it listens, then serves until SIGTERM or SIGINT (or is
killed). The file is opened with the aio driver, so a write the target acknowledged
is in the file (the page cache) even if the process is then killed.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import uuid

from mayastor.bdev import AioDevice
from mayastor.target import NvmfTarget


async def serve(args: argparse.Namespace) -> None:
    device = await AioDevice.open(args.file, uuid=uuid.UUID(args.uuid))
    target = NvmfTarget("127.0.0.1")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        port = await target.listen(args.port)
        target.add_subsystem(args.nqn, device, port=port)
        print(f"READY {port}", flush=True)
        await stop.wait()
    finally:
        await target.close()
        await device.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--file", required=True)
    parser.add_argument("--nqn", required=True)
    parser.add_argument("--uuid", required=True)
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
