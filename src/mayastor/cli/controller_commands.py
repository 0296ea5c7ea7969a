"""``mayastor-client controller list``: NVMe controllers hosts have on this io-engine."""

from __future__ import annotations

import argparse

from google.protobuf.empty_pb2 import Empty

from mayastor.cli.context import Context


def list_(ctx: Context, args: argparse.Namespace) -> None:
    controllers = ctx.call(ctx.host.ListNvmfControllers, Empty()).controllers
    ctx.printer.messages(
        controllers,
        ["SUBSYSTEM", "CNTLID", "HOST", "QUEUES", "DIGESTS", "STATE", "PEER"],
        lambda c: [
            c.subnqn,
            c.cntlid,
            c.hostnqn,
            c.queues,
            "+".join(n for n, on in (("header", c.header_digest), ("data", c.data_digest)) if on)
            or "-",
            c.state,
            c.peer,
        ],
        "No hosts are connected",
    )


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    controller = commands.add_parser("controller", help="NVMe controllers of connected hosts")
    sub = controller.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = sub.add_parser("list", help="which hosts are connected to which replica or nexus")
    p.set_defaults(handler=list_)
