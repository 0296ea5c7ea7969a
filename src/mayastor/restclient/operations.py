"""Every call of the REST API the clients offer, written once for both transports.

`ApiOperations` builds an `ApiCall` per method and hands it to `_send`; what `_send`
returns is what the method returns. `RestClient` sends synchronously and returns the
decoded JSON; `AsyncRestClient` returns an awaitable of it. The calls, their
paths and bodies (Mayastor's OpenAPI v0 shapes) are therefore described here only.

Results are the decoded JSON as the API sends it (dicts and lists), never models of
the control plane: clients reach the core agent through REST only.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from mayastor.restclient.calls import ApiCall, api_path, segment

R = TypeVar("R")

VolumeId = str | uuid.UUID


class ApiOperations(abc.ABC, Generic[R]):
    """The REST API's calls; `R` is what a call returns (a value, or an awaitable)."""

    @abc.abstractmethod
    def _send(self, call: ApiCall) -> R:
        """Send `call` and return its decoded reply (or an awaitable of it)."""

    # ------------------------------------------------------------------ nodes

    def get_nodes(self) -> R:
        """Every node the core agent knows: ``[Node]`` (id, spec, state)."""
        return self._send(ApiCall("GET", "/nodes"))

    def get_node(self, node_id: str) -> R:
        """One node: ``Node``."""
        return self._send(ApiCall("GET", api_path("nodes", node_id)))

    def cordon_node(self, node_id: str, label: str) -> R:
        """Cordon a node under `label` (no new replicas or targets go there): ``Node``."""
        return self._send(ApiCall("PUT", api_path("nodes", node_id, "cordon", label)))

    def uncordon_node(self, node_id: str, label: str) -> R:
        """Remove the cordon `label`; the node is schedulable once none is left: ``Node``."""
        return self._send(ApiCall("DELETE", api_path("nodes", node_id, "cordon", label)))

    def drain_node(self, node_id: str, label: str) -> R:
        """Cordon a node and move every volume target off it (Drained once none is left):
        ``Node``."""
        return self._send(ApiCall("PUT", api_path("nodes", node_id, "drain", label)))

    def label_node(self, node_id: str, key: str, value: str, *, overwrite: bool = False) -> R:
        """Set a label on a node; an existing different value needs `overwrite`: ``Node``."""
        path = api_path("nodes", node_id, "label") + f"/{segment(key)}={segment(value)}"
        return self._send(ApiCall("PUT", path, {"overwrite": overwrite}))

    def unlabel_node(self, node_id: str, key: str) -> R:
        """Remove a node's label `key`: ``Node``."""
        return self._send(ApiCall("DELETE", api_path("nodes", node_id, "label", key)))

    def get_node_block_devices(self, node_id: str, *, all_devices: bool = False) -> R:
        """Block devices of a node (usable ones, or all): ``[BlockDevice]``."""
        path = api_path("nodes", node_id, "block_devices")
        return self._send(ApiCall("GET", path, {"all": all_devices}))

    # ------------------------------------------------------------------ pools

    def get_pools(self) -> R:
        """Every pool: ``[Pool]`` (id, spec, state)."""
        return self._send(ApiCall("GET", "/pools"))

    def get_pool(self, pool_id: str) -> R:
        """One pool: ``Pool``."""
        return self._send(ApiCall("GET", api_path("pools", pool_id)))

    def get_node_pools(self, node_id: str) -> R:
        """The pools of one node: ``[Pool]``."""
        return self._send(ApiCall("GET", api_path("nodes", node_id, "pools")))

    def create_pool(
        self,
        node_id: str,
        pool_id: str,
        disks: Sequence[str],
        *,
        labels: Mapping[str, str] | None = None,
    ) -> R:
        """Create a pool on a node's disk (or import it when the disk holds it): ``Pool``."""
        body: dict[str, Any] = {"disks": list(disks)}
        if labels:
            body["labels"] = dict(labels)
        return self._send(ApiCall("PUT", api_path("nodes", node_id, "pools", pool_id), body=body))

    def delete_pool(self, pool_id: str, *, node_id: str | None = None) -> R:
        """Destroy a pool that holds no replica; None (204)."""
        if node_id is None:
            return self._send(ApiCall("DELETE", api_path("pools", pool_id)))
        return self._send(ApiCall("DELETE", api_path("nodes", node_id, "pools", pool_id)))

    def label_pool(self, pool_id: str, key: str, value: str, *, overwrite: bool = False) -> R:
        """Set a label on a pool; an existing different value needs `overwrite`: ``Pool``."""
        path = api_path("pools", pool_id, "label") + f"/{segment(key)}={segment(value)}"
        return self._send(ApiCall("PUT", path, {"overwrite": overwrite}))

    def unlabel_pool(self, pool_id: str, key: str) -> R:
        """Remove a pool's label `key`: ``Pool``."""
        return self._send(ApiCall("DELETE", api_path("pools", pool_id, "label", key)))

    # ------------------------------------------------------------------ volumes

    def get_volumes(self, *, max_entries: int = 0, starting_token: int | None = None) -> R:
        """A page of volumes in uuid order: ``Volumes`` (entries, next_token).

        Args:
            max_entries: page size; 0 for every volume in one page.
            starting_token: the previous page's ``next_token``.
        """
        params = {"max_entries": max_entries, "starting_token": starting_token}
        return self._send(ApiCall("GET", "/volumes", params))

    def get_volume(self, volume_id: VolumeId) -> R:
        """One volume: ``Volume`` (spec, state)."""
        return self._send(ApiCall("GET", api_path("volumes", volume_id)))

    def create_volume(
        self,
        volume_id: VolumeId,
        *,
        size: int,
        replicas: int,
        thin: bool = False,
        self_heal: bool = True,
        topology: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        affinity_group: str | None = None,
    ) -> R:
        """Create a volume of `size` bytes with `replicas` replicas: ``Volume``.

        Creating it again with the same arguments returns it as it is.

        Args:
            topology: Mayastor's ``Topology`` (``node_topology`` / ``pool_topology``).
            labels: the volume's own labels.
            affinity_group: the id of the volume's affinity group (a StatefulSet's
                volumes), if it has one.
        """
        body: dict[str, Any] = {
            "size": size,
            "replicas": replicas,
            "thin": thin,
            "policy": {"self_heal": self_heal},
        }
        if topology:
            body["topology"] = dict(topology)
        if labels:
            body["labels"] = dict(labels)
        if affinity_group is not None:
            body["affinity_group"] = {"id": affinity_group}
        return self._send(ApiCall("PUT", api_path("volumes", volume_id), body=body))

    def delete_volume(self, volume_id: VolumeId) -> R:
        """Destroy a volume, its target and its replicas; None (204)."""
        return self._send(ApiCall("DELETE", api_path("volumes", volume_id)))

    def publish_volume(
        self,
        volume_id: VolumeId,
        *,
        protocol: str = "nvmf",
        node: str | None = None,
        frontend_node: str | None = None,
        publish_context: Mapping[str, str] | None = None,
    ) -> R:
        """Create the volume's target (a nexus) and share it: ``Volume``.

        The target's URI is ``state.target.deviceUri`` of the result.

        Args:
            node: the node for the target; the core agent picks one when None.
            frontend_node: the node that will connect; only its host NQN may.
        """
        body: dict[str, Any] = {
            "protocol": protocol,
            "publish_context": dict(publish_context or {}),
        }
        if node is not None:
            body["node"] = node
        if frontend_node is not None:
            body["frontend_node"] = frontend_node
        return self._send(ApiCall("PUT", api_path("volumes", volume_id, "target"), body=body))

    def unpublish_volume(self, volume_id: VolumeId, *, force: bool = False) -> R:
        """Remove the volume's target; `force` forgets one whose node is gone: ``Volume``."""
        path = api_path("volumes", volume_id, "target")
        return self._send(ApiCall("DELETE", path, {"force": force}))

    def resize_volume(self, volume_id: VolumeId, size: int) -> R:
        """Grow a volume to `size` bytes: ``Volume``."""
        path = api_path("volumes", volume_id, "size")
        return self._send(ApiCall("PUT", path, body={"size": size}))

    def scale_volume(self, volume_id: VolumeId, replicas: int) -> R:
        """Set a volume's replica count (new replicas are rebuilt): ``Volume``."""
        path = api_path("volumes", volume_id, "replica_count", replicas)
        return self._send(ApiCall("PUT", path))

    def get_rebuild_history(self, volume_id: VolumeId) -> R:
        """The rebuilds of the volume's current target: ``RebuildHistory``."""
        return self._send(ApiCall("GET", api_path("volumes", volume_id, "rebuild-history")))

    # ------------------------------------------------------------------ other objects

    def get_replicas(self) -> R:
        """Every replica the io-engines hold: ``[Replica]``."""
        return self._send(ApiCall("GET", "/replicas"))

    def get_replica(self, replica_id: VolumeId) -> R:
        """One replica: ``Replica``."""
        return self._send(ApiCall("GET", api_path("replicas", replica_id)))

    def get_nexuses(self) -> R:
        """Every nexus the io-engines run: ``[Nexus]``."""
        return self._send(ApiCall("GET", "/nexuses"))

    def get_nexus(self, nexus_id: VolumeId) -> R:
        """One nexus: ``Nexus``."""
        return self._send(ApiCall("GET", api_path("nexuses", nexus_id)))

    def get_events(
        self,
        *,
        category: str | None = None,
        target: str | None = None,
        max_entries: int = 0,
    ) -> R:
        """Events the core agent kept, oldest first: ``[Event]``."""
        query: dict[str, Any] = {}
        if category:
            query["category"] = category
        if target:
            query["target"] = target
        if max_entries:
            query["max_entries"] = max_entries
        return self._send(ApiCall("GET", api_path("events"), query))

    # ------------------------------------------------------------------ app nodes

    def register_app_node(
        self, app_node_id: str, endpoint: str, labels: Mapping[str, str] | None = None
    ) -> R:
        """Register (again) an application node; no body back."""
        body: dict[str, Any] = {"endpoint": endpoint}
        if labels:
            body["labels"] = dict(labels)
        return self._send(ApiCall("PUT", api_path("app-nodes", app_node_id), body=body))

    def get_app_nodes(self) -> R:
        """Registered application nodes: ``AppNodes``."""
        return self._send(ApiCall("GET", "/app-nodes"))

    def deregister_app_node(self, app_node_id: str) -> R:
        return self._send(ApiCall("DELETE", api_path("app-nodes", app_node_id)))

    def report_failed_path(self, app_node_id: str, target_nqn: str, address: str = "") -> R:
        """The app node's path to `target_nqn` at `address` (``HOST:PORT``) failed; the
        answer is the path to connect now: ``{"target_nqn", "uri"}``."""
        body: dict[str, Any] = {"target_nqn": target_nqn}
        if address:
            body["address"] = address
        path = api_path("app-nodes", app_node_id, "failed-paths")
        return self._send(ApiCall("POST", path, body=body))

    def app_node_dhchap_secret(self, app_node_id: str) -> R:
        """The app node's DH-HMAC-CHAP secret, made on first need: ``{"host_nqn",
        "secret"}``; `PreconditionFailed` when the core agent runs without ``--dhchap``.
        Needs an admin token."""
        return self._send(ApiCall("POST", api_path("app-nodes", app_node_id, "dhchap-secret")))

    def get_specs(self) -> R:
        """Every spec the store holds: ``Specs`` (nexuses, pools, replicas, volumes)."""
        return self._send(ApiCall("GET", "/specs"))


VOLUME_PAGE_SIZE = 200
"""How many volumes the clients ask for per page when they list them all."""


def next_volume_page(page: Any) -> int | None:
    """The token of the page after `page` (a decoded ``Volumes``), or None after the last."""
    token = page.get("next_token") if isinstance(page, dict) else None
    return token if isinstance(token, int) else None
