"""Where replicas and targets go (after Mayastor's scheduling rules). Pure functions.

Replicas of one volume go to different nodes; a node must be Online and not cordoned,
its pool Online with room: free space for a thick replica, for a thin one the pool's
commitment limit (the sum of its replicas' sizes, as a share of its capacity) and
some free space to start with. Node and pool labels filter by the volume's topology.
Among the pools left, those on nodes holding fewer replicas of the volume's affinity
group (the other volumes of its StatefulSet) come first, then those with fewer
replicas, then those with more free space: a group's volumes spread over the nodes, so
one node's loss takes as few of them as it can. Targets spread the same way. When the
choice cannot be made, the error names every pool left out and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mayastor.control.specs import LabelledTopology, Topology
from mayastor.errors import FailedPrecondition


@dataclass(frozen=True)
class PoolView:
    """A pool as placement sees it: its spec, its node, and its state now."""

    id: str
    node: str
    capacity: int
    used: int
    committed: int
    replicas: int = 0
    cluster_size: int = 1
    online: bool = True
    node_online: bool = True
    node_cordoned: bool = False
    node_labels: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    group_replicas: int = 0
    """Replicas of the volume's affinity group already on this pool's node."""

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.used)


@dataclass(frozen=True)
class CommitmentLimits:
    """Thin provisioning limits.

    Attributes:
        pool_commitment: the most a pool may promise, as a multiple of its capacity.
        volume_commitment_initial: the free space a new thin replica needs, as a
            share of its size.
    """

    pool_commitment: float = 2.5
    volume_commitment_initial: float = 0.4


def _labels_include(labels: dict[str, str], rules: LabelledTopology | None) -> str | None:
    """Why `labels` fail the inclusion rules, or None when they pass."""
    if rules is None:
        return None
    for key, value in rules.inclusion.items():
        if key not in labels:
            return f"has no label {key}"
        if value and labels[key] != value:
            return f"label {key}={labels[key]}, not {value}"
    for key in rules.exclusion:
        if key not in labels:
            return f"has no label {key} (needed to keep replicas apart)"
    return None


def _labels_clash(
    labels: dict[str, str], rules: LabelledTopology | None, chosen: Sequence[dict[str, str]]
) -> str | None:
    """Why `labels` cannot join the `chosen` ones (exclusion, affinity), or None."""
    if rules is None:
        return None
    for key in rules.exclusion:
        for other in chosen:
            if other.get(key) == labels.get(key):
                return f"label {key}={labels.get(key)} is taken by another replica"
    for key in rules.affinity_key:
        for other in chosen:
            if other.get(key) != labels.get(key):
                return f"label {key}={labels.get(key)} differs from the first replica's"
    return None


def _node_rules(
    topology: Topology | None,
) -> tuple[set[str] | None, list[str], LabelledTopology | None]:
    if topology is None or topology.node_topology is None:
        return None, [], None
    node = topology.node_topology
    allowed = (
        set(node.explicit.allowed_nodes) if node.explicit and node.explicit.allowed_nodes else None
    )
    preferred = list(node.explicit.preferred_nodes) if node.explicit else []
    return allowed, preferred, node.labelled


def _pool_rules(topology: Topology | None) -> LabelledTopology | None:
    if topology is None or topology.pool_topology is None:
        return None
    return topology.pool_topology.labelled


def pool_refusal(
    pool: PoolView,
    *,
    size: int,
    thin: bool,
    topology: Topology | None,
    limits: CommitmentLimits,
) -> str | None:
    """Why `pool` cannot take a replica of `size` bytes on its own merits, or None."""
    allowed, _, node_labelled = _node_rules(topology)
    if not pool.node_online:
        return f"node {pool.node} is offline"
    if pool.node_cordoned:
        return f"node {pool.node} is cordoned"
    if allowed is not None and pool.node not in allowed:
        return f"node {pool.node} is not among the allowed nodes"
    if not pool.online:
        return "the pool is not online"
    why = _labels_include(pool.node_labels, node_labelled)
    if why:
        return f"node {pool.node} {why}"
    why = _labels_include(pool.labels, _pool_rules(topology))
    if why:
        return f"the pool {why}"
    if thin:
        limit = int(pool.capacity * limits.pool_commitment)
        if pool.committed + size > limit:
            return (
                f"thin commitment: {pool.committed} + {size} bytes would pass the limit of "
                f"{limit} ({limits.pool_commitment:.0%} of {pool.capacity})"
            )
        needed = int(size * limits.volume_commitment_initial)
        if pool.free < needed:
            return f"{pool.free} bytes free, a thin replica needs {needed} to start"
    else:
        needed = -(-size // pool.cluster_size) * pool.cluster_size
        if pool.free < needed:
            return f"{pool.free} bytes free, {needed} needed"
    return None


def place_replicas(
    pools: Iterable[PoolView],
    *,
    count: int,
    size: int,
    thin: bool,
    topology: Topology | None = None,
    exclude_nodes: Iterable[str] = (),
    chosen_labels: Sequence[tuple[dict[str, str], dict[str, str]]] = (),
    limits: CommitmentLimits | None = None,
) -> list[PoolView]:
    """Choose `count` pools on different nodes for replicas of `size` bytes.

    Args:
        pools: every pool of the cluster.
        exclude_nodes: nodes that hold a replica of the volume already.
        chosen_labels: (node labels, pool labels) of the volume's existing replicas,
            for the exclusion and affinity rules.

    Raises:
        FailedPrecondition: fewer than `count` pools qualify; nothing is chosen.
    """
    limits = limits or CommitmentLimits()
    _, preferred, node_labelled = _node_rules(topology)
    pool_labelled = _pool_rules(topology)
    excluded = set(exclude_nodes)
    refused: dict[str, str] = {}
    eligible: list[PoolView] = []
    for pool in pools:
        if pool.node in excluded:
            refused[pool.id] = f"node {pool.node} holds a replica of the volume already"
            continue
        why = pool_refusal(pool, size=size, thin=thin, topology=topology, limits=limits)
        if why:
            refused[pool.id] = why
        else:
            eligible.append(pool)
    eligible.sort(
        key=lambda p: (
            preferred.index(p.node) if p.node in preferred else len(preferred),
            p.group_replicas,
            p.replicas,
            -p.free,
            p.id,
        )
    )
    chosen: list[PoolView] = []
    node_labels = [n for n, _ in chosen_labels]
    pool_labels = [p for _, p in chosen_labels]
    for pool in eligible:
        if len(chosen) == count:
            break
        if pool.node in {c.node for c in chosen}:
            refused.setdefault(pool.id, f"node {pool.node} already takes another replica")
            continue
        why = _labels_clash(pool.node_labels, node_labelled, node_labels)
        why = why or _labels_clash(pool.labels, pool_labelled, pool_labels)
        if why:
            refused[pool.id] = why
            continue
        chosen.append(pool)
        node_labels.append(pool.node_labels)
        pool_labels.append(pool.labels)
    if len(chosen) < count and (node_labelled or pool_labelled):
        # Taking the best pool first can rule out every choice that would do (its
        # affinity group is too small, its labels clash with the only pools left):
        # look further, still in order of preference.
        chosen = _search(eligible, count, node_labelled, pool_labelled, chosen_labels) or chosen
    if len(chosen) < count:
        details = "; ".join(f"pool {pid}: {why}" for pid, why in sorted(refused.items()))
        if not details:
            details = "no pools" if not eligible else "every pool qualifies; too few nodes"
        raise FailedPrecondition(
            f"not enough suitable pools: {count} replica(s) of {size} bytes"
            f"{' (thin)' if thin else ''} need {count} pools on different nodes, "
            f"{len(chosen)} found ({details})"
        )
    return chosen


_SEARCH_STEPS = 10_000
"""How many partial choices `_search` tries before it gives up (a refusal, as before)."""


def _search(
    eligible: Sequence[PoolView],
    count: int,
    node_rules: LabelledTopology | None,
    pool_rules: LabelledTopology | None,
    existing: Sequence[tuple[dict[str, str], dict[str, str]]],
) -> list[PoolView] | None:
    """The first `count` pools of `eligible` (best first) on different nodes whose labels
    keep the exclusion and affinity rules, by a depth-first search; None if there is none."""
    chosen: list[PoolView] = []
    node_labels = [n for n, _ in existing]
    pool_labels = [p for _, p in existing]
    steps = 0

    def extend(start: int) -> bool:
        nonlocal steps
        if len(chosen) == count:
            return True
        used = {c.node for c in chosen}
        for i in range(start, len(eligible)):
            if len({p.node for p in eligible[i:]} - used) < count - len(chosen):
                return False
            steps += 1
            if steps > _SEARCH_STEPS:
                return False
            pool = eligible[i]
            if pool.node in used:
                continue
            if _labels_clash(pool.node_labels, node_rules, node_labels) or _labels_clash(
                pool.labels, pool_rules, pool_labels
            ):
                continue
            chosen.append(pool)
            node_labels.append(pool.node_labels)
            pool_labels.append(pool.labels)
            if extend(i + 1):
                return True
            chosen.pop()
            node_labels.pop()
            pool_labels.pop()
        return False

    return list(chosen) if extend(0) else None


@dataclass(frozen=True)
class NodeView:
    """A node as target placement sees it."""

    name: str
    online: bool
    cordoned: bool
    nexuses: int
    group_targets: int = 0
    """Targets of the volume's affinity group already on this node."""


def choose_target_node(
    nodes: Iterable[NodeView], *, replica_nodes: Sequence[str], requested: str | None = None
) -> str:
    """The node for a volume's target (its nexus).

    The requested node if it can take it; else, for one replica, that replica's node;
    else the node with the fewest targets of the volume's affinity group, then the fewest
    nexuses, a node holding a replica first among equals.

    Raises:
        FailedPrecondition: the requested node cannot, or no node can.
    """
    views = {n.name: n for n in nodes}
    if requested:
        view = views.get(requested)
        if view is None or not view.online:
            raise FailedPrecondition(f"node {requested} cannot take the target: it is not online")
        if view.cordoned:
            raise FailedPrecondition(f"node {requested} cannot take the target: it is cordoned")
        return requested
    usable = [v for v in views.values() if v.online and not v.cordoned]
    if len(replica_nodes) == 1 and any(v.name == replica_nodes[0] for v in usable):
        return replica_nodes[0]
    if not usable:
        raise FailedPrecondition("no node can take the target: none is online and uncordoned")
    usable.sort(key=lambda v: (v.group_targets, v.nexuses, v.name not in replica_nodes, v.name))
    return usable[0].name
