"""What the two CSI plugin commands share: logging, the event loop, serving until a signal."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
from collections.abc import Awaitable, Callable

from mayastor.credentials import rest_client
from mayastor.credentials.rest_client import RestClientCredentials
from mayastor.csi.server import CsiServer, SocketInUse, serve_until_stopped
from mayastor.errors import InvalidArgument

log = logging.getLogger("mayastor-csi")


_NODE_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$")


def node_name(text: str) -> str:
    """A Kubernetes node name, for argparse."""
    if not _NODE_NAME.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a node name (letters, digits, '.', '_', '-')"
        )
    return text


def add_node_name_flag(parser: argparse.ArgumentParser, help: str) -> None:
    """``--node-name NAME`` (default $NODE_NAME, required without it)."""
    parser.add_argument(
        "--node-name",
        type=node_name,
        default=os.environ.get("NODE_NAME"),
        required="NODE_NAME" not in os.environ,
        metavar="NAME",
        help=help,
    )


def add_rest_flag(
    parser: argparse.ArgumentParser,
    *,
    required: bool = True,
    purpose: str = "",
) -> None:
    """``--rest-endpoint`` and the credentials shown to it (token, CA, certificate)."""
    parser.add_argument(
        "--rest-endpoint",
        required=required,
        metavar="URL",
        help=f"the core agent's REST API, e.g. http://127.0.0.1:8081{purpose}",
    )
    rest_client.add_flags(parser.add_argument_group("REST credentials"))


def rest_credentials(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> RestClientCredentials:
    """The credentials `add_rest_flag` took; a bad one exits with usage."""
    try:
        return RestClientCredentials.from_flags(args)
    except InvalidArgument as exc:
        parser.error(str(exc))


def add_log_level_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-l",
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level (default %(default)s)",
    )


def add_common_flags(parser: argparse.ArgumentParser, default_socket: str) -> None:
    parser.add_argument(
        "--csi-socket",
        default=default_socket,
        metavar="PATH",
        help="the unix socket to serve CSI on (default %(default)s); a stale socket file "
        "left by a killed plugin is replaced",
    )
    add_log_level_flag(parser)


def run_server(
    log_level: str,
    make_server: Callable[[], Awaitable[tuple[CsiServer, Callable[[], Awaitable[None]]]]],
) -> int:
    """Configure logging and serve until SIGTERM or SIGINT.

    Args:
        make_server: builds the server (inside the loop) and what closes its resources.

    Returns:
        the exit status: 0 after a clean stop, 1 when the socket is taken or cannot be bound.
    """
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    logging.getLogger("grpc").setLevel(max(logging.INFO, logging.getLogger().level))

    async def serve() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        server, close = await make_server()
        try:
            await serve_until_stopped(server, stop)
        except (SocketInUse, FileExistsError, RuntimeError) as exc:
            log.error("cannot serve on %s: %s", server.socket_path, exc)
            return 1
        finally:
            await close()
        log.info("stopped")
        return 0

    return asyncio.run(serve())
