"""DH-HMAC-CHAP for one queue connection of our initiator, after its Fabrics Connect.

The messages and their checks are `mayastor.nvmf.auth`'s; this module only carries
them in Authentication Send and Receive commands on the queue that is being
authenticated, and turns every way it can end badly into `AuthenticationFailed`.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mayastor.errors import AuthenticationFailed, DeviceError, InvalidArgument
from mayastor.nvmf.auth import (
    AuthError,
    AuthRejected,
    DhchapSecret,
    HostAuthentication,
    SequenceNumbers,
)
from mayastor.nvmf.spec import NO_DATA, Authentication, NvmeStatus

if TYPE_CHECKING:
    from mayastor.nvmf.host._connection import QueueConnection

RECEIVE_ROOM = 4096
"""Allocation length of each Authentication Receive (room for any message; Linux too)."""
_SEQNUMS = SequenceNumbers(os.urandom)


@dataclass(frozen=True, slots=True)
class HostSecrets:
    """Our DH-HMAC-CHAP secrets for one subsystem.

    Attributes:
        host: the secret we prove (``nvme connect --dhchap-secret``).
        ctrl: when given, the controller must prove it too (``--dhchap-ctrl-secret``).
    """

    host: DhchapSecret
    ctrl: DhchapSecret | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.host, DhchapSecret):
            raise InvalidArgument("the host secret must be a DhchapSecret")
        if self.ctrl is not None and not isinstance(self.ctrl, DhchapSecret):
            raise InvalidArgument("the controller secret must be a DhchapSecret")


async def authenticate(
    conn: QueueConnection,
    secrets: HostSecrets | None,
    *,
    required: bool,
    hostnqn: str,
    subnqn: str,
    name: str,
) -> None:
    """Authenticate the freshly connected queue `conn` when the controller asks (ATR).

    Args:
        conn: the queue, right after a successful Fabrics Connect.
        secrets: ours; None when we hold none.
        required: the Connect completion's ATR bit.

    Raises:
        AuthenticationFailed: authentication is required and we have no secret; the
            controller refused ours; it did not prove its secret, or did not ask to
            authenticate although we hold a controller secret for it.
        PathLost, IoTimeout: the queue failed meanwhile.
    """
    if not required:
        if secrets is not None and secrets.ctrl is not None:
            raise AuthenticationFailed(
                f"{name}: {subnqn} does not authenticate, so it cannot prove the "
                "controller secret we hold for it",
                device=name,
            )
        return
    if secrets is None:
        raise AuthenticationFailed(
            f"{name}: {subnqn} requires DH-HMAC-CHAP authentication and we have no secret",
            device=name,
        )
    machine = HostAuthentication(
        secrets.host,
        secrets.ctrl,
        hostnqn=hostnqn,
        subnqn=subnqn,
        tid=int.from_bytes(os.urandom(2), "little"),
        seqnums=_SEQNUMS,
    )
    try:
        await _send(conn, machine.negotiate(), name)
        await _send(conn, machine.challenge(await _receive(conn, name)), name)
        success2 = machine.success1(await _receive(conn, name))
        if success2 is not None:
            await _send(conn, success2, name)
    except AuthRejected as exc:
        raise AuthenticationFailed(
            f"{name}: {subnqn} refused our DH-HMAC-CHAP authentication ({exc.reason.name})",
            device=name,
        ) from exc
    except AuthError as exc:
        with contextlib.suppress(DeviceError):
            await _send(conn, machine.failure2(exc.reason), name)
        raise AuthenticationFailed(
            f"{name}: DH-HMAC-CHAP with {subnqn} failed: {exc}", device=name
        ) from exc


async def _send(conn: QueueConnection, message: bytes, name: str) -> None:
    cmd = Authentication(True, len(message)).to_command(0, NO_DATA)
    status, _, _, _ = await conn.execute_command(cmd, data_out=message)
    _check(status, "Authentication Send", name)


async def _receive(conn: QueueConnection, name: str) -> bytes:
    cmd = Authentication(False, RECEIVE_ROOM).to_command(0, NO_DATA)
    status, _, _, data = await conn.execute_command(cmd, read_length=RECEIVE_ROOM)
    _check(status, "Authentication Receive", name)
    return bytes(data or b"")


def _check(status: int, what: str, name: str) -> None:
    if status:
        described = NvmeStatus.from_field(status).describe()
        raise AuthenticationFailed(f"{name}: {what} failed: {described}", device=name)
