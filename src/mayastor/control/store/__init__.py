"""The cluster store (DESIGN.md section 11): etcd v3, or an embedded SQLite file.

`open_store` picks the implementation from the ``--store`` flag; `StoreKeys` says where
each kind of object lives (Mayastor's layout,
``/openebs.io/mayastor/apis/v0/clusters/<cluster>/namespaces/<ns>/<Kind>/<id>``).
"""

from __future__ import annotations

from mayastor.api.store_keys import StoreKeys
from mayastor.control.store._interface import (
    ClusterStore,
    Delete,
    Entry,
    Leadership,
    NotLeader,
    Operation,
    Put,
    RevisionMismatch,
    new_holder_id,
)
from mayastor.control.store.embedded import EmbeddedStore
from mayastor.control.store.etcd import EtcdStore, parse_etcd_endpoints

__all__ = [
    "ClusterStore",
    "Delete",
    "EmbeddedStore",
    "Entry",
    "EtcdStore",
    "Leadership",
    "NotLeader",
    "Operation",
    "Put",
    "RevisionMismatch",
    "StoreKeys",
    "new_holder_id",
    "open_store",
    "parse_etcd_endpoints",
]


def open_store(location: str, *, timeout: float = 5.0) -> ClusterStore:
    """``etcd://HOST:PORT[,…]`` opens etcd; anything else is the path of an embedded store.

    Raises:
        InvalidArgument: a malformed etcd endpoint list.
    """
    if location.startswith("etcd://"):
        return EtcdStore(location, timeout=timeout)
    return EmbeddedStore(location)
