"""``mayastor-client``: manage one io-engine over its gRPC API.

Shaped after Mayastor's io-engine-client: ``-b/--bind HOST:PORT``, ``-o table|json``,
then a resource and an action (``pool create tpool /dev/loop8``). Exit status: 0 on
success, 1 when the io-engine refused or failed the request (the message says why),
2 for bad usage, 3 when the io-engine cannot be reached.
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc

from mayastor import __version__
from mayastor.cli import (
    bdev_commands,
    controller_commands,
    nexus_commands,
    pool_commands,
    replica_commands,
    stats_commands,
)
from mayastor.cli.context import DEFAULT_BIND, CommandError, Context, normalise_bind
from mayastor.cli.output import Printer
from mayastor.credentials import grpc_tls
from mayastor.credentials.grpc_tls import GrpcTls
from mayastor.errors import InvalidArgument

EXIT_REFUSED = 1
EXIT_UNREACHABLE = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mayastor-client",
        description="Manage a Mayastor io-engine (pools, replicas, nexuses, bdevs) over gRPC.",
        epilog=(
            "Examples:\n"
            "  mayastor-client pool create tpool /dev/loop8\n"
            "  mayastor-client replica create tpool replica1 --size=10\n"
            "  mayastor-client -o json replica list"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-b",
        "--bind",
        default=os.environ.get("MAYASTOR_ENDPOINT", DEFAULT_BIND),
        metavar="HOST:PORT",
        help="gRPC endpoint of the io-engine (default: %(default)s, or $MAYASTOR_ENDPOINT)",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=["table", "json"],
        default="table",
        help="output format (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for a reply (default: 60)"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    grpc_tls.add_flags(parser, "tls", " of the io-engine's gRPC API")
    commands = parser.add_subparsers(dest="resource", required=True, metavar="RESOURCE")
    pool_commands.register(commands)
    replica_commands.register(commands)
    nexus_commands.register(commands)
    bdev_commands.register(commands)
    controller_commands.register(commands)
    stats_commands.register(commands)
    return parser


def _unreachable(code: grpc.StatusCode, details: str) -> bool:
    """True when gRPC could not reach the io-engine at all (not: the io-engine said
    UNAVAILABLE about something else, such as a remote replica it could not connect to)."""
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return True
    return code is grpc.StatusCode.UNAVAILABLE and (
        "failed to connect to all addresses" in details or "Socket closed" in details
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        tls = GrpcTls.from_flags(args, "tls")
    except InvalidArgument as exc:
        parser.error(str(exc))
    ctx = Context(normalise_bind(args.bind), Printer(args.output), timeout=args.timeout, tls=tls)
    try:
        args.handler(ctx, args)
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        details: str = exc.details() or ""
        if _unreachable(code, details):
            print(
                f"error: cannot reach the io-engine at {ctx.bind} ({details}); "
                "is `mayastor` running there? (if it serves TLS: --tls-cert, --tls-key, --tls-ca)",
                file=sys.stderr,
            )
            return EXIT_UNREACHABLE
        print(f"error: {code.name.lower()}: {details}", file=sys.stderr)
        return EXIT_REFUSED
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        ctx.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
