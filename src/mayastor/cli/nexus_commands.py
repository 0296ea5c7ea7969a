"""``mayastor-client nexus ...`` and ``mayastor-client rebuild ...``.

Shaped like Mayastor's io-engine-client: ``nexus create <uuid> <size> <child-uri>...``
(size in MiB by default, or with a unit; ``--resv-key``, ``--preempt-key``,
``--resv-type`` and ``--preempt-policy`` for fencing with NVMe reservations),
``nexus children <uuid>`` for the state, reason and rebuild progress of each child,
``rebuild state|stats|... <uuid> <uri>``. A nexus superseded by another (fenced) shows
the state ``fenced``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from google.protobuf.wrappers_pb2 import StringValue

from mayastor.api.v1 import common_pb2, nexus_pb2
from mayastor.cli.context import CommandError, Context
from mayastor.cli.host_secrets import add_host_secret_argument
from mayastor.cli.sizes import format_size, parse_size


def _enum_name(enum: object, value: int, prefix: str) -> str:
    name: str = enum.Name(value)  # type: ignore[attr-defined]
    return name.removeprefix(prefix).lower()


def nexus_state(value: int) -> str:
    return _enum_name(nexus_pb2.NexusState, value, "NEXUS_")


def nexus_state_of(nexus: nexus_pb2.Nexus) -> str:
    """The state to show: "fenced" for a nexus another one superseded."""
    return "fenced" if nexus.fenced else nexus_state(nexus.state)


_RESV_TYPES = {
    name.lower(): number
    for name, number in nexus_pb2.NvmeReservation.items()
    if number  # not Reserved
}
_PREEMPT_POLICIES = {"argkey": nexus_pb2.ArgKey, "holder": nexus_pb2.Holder}


def _key(text: str) -> int:
    """A reservation key: decimal or 0x-hex, 0 to 2**64-1."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a key (decimal or 0x-hex)") from None
    if not 0 <= value < 1 << 64:
        raise argparse.ArgumentTypeError(f"{text!r} does not fit 64 bits")
    return value


def _choice(table: Mapping[str, int], what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        found = table.get(text.replace("-", "").replace("_", "").lower())
        if found is None and text.isdigit() and int(text) in table.values():
            found = int(text)
        if found is None:
            names = ", ".join(sorted(table))
            raise argparse.ArgumentTypeError(f"{text!r} is not a {what} ({names})")
        return found

    return parse


def child_state(child: nexus_pb2.Child) -> str:
    state = _enum_name(nexus_pb2.ChildState, child.state, "CHILD_STATE_")
    if child.state_reason != nexus_pb2.CHILD_STATE_REASON_NONE:
        reason = _enum_name(nexus_pb2.ChildStateReason, child.state_reason, "CHILD_STATE_REASON_")
        return f"{state} ({reason})"
    return state


def find(ctx: Context, nexus_uuid: str) -> nexus_pb2.Nexus:
    options = nexus_pb2.ListNexusOptions(uuid=StringValue(value=nexus_uuid))
    found = ctx.call(ctx.nexus.ListNexus, options).nexus_list
    if not found:
        raise CommandError(f"nexus {nexus_uuid} not found")
    return found[0]  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------- nexus


def create(ctx: Context, args: argparse.Namespace) -> None:
    request = nexus_pb2.CreateNexusRequest(
        name=args.name or args.uuid,
        uuid=args.uuid,
        size=args.size,
        children=args.children,
        resvKey=args.resv_key,
        preemptKey=args.preempt_key,
        preempt_policy=args.preempt_policy,
    )
    if args.resv_type is not None:
        request.resv_type = args.resv_type
    nexus = ctx.call(ctx.nexus.CreateNexus, request).nexus
    ctx.printer.message(nexus, f"nexus {nexus.uuid} {nexus_state_of(nexus)}")


def destroy(ctx: Context, args: argparse.Namespace) -> None:
    ctx.call(ctx.nexus.DestroyNexus, nexus_pb2.DestroyNexusRequest(uuid=args.uuid))


def shutdown(ctx: Context, args: argparse.Namespace) -> None:
    nexus = ctx.call(ctx.nexus.ShutdownNexus, nexus_pb2.ShutdownNexusRequest(uuid=args.uuid))
    ctx.printer.message(nexus.nexus, f"nexus {args.uuid} {nexus_state_of(nexus.nexus)}")


def resize(ctx: Context, args: argparse.Namespace) -> None:
    request = nexus_pb2.ResizeNexusRequest(uuid=args.uuid, requested_size=args.size)
    nexus = ctx.call(ctx.nexus.ResizeNexus, request).nexus
    ctx.printer.message(nexus, f"nexus {nexus.uuid} is now {format_size(nexus.size)}")


def list_(ctx: Context, args: argparse.Namespace) -> None:
    nexuses = ctx.call(ctx.nexus.ListNexus, nexus_pb2.ListNexusOptions()).nexus_list
    ctx.printer.messages(
        nexuses,
        ["NAME", "UUID", "SIZE", "STATE", "REBUILDS", "CHILDREN", "PATH"],
        lambda n: [
            n.name,
            n.uuid,
            format_size(n.size),
            nexus_state_of(n),
            n.rebuilds,
            len(n.children),
            n.device_uri or "-",
        ],
        "No nexus found",
    )


def children(ctx: Context, args: argparse.Namespace) -> None:
    nexus = find(ctx, args.uuid)
    ctx.printer.messages(
        nexus.children,
        ["NAME", "STATE", "HEALTHY", "REBUILD"],
        lambda c: [
            c.uri,
            child_state(c),
            str(c.healthy).lower(),
            f"{c.rebuild_progress}%" if c.rebuild_progress >= 0 else "-",
        ],
        "No children",
    )


def publish(ctx: Context, args: argparse.Namespace) -> None:
    request = nexus_pb2.PublishNexusRequest(
        uuid=args.uuid,
        share=common_pb2.NVMF,
        allowed_hosts=args.allowed_host,
        host_secrets=args.host_secret,
    )
    nexus = ctx.call(ctx.nexus.PublishNexus, request).nexus
    ctx.printer.message(nexus, nexus.device_uri)


def unpublish(ctx: Context, args: argparse.Namespace) -> None:
    nexus = ctx.call(ctx.nexus.UnpublishNexus, nexus_pb2.UnpublishNexusRequest(uuid=args.uuid))
    ctx.printer.message(nexus.nexus, None)


def add(ctx: Context, args: argparse.Namespace) -> None:
    request = nexus_pb2.AddChildNexusRequest(uuid=args.uuid, uri=args.uri, norebuild=args.norebuild)
    nexus = ctx.call(ctx.nexus.AddChildNexus, request).nexus
    child = next(c for c in nexus.children if c.uri == args.uri)
    ctx.printer.message(nexus, f"{args.uri} {child_state(child)}")


def remove(ctx: Context, args: argparse.Namespace) -> None:
    request = nexus_pb2.RemoveChildNexusRequest(uuid=args.uuid, uri=args.uri)
    ctx.printer.message(ctx.call(ctx.nexus.RemoveChildNexus, request).nexus, None)


_ACTIONS = {
    "online": nexus_pb2.Online,
    "offline": nexus_pb2.Offline,
    "fault": nexus_pb2.OfflinePermanent,
}


def child_operation(ctx: Context, args: argparse.Namespace) -> None:
    request = nexus_pb2.ChildOperationRequest(
        nexus_uuid=args.uuid, uri=args.uri, action=_ACTIONS[args.operation]
    )
    nexus = ctx.call(ctx.nexus.ChildOperation, request).nexus
    child = next((c for c in nexus.children if c.uri == args.uri), None)
    ctx.printer.message(nexus, f"{args.uri} {child_state(child)}" if child else None)


# ----------------------------------------------------------------------------- rebuild


def _when(stamp: Timestamp) -> str:
    if not stamp.seconds and not stamp.nanos:
        return "-"
    return datetime.fromtimestamp(stamp.ToNanoseconds() / 1e9, UTC).strftime("%H:%M:%S")


def rebuild(ctx: Context, args: argparse.Namespace) -> None:
    stub = ctx.nexus
    if args.action == "history":
        history = ctx.call(stub.GetRebuildHistory, nexus_pb2.RebuildHistoryRequest(uuid=args.uuid))
        ctx.printer.messages(
            history.records,
            ["CHILD", "SOURCE", "STATE", "PARTIAL", "TRANSFERRED", "START", "END", "REASON"],
            lambda r: [
                r.child_uri,
                r.src_uri,
                _enum_name(nexus_pb2.RebuildJobState, r.state, "").lower(),
                str(r.is_partial).lower(),
                format_size(r.blocks_transferred * r.block_size),
                _when(r.start_time),
                _when(r.end_time),
                r.reason or "-",
            ],
            "No rebuilds have run",
        )
        return
    if not args.uri:
        raise CommandError(f"rebuild {args.action} needs the child URI")
    uuid, uri = args.uuid, args.uri
    if args.action == "state":
        reply = ctx.call(
            stub.GetRebuildState, nexus_pb2.RebuildStateRequest(nexus_uuid=uuid, uri=uri)
        )
        ctx.printer.message(reply, reply.state)
    elif args.action == "stats":
        stats = ctx.call(
            stub.GetRebuildStats, nexus_pb2.RebuildStatsRequest(nexus_uuid=uuid, uri=uri)
        )
        ctx.printer.message(
            stats,
            f"{stats.progress}% ({stats.blocks_recovered}/{stats.blocks_total} blocks, "
            f"{'partial' if stats.is_partial else 'full'}, {stats.mb_per_s:.1f} MB/s)",
        )
    else:
        call, request_type = {
            "start": (stub.StartRebuild, nexus_pb2.StartRebuildRequest),
            "stop": (stub.StopRebuild, nexus_pb2.StopRebuildRequest),
            "pause": (stub.PauseRebuild, nexus_pb2.PauseRebuildRequest),
            "resume": (stub.ResumeRebuild, nexus_pb2.ResumeRebuildRequest),
        }[args.action]
        reply = ctx.call(call, request_type(nexus_uuid=uuid, uri=uri))
        ctx.printer.message(reply.nexus, None)


def _size(text: str) -> int:
    return parse_size(text)


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    nexus = commands.add_parser("nexus", help="nexuses: volumes mirrored over replicas")
    sub = nexus.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = sub.add_parser("create", help="create a nexus over child URIs")
    p.add_argument("uuid", help="the nexus (volume) uuid")
    p.add_argument("size", type=_size, help="size: MiB, or with a unit (1GiB)")
    p.add_argument("children", nargs="+", metavar="CHILD", help="bdev:///, nvmf://, aio://...")
    p.add_argument("--name", help="nexus name (default: its uuid)")
    p.add_argument(
        "--resv-key",
        type=_key,
        default=0,
        metavar="KEY",
        help="NVMe reservation key to hold on every child (fencing); 0: none",
    )
    p.add_argument(
        "--preempt-key",
        type=_key,
        default=0,
        metavar="KEY",
        help="with --preempt-policy arg-key: the key of the old holder to preempt",
    )
    p.add_argument(
        "--resv-type",
        type=_choice(_RESV_TYPES, "reservation type"),
        metavar="TYPE",
        help="reservation type held (default ExclusiveAccess): "
        + ", ".join(nexus_pb2.NvmeReservation.keys()[1:]),
    )
    p.add_argument(
        "--preempt-policy",
        type=_choice(_PREEMPT_POLICIES, "preemption policy"),
        default=nexus_pb2.ArgKey,
        metavar="POLICY",
        help="how a child reserved by another host is taken: arg-key (preempt --preempt-key,"
        " the default) or holder (preempt whoever holds it)",
    )
    p.set_defaults(handler=create)

    for name, handler, text in (
        ("destroy", destroy, "destroy a nexus (its replicas stay)"),
        ("shutdown", shutdown, "stop serving I/O and record a clean shutdown"),
        ("unpublish", unpublish, "stop exporting a nexus"),
        ("children", children, "the children of a nexus: state, reason, rebuild progress"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("uuid")
        p.set_defaults(handler=handler)

    p = sub.add_parser("resize", help="grow a nexus after its replicas were grown")
    p.add_argument("uuid")
    p.add_argument("size", type=_size, help="new size: MiB, or with a unit (2GiB)")
    p.set_defaults(handler=resize)

    p = sub.add_parser("list", help="list nexuses")
    p.set_defaults(handler=list_)

    p = sub.add_parser("publish", help="export a nexus over NVMe/TCP; prints its URI")
    p.add_argument("uuid")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NQN")
    add_host_secret_argument(p)
    p.set_defaults(handler=publish)

    p = sub.add_parser("add", help="add a child: it joins the write path, then is rebuilt")
    p.add_argument("uuid")
    p.add_argument("uri")
    p.add_argument("--norebuild", action="store_true", help="do not start the rebuild")
    p.set_defaults(handler=add)

    p = sub.add_parser("remove", help="remove a child")
    p.add_argument("uuid")
    p.add_argument("uri")
    p.set_defaults(handler=remove)

    p = sub.add_parser("child", help="take a child offline, bring it online, or fault it")
    p.add_argument("operation", choices=sorted(_ACTIONS))
    p.add_argument("uuid")
    p.add_argument("uri")
    p.set_defaults(handler=child_operation)

    p = commands.add_parser("rebuild", help="rebuilds of nexus children")
    p.add_argument(
        "action", choices=["start", "stop", "pause", "resume", "state", "stats", "history"]
    )
    p.add_argument("uuid", help="the nexus uuid")
    p.add_argument("uri", nargs="?", help="the child being rebuilt (not for history)")
    p.set_defaults(handler=rebuild)
