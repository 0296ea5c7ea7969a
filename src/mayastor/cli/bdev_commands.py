"""``mayastor-client bdev create|destroy|list``: block devices opened by URI."""

from __future__ import annotations

import argparse

from google.protobuf.wrappers_pb2 import StringValue

from mayastor.api.v1 import bdev_pb2
from mayastor.cli.context import Context
from mayastor.cli.sizes import format_size


def create(ctx: Context, args: argparse.Namespace) -> None:
    reply = ctx.call(ctx.bdevs.CreateBdev, bdev_pb2.CreateBdevRequest(uri=args.uri))
    ctx.printer.message(reply.bdev, reply.bdev.name)


def destroy(ctx: Context, args: argparse.Namespace) -> None:
    ctx.call(ctx.bdevs.DestroyBdev, bdev_pb2.DestroyBdevRequest(uri=args.uri))


def list_(ctx: Context, args: argparse.Namespace) -> None:
    options = bdev_pb2.ListBdevOptions()
    if args.name:
        options.name.CopyFrom(StringValue(value=args.name))
    bdevs = ctx.call(ctx.bdevs.ListBdevs, options).bdevs
    ctx.printer.messages(
        bdevs,
        ["NAME", "UUID", "DRIVER", "BLK_SIZE", "SIZE", "CLAIMED_BY", "URI"],
        lambda b: [
            b.name,
            b.uuid,
            b.driver,
            b.blk_size,
            format_size(b.num_blocks * b.blk_size),
            b.claimed_by or "-",
            b.uri,
        ],
        "No bdevs found",
    )


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    bdev = commands.add_parser("bdev", help="block devices (malloc://, aio://, uring://, nvmf://)")
    sub = bdev.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = sub.add_parser("create", help="open a block device from a URI; prints its name")
    p.add_argument(
        "uri", help="e.g. malloc:///m0?size_mb=64, aio:///tmp/disk.img, nvmf://host:port/nqn"
    )
    p.set_defaults(handler=create)

    p = sub.add_parser("destroy", help="close a block device created with bdev create")
    p.add_argument("uri", help="its URI or name")
    p.set_defaults(handler=destroy)

    p = sub.add_parser("list", help="list block devices")
    p.add_argument("--name")
    p.set_defaults(handler=list_)
