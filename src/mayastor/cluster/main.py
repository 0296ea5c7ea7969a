"""`mayastor-cluster up|down|status`: the whole product on one machine."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from mayastor.cluster.launcher import OneMachineCluster
from mayastor.credentials.rest_tokens import Role
from mayastor.errors import MayastorError

DEFAULT_FOLDER = "/var/tmp/mayastor-cluster"
_SIZE = re.compile(r"^(\d+)\s*(B|KiB|MiB|GiB|TiB)?$")
_UNITS = {None: 1 << 20, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def parse_size(text: str) -> int:
    """``1GiB``, ``512MiB`` or a number of MiB, as bytes."""
    match = _SIZE.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 1GiB or 512MiB")
    return int(match.group(1)) * _UNITS[match.group(2)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mayastor-cluster",
        description=(
            "Run the whole product on this machine: a core agent on its embedded store and "
            "N io-engines with a pool each on sparse files, all on loopback. `up` again on "
            "the same folder brings back every pool and volume."
        ),
    )
    parser.add_argument(
        "--dir",
        default=DEFAULT_FOLDER,
        type=Path,
        help="the cluster's folder: layout, store, disks, logs (default: %(default)s)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="start the cluster (or what of it is not running)")
    up.add_argument("--nodes", type=int, default=3, help="io-engines (default: %(default)s)")
    up.add_argument(
        "--disk-size",
        type=parse_size,
        default=1 << 30,
        metavar="SIZE",
        help="size of each node's disk file, e.g. 2GiB (default: 1GiB); a new cluster only",
    )
    up.add_argument("--rest-port", type=int, default=8081, help="REST port (default: %(default)s)")
    up.add_argument(
        "--grpc-port", type=int, default=50051, help="core agent's gRPC port (default: %(default)s)"
    )
    up.add_argument(
        "--engine-port-base",
        type=int,
        default=10124,
        help="node N uses this + 3(N-1) for gRPC, +1 for replicas, +2 for the nexus "
        "(default: %(default)s)",
    )
    up.add_argument(
        "--secure",
        action="store_true",
        help="a new cluster only: make a private CA and REST tokens in DIR/tls; gRPC over "
        "TLS with client certificates, REST over HTTPS with bearer tokens",
    )
    sub.add_parser("down", help="stop every process of the cluster (data stays in --dir)")
    sub.add_parser("status", help="which processes of the cluster run")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cluster = OneMachineCluster(args.dir)
    try:
        if args.command == "up":
            layout = cluster.up(
                nodes=args.nodes,
                disk_size=args.disk_size,
                rest_port=args.rest_port,
                grpc_port=args.grpc_port,
                engine_port_base=args.engine_port_base,
                secure=args.secure,
            )
            print(f"\nREST API: {layout.rest_url}/v0")
            print(f"OpenAPI document: {layout.rest_url}/v0/api/spec")
            rest = f"-r {layout.rest_url}"
            if layout.secure:
                security = cluster.security()
                rest += " " + " ".join(security.kubectl_flags())
                print(f"read-only token: {security.token_file(Role.READ_ONLY)}")
                client = security.certificate("client")
                print(
                    f"mayastor-client -b 127.0.0.1:{layout.nodes[0].grpc_port} "
                    + " ".join(client.flags("--tls"))
                    + " pool list"
                )
            print("Try:")
            print(f"  kubectl-mayastor {rest} get nodes")
            print(f"  kubectl-mayastor {rest} get pools")
            replicas = min(3, len(layout.nodes))
            print(
                f"  kubectl-mayastor {rest} create volume $(uuidgen) --size 64MiB "
                f"--replicas {replicas}"
            )
            print(f"  kubectl-mayastor {rest} get volumes")
            print(f"  mayastor-cluster --dir {args.dir} down")
        elif args.command == "down":
            cluster.down()
        else:
            found = cluster.status()
            if not found:
                print(f"no cluster in {args.dir}")
                return 1
            for name, running in found.items():
                print(f"{name:12} {'running' if running else 'stopped'}")
    except MayastorError as exc:
        print(f"mayastor-cluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
