"""The DH-HMAC-CHAP secrets a replica or nexus is shared with, by subsystem NQN.

The io-engine keeps them in a file of its own (mode 0600, written whole and renamed
into place) so that a replica shared again after a restart, from what its pool
records, still admits only hosts that prove their secret; the pool itself records
no secret. Secrets are never returned by the API, only whether a share has them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from mayastor.errors import InvalidArgument
from mayastor.nvmf.auth import ControllerKeys, DhchapSecret, SecretError

log = logging.getLogger(__name__)

HostKeys = dict[str, ControllerKeys]


class HostSecretMessage(Protocol):
    """The fields of the API's HostSecret message."""

    host_nqn: str
    secret: str
    ctrl_secret: str


def host_keys_from(messages: Iterable[HostSecretMessage]) -> HostKeys:
    """Read the secrets of a share or publish request.

    Raises:
        InvalidArgument: a host NQN is missing or given twice, or a secret is not
            a valid ``DHHC-1:…`` secret (the message says which host).
    """
    keys: HostKeys = {}
    for message in messages:
        host = message.host_nqn
        if not host:
            raise InvalidArgument("a host secret needs its host NQN")
        if host in keys:
            raise InvalidArgument(f"host {host} is given two secrets")
        try:
            secret = DhchapSecret.parse(message.secret)
            ctrl = DhchapSecret.parse(message.ctrl_secret) if message.ctrl_secret else None
        except SecretError as exc:
            raise InvalidArgument(f"the secret of host {host}: {exc}") from exc
        keys[host] = ControllerKeys(secret, ctrl)
    return keys


class ShareSecrets:
    """Secrets by subsystem NQN, in `path` (None: in memory only).

    Args:
        path: the file; read at once when it exists.

    Raises:
        InvalidArgument: the file exists and cannot be read as secrets.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._by_nqn: dict[str, HostKeys] = {}
        if path is not None and path.exists():
            self._by_nqn = _load(path)

    def keys(self, nqn: str) -> HostKeys:
        """The secrets `nqn` is shared with (empty: none)."""
        return dict(self._by_nqn.get(nqn, {}))

    def set(self, nqn: str, keys: Mapping[str, ControllerKeys]) -> None:
        """Record the secrets of `nqn` (empty forgets them) and write the file."""
        if keys:
            self._by_nqn[nqn] = dict(keys)
        elif self._by_nqn.pop(nqn, None) is None:
            return
        self._save()

    def forget(self, nqn: str) -> None:
        self.set(nqn, {})

    def _save(self) -> None:
        if self.path is None:
            return
        data = {
            nqn: {
                host: {
                    "secret": k.host_secret.format(),
                    "ctrl_secret": k.ctrl_secret.format() if k.ctrl_secret else None,
                }
                for host, k in keys.items()
            }
            for nqn, keys in sorted(self._by_nqn.items())
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


def _load(path: Path) -> dict[str, HostKeys]:
    try:
        data = json.loads(path.read_text())
        return {
            nqn: {
                host: ControllerKeys(
                    DhchapSecret.parse(entry["secret"]),
                    DhchapSecret.parse(entry["ctrl_secret"]) if entry.get("ctrl_secret") else None,
                )
                for host, entry in hosts.items()
            }
            for nqn, hosts in data.items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidArgument(f"{path}: cannot read the DH-HMAC-CHAP secrets: {exc}") from exc
