"""``mayastor-client pool create|destroy|export|import|grow|list``."""

from __future__ import annotations

import argparse
import sys

from google.protobuf.wrappers_pb2 import StringValue

from mayastor.api.v1 import pool_pb2
from mayastor.cli.context import Context
from mayastor.cli.sizes import format_size, parse_size

_STATE: dict[int, str] = {
    pool_pb2.POOL_ONLINE: "online",
    pool_pb2.POOL_DEGRADED: "degraded",
    pool_pb2.POOL_FAULTED: "faulted",
}


def state_name(state: int) -> str:
    return _STATE.get(state, "unknown")


def _uuid(value: str | None) -> StringValue | None:
    return StringValue(value=value) if value else None


def create(ctx: Context, args: argparse.Namespace) -> None:
    request = pool_pb2.CreatePoolRequest(name=args.name, disks=args.disks, uuid=_uuid(args.uuid))
    if args.cluster_size is not None:
        request.cluster_size = args.cluster_size
    if args.max_expansion:
        request.md_args.max_expansion = args.max_expansion
    request.force = args.force
    pool = ctx.call(ctx.pools.CreatePool, request)
    ctx.printer.message(pool, None)
    if not ctx.printer.json:
        for warning in pool.warnings:
            print(f"warning: pool {pool.name}: {warning}", file=sys.stderr)


def destroy(ctx: Context, args: argparse.Namespace) -> None:
    ctx.call(ctx.pools.DestroyPool, pool_pb2.DestroyPoolRequest(name=args.name))


def export(ctx: Context, args: argparse.Namespace) -> None:
    ctx.call(ctx.pools.ExportPool, pool_pb2.ExportPoolRequest(name=args.name))


def import_(ctx: Context, args: argparse.Namespace) -> None:
    request = pool_pb2.ImportPoolRequest(name=args.name, disks=args.disks, uuid=_uuid(args.uuid))
    pool = ctx.call(ctx.pools.ImportPool, request)
    ctx.printer.message(pool, None)


def grow(ctx: Context, args: argparse.Namespace) -> None:
    reply = ctx.call(ctx.pools.GrowPool, pool_pb2.GrowPoolRequest(name=args.name))
    before, after = reply.previous_pool.capacity, reply.current_pool.capacity
    if after > before:
        text = f"pool {args.name} grew from {format_size(before)} to {format_size(after)}"
    else:
        text = f"pool {args.name} did not grow: its disk has no new space"
    ctx.printer.message(reply, text)


def list_(ctx: Context, args: argparse.Namespace) -> None:
    options = pool_pb2.ListPoolOptions(name=_uuid(args.name))
    pools = ctx.call(ctx.pools.ListPools, options).pools
    ctx.printer.messages(
        pools,
        ["NAME", "UUID", "STATE", "CAPACITY", "USED", "COMMITTED", "DISKS"],
        lambda p: [
            p.name,
            p.uuid,
            state_name(p.state),
            format_size(p.capacity),
            format_size(p.used),
            format_size(p.committed),
            " ".join(p.disks),
        ],
        "No pools have been created",
    )
    if not ctx.printer.json:
        for pool in pools:
            for warning in pool.warnings:
                print(f"warning: pool {pool.name}: {warning}", file=ctx.printer.out)


def _cluster_size(text: str) -> int:
    return parse_size(text, default_unit="b")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pool = commands.add_parser("pool", help="storage pools")
    sub = pool.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = sub.add_parser("create", help="create a pool on a disk (imports it if already there)")
    p.add_argument("name", help="pool name")
    p.add_argument("disks", nargs="+", metavar="DISK", help="a path or bdev URI (one disk)")
    p.add_argument("--uuid", help="pool uuid (generated if not given)")
    p.add_argument(
        "--cluster-size",
        type=_cluster_size,
        help="allocation unit, a multiple of 1MiB (default 4MiB; bare numbers are bytes)",
    )
    p.add_argument("--max-expansion", help="how far the pool may grow later: 4x, or 2TiB")
    p.add_argument(
        "--force",
        action="store_true",
        help="create even on a disk that holds a file system, partition table, LVM, RAID, "
        "LUKS, swap or another pool: what it holds is overwritten",
    )
    p.set_defaults(handler=create)

    p = sub.add_parser("destroy", help="destroy a pool and wipe its metadata")
    p.add_argument("name")
    p.set_defaults(handler=destroy)

    p = sub.add_parser("export", help="close a pool, leaving it intact on its disk")
    p.add_argument("name")
    p.set_defaults(handler=export)

    p = sub.add_parser("import", help="open a pool that is already on a disk")
    p.add_argument("name")
    p.add_argument("disks", nargs="+", metavar="DISK")
    p.add_argument("--uuid")
    p.set_defaults(handler=import_)

    p = sub.add_parser("grow", help="take the new space after the pool's disk grew")
    p.add_argument("name")
    p.set_defaults(handler=grow)

    p = sub.add_parser("list", help="list pools")
    p.add_argument("--name", help="only the pool of this name")
    p.set_defaults(handler=list_)
