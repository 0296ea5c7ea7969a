"""Tables for people, after Mayastor's kubectl plugin: its columns, its ``<none>``.

Each ``*_rows`` function takes the decoded JSON of the REST API (dicts, as Mayastor's
OpenAPI v0 shapes them) and returns the cells of its rows; `render_table` lays rows
out in left-aligned columns two spaces apart. A field the API left out shows as
``<none>``, so a half-known object (a pool whose node is offline) still has a row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mayastor.kubectl.sizes import format_size

NONE = "<none>"

VOLUME_HEADERS = (
    "ID",
    "REPLICAS",
    "TARGET-NODE",
    "ACCESSIBILITY",
    "STATUS",
    "SIZE",
    "THIN-PROVISIONED",
    "ALLOCATED",
)
POOL_HEADERS = (
    "ID",
    "DISKS",
    "MANAGED",
    "NODE",
    "STATUS",
    "CAPACITY",
    "ALLOCATED",
    "AVAILABLE",
    "COMMITTED",
)
NODE_HEADERS = ("ID", "GRPC ENDPOINT", "STATUS", "CORDONED", "VERSION")
REPLICA_TOPOLOGY_HEADERS = (
    "ID",
    "NODE",
    "POOL",
    "STATUS",
    "CAPACITY",
    "ALLOCATED",
    "CHILD-STATUS",
    "REASON",
    "REBUILD",
)
REPLICA_TOPOLOGIES_HEADERS = ("VOLUME-ID", *REPLICA_TOPOLOGY_HEADERS)
REBUILD_HISTORY_HEADERS = (
    "DST",
    "SRC",
    "STATE",
    "TOTAL",
    "RECOVERED",
    "TRANSFERRED",
    "IS-PARTIAL",
    "START-TIME",
    "END-TIME",
)

Row = list[str]


def render_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Headers and rows in left-aligned columns two spaces apart; no trailing blanks.

    Raises:
        ValueError: a row has a different number of cells than there are headers.
    """
    cells = [list(headers)]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row {list(row)} has {len(row)} cells for {len(headers)} columns")
        cells.append([str(c) for c in row])
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines) + "\n"


def cell(value: Any) -> str:
    """A value as a cell: ``<none>`` for None or "", ``true``/``false`` for booleans."""
    if value is None or value == "":
        return NONE
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def size_cell(value: Any) -> str:
    """A byte count as a cell (``32MiB``); ``<none>`` when it is not a number."""
    if isinstance(value, bool) or not isinstance(value, int):
        return NONE
    return format_size(value)


def _get(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...`` or None where a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


# ============================================================================ volumes


def volume_row(volume: Mapping[str, Any]) -> Row:
    spec = volume.get("spec") or {}
    state = volume.get("state") or {}
    target_node = _get(spec, "target", "node") or _get(state, "target", "node")
    protocol = _get(spec, "target", "protocol")
    return [
        cell(spec.get("uuid") or state.get("uuid")),
        cell(spec.get("num_replicas")),
        cell(target_node),
        cell(protocol),
        cell(state.get("status")),
        size_cell(spec.get("size")),
        cell(spec.get("thin")),
        size_cell(_get(state, "usage", "allocated")),
    ]


def volume_rows(volumes: Iterable[Mapping[str, Any]]) -> list[Row]:
    return [volume_row(v) for v in volumes]


# ============================================================================ pools


def pool_row(pool: Mapping[str, Any]) -> Row:
    spec = pool.get("spec")
    state = pool.get("state")
    disks = _get(state, "disks") or _get(spec, "disks") or []
    node = _get(state, "node") or _get(spec, "node")
    status = _get(state, "status")
    capacity = _get(state, "capacity")
    used = _get(state, "used")
    known = isinstance(capacity, int) and isinstance(used, int) and status != "Unknown"
    return [
        cell(pool.get("id")),
        cell(", ".join(disks)),
        cell(spec is not None),
        cell(node),
        cell(status),
        size_cell(capacity) if known else NONE,
        size_cell(used) if known else NONE,
        size_cell(capacity - used) if known else NONE,
        size_cell(_get(state, "committed")) if known else NONE,
    ]


def pool_rows(pools: Iterable[Mapping[str, Any]]) -> list[Row]:
    return [pool_row(p) for p in pools]


# ============================================================================ nodes


def cordon_labels(node: Mapping[str, Any]) -> list[str]:
    """The cordon labels of a node's spec, whichever cordon/drain state holds them."""
    states = _get(node, "spec", "cordondrainstate") or {}
    for state in ("cordonedstate", "drainingstate", "drainedstate"):
        labels = _get(states, state, "cordonlabels")
        if labels:
            return [str(label) for label in labels]
    return []


def drain_phase(node: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """``("draining" | "drained", drain labels)``, or ``(None, [])`` when not draining."""
    states = _get(node, "spec", "cordondrainstate") or {}
    for phase in ("draining", "drained"):
        labels = _get(states, f"{phase}state", "drainlabels")
        if labels:
            return phase, [str(label) for label in labels]
    return None, []


def node_row(node: Mapping[str, Any]) -> Row:
    spec = node.get("spec") or {}
    state = node.get("state") or {}
    labels = cordon_labels(node)
    phase, drains = drain_phase(node)
    if phase is not None:
        cordoned = f"{phase} ({', '.join([*labels, *drains])})"
    else:
        cordoned = f"true ({', '.join(labels)})" if labels else "false"
    return [
        cell(node.get("id")),
        cell(state.get("grpcEndpoint") or spec.get("grpcEndpoint")),
        cell(state.get("status")),
        cordoned,
        cell(state.get("version") or spec.get("version")),
    ]


def node_rows(nodes: Iterable[Mapping[str, Any]]) -> list[Row]:
    return [node_row(n) for n in nodes]


# ============================================================================ replica topology


def _rebuild_cell(progress: Any) -> str:
    return f"{progress}%" if isinstance(progress, int) else NONE


def topology_row(replica_id: str, replica: Mapping[str, Any]) -> Row:
    return [
        replica_id,
        cell(replica.get("node")),
        cell(replica.get("pool")),
        cell(replica.get("state")),
        size_cell(_get(replica, "usage", "capacity")),
        size_cell(_get(replica, "usage", "allocated")),
        cell(replica.get("child-status")),
        cell(replica.get("child-status-reason")),
        _rebuild_cell(replica.get("rebuild-progress")),
    ]


def replica_topology(volume: Mapping[str, Any]) -> dict[str, Any]:
    """A volume's ``replica_topology`` (replica uuid -> where and how it is)."""
    topology = _get(volume, "state", "replica_topology")
    return dict(topology) if isinstance(topology, Mapping) else {}


def volume_id(volume: Mapping[str, Any]) -> str:
    """A volume's uuid, from its spec or else its state."""
    return cell(_get(volume, "spec", "uuid") or _get(volume, "state", "uuid"))


def topology_rows(topology: Mapping[str, Any]) -> list[Row]:
    """One row per replica of one volume's topology, in replica uuid order."""
    return [topology_row(rid, topology[rid]) for rid in sorted(topology)]


def topologies_rows(topologies: Mapping[str, Mapping[str, Any]]) -> list[Row]:
    """Rows of every volume's replicas: the volume id on its first, a tree after it.

    Args:
        topologies: volume uuid -> that volume's replica topology.
    """
    rows: list[Row] = []
    for vid, topology in topologies.items():
        replicas = topology_rows(topology)
        for index, row in enumerate(replicas):
            if index == 0:
                first = vid
            elif index == len(replicas) - 1:
                first = "└─"
            else:
                first = "├─"
            rows.append([first, *row])
    return rows


# ============================================================================ rebuild history


def replica_of_uri(uri: Any) -> str:
    """The replica uuid a child URI names (its ``uuid`` parameter, else its last part)."""
    if not isinstance(uri, str) or not uri:
        return NONE
    parts = urlsplit(uri)
    uuids = parse_qs(parts.query).get("uuid")
    if uuids:
        return uuids[0]
    last = parts.path.rstrip("/").rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[-1] or uri


def time_cell(value: Any) -> str:
    """An RFC 3339 time to the second in UTC (``2026-12-04T23:28:23Z``); as is if unparsable."""
    if not isinstance(value, str) or not value:
        return NONE
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _blocks(record: Mapping[str, Any], key: str) -> str:
    blocks, block_size = record.get(key), record.get("blockSize")
    if isinstance(blocks, int) and isinstance(block_size, int):
        return format_size(blocks * block_size)
    return NONE


def rebuild_row(record: Mapping[str, Any]) -> Row:
    return [
        replica_of_uri(record.get("childUri")),
        replica_of_uri(record.get("srcUri")),
        cell(record.get("rebuildJobState")),
        _blocks(record, "blocksTotal"),
        _blocks(record, "blocksRecovered"),
        _blocks(record, "blocksTransferred"),
        cell(record.get("isPartial")),
        time_cell(record.get("startTime")),
        time_cell(record.get("endTime")),
    ]


def rebuild_rows(history: Mapping[str, Any]) -> list[Row]:
    """One row per rebuild, in the order the API lists them."""
    return [rebuild_row(r) for r in history.get("records") or []]


# ============================================================================ events

EVENT_HEADERS = ["TIME", "CATEGORY", "ACTION", "TARGET", "MESSAGE"]


def event_row(event: Mapping[str, Any]) -> Row:
    return [
        time_cell(event.get("time")),
        cell(event.get("category")),
        cell(event.get("action")),
        cell(event.get("target")),
        cell(event.get("message")),
    ]


def event_rows(events: Iterable[Mapping[str, Any]]) -> list[Row]:
    """One row per event, oldest first."""
    return [event_row(e) for e in events]
