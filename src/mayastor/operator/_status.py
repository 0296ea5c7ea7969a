"""A DiskPool's status, computed from the pool as the REST API shows it.

The status fields are Mayastor's (``cr_state``, ``pool_status``, ``capacity``, ``used``,
``available``) plus ``message``: why the operator could not do what the spec asks
(empty when all is well). Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any


class CrState(enum.StrEnum):
    """Where the resource is in its life (``status.cr_state``)."""

    CREATING = "Creating"  # the pool is not made yet (or cannot be: see message)
    CREATED = "Created"  # the pool exists in the control plane
    TERMINATING = "Terminating"  # the resource is being deleted; the pool is going


class PoolStatus(enum.StrEnum):
    """The pool's state as the control plane sees it (``status.pool_status``)."""

    UNKNOWN = "Unknown"  # no pool, its node is away, or the control plane is
    ONLINE = "Online"
    DEGRADED = "Degraded"
    FAULTED = "Faulted"


def _size(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def pool_status(pool: Mapping[str, Any] | None, previous: Mapping[str, Any]) -> dict[str, Any]:
    """The status fields that follow the pool: its state and sizes.

    Args:
        pool: the REST API's ``Pool`` (``id``, ``spec``, ``state``), or None when the
            pool's state cannot be had (the control plane is not reachable).
        previous: the resource's current status.

    Returns:
        ``pool_status``, ``capacity``, ``used`` and ``available`` (bytes). While the
        state is Unknown (its node is away) the sizes last seen are kept: the pool has
        not shrunk, it is only out of sight.
    """
    state = pool.get("state") if pool is not None else None
    status: PoolStatus | None = None
    if isinstance(state, Mapping) and isinstance(state.get("status"), str):
        try:
            status = PoolStatus(state["status"])
        except ValueError:
            status = None
    if not isinstance(state, Mapping) or status in (None, PoolStatus.UNKNOWN):
        capacity, used = _size(previous.get("capacity")), _size(previous.get("used"))
        return {
            "pool_status": PoolStatus.UNKNOWN.value,
            "capacity": capacity,
            "used": used,
            "available": max(capacity - used, 0),
        }
    capacity, used = _size(state.get("capacity")), _size(state.get("used"))
    return {
        "pool_status": status.value,
        "capacity": capacity,
        "used": used,
        "available": max(capacity - used, 0),
    }
