"""The edge of the CSI plugins: gRPC on a unix socket, and errors mapped to status codes.

Every servicer derives from `CsiServicer`, which wraps its RPC methods so that a
`CsiError` becomes its status code (`mayastor.csi.errors.GRPC_STATUS`) with a message
naming the volume, the step and the device, logged once here; anything else becomes
INTERNAL with its traceback in the log. `CsiServer` serves the servicers on a unix
socket (the CO's only way in), replacing a socket file left by a plugin that was
killed, but never one another live plugin still answers on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc

from mayastor.csi.errors import (
    Aborted,
    AlreadyExists,
    CsiError,
    FailedPrecondition,
    NotFound,
    grpc_status_of,
)

log = logging.getLogger(__name__)

_QUIET = (NotFound, AlreadyExists, Aborted, FailedPrecondition)
"""Refusals a CO meets in its ordinary course (retries, checks): logged at info."""

_Method = TypeVar("_Method", bound=Callable[..., Awaitable[Any]])


def _mapped(method: _Method) -> _Method:
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except CsiError as exc:
            code = grpc_status_of(exc)
            level = logging.INFO if isinstance(exc, _QUIET) else logging.WARNING
            log.log(level, "%s refused (%s): %s", name, code.name, exc)
            await context.abort(code, str(exc))
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            log.exception("%s failed unexpectedly", name)
            await context.abort(grpc.StatusCode.INTERNAL, f"{name}: internal error: {exc!r}")

    return wrapper  # type: ignore[return-value]


class CsiServicer:
    """Mixin for servicers: wraps each async RPC method (the CamelCase ones, as the
    services name them) with the error table."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if name[:1].isupper() and inspect.iscoroutinefunction(value):
                setattr(cls, name, _mapped(value))


class SocketInUse(Exception):
    """Another process answers on the socket path."""


def claim_socket(path: Path) -> None:
    """Make `path` free for a new socket: create its folder, remove a dead socket.

    Raises:
        SocketInUse: a process accepts connections on it.
        FileExistsError: something that is not a socket is there.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(f"{path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink(missing_ok=True)
            log.info("removed the stale socket %s", path)
            return
    raise SocketInUse(f"another process serves on {path}")


Registrar = Callable[[Any, grpc.aio.Server], None]


class CsiServer:
    """gRPC services on a unix socket.

    Args:
        socket_path: where to listen.
        services: (``add_XServicer_to_server``, servicer) pairs.
    """

    def __init__(self, socket_path: Path, services: list[tuple[Registrar, Any]]) -> None:
        self.socket_path = Path(socket_path)
        self.server = grpc.aio.server()
        for register, servicer in services:
            register(servicer, self.server)

    async def start(self) -> None:
        """Listen on the socket.

        Raises:
            SocketInUse: another plugin serves there.
            RuntimeError: gRPC could not bind it.
        """
        claim_socket(self.socket_path)
        if self.server.add_insecure_port(f"unix://{self.socket_path}") == 0:
            raise RuntimeError(f"gRPC cannot listen on {self.socket_path}")
        await self.server.start()
        with contextlib.suppress(OSError):
            os.chmod(self.socket_path, 0o660)
        log.info("serving CSI on unix://%s", self.socket_path)

    async def stop(self, grace: float = 5.0) -> None:
        await self.server.stop(grace)
        self.socket_path.unlink(missing_ok=True)


async def serve_until_stopped(server: CsiServer, stop: asyncio.Event) -> None:
    """Start `server`, wait for `stop`, then stop it (calls in flight get `grace`)."""
    await server.start()
    try:
        await stop.wait()
    finally:
        await server.stop()
