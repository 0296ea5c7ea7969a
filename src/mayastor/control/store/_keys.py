"""Where each kind of object lives in the store, after Mayastor's key layout."""

from __future__ import annotations

from dataclasses import dataclass

from mayastor.errors import InvalidArgument

ROOT = "/openebs.io/mayastor/apis/v0"


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
                raise InvalidArgument(f"{what} {value!r} must be a non-empty name without '/'")

    @property
    def base(self) -> str:
        return f"{ROOT}/clusters/{self.cluster_id}/namespaces/{self.namespace}"

    def prefix(self, kind: str) -> str:
        """The prefix under which every object of `kind` lives (ends with '/')."""
        return f"{self.base}/{kind}/"

    def key(self, kind: str, object_id: str) -> str:
        """The key of one object."""
        return self.prefix(kind) + object_id

    def leader(self) -> str:
        """The key of the lease that says which core agent acts."""
        return f"{self.base}/CoreAgentLeader"
