"""Per-node DH-HMAC-CHAP secrets, made and kept by the core agent (``--dhchap``).

Every node that connects to storage, an io-engine node (its nexuses connect to remote
replicas) or an app node (its kernel connects to a published nexus), gets one secret of
its own, made on first need with `DhchapSecret.generate` and kept in the cluster store
(`NodeSecretSpec`), so a restarted or replaced core agent shares with the same secrets.
A replica is shared with the secret of the node whose nexus opens it; a nexus is
published with the secrets of its frontend nodes. Without ``--dhchap`` nothing is made
and shares carry no secrets, as before.

How a node learns its secret: an io-engine in the reply to its registration (the core's
gRPC; over TLS when configured, else in clear, which is sound only on loopback or a
trusted network); an app node's CSI plugin asks the REST API for it with an admin
token (`POST /v0/app-nodes/{id}/dhchap-secret`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from mayastor.api.v1 import common_pb2
from mayastor.control.cluster import Cluster
from mayastor.control.specs import NodeSecretSpec, node_nqn
from mayastor.nvmf.auth import DhchapSecret

log = logging.getLogger(__name__)

_LOCK_KIND = "NodeSecret"


async def node_secret(cluster: Cluster, node: str) -> str | None:
    """The secret of `node` in ``DHHC-1:`` form, made and saved on first need; None when
    the cluster does not authenticate hosts.

    Raises:
        StoreUnavailable: a new secret could not be saved (nothing is shared with it).
    """
    if not cluster.dhchap:
        return None
    known = cluster.specs.get(NodeSecretSpec, node)
    if known is not None:
        return known.secret
    async with cluster.locks.hold(_LOCK_KIND, node):
        known = cluster.specs.get(NodeSecretSpec, node)
        if known is not None:
            return known.secret
        spec = NodeSecretSpec(id=node, secret=DhchapSecret.generate().format())
        await cluster.specs.save(spec)
        log.info("node %s: a DH-HMAC-CHAP secret was made for it", node)
        return spec.secret


async def host_secrets(cluster: Cluster, nodes: Iterable[str]) -> list[common_pb2.HostSecret]:
    """The `HostSecret`s that admit `nodes` (their host NQNs); empty without ``--dhchap``."""
    secrets = []
    for node in nodes:
        secret = await node_secret(cluster, node)
        if secret is not None:
            secrets.append(common_pb2.HostSecret(host_nqn=node_nqn(node), secret=secret))
    return secrets
