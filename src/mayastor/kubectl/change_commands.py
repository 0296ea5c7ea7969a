"""Commands that change the cluster: create, delete, publish, unpublish, scale, label,
cordon, drain and uncordon.

Each makes its call and reports the outcome: one line for people, or the changed
object as the API returned it with ``-o json|yaml`` (a deletion returns no object,
so it prints nothing then). A refusal by the API is raised as `RestError` and
reported by `main`.
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

from mayastor.kubectl.failures import CommandFailed
from mayastor.kubectl.output import Output
from mayastor.kubectl.sizes import format_size
from mayastor.kubectl.tables import NONE, cordon_labels, drain_phase
from mayastor.restclient import RestClient

DRAIN_POLL = 0.5
"""Seconds between two looks at a draining node."""


def _labels_text(labels: Any) -> str:
    if not isinstance(labels, dict) or not labels:
        return NONE
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _deleted(out: Output, text: str) -> None:
    if out.table:
        print(text, file=out.out)


# ============================================================================ pools


def create_pool(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    pool = client.create_pool(args.node, args.id, args.disks, labels=dict(args.labels))
    status = (pool.get("state") or {}).get("status", NONE)
    out.done(pool, f"pool {args.id} created on node {args.node} ({status})")


def delete_pool(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    client.delete_pool(args.id, node_id=args.node)
    _deleted(out, f"pool {args.id} deleted")


def label_pool(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    pool: Any = None
    for change in args.changes:
        if change.removes:
            pool = client.unlabel_pool(args.id, change.key)
        else:
            pool = client.label_pool(args.id, change.key, change.value, overwrite=args.overwrite)
    labels = (pool.get("spec") or {}).get("labels")
    out.done(pool, f"pool {args.id} labelled; its labels: {_labels_text(labels)}")


# ============================================================================ nodes


def label_node(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    node: Any = None
    for change in args.changes:
        if change.removes:
            node = client.unlabel_node(args.id, change.key)
        else:
            node = client.label_node(args.id, change.key, change.value, overwrite=args.overwrite)
    labels = (node.get("spec") or {}).get("labels")
    out.done(node, f"node {args.id} labelled; its labels: {_labels_text(labels)}")


def cordon(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    node = client.cordon_node(args.id, args.label)
    labels = ", ".join(cordon_labels(node))
    out.done(node, f"node {args.id} cordoned; its cordon labels: {labels}")


def drain(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    """Start the drain, then wait (up to --drain-timeout) until the node holds no target."""
    node = client.drain_node(args.id, args.label)
    deadline = time.monotonic() + args.drain_timeout
    while drain_phase(node)[0] != "drained":
        if time.monotonic() > deadline:
            raise CommandFailed(
                f"node {args.id} is still draining after {args.drain_timeout:g} s; "
                f"see `kubectl-mayastor get events --node {args.id}`"
            )
        time.sleep(DRAIN_POLL)
        node = client.get_node(args.id)
    out.done(node, f"node {args.id} drained: no volume target is left on it")


def uncordon(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    node = client.uncordon_node(args.id, args.label)
    left = cordon_labels(node)
    if left:
        text = f"cordon {args.label} removed; node {args.id} stays cordoned by: {', '.join(left)}"
    else:
        text = f"node {args.id} uncordoned"
    out.done(node, text)


# ============================================================================ volumes


def create_volume(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    volume_id = args.id or uuid.uuid4()
    topology: dict[str, Any] = {}
    if args.node_labels:
        topology["node_topology"] = {"labelled": {"inclusion": dict(args.node_labels)}}
    if args.pool_labels:
        topology["pool_topology"] = {"labelled": {"inclusion": dict(args.pool_labels)}}
    volume = client.create_volume(
        volume_id,
        size=args.size,
        replicas=args.replicas,
        thin=args.thin,
        self_heal=args.self_heal,
        topology=topology or None,
        labels=dict(args.labels) or None,
    )
    status = (volume.get("state") or {}).get("status", NONE)
    kind = "thin" if args.thin else "thick"
    out.done(
        volume,
        f"volume {volume_id} created: {format_size(args.size)}, "
        f"{args.replicas} {kind} replica(s), {status}",
    )


def delete_volume(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    client.delete_volume(args.id)
    _deleted(out, f"volume {args.id} deleted")


def publish_volume(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    """Publish and print the target's URI (alone, so a script can take it)."""
    volume = client.publish_volume(
        args.id, protocol=args.protocol, node=args.node, frontend_node=args.frontend_node
    )
    uri = ((volume.get("state") or {}).get("target") or {}).get("deviceUri") or NONE
    out.done(volume, uri)


def unpublish_volume(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    volume = client.unpublish_volume(args.id, force=args.force)
    out.done(volume, f"volume {args.id} unpublished")


def scale_volume(client: RestClient, args: argparse.Namespace, out: Output) -> None:
    volume = client.scale_volume(args.id, args.replicas)
    status = (volume.get("state") or {}).get("status", NONE)
    out.done(volume, f"volume {args.id} scaled to {args.replicas} replica(s); {status}")
