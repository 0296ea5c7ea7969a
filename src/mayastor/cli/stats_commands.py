"""``mayastor-client stats [pools|replicas] [--reset]``: I/O counters."""

from __future__ import annotations

import argparse

from google.protobuf.empty_pb2 import Empty

from mayastor.api.v1 import stats_pb2
from mayastor.cli.context import Context
from mayastor.cli.sizes import format_size

_HEADERS = ["NAME", "READS", "READ", "WRITES", "WRITTEN", "UNMAPS", "AVG_READ_US", "AVG_WRITE_US"]


def _row(name: str, s: stats_pb2.IoStats) -> list[object]:
    per_us = (s.tick_rate or 1_000_000_000) / 1e6
    avg_r = s.read_latency_ticks / per_us / s.num_read_ops if s.num_read_ops else 0.0
    avg_w = s.write_latency_ticks / per_us / s.num_write_ops if s.num_write_ops else 0.0
    return [
        name,
        s.num_read_ops,
        format_size(s.bytes_read),
        s.num_write_ops,
        format_size(s.bytes_written),
        s.num_unmap_ops,
        f"{avg_r:.1f}",
        f"{avg_w:.1f}",
    ]


def show(ctx: Context, args: argparse.Namespace) -> None:
    if args.reset:
        ctx.call(ctx.stats.ResetIoStats, Empty())
        ctx.printer.message(Empty(), "I/O counters reset")
        return
    option = stats_pb2.ListStatsOption()
    if args.name:
        option.name = args.name
    if args.kind == "replicas":
        replicas = ctx.call(ctx.stats.GetReplicaIoStats, option).stats
        ctx.printer.messages(
            replicas,
            ["POOL", *_HEADERS],
            lambda r: [r.pool_name, *_row(r.stats.name, r.stats)],
            "No replicas",
        )
    else:
        pools = ctx.call(ctx.stats.GetPoolIoStats, option).stats
        ctx.printer.messages(pools, _HEADERS, lambda s: _row(s.name, s), "No pools")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = commands.add_parser("stats", help="I/O counters of pools or replicas")
    p.add_argument("kind", nargs="?", choices=["pools", "replicas"], default="pools")
    p.add_argument("--name", help="only the object of this name")
    p.add_argument("--reset", action="store_true", help="reset every counter of the io-engine")
    p.set_defaults(handler=show)
