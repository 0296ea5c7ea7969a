"""`mayastor-agent-core`: the control plane's core agent, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import signal
import sys
from pathlib import Path

from mayastor.control.agent import AgentConfig, CoreAgent
from mayastor.control.store import open_store, parse_etcd_endpoints
from mayastor.credentials import grpc_tls, rest_tls
from mayastor.credentials.grpc_tls import GrpcTls
from mayastor.credentials.rest_tls import RestServerTls
from mayastor.credentials.rest_tokens import TokenTable
from mayastor.errors import InvalidArgument, MayastorError

log = logging.getLogger("mayastor-agent-core")

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """``10s``, ``500ms``, ``2m`` or plain seconds, as seconds (more than 0)."""
    match = _DURATION.match(text.strip())
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 10s, 500ms or 2m")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_percent(text: str) -> float:
    """``250%`` (or ``2.5``) as a fraction."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage such as 250%") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
    return value


def _endpoint(
    text: str, default_port: int, flag: str, parser: argparse.ArgumentParser
) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(default_port)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        parser.error(f"{flag} {text!r} is not HOST:PORT")
    return host, int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mayastor-agent-core",
        description=(
            "The Mayastor control plane's core agent: keeps the desired state (pools, "
            "volumes) in the cluster store, places and creates replicas, publishes volumes, "
            "reconciles the io-engines with the specs, and serves the REST API (/v0) and "
            "the io-engines' registration API (gRPC). A second agent on the same store "
            "waits, and takes over when the first dies."
        ),
        epilog="Example: mayastor-agent-core --store etcd://127.0.0.1:2379 --cluster-id prod",
    )
    parser.add_argument(
        "--store",
        default="",
        metavar="etcd://HOST:PORT[,HOST:PORT...] | FILE",
        help="the cluster store: etcd, or the file of an embedded store "
        "(default: STATE-DIR/store.db)",
    )
    parser.add_argument(
        "--state-dir",
        default="/var/lib/mayastor/core",
        metavar="DIR",
        help="where the embedded store lives (default: %(default)s)",
    )
    parser.add_argument(
        "-g",
        "--grpc-endpoint",
        default="127.0.0.1:50051",
        metavar="HOST:PORT",
        help="the gRPC API io-engines register with (default: %(default)s)",
    )
    parser.add_argument(
        "--rest-endpoint",
        default="127.0.0.1:8081",
        metavar="HOST:PORT",
        help="the REST API (default: %(default)s)",
    )
    parser.add_argument("--cluster-id", default="mayastor", help="the cluster's id in store keys")
    parser.add_argument(
        "--namespace", default="mayastor", help="the namespace in store keys (default: %(default)s)"
    )
    parser.add_argument(
        "--node-deadline",
        type=parse_duration,
        default=10.0,
        metavar="DURATION",
        help="a node that has not registered for this long is Offline (default: 10s)",
    )
    parser.add_argument(
        "--poll-period",
        type=parse_duration,
        default=2.0,
        metavar="DURATION",
        help="how often the io-engines' pools, replicas and nexuses are read (default: 2s)",
    )
    parser.add_argument(
        "--reconcile-period",
        type=parse_duration,
        default=10.0,
        metavar="DURATION",
        help="time between reconcile passes while there is work (default: 10s)",
    )
    parser.add_argument(
        "--reconcile-idle-period",
        type=parse_duration,
        default=30.0,
        metavar="DURATION",
        help="time between reconcile passes when there was nothing to do (default: 30s)",
    )
    parser.add_argument(
        "--lease-ttl",
        type=parse_duration,
        default=10.0,
        metavar="DURATION",
        help="how long the store's lease outlives an agent that stopped renewing it; a "
        "standby agent takes over within it (default: 10s)",
    )
    parser.add_argument(
        "--faulted-child-wait",
        type=parse_duration,
        default=600.0,
        metavar="DURATION",
        help="how long a faulted replica of a published volume may stay away (its node "
        "down) before it is replaced by a new one on another node (default: 10m)",
    )
    parser.add_argument(
        "--max-rebuilds",
        type=int,
        default=None,
        metavar="N",
        help="rebuilds the control plane lets run at once in the cluster (default: no limit)",
    )
    parser.add_argument(
        "--no-switch-over",
        dest="switch_over",
        action="store_false",
        help="leave the targets of an Offline node where they are (by default each moves to "
        "another node, and the hosts' NVMe multipath follows); app nodes' failed-path "
        "reports are still served",
    )
    parser.add_argument(
        "--dhchap",
        action="store_true",
        help="NVMe in-band authentication: give every node a DH-HMAC-CHAP secret of its "
        "own (kept in the store) and share every replica and nexus only with the secrets "
        "of the nodes that connect to it; io-engines get theirs when they register",
    )
    parser.add_argument(
        "--switch-over-wait",
        type=parse_duration,
        default=5.0,
        metavar="DURATION",
        help="how long a node must stay Offline before the targets on it move to other "
        "nodes (an io-engine back within it gets its nexuses made again in place; "
        "default: 5s)",
    )
    parser.add_argument(
        "--events",
        default="",
        metavar="nats://HOST:PORT",
        help="publish events (node, volume, replica, rebuild, target) on this NATS server "
        "(default: kept in the store and logged only)",
    )
    parser.add_argument(
        "--pool-commitment",
        type=parse_percent,
        default=2.5,
        metavar="PERCENT",
        help="thin provisioning: the most a pool may promise, of its capacity (default: 250%%)",
    )
    parser.add_argument(
        "--volume-commitment-initial",
        type=parse_percent,
        default=0.4,
        metavar="PERCENT",
        help="thin provisioning: the free space a new thin replica needs, of its size "
        "(default: 40%%)",
    )
    parser.add_argument(
        "-l",
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level (default: %(default)s)",
    )
    grpc_tls.add_flags(parser, "grpc_tls", " of the gRPC API and of the calls to io-engines")
    rest_tls.add_flags(parser)
    return parser


def config_from_args(argv: list[str] | None = None) -> AgentConfig:
    parser = build_parser()
    args = parser.parse_args(argv)
    grpc_host, grpc_port = _endpoint(args.grpc_endpoint, 50051, "--grpc-endpoint", parser)
    rest_host, rest_port = _endpoint(args.rest_endpoint, 8081, "--rest-endpoint", parser)
    store = args.store or str(Path(args.state_dir) / "store.db")
    if store.startswith("etcd://"):
        try:
            parse_etcd_endpoints(store)
        except InvalidArgument as exc:
            parser.error(f"--store: {exc}")
    if args.events and not args.events.startswith("nats://"):
        parser.error(f"--events {args.events!r} is not nats://HOST:PORT")
    if args.max_rebuilds is not None and args.max_rebuilds < 1:
        parser.error("--max-rebuilds must be at least 1")
    for what, value in (("--cluster-id", args.cluster_id), ("--namespace", args.namespace)):
        if not value or "/" in value:
            parser.error(f"{what} must be a non-empty name without '/'")
    try:
        tls = GrpcTls.from_flags(args, "grpc_tls")
        https = RestServerTls.from_flags(args)
        tokens = TokenTable.load(args.rest_token_file) if args.rest_token_file else None
    except InvalidArgument as exc:
        parser.error(str(exc))
    return AgentConfig(
        store=store,
        grpc_host=grpc_host,
        grpc_port=grpc_port,
        rest_host=rest_host,
        rest_port=rest_port,
        cluster_id=args.cluster_id,
        namespace=args.namespace,
        node_deadline=args.node_deadline,
        poll_period=args.poll_period,
        reconcile_busy=args.reconcile_period,
        reconcile_idle=args.reconcile_idle_period,
        lease_ttl=args.lease_ttl,
        faulted_child_wait=args.faulted_child_wait,
        max_rebuilds=args.max_rebuilds,
        switch_over=args.switch_over,
        switch_over_wait=args.switch_over_wait,
        events_url=args.events,
        pool_commitment=args.pool_commitment,
        volume_commitment_initial=args.volume_commitment_initial,
        log_level=args.log_level,
        grpc_tls=tls,
        rest_tls=https,
        rest_tokens=tokens,
        dhchap=args.dhchap,
    )


async def serve(config: AgentConfig) -> int:
    """Run one core agent; 0 after a clean stop, 2 when its lease was lost."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    agent = CoreAgent(config, open_store(config.store))
    starting = asyncio.ensure_future(agent.start())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait([starting, stopping], return_when=asyncio.FIRST_COMPLETED)
    lost = False
    try:
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        else:
            starting.result()
            lost = await agent.wait(stop)
    finally:
        stopping.cancel()
        await agent.stop()
    if lost:
        log.error("the store's lease was lost to another core agent; stopping")
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    config = config_from_args(argv)
    logging.basicConfig(
        level=getattr(logging, config.log_level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        return runner(serve(config))
    except MayastorError as exc:
        log.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
