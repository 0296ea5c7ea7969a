"""``get``: volumes, pools, nodes, replica topologies, rebuild history and events.

Each handler makes the reads it needs and hands the decoded JSON to the output: a
table of Mayastor's plugin columns, or the API's objects whole as json or yaml.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from mayastor.kubectl.output import Output
from mayastor.kubectl.tables import (
    EVENT_HEADERS,
    NODE_HEADERS,
    POOL_HEADERS,
    REBUILD_HISTORY_HEADERS,
    REPLICA_TOPOLOGIES_HEADERS,
    REPLICA_TOPOLOGY_HEADERS,
    VOLUME_HEADERS,
    Row,
    event_rows,
    node_row,
    node_rows,
    pool_row,
    pool_rows,
    rebuild_rows,
    replica_topology,
    topologies_rows,
    topology_rows,
    volume_id,
    volume_row,
    volume_rows,
)
from mayastor.restclient import RestClient


def _one(row: Callable[[Any], Row]) -> Callable[[Any], list[Row]]:
    """Rows of a single object."""
    return lambda data: [row(data)]


def get_volumes(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    out.objects(client.all_volumes(), VOLUME_HEADERS, volume_rows, "volumes")


def get_volume(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    out.objects(client.get_volume(args.id), VOLUME_HEADERS, _one(volume_row), "volumes")


def get_pools(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    pools = client.get_node_pools(args.node) if args.node else client.get_pools()
    out.objects(pools, POOL_HEADERS, pool_rows, "pools")


def get_pool(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    out.objects(client.get_pool(args.id), POOL_HEADERS, _one(pool_row), "pools")


def get_nodes(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    out.objects(client.get_nodes(), NODE_HEADERS, node_rows, "nodes")


def get_node(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    out.objects(client.get_node(args.id), NODE_HEADERS, _one(node_row), "nodes")


def get_topologies(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    """Every volume's replica topology: ``{volume uuid: {replica uuid: ...}}`` in json."""
    topologies = {volume_id(v): replica_topology(v) for v in client.all_volumes()}
    out.objects(topologies, REPLICA_TOPOLOGIES_HEADERS, topologies_rows, "volumes")


def get_topology(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    """One volume's replica topology: ``{replica uuid: {node, pool, state, ...}}`` in json."""
    topology = replica_topology(client.get_volume(args.id))
    out.objects(topology, REPLICA_TOPOLOGY_HEADERS, topology_rows, "replicas")


def get_rebuild_history(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    history = client.get_rebuild_history(args.id)
    out.objects(history, REBUILD_HISTORY_HEADERS, rebuild_rows, "rebuilds")


def get_events(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    target = args.volume or args.node
    events = client.get_events(category=args.category, target=target, max_entries=args.max)
    out.objects(events, EVENT_HEADERS, event_rows, "events")
