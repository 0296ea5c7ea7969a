"""``mayastor-ha-node``: the ha-node agent, beside the CSI node plugin on every node where
workloads use volumes.

    mayastor-ha-node --node-name NAME --rest-endpoint http://CORE:8081 \\
        [--address-map ADVERTISED=DIALLED] [--failure-grace 2] [--period 0.5]

Registers the node as an app node with the core agent, then watches the kernel's NVMe
paths to volume targets (sysfs); a volume whose paths all stay down for the grace
period is reported to the core agent, which moves its target, and the agent connects
the new path so the kernel's native NVMe multipath resumes the I/O. Runs as root where
nvme-cli is, with the CSI node plugin's node name.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from pathlib import Path

from mayastor.csi._cli import (
    add_log_level_flag,
    add_node_name_flag,
    add_rest_flag,
    rest_credentials,
)
from mayastor.csi._nvme import Sysfs
from mayastor.csi.ha_node import AddressMap, HaNodeAgent, PathWatch
from mayastor.restclient import AsyncRestClient
from mayastor.restclient.calls import api_base_url

log = logging.getLogger("mayastor-ha-node")


def _seconds(text: str) -> float:
    try:
        value = float(text.removesuffix("s"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not within 0..3600 seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mayastor-ha-node",
        description="The ha-node agent of Mayastor: reports this node's failed NVMe paths to "
        "the core agent and connects the paths it answers with, so native NVMe multipath "
        "follows a volume's target to its new node.",
    )
    add_node_name_flag(parser, "this node's name, as the CSI node plugin's (default $NODE_NAME)")
    add_rest_flag(parser)
    parser.add_argument(
        "--endpoint",
        default=socket.gethostname(),
        metavar="HOST[:PORT]",
        help="what the node registers as its endpoint (default: the host name)",
    )
    parser.add_argument(
        "--address-map",
        action="append",
        default=[],
        metavar="ADVERTISED=DIALLED",
        help="dial DIALLED where the control plane names ADVERTISED (a node behind NAT); "
        "repeatable",
    )
    parser.add_argument(
        "--failure-grace",
        type=_seconds,
        default=2.0,
        metavar="SECONDS",
        help="how long all paths of a volume may be down (the kernel reconnecting) before "
        "the path is reported (default: 2)",
    )
    parser.add_argument(
        "--retry",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="time between reports of a volume whose paths stay down (default: 5)",
    )
    parser.add_argument(
        "--period",
        type=_seconds,
        default=0.5,
        metavar="SECONDS",
        help="time between looks at the kernel's paths (default: 0.5)",
    )
    parser.add_argument("--sysfs", default="/sys", metavar="PATH", help=argparse.SUPPRESS)
    add_log_level_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        address_map = AddressMap.parse(args.address_map)
        api_base_url(args.rest_endpoint)
    except ValueError as exc:
        parser.error(str(exc))
    credentials = rest_credentials(parser, args)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)

    async def serve() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        async with AsyncRestClient(args.rest_endpoint, credentials=credentials) as rest:
            agent = HaNodeAgent(
                args.node_name,
                rest,
                Sysfs(Path(args.sysfs)),
                endpoint=args.endpoint,
                address_map=address_map,
                watch=PathWatch(failure_grace=args.failure_grace, retry=args.retry),
                period=args.period,
            )
            log.info("watching the NVMe paths of app node %s", args.node_name)
            await agent.run(stop)
        log.info("stopped (%d path(s) replaced)", agent.replaced)
        return 0

    return asyncio.run(serve())


if __name__ == "__main__":
    sys.exit(main())
