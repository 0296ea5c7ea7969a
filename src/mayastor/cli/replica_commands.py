"""``mayastor-client replica create|destroy|list|resize|share|unshare``.

Replicas are named within their pool (``replica create tpool replica1 --size=10``);
the commands look up the uuid the API wants.
"""

from __future__ import annotations

import argparse

from google.protobuf.wrappers_pb2 import StringValue

from mayastor.api.v1 import common_pb2, replica_pb2
from mayastor.cli.context import CommandError, Context
from mayastor.cli.host_secrets import add_host_secret_argument
from mayastor.cli.sizes import format_size, parse_size

_SHARE = {"none": common_pb2.NONE, "nvmf": common_pb2.NVMF}


def find_replica(ctx: Context, pool: str, name: str) -> replica_pb2.Replica:
    options = replica_pb2.ListReplicaOptions(
        name=StringValue(value=name), poolname=StringValue(value=pool)
    )
    found = ctx.call(ctx.replicas.ListReplicas, options).replicas
    if not found:
        raise CommandError(f"replica {name!r} not found in pool {pool!r}")
    return found[0]  # type: ignore[no-any-return]


def share_name(share: int) -> str:
    return "nvmf" if share == common_pb2.NVMF else "none"


def create(ctx: Context, args: argparse.Namespace) -> None:
    request = replica_pb2.CreateReplicaRequest(
        name=args.name,
        uuid=args.uuid or "",
        pooluuid=args.pool,
        size=args.size,
        thin=args.thin,
        share=_SHARE[args.share],
        allowed_hosts=args.allowed_host,
        host_secrets=args.host_secret,
    )
    if args.entity_id:
        request.entity_id = args.entity_id
    replica = ctx.call(ctx.replicas.CreateReplica, request)
    ctx.printer.message(replica, replica.uri if args.share != "none" else None)


def destroy(ctx: Context, args: argparse.Namespace) -> None:
    if not (args.name or args.uuid):
        raise CommandError("replica destroy: give the replica's name or --uuid")
    request = replica_pb2.DestroyReplicaRequest(pool_name=args.pool)
    if args.uuid:
        request.uuid = args.uuid
    else:
        request.name = args.name
    ctx.call(ctx.replicas.DestroyReplica, request)


def list_(ctx: Context, args: argparse.Namespace) -> None:
    options = replica_pb2.ListReplicaOptions()
    if args.pool:
        options.poolname.value = args.pool
    replicas = ctx.call(ctx.replicas.ListReplicas, options).replicas
    ctx.printer.messages(
        replicas,
        ["POOL", "NAME", "UUID", "THIN", "SHARE", "SIZE", "ALLOCATED", "URI"],
        lambda r: [
            r.poolname,
            r.name,
            r.uuid,
            str(r.thin).lower(),
            share_name(r.share),
            format_size(r.size),
            format_size(r.usage.allocated_bytes),
            r.uri,
        ],
        "No replicas have been created",
    )


def resize(ctx: Context, args: argparse.Namespace) -> None:
    replica = find_replica(ctx, args.pool, args.name)
    request = replica_pb2.ResizeReplicaRequest(uuid=replica.uuid, requested_size=args.size)
    resized = ctx.call(ctx.replicas.ResizeReplica, request)
    ctx.printer.message(resized, f"replica {args.name} is now {format_size(resized.size)}")


def share(ctx: Context, args: argparse.Namespace) -> None:
    replica = find_replica(ctx, args.pool, args.name)
    request = replica_pb2.ShareReplicaRequest(
        uuid=replica.uuid,
        share=common_pb2.NVMF,
        allowed_hosts=args.allowed_host,
        host_secrets=args.host_secret,
    )
    shared = ctx.call(ctx.replicas.ShareReplica, request)
    ctx.printer.message(shared, shared.uri)


def unshare(ctx: Context, args: argparse.Namespace) -> None:
    replica = find_replica(ctx, args.pool, args.name)
    unshared = ctx.call(
        ctx.replicas.UnshareReplica, replica_pb2.UnshareReplicaRequest(uuid=replica.uuid)
    )
    ctx.printer.message(unshared, unshared.uri)


def _size(text: str) -> int:
    return parse_size(text)


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    replica = commands.add_parser("replica", help="replicas (logical volumes in a pool)")
    sub = replica.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = sub.add_parser("create", help="create a replica in a pool")
    p.add_argument("pool", help="pool name (or uuid)")
    p.add_argument("name", help="replica name, unique in its pool")
    p.add_argument("--size", type=_size, required=True, help="size: MiB, or with a unit (2GiB)")
    p.add_argument("--thin", action="store_true", help="allocate clusters on first write")
    p.add_argument("--uuid", help="replica uuid (generated if not given)")
    p.add_argument("--share", choices=sorted(_SHARE), default="none", help="export it at once")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NQN")
    p.add_argument("--entity-id", help="the control plane's volume id")
    add_host_secret_argument(p)
    p.set_defaults(handler=create)

    p = sub.add_parser("destroy", help="destroy a replica and free its space")
    p.add_argument("pool")
    p.add_argument("name", nargs="?", help="replica name (or give --uuid)")
    p.add_argument("--uuid")
    p.set_defaults(handler=destroy)

    p = sub.add_parser("list", help="list replicas")
    p.add_argument("--pool", help="only the replicas of this pool")
    p.set_defaults(handler=list_)

    p = sub.add_parser("resize", help="grow a replica (or shrink it where no data is lost)")
    p.add_argument("pool")
    p.add_argument("name")
    p.add_argument("size", type=_size, help="new size: MiB, or with a unit")
    p.set_defaults(handler=resize)

    p = sub.add_parser("share", help="export a replica over NVMe/TCP; prints its URI")
    p.add_argument("pool")
    p.add_argument("name")
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NQN",
        help="host NQN allowed to connect; repeatable (default: the io-engines' own)",
    )
    add_host_secret_argument(p)
    p.set_defaults(handler=share)

    p = sub.add_parser("unshare", help="stop exporting a replica")
    p.add_argument("pool")
    p.add_argument("name")
    p.set_defaults(handler=unshare)
