"""A DiskPool's spec, read from the resource and checked: what the operator may act on.

The CRD's structural schema already refuses most bad specs at the API server, but the
operator does not rely on it (an older CRD, a schema edited by hand, an API server that
does not validate): `parse_spec` checks every field it uses and names the one that is
wrong, so a bad spec becomes an Event and a status, never an exception in a handler.

Pure: no I/O, nothing of kopf or of the REST client.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

API_GROUP = "openebs.io"
API_VERSION = "v1beta2"
KIND = "DiskPool"
PLURAL = "diskpools"
FINALIZER = "openebs.io/diskpool-protection"
"""Kept on every DiskPool until its pool is destroyed (or found not to be its own)."""

_POOL_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,253}[A-Za-z0-9])?$")
"""What the REST API takes as a pool id (a Kubernetes object name always fits)."""

_NODE_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$")


class SpecError(ValueError):
    """The spec cannot be applied as written.

    Attributes:
        field: the path of the offending field (``spec.disks``).
        reason: what is wrong with it and what would be right.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class DiskPoolSpec:
    """What a DiskPool asks for.

    Attributes:
        name: the pool's id in the control plane (the resource's name).
        node: the io-engine node the disk is on (its node name).
        disk: the one disk (a device path, or any URI the io-engine takes).
        labels: the pool's labels (``spec.topology.labelled``), for volume placement.
    """

    name: str
    node: str
    disk: str
    labels: dict[str, str] = field(default_factory=dict)


def _type_name(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def parse_spec(name: str, spec: Mapping[str, Any] | None) -> DiskPoolSpec:
    """The DiskPool's spec, checked.

    Args:
        name: the resource's ``metadata.name`` (the pool's id).
        spec: the resource's ``spec``.

    Returns:
        The spec as the operator acts on it.

    Raises:
        SpecError: a field is missing, of the wrong type, or not a valid value; the
            error names the field.
    """
    if not isinstance(name, str) or not _POOL_NAME.match(name):
        raise SpecError("metadata.name", f"{name!r} cannot name a pool")
    if not isinstance(spec, Mapping):
        raise SpecError("spec", "missing (it needs node and disks)")
    unknown = sorted(set(spec) - {"node", "disks", "topology"})
    if unknown:
        raise SpecError(f"spec.{unknown[0]}", "unknown field (spec takes node, disks, topology)")

    node = spec.get("node")
    if node is None:
        raise SpecError("spec.node", "missing: the node the disk is on")
    if not isinstance(node, str):
        raise SpecError("spec.node", f"must be a string, not {_type_name(node)}")
    if not _NODE_NAME.match(node):
        raise SpecError("spec.node", f"{node!r} is not a node name")

    disks = spec.get("disks")
    if disks is None:
        raise SpecError("spec.disks", "missing: a list of one disk")
    if not isinstance(disks, list):
        raise SpecError("spec.disks", f"must be a list of one disk, not {_type_name(disks)}")
    if len(disks) != 1:
        raise SpecError("spec.disks", f"must hold exactly one disk, not {len(disks)}")
    disk = disks[0]
    if not isinstance(disk, str):
        raise SpecError("spec.disks[0]", f"must be a string, not {_type_name(disk)}")
    if not disk.strip() or disk != disk.strip():
        raise SpecError("spec.disks[0]", f"{disk!r} is not a disk path or URI")

    labels: dict[str, str] = {}
    topology = spec.get("topology")
    if topology is not None:
        if not isinstance(topology, Mapping):
            raise SpecError("spec.topology", f"must be an object, not {_type_name(topology)}")
        extra = sorted(set(topology) - {"labelled"})
        if extra:
            raise SpecError(f"spec.topology.{extra[0]}", "unknown field (topology takes labelled)")
        labelled = topology.get("labelled")
        if labelled is not None:
            if not isinstance(labelled, Mapping):
                raise SpecError(
                    "spec.topology.labelled",
                    f"must be an object of labels, not {_type_name(labelled)}",
                )
            for key, value in labelled.items():
                if not isinstance(value, str):
                    raise SpecError(
                        f"spec.topology.labelled.{key}",
                        f"a label's value must be a string, not {_type_name(value)}",
                    )
                labels[str(key)] = value
    return DiskPoolSpec(name=name, node=node, disk=disk, labels=labels)
