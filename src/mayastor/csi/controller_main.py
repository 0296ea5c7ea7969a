"""``mayastor-csi-controller``: the CSI controller plugin, a client of the core agent's REST API.

    mayastor-csi-controller --rest-endpoint http://CORE:8081 \\
        [--csi-socket /var/lib/csi/sockets/pluginproxy/csi.sock]

Serves the Identity and Controller services on the unix socket the CSI sidecars
(external-provisioner, -attacher, -resizer) talk to.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from mayastor.api.csi.v1 import csi_pb2_grpc
from mayastor.csi._cli import add_common_flags, add_rest_flag, rest_credentials, run_server
from mayastor.csi.controller import ControllerService
from mayastor.csi.identity import IdentityService
from mayastor.csi.server import CsiServer
from mayastor.restclient import DEFAULT_TIMEOUT, AsyncRestClient

DEFAULT_SOCKET = "/var/lib/csi/sockets/pluginproxy/csi.sock"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mayastor-csi-controller",
        description="The CSI controller plugin of Mayastor (io.openebs.csi-mayastor): "
        "creates, publishes, grows and deletes volumes through the core agent's REST API.",
    )
    add_rest_flag(parser)
    parser.add_argument(
        "--rest-timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="how long to wait for each REST reply (default %(default)s)",
    )
    add_common_flags(parser, DEFAULT_SOCKET)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    credentials = rest_credentials(parser, args)
    try:
        AsyncRestClient(args.rest_endpoint).base_url  # noqa: B018 - checks the URL early
    except ValueError as exc:
        build_parser().error(f"--rest-endpoint: {exc}")

    async def make() -> tuple[CsiServer, Callable[[], Awaitable[None]]]:
        rest = AsyncRestClient(
            args.rest_endpoint, timeout=args.rest_timeout, credentials=credentials
        )
        controller = ControllerService(rest)
        identity = IdentityService(controller.missing, "controller")
        server = CsiServer(
            Path(args.csi_socket),
            [
                (csi_pb2_grpc.add_IdentityServicer_to_server, identity),
                (csi_pb2_grpc.add_ControllerServicer_to_server, controller),
            ],
        )
        return server, rest.aclose

    return run_server(args.log_level, make)


if __name__ == "__main__":
    sys.exit(main())
