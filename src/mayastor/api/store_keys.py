"""Where each kind of object lives in the cluster store, after Mayastor's key layout.

Part of the contract between the core agent and the io-engines: both write nexus info
under these keys (the io-engines directly to etcd, or through the core agent).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROOT = "/openebs.io/mayastor/apis/v0"
NEXUS_INFO_KIND = "NexusInfo"
SUPERSEDED_BY = "superseded_by"
"""The field the core agent adds to the nexus info of a nexus it replaced while that
nexus could not be reached (the uuid of the new one): writes of the old nexus are
refused from then on, directly in etcd or through the core agent, and it is fenced."""


@dataclass(frozen=True)
class StoreKeys:
    """Keys of one cluster and namespace.

    Attributes:
        cluster_id: the cluster's id (``--cluster-id``).
        namespace: the namespace within the cluster (Kubernetes' namespace of the release).
    """

    cluster_id: str
    namespace: str = "mayastor"

    def __post_init__(self) -> None:
        for what, value in (("cluster id", self.cluster_id), ("namespace", self.namespace)):
            if not value or "/" in value:
                raise ValueError(f"{what} {value!r} must be a non-empty name without '/'")

    @property
    def base(self) -> str:
        return f"{ROOT}/clusters/{self.cluster_id}/namespaces/{self.namespace}"

    def prefix(self, kind: str) -> str:
        """The prefix under which every object of `kind` lives (ends with '/')."""
        return f"{self.base}/{kind}/"

    def key(self, kind: str, object_id: str) -> str:
        """The key of one object."""
        return self.prefix(kind) + object_id

    def nexus_info(self, nexus_uuid: object) -> str:
        """The key of a nexus's nexus info."""
        return self.key(NEXUS_INFO_KIND, str(nexus_uuid))

    def leader(self) -> str:
        """The key of the lease that says which core agent acts."""
        return f"{self.base}/CoreAgentLeader"


_ENDPOINT = re.compile(
    r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?))"
    r":(?P<port>[0-9]{1,5})"
)


def parse_etcd_url(url: str) -> list[tuple[str, int]]:
    """``etcd://HOST:PORT[,HOST:PORT…]`` (the scheme may be left out) as (host, port) pairs.

    A host is a name, an IPv4 address or an IPv6 address in brackets.

    Raises:
        ValueError: an endpoint that is not HOST:PORT with a port in 1..65535 (a user
            name, a path or another scheme included).
    """
    endpoints = []
    for part in url.removeprefix("etcd://").rstrip("/").split(","):
        match = _ENDPOINT.fullmatch(part.strip())
        port = int(match.group("port")) if match else 0
        if match is None or not 0 < port < 65536:
            raise ValueError(f"etcd endpoint {part!r} in {url!r} is not HOST:PORT")
        endpoints.append((match.group("ipv6") or match.group("host"), port))
    return endpoints
