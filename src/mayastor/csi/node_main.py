"""``mayastor-csi-node``: the CSI node plugin, on every node where workloads use volumes.

    mayastor-csi-node --node-name NAME \\
        [--csi-socket /var/lib/kubelet/plugins/io.openebs.csi-mayastor/csi.sock] \\
        [--rest-endpoint http://CORE:8081 --token-file FILE]

Serves the Identity and Node services on the unix socket kubelet talks to. It runs
where the kernel's nvme-tcp initiator and nvme-cli are, as root (it connects, formats
and mounts).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from mayastor.api.csi.v1 import csi_pb2_grpc
from mayastor.csi._cli import (
    add_common_flags,
    add_node_name_flag,
    add_rest_flag,
    rest_credentials,
    run_server,
)
from mayastor.csi._dhchap import RestDhchapSecret
from mayastor.csi.identity import IdentityService
from mayastor.csi.node import NodeConfig, NodeService
from mayastor.csi.server import CsiServer
from mayastor.restclient import AsyncRestClient
from mayastor.restclient.calls import api_base_url

DEFAULT_SOCKET = "/var/lib/kubelet/plugins/io.openebs.csi-mayastor/csi.sock"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mayastor-csi-node",
        description="The CSI node plugin of Mayastor (io.openebs.csi-mayastor): attaches "
        "published volumes with the kernel's NVMe/TCP initiator, formats and mounts them.",
    )
    add_node_name_flag(
        parser,
        "this node's name: the CSI node id, and the host NQN "
        "nqn.2019-05.io.openebs:node-name:NAME the kernel connects as (default $NODE_NAME)",
    )
    parser.add_argument(
        "--max-volumes",
        type=int,
        default=0,
        metavar="N",
        help="the most volumes the CO may attach to this node; 0 for no limit (default)",
    )
    add_rest_flag(
        parser,
        required=False,
        purpose="; when given, the node's DH-HMAC-CHAP secret is asked of it (a core agent "
        "with --dhchap; an admin token) and the kernel proves it on every connect",
    )
    add_common_flags(parser, DEFAULT_SOCKET)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.max_volumes < 0:
        parser.error("--max-volumes must not be negative")
    credentials = None
    if args.rest_endpoint:
        try:
            api_base_url(args.rest_endpoint)
        except ValueError as exc:
            parser.error(str(exc))
        credentials = rest_credentials(parser, args)

    async def make() -> tuple[CsiServer, Callable[[], Awaitable[None]]]:
        rest = None
        secret = None
        if args.rest_endpoint:
            rest = AsyncRestClient(args.rest_endpoint, credentials=credentials)
            secret = RestDhchapSecret(rest, args.node_name)
        node = NodeService(
            NodeConfig(node_name=args.node_name, max_volumes=args.max_volumes, dhchap_secret=secret)
        )

        async def missing() -> list[str]:
            return node.missing()

        identity = IdentityService(missing, "node")
        server = CsiServer(
            Path(args.csi_socket),
            [
                (csi_pb2_grpc.add_IdentityServicer_to_server, identity),
                (csi_pb2_grpc.add_NodeServicer_to_server, node),
            ],
        )

        async def close() -> None:
            if rest is not None:
                await rest.aclose()

        return server, close

    return run_server(args.log_level, make)


if __name__ == "__main__":
    sys.exit(main())
