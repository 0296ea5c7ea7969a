"""Placement of replicas and targets: properties over random clusters, then each rule.

The properties check `place_replicas` against an oracle written here from the rules
(DESIGN.md section 11, after Mayastor): which pools are eligible, which sets of pools are
a valid placement (distinct nodes, exclusion and affinity labels), and a brute-force
search that says whether any valid placement exists when `place_replicas` says none does.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mayastor.control.placement import (
    CommitmentLimits,
    NodeView,
    PoolView,
    choose_target_node,
    place_replicas,
)
from mayastor.control.specs import (
    ExplicitNodeTopology,
    LabelledTopology,
    NodeTopology,
    PoolTopology,
    Topology,
)
from mayastor.errors import FailedPrecondition

LIMITS = CommitmentLimits(pool_commitment=2.5, volume_commitment_initial=0.4)


def pool(
    pool_id: str,
    node: str,
    *,
    capacity: int = 1000,
    used: int = 0,
    committed: int = 0,
    replicas: int = 0,
    **fields: object,
) -> PoolView:
    return PoolView(
        id=pool_id,
        node=node,
        capacity=capacity,
        used=used,
        committed=committed,
        replicas=replicas,
        **fields,  # type: ignore[arg-type]
    )


def ids(pools: Sequence[PoolView]) -> list[str]:
    return [p.id for p in pools]


def labelled_nodes(**rules: object) -> Topology:
    return Topology(node_topology=NodeTopology(labelled=LabelledTopology(**rules)))


def labelled_pools(**rules: object) -> Topology:
    return Topology(pool_topology=PoolTopology(labelled=LabelledTopology(**rules)))


def explicit(allowed: Sequence[str] = (), preferred: Sequence[str] = ()) -> Topology:
    return Topology(
        node_topology=NodeTopology(
            explicit=ExplicitNodeTopology(
                allowed_nodes=list(allowed), preferred_nodes=list(preferred)
            )
        )
    )


# ============================================================================ the oracle


@dataclass(frozen=True)
class Request:
    """One call of `place_replicas`, as drawn."""

    pools: list[PoolView]
    count: int
    size: int
    thin: bool
    topology: Topology | None
    exclude_nodes: frozenset[str]
    chosen_labels: list[tuple[dict[str, str], dict[str, str]]]
    limits: CommitmentLimits

    def outcome(self, pools: Sequence[PoolView] | None = None) -> list[PoolView] | str:
        """The pools chosen, or the refusal's message."""
        try:
            return self.place(pools)
        except FailedPrecondition as exc:
            return str(exc)

    def place(self, pools: Sequence[PoolView] | None = None) -> list[PoolView]:
        return place_replicas(
            self.pools if pools is None else pools,
            count=self.count,
            size=self.size,
            thin=self.thin,
            topology=self.topology,
            exclude_nodes=self.exclude_nodes,
            chosen_labels=self.chosen_labels,
            limits=self.limits,
        )

    @property
    def node_rules(self) -> LabelledTopology | None:
        t = self.topology
        return t.node_topology.labelled if t and t.node_topology else None

    @property
    def pool_rules(self) -> LabelledTopology | None:
        t = self.topology
        return t.pool_topology.labelled if t and t.pool_topology else None

    @property
    def explicit(self) -> ExplicitNodeTopology | None:
        t = self.topology
        return t.node_topology.explicit if t and t.node_topology else None


def _includes(labels: dict[str, str], rules: LabelledTopology | None) -> bool:
    if rules is None:
        return True
    for key, value in rules.inclusion.items():
        if key not in labels or (value and labels[key] != value):
            return False
    return all(key in labels for key in rules.exclusion)


def eligible(request: Request, p: PoolView) -> bool:
    """Whether `p` may take a replica on its own merits (the rules, written out)."""
    allowed = request.explicit.allowed_nodes if request.explicit else []
    if not p.node_online or p.node_cordoned or not p.online:
        return False
    if p.node in request.exclude_nodes or (allowed and p.node not in allowed):
        return False
    if not _includes(p.node_labels, request.node_rules):
        return False
    if not _includes(p.labels, request.pool_rules):
        return False
    free = max(0, p.capacity - p.used)
    if request.thin:
        if p.committed + request.size > int(p.capacity * request.limits.pool_commitment):
            return False
        return free >= int(request.size * request.limits.volume_commitment_initial)
    clusters = -(-request.size // p.cluster_size)
    return free >= clusters * p.cluster_size


def _labels_fit(
    new: Sequence[dict[str, str]], existing: Sequence[dict[str, str]], rules: LabelledTopology
) -> bool:
    everyone = [*existing, *new]
    for key in rules.exclusion:
        values = [labels.get(key) for labels in new]
        if len(set(values)) < len(values):
            return False
        if any(labels.get(key) in values for labels in existing):
            return False
    return all(len({labels.get(key) for labels in everyone}) <= 1 for key in rules.affinity_key)


def valid(request: Request, chosen: Sequence[PoolView]) -> bool:
    """Whether `chosen` is a placement the rules allow."""
    if len(chosen) != request.count or len({p.node for p in chosen}) != len(chosen):
        return False
    if not all(eligible(request, p) for p in chosen):
        return False
    node_rules, pool_rules = request.node_rules, request.pool_rules
    if node_rules and not _labels_fit(
        [p.node_labels for p in chosen], [n for n, _ in request.chosen_labels], node_rules
    ):
        return False
    return not pool_rules or _labels_fit(
        [p.labels for p in chosen], [q for _, q in request.chosen_labels], pool_rules
    )


def any_valid(request: Request) -> bool:
    candidates = [p for p in request.pools if eligible(request, p)]
    return any(valid(request, combo) for combo in itertools.combinations(candidates, request.count))


def rank(request: Request, p: PoolView) -> tuple[int, int, int, str]:
    preferred = request.explicit.preferred_nodes if request.explicit else []
    first = preferred.index(p.node) if p.node in preferred else len(preferred)
    return (first, p.replicas, -max(0, p.capacity - p.used), p.id)


# ============================================================================ strategies

NODES = [f"node-{i}" for i in range(5)]
ZONES = st.sampled_from(["a", "b", "c"])
LABEL_SETS = st.fixed_dictionaries(
    {}, optional={"zone": ZONES, "rack": st.sampled_from(["1", "2"]), "ssd": st.just("yes")}
)


# Most nodes and pools are up, so that placements can succeed (hypothesis favours the
# first and last of a sampled list: those are the healthy ones).
NODE_STATES = st.sampled_from(["up", "up", "offline", "up", "cordoned", "up", "up"])
POOL_ONLINE = st.sampled_from([True, True, False, True, True])


@st.composite
def clusters(draw: st.DrawFn) -> list[PoolView]:
    names = NODES[: draw(st.integers(1, len(NODES)))]
    pools: list[PoolView] = []
    for name in names:
        state = draw(NODE_STATES)
        node = {
            "node_online": state != "offline",
            "node_cordoned": state == "cordoned",
            "node_labels": draw(LABEL_SETS),
        }
        for _ in range(draw(st.sampled_from([1, 1, 2, 0]))):
            capacity = draw(st.sampled_from([4000, 1000, 0, 100, 4000]))
            used = draw(st.sampled_from([0, capacity, capacity // 2, 0]))
            pools.append(
                PoolView(
                    id=f"pool-{len(pools)}",
                    node=name,
                    capacity=capacity,
                    used=used,
                    committed=draw(st.sampled_from([used, used, 2 * capacity, 3 * capacity])),
                    replicas=draw(st.integers(0, 3)),
                    cluster_size=draw(st.sampled_from([1, 64, 1000, 1])),
                    online=draw(POOL_ONLINE),
                    labels=draw(LABEL_SETS),
                    **node,  # type: ignore[arg-type]
                )
            )
    return pools


label_rules = st.builds(
    LabelledTopology,
    exclusion=st.dictionaries(st.sampled_from(["zone", "rack"]), st.just(""), max_size=1),
    inclusion=st.dictionaries(
        st.sampled_from(["zone", "rack", "ssd"]), st.sampled_from(["", "a", "1", "yes"]), max_size=2
    ),
    affinity_key=st.lists(st.sampled_from(["zone", "rack"]), max_size=1),
)

topologies = st.one_of(
    st.none(),
    st.builds(
        Topology,
        node_topology=st.one_of(
            st.none(),
            st.builds(
                NodeTopology,
                explicit=st.one_of(
                    st.none(),
                    st.builds(
                        ExplicitNodeTopology,
                        allowed_nodes=st.lists(st.sampled_from(NODES), max_size=4, unique=True),
                        preferred_nodes=st.lists(st.sampled_from(NODES), max_size=3, unique=True),
                    ),
                ),
                labelled=st.one_of(st.none(), label_rules),
            ),
        ),
        pool_topology=st.one_of(st.none(), st.builds(PoolTopology, labelled=label_rules)),
    ),
)


@st.composite
def requests(draw: st.DrawFn, *, with_labels: bool = True) -> Request:
    """Any cluster, any request: mostly refusals, some placements."""
    return Request(
        pools=draw(clusters()),
        count=draw(st.integers(1, 4)),
        size=draw(st.sampled_from([10, 10, 400, 1000, 2500]) | st.integers(1, 5000)),
        thin=draw(st.booleans()),
        topology=draw(topologies) if with_labels else None,
        exclude_nodes=frozenset(draw(st.lists(st.sampled_from(NODES), max_size=1))),
        chosen_labels=draw(st.lists(st.tuples(LABEL_SETS, LABEL_SETS), max_size=2))
        if with_labels
        else [],
        limits=CommitmentLimits(
            pool_commitment=draw(st.sampled_from([1.0, 1.5, 2.5])),
            volume_commitment_initial=draw(st.sampled_from([0.0, 0.4, 1.0])),
        ),
    )


@st.composite
def labelled_requests(draw: st.DrawFn) -> Request:
    """Healthy clusters with room, where only the labels (and node count) decide."""
    pools: list[PoolView] = []
    for name in NODES[: draw(st.integers(2, len(NODES)))]:
        node_labels = draw(LABEL_SETS)
        for _ in range(draw(st.integers(1, 2))):
            pools.append(
                pool(
                    f"pool-{len(pools)}",
                    name,
                    capacity=draw(st.sampled_from([1000, 4000])),
                    replicas=draw(st.integers(0, 2)),
                    node_labels=node_labels,
                    labels=draw(LABEL_SETS),
                )
            )
    topology = Topology(
        node_topology=NodeTopology(labelled=draw(label_rules)),
        pool_topology=draw(st.one_of(st.none(), st.builds(PoolTopology, labelled=label_rules))),
    )
    return Request(
        pools=pools,
        count=draw(st.integers(1, 4)),
        size=10,
        thin=False,
        topology=topology,
        exclude_nodes=frozenset(),
        chosen_labels=draw(st.lists(st.tuples(LABEL_SETS, LABEL_SETS), max_size=1)),
        limits=LIMITS,
    )


# ============================================================================ properties


@settings(max_examples=400, deadline=None)
@given(requests() | labelled_requests())
def test_a_placement_is_valid_or_refused_only_when_no_valid_one_exists(request: Request) -> None:
    chosen = request.outcome()
    if isinstance(chosen, list):
        assert valid(request, chosen), ids(chosen)
        return
    assert not any_valid(request), f"refused, but a valid placement exists: {chosen}"
    for p in request.pools:
        if not eligible(request, p):
            assert f"pool {p.id}:" in chosen, f"{p.id} left out without a reason: {chosen}"


@settings(max_examples=300, deadline=None)
@given(requests(), st.randoms(use_true_random=False))
def test_a_placement_does_not_depend_on_the_order_pools_are_listed_in(
    request: Request, rnd: random.Random
) -> None:
    shuffled = list(request.pools)
    rnd.shuffle(shuffled)
    first, again, reordered = request.outcome(), request.outcome(), request.outcome(shuffled)
    if isinstance(first, list):
        assert isinstance(again, list)
        assert isinstance(reordered, list)
        assert ids(again) == ids(reordered) == ids(first)
    else:
        assert again == reordered == first


@settings(max_examples=300, deadline=None)
@given(requests(with_labels=False), st.lists(st.sampled_from(NODES), max_size=3, unique=True))
def test_no_pool_left_out_ranks_before_a_chosen_one(request: Request, preferred: list[str]) -> None:
    """Preferred nodes first, then fewer replicas, then more free space (then the id)."""
    request = replace(request, topology=explicit(preferred=preferred))
    try:
        chosen = request.place()
    except FailedPrecondition:
        return
    nodes = {p.node for p in chosen}
    worst = max(rank(request, p) for p in chosen)
    for p in request.pools:
        if p not in chosen and p.node not in nodes and eligible(request, p):
            assert rank(request, p) > worst, (p.id, ids(chosen))
    # on each chosen node, the pool chosen is the best one there
    for c in chosen:
        for p in request.pools:
            if p.node == c.node and eligible(request, p):
                assert rank(request, p) >= rank(request, c)


node_views = st.lists(
    st.builds(
        NodeView,
        name=st.sampled_from(NODES),
        online=st.booleans(),
        cordoned=st.booleans(),
        nexuses=st.integers(0, 3),
        group_targets=st.integers(0, 2),
    ),
    max_size=5,
    unique_by=lambda v: v.name,
)


@settings(max_examples=300, deadline=None)
@given(
    node_views,
    st.lists(st.sampled_from(NODES), max_size=3, unique=True),
    st.one_of(st.none(), st.sampled_from(NODES)),
    st.randoms(use_true_random=False),
)
def test_a_target_goes_to_a_usable_node_by_the_rules(
    nodes: list[NodeView], replica_nodes: list[str], requested: str | None, rnd: random.Random
) -> None:
    usable = {n.name: n for n in nodes if n.online and not n.cordoned}
    shuffled = list(nodes)
    rnd.shuffle(shuffled)
    if requested is not None:
        if requested in usable:
            assert choose_target_node(nodes, replica_nodes=replica_nodes, requested=requested) == (
                requested
            )
        else:
            with pytest.raises(FailedPrecondition, match=requested):
                choose_target_node(nodes, replica_nodes=replica_nodes, requested=requested)
        return
    if not usable:
        with pytest.raises(FailedPrecondition):
            choose_target_node(nodes, replica_nodes=replica_nodes)
        return
    chosen = choose_target_node(nodes, replica_nodes=replica_nodes)
    assert chosen in usable
    assert choose_target_node(shuffled, replica_nodes=replica_nodes) == chosen
    if len(replica_nodes) == 1 and replica_nodes[0] in usable:
        assert chosen == replica_nodes[0]
        return
    rank = {name: (n.group_targets, n.nexuses) for name, n in usable.items()}
    best = min(rank.values())
    assert rank[chosen] == best
    if any(rank[n] == best for n in replica_nodes if n in usable):
        assert chosen in replica_nodes


# ============================================================================ replicas: nodes


def test_replicas_never_share_a_node() -> None:
    pools = [pool("a1", "a"), pool("a2", "a"), pool("b1", "b")]
    chosen = place_replicas(pools, count=2, size=10, thin=False)
    assert sorted(p.node for p in chosen) == ["a", "b"]


def test_two_pools_on_one_node_do_not_make_room_for_two_replicas() -> None:
    pools = [pool("a1", "a"), pool("a2", "a")]
    with pytest.raises(FailedPrecondition, match="2 pools on different nodes, 1 found"):
        place_replicas(pools, count=2, size=10, thin=False)


def test_too_few_nodes_says_how_many_qualify() -> None:
    pools = [pool("a1", "a"), pool("b1", "b")]
    with pytest.raises(FailedPrecondition) as info:
        place_replicas(pools, count=3, size=10, thin=False)
    message = str(info.value)
    assert "3 replica(s)" in message
    assert "2 found" in message
    assert "no pools" not in message


def test_no_pools_at_all_is_a_failed_precondition_saying_so() -> None:
    with pytest.raises(FailedPrecondition, match="no pools"):
        place_replicas([], count=1, size=10, thin=False)


def test_a_pool_on_an_offline_node_is_left_out_with_the_reason() -> None:
    pools = [pool("a1", "a", node_online=False), pool("b1", "b")]
    assert ids(place_replicas(pools, count=1, size=10, thin=False)) == ["b1"]
    with pytest.raises(FailedPrecondition, match="pool a1: node a is offline"):
        place_replicas(pools, count=2, size=10, thin=False)


def test_a_pool_on_a_cordoned_node_is_left_out_with_the_reason() -> None:
    pools = [pool("a1", "a", node_cordoned=True), pool("b1", "b")]
    with pytest.raises(FailedPrecondition, match="pool a1: node a is cordoned"):
        place_replicas(pools, count=2, size=10, thin=False)


def test_a_pool_that_is_not_online_is_left_out_with_the_reason() -> None:
    pools = [pool("a1", "a", online=False), pool("b1", "b")]
    with pytest.raises(FailedPrecondition, match="pool a1: the pool is not online"):
        place_replicas(pools, count=2, size=10, thin=False)


def test_nodes_holding_a_replica_of_the_volume_already_are_left_out() -> None:
    pools = [pool("a1", "a", capacity=9000), pool("b1", "b")]
    chosen = place_replicas(pools, count=1, size=10, thin=False, exclude_nodes={"a"})
    assert ids(chosen) == ["b1"]


def test_only_the_allowed_nodes_take_replicas() -> None:
    pools = [pool("a1", "a", capacity=9000), pool("b1", "b"), pool("c1", "c")]
    chosen = place_replicas(pools, count=2, size=10, thin=False, topology=explicit(["b", "c"]))
    assert sorted(ids(chosen)) == ["b1", "c1"]


def test_preferred_nodes_come_first_even_with_less_room() -> None:
    pools = [pool("a1", "a", capacity=9000), pool("b1", "b", capacity=100)]
    chosen = place_replicas(pools, count=1, size=10, thin=False, topology=explicit(preferred=["b"]))
    assert ids(chosen) == ["b1"]


# ============================================================================ replicas: room


def test_a_thick_replica_needs_its_whole_size_free() -> None:
    fits = [pool("a1", "a", capacity=1000, used=900)]
    assert ids(place_replicas(fits, count=1, size=100, thin=False)) == ["a1"]
    with pytest.raises(FailedPrecondition, match="pool a1: 100 bytes free, 101 needed"):
        place_replicas(fits, count=1, size=101, thin=False)


def test_a_thick_replica_needs_whole_clusters_free() -> None:
    pools = [pool("a1", "a", capacity=1000, used=800, cluster_size=64)]  # 200 free
    assert ids(place_replicas(pools, count=1, size=192, thin=False)) == ["a1"]
    with pytest.raises(FailedPrecondition, match="pool a1: 200 bytes free, 256 needed"):
        place_replicas(pools, count=1, size=193, thin=False)


def test_a_thin_replica_larger_than_the_free_space_fits_within_the_commitment() -> None:
    pools = [pool("a1", "a", capacity=1000, used=500)]
    assert ids(place_replicas(pools, count=1, size=1200, thin=True, limits=LIMITS)) == ["a1"]


def test_a_thin_replica_may_not_pass_the_pools_commitment_limit() -> None:
    at_limit = [pool("a1", "a", capacity=1000, committed=2000)]
    assert ids(place_replicas(at_limit, count=1, size=500, thin=True, limits=LIMITS)) == ["a1"]
    with pytest.raises(FailedPrecondition, match="thin commitment"):
        place_replicas(at_limit, count=1, size=501, thin=True, limits=LIMITS)


def test_a_thin_replica_needs_its_initial_share_of_free_space() -> None:
    pools = [pool("a1", "a", capacity=1000, used=800)]  # 200 free
    assert ids(place_replicas(pools, count=1, size=500, thin=True, limits=LIMITS)) == ["a1"]
    with pytest.raises(FailedPrecondition, match="needs 202 to start"):
        place_replicas(pools, count=1, size=505, thin=True, limits=LIMITS)


def test_the_commitment_limits_are_the_callers() -> None:
    pools = [pool("a1", "a", capacity=1000)]
    strict = CommitmentLimits(pool_commitment=1.0, volume_commitment_initial=1.0)
    with pytest.raises(FailedPrecondition):
        place_replicas(pools, count=1, size=1001, thin=True, limits=strict)
    assert ids(place_replicas(pools, count=1, size=1001, thin=True, limits=LIMITS)) == ["a1"]


# ============================================================================ replicas: labels


def test_node_inclusion_labels_must_match_their_value() -> None:
    pools = [
        pool("a1", "a", node_labels={"zone": "east"}, capacity=9000),
        pool("b1", "b", node_labels={"zone": "west"}),
    ]
    topology = labelled_nodes(inclusion={"zone": "west"})
    assert ids(place_replicas(pools, count=1, size=10, thin=False, topology=topology)) == ["b1"]


def test_a_node_inclusion_label_without_value_takes_any_value_but_needs_the_key() -> None:
    pools = [
        pool("a1", "a", node_labels={"zone": "east"}),
        pool("b1", "b", node_labels={"zone": "west"}),
        pool("c1", "c", capacity=9000),
    ]
    topology = labelled_nodes(inclusion={"zone": ""})
    chosen = place_replicas(pools, count=2, size=10, thin=False, topology=topology)
    assert sorted(ids(chosen)) == ["a1", "b1"]
    with pytest.raises(FailedPrecondition, match="pool c1: node c has no label zone"):
        place_replicas(pools, count=3, size=10, thin=False, topology=topology)


def test_pool_inclusion_labels_filter_pools() -> None:
    pools = [pool("a1", "a", labels={"class": "ssd"}), pool("b1", "b", capacity=9000)]
    topology = labelled_pools(inclusion={"class": "ssd"})
    assert ids(place_replicas(pools, count=1, size=10, thin=False, topology=topology)) == ["a1"]


def test_exclusion_labels_keep_replicas_on_different_values() -> None:
    pools = [
        pool("a1", "a", node_labels={"zone": "east"}, capacity=9000),
        pool("b1", "b", node_labels={"zone": "east"}, capacity=8000),
        pool("c1", "c", node_labels={"zone": "west"}),
    ]
    topology = labelled_nodes(exclusion={"zone": ""})
    chosen = place_replicas(pools, count=2, size=10, thin=False, topology=topology)
    assert sorted(ids(chosen)) == ["a1", "c1"]
    with pytest.raises(FailedPrecondition, match="taken by another replica"):
        place_replicas(pools, count=3, size=10, thin=False, topology=topology)


def test_exclusion_labels_count_the_volumes_existing_replicas() -> None:
    pools = [
        pool("a1", "a", node_labels={"zone": "east"}, capacity=9000),
        pool("c1", "c", node_labels={"zone": "west"}),
    ]
    topology = labelled_nodes(exclusion={"zone": ""})
    chosen = place_replicas(
        pools,
        count=1,
        size=10,
        thin=False,
        topology=topology,
        chosen_labels=[({"zone": "east"}, {})],
    )
    assert ids(chosen) == ["c1"]


def test_affinity_keeps_every_replica_on_the_first_ones_value() -> None:
    pools = [
        pool("a1", "a", node_labels={"zone": "east"}, capacity=9000),
        pool("b1", "b", node_labels={"zone": "west"}, capacity=8000),
        pool("c1", "c", node_labels={"zone": "east"}),
    ]
    topology = labelled_nodes(affinity_key=["zone"])
    chosen = place_replicas(pools, count=2, size=10, thin=False, topology=topology)
    assert sorted(ids(chosen)) == ["a1", "c1"]


def test_affinity_with_existing_replicas_follows_their_value() -> None:
    pools = [
        pool("a1", "a", node_labels={"zone": "east"}, capacity=9000),
        pool("b1", "b", node_labels={"zone": "west"}),
    ]
    topology = labelled_nodes(affinity_key=["zone"])
    chosen = place_replicas(
        pools,
        count=1,
        size=10,
        thin=False,
        topology=topology,
        chosen_labels=[({"zone": "west"}, {})],
    )
    assert ids(chosen) == ["b1"]


def test_affinity_looks_past_a_best_pool_whose_group_is_too_small() -> None:
    pools = [
        pool("a1", "a", node_labels={"zone": "east"}, capacity=9000),
        pool("b1", "b", node_labels={"zone": "west"}),
        pool("c1", "c", node_labels={"zone": "west"}),
    ]
    topology = labelled_nodes(affinity_key=["zone"])
    chosen = place_replicas(pools, count=2, size=10, thin=False, topology=topology)
    assert sorted(ids(chosen)) == ["b1", "c1"]


# ============================================================================ replicas: order


def test_pools_with_fewer_replicas_come_first() -> None:
    pools = [pool("a1", "a", replicas=2, capacity=9000), pool("b1", "b", replicas=1)]
    assert ids(place_replicas(pools, count=1, size=10, thin=False)) == ["b1"]


def test_nodes_with_fewer_replicas_of_the_affinity_group_come_first() -> None:
    pools = [
        pool("a1", "a", group_replicas=1),
        pool("b1", "b", replicas=5, capacity=200),
        pool("c1", "c", group_replicas=2),
    ]
    assert ids(place_replicas(pools, count=2, size=10, thin=False)) == ["b1", "a1"]


def test_among_equal_replica_counts_more_free_space_comes_first() -> None:
    pools = [pool("a1", "a", used=500), pool("b1", "b", used=100), pool("c1", "c", used=300)]
    assert ids(place_replicas(pools, count=2, size=10, thin=False)) == ["b1", "c1"]


def test_a_refusal_names_every_pool_left_out_and_why() -> None:
    pools = [
        pool("a1", "a", node_online=False),
        pool("b1", "b", capacity=5),
        pool("c1", "c", online=False),
    ]
    with pytest.raises(FailedPrecondition) as info:
        place_replicas(pools, count=1, size=10, thin=False)
    message = str(info.value)
    assert "pool a1: node a is offline" in message
    assert "pool b1: 5 bytes free, 10 needed" in message
    assert "pool c1: the pool is not online" in message


# ============================================================================ targets


def test_the_target_goes_to_the_requested_node() -> None:
    nodes = [NodeView("a", True, False, 5), NodeView("b", True, False, 0)]
    assert choose_target_node(nodes, replica_nodes=["b"], requested="a") == "a"


@pytest.mark.parametrize(
    ("view", "reason"),
    [
        (NodeView("a", False, False, 0), "not online"),
        (NodeView("a", True, True, 0), "cordoned"),
        (None, "not online"),
    ],
)
def test_a_requested_node_that_cannot_take_the_target_is_a_failed_precondition(
    view: NodeView | None, reason: str
) -> None:
    nodes = [NodeView("b", True, False, 0), *([view] if view else [])]
    with pytest.raises(FailedPrecondition, match=f"node a .*{reason}"):
        choose_target_node(nodes, replica_nodes=["b"], requested="a")


def test_a_single_replica_volume_keeps_its_target_with_its_replica() -> None:
    nodes = [NodeView("a", True, False, 0), NodeView("b", True, False, 3)]
    assert choose_target_node(nodes, replica_nodes=["b"]) == "b"


def test_a_single_replica_on_an_offline_node_falls_back_to_the_fewest_nexuses() -> None:
    nodes = [
        NodeView("a", True, False, 1),
        NodeView("b", False, False, 0),
        NodeView("c", True, False, 0),
    ]
    assert choose_target_node(nodes, replica_nodes=["b"]) == "c"


def test_the_target_goes_to_the_node_with_the_fewest_nexuses() -> None:
    nodes = [
        NodeView("a", True, False, 2),
        NodeView("b", True, False, 1),
        NodeView("c", True, False, 3),
    ]
    assert choose_target_node(nodes, replica_nodes=["a", "c"]) == "b"


def test_the_target_avoids_nodes_serving_targets_of_its_affinity_group() -> None:
    nodes = [
        NodeView("a", True, False, 0, group_targets=1),
        NodeView("b", True, False, 4),
    ]
    assert choose_target_node(nodes, replica_nodes=["a", "b"]) == "b"


def test_among_equals_a_node_holding_a_replica_takes_the_target() -> None:
    nodes = [NodeView("a", True, False, 1), NodeView("b", True, False, 1)]
    assert choose_target_node(nodes, replica_nodes=["b", "c"]) == "b"


def test_among_equals_without_replicas_the_first_name_takes_the_target() -> None:
    nodes = [NodeView("b", True, False, 0), NodeView("a", True, False, 0)]
    assert choose_target_node(nodes, replica_nodes=[]) == "a"


def test_no_usable_node_for_the_target_is_a_failed_precondition() -> None:
    nodes = [NodeView("a", False, False, 0), NodeView("b", True, True, 0)]
    with pytest.raises(FailedPrecondition, match="no node can take the target"):
        choose_target_node(nodes, replica_nodes=["a"])
