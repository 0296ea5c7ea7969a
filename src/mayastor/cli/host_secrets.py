"""``--host-secret NQN=SECRET[,CTRL_SECRET]``: DH-HMAC-CHAP secrets for a share or a
publish, as the API's HostSecret messages (the io-engine checks the secrets)."""

from __future__ import annotations

import argparse

from mayastor.api.v1 import common_pb2


def add_host_secret_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host-secret",
        action="append",
        default=[],
        type=_host_secret,
        metavar="NQN=SECRET[,CTRL_SECRET]",
        help="admit host NQN only once it proves SECRET (DHHC-1:..., as nvme "
        "gen-dhchap-key prints it); with CTRL_SECRET the target proves that one to the "
        "host (bidirectional); repeatable",
    )


def _host_secret(text: str) -> common_pb2.HostSecret:
    host, sep, secrets = text.partition("=")
    secret, _, ctrl = secrets.partition(",")
    if not sep or not host or not secret:
        raise argparse.ArgumentTypeError(f"{text!r} is not NQN=SECRET[,CTRL_SECRET]")
    return common_pb2.HostSecret(host_nqn=host, secret=secret, ctrl_secret=ctrl)
