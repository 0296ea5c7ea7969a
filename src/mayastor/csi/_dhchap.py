"""This app node's DH-HMAC-CHAP secret, for ``nvme connect --dhchap-secret``.

A core agent started with ``--dhchap`` publishes every volume only to the secrets of its
frontend nodes, one secret per node. The node plugin and the ha-node agent ask the REST
API for theirs (``POST /v0/app-nodes/{node}/dhchap-secret``, an admin token's call)
rather than through CSI: CSI's own secrets come from one Kubernetes Secret per
StorageClass, not one per node, and a ControllerPublishVolume publish context is
copied into the VolumeAttachment's status, which anyone who may read attachments sees.
The secret is asked for at the first connect and kept in memory (it never changes for
a node); a core agent without ``--dhchap`` answers 412, and then the kernel connects
without a secret, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from mayastor.csi.errors import Unavailable
from mayastor.restclient import AsyncRestClient, PreconditionFailed, RestClientError

log = logging.getLogger(__name__)

DhchapSecretSource = Callable[[], Awaitable[str | None]]
"""Answers the secret to connect with, or None to connect without one."""


class RestDhchapSecret:
    """The secret of `node_name`, asked of the core agent's REST API once.

    Args:
        rest: the REST client (with an admin token when the API requires tokens).
        node_name: this app node's name.
    """

    def __init__(self, rest: AsyncRestClient, node_name: str) -> None:
        self.rest = rest
        self.node_name = node_name
        self._secret: str | None = None

    async def __call__(self) -> str | None:
        """The secret; None when the core agent does not authenticate hosts.

        Raises:
            Unavailable: the REST API could not be asked, or refused (a read-only
                token, say); the CO calls again.
        """
        if self._secret is not None:
            return self._secret
        try:
            reply = await self.rest.app_node_dhchap_secret(self.node_name)
        except PreconditionFailed:
            return None
        except RestClientError as exc:
            raise Unavailable(
                f"cannot get the DH-HMAC-CHAP secret of node {self.node_name} from the "
                f"core agent's REST API (it needs an admin token): {exc}"
            ) from exc
        secret = reply.get("secret") if isinstance(reply, dict) else None
        if not isinstance(secret, str) or not secret.startswith("DHHC-1:"):
            raise Unavailable(f"the REST API sent no DH-HMAC-CHAP secret for {self.node_name}")
        log.info("node %s: DH-HMAC-CHAP secret received from the core agent", self.node_name)
        self._secret = secret
        return secret
