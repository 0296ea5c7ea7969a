"""The spec registry over an embedded store: round trips, revision checks, atomic commits,
and what a failed write leaves behind (nothing in memory; the key read again before the
next write). A store that fails on purpose (`FlakyStore`, a wrapper of our own store
interface around a real embedded store) stands in for a store that goes away.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mayastor.control.spec_registry import SpecRegistry, spec_id
from mayastor.control.specs import (
    SPEC_KINDS,
    AffinityGroup,
    AppNodeSpec,
    CordonDrainState,
    CordonedState,
    DrainState,
    ExplicitNodeTopology,
    LabelledTopology,
    NexusSpec,
    NodeAccessInfo,
    NodeSecretSpec,
    NodeSpec,
    NodeTopology,
    OperationRecord,
    PoolSpec,
    PoolTopology,
    Protocol,
    ReplicaOwners,
    ReplicaSpec,
    SpecModel,
    SpecStatus,
    Topology,
    VolumePolicy,
    VolumeShareProtocol,
    VolumeSpec,
    VolumeTarget,
)
from mayastor.control.store import (
    ClusterStore,
    EmbeddedStore,
    Entry,
    Leadership,
    Operation,
    Put,
    RevisionMismatch,
    StoreKeys,
)
from mayastor.errors import CorruptMetadata, StoreUnavailable

KEYS = StoreKeys("test-cluster")
VOLUME = uuid.UUID(int=0xA1)
BASE = "/openebs.io/mayastor/apis/v0/clusters/test-cluster/namespaces/mayastor"


class FlakyStore:
    """Our store interface around a real embedded store, failing when told to.

    Attributes:
        fail_commit: "before" fails the next commit without applying it; "after" applies
            it, then reports StoreUnavailable (the answer was lost on the way back).
        fail_lists_after: fail every list after this many have succeeded.
        gets: the keys read with `get`, in order.
    """

    def __init__(self, inner: EmbeddedStore) -> None:
        self.inner = inner
        self.description = f"flaky {inner.description}"
        self.guard: Leadership | None = None
        self.fail_commit: str | None = None
        self.fail_lists_after: int | None = None
        self.lists = 0
        self.gets: list[str] = []

    async def get(self, key: str) -> Entry | None:
        self.gets.append(key)
        return await self.inner.get(key)

    async def list(self, prefix: str) -> list[Entry]:
        if self.fail_lists_after is not None and self.lists >= self.fail_lists_after:
            raise StoreUnavailable("the store went away (on purpose)")
        self.lists += 1
        return await self.inner.list(prefix)

    async def put(self, key: str, value: bytes, *, revision: int | None = None) -> int:
        return await self.commit([Put(key, value, revision)])

    async def delete(self, key: str, *, revision: int | None = None) -> bool:
        return await self.inner.delete(key, revision=revision)

    async def commit(self, operations: Sequence[Operation]) -> int:
        how, self.fail_commit = self.fail_commit, None
        if how == "before":
            raise StoreUnavailable("the store went away before the commit (on purpose)")
        revision = await self.inner.commit(operations)
        if how == "after":
            raise StoreUnavailable("the answer to the commit was lost (on purpose)")
        return revision

    async def campaign(self, name: str, holder: str, ttl: float) -> Leadership:
        return await self.inner.campaign(name, holder, ttl)

    async def lease_holder(self, name: str) -> str | None:
        return await self.inner.lease_holder(name)

    async def resign(self, leadership: Leadership) -> None:
        await self.inner.resign(leadership)

    async def close(self) -> None:
        await self.inner.close()


@pytest.fixture
async def inner(tmp_path: Path) -> AsyncIterator[EmbeddedStore]:
    store = EmbeddedStore(tmp_path / "store.db")
    yield store
    await store.close()


@pytest.fixture
def flaky(inner: EmbeddedStore) -> FlakyStore:
    return FlakyStore(inner)


@pytest.fixture
def registry(flaky: FlakyStore) -> SpecRegistry:
    return SpecRegistry(flaky, KEYS)


async def reloaded(store: ClusterStore) -> SpecRegistry:
    fresh = SpecRegistry(store, KEYS)
    await fresh.load()
    return fresh


# ============================================================================ specs

OPERATION = OperationRecord(operation="Create", result=None, args={"node": "node-1", "n": 2})


def every_kind() -> list[SpecModel]:
    """One spec of each kind with every optional part filled in."""
    replica = uuid.UUID(int=0xB1)
    nexus = uuid.UUID(int=0xC1)
    return [
        NodeSpec(
            id="node-1",
            grpcEndpoint="10.0.0.1:10124",
            labels={"zone": "east", "topology.kubernetes.io/region": "eu"},
            cordondrainstate=CordonDrainState(
                drainingstate=DrainState(cordonlabels=["ops"], drainlabels=["upgrade"])
            ),
            node_nqn="nqn.2019-05.io.openebs:node-name:node-1",
            version="v2.5.0",
        ),
        PoolSpec(
            node="node-1",
            id="pool-1",
            disks=["aio:///dev/sdb"],
            status=SpecStatus.CREATED,
            labels={"class": "ssd"},
            operation=OPERATION,
        ),
        ReplicaSpec(
            uuid=replica,
            name=str(replica),
            size=1 << 30,
            pool="pool-1",
            node="node-1",
            poolUuid=uuid.UUID(int=0xD1),
            share=Protocol.NVMF,
            allowed_hosts=["nqn.2019-05.io.openebs:node-name:node-2"],
            thin=True,
            status=SpecStatus.CREATING,
            managed=True,
            owners=ReplicaOwners(volume=VOLUME, nexuses=[nexus]),
            operation=OPERATION,
            kind_="Regular",
        ),
        NexusSpec(
            uuid=nexus,
            name=str(VOLUME),
            node="node-2",
            children=["nvmf://10.0.0.1:8420/nqn.2019-05.io.openebs:x?uuid=y", "bdev:///local"],
            size=1 << 30,
            status=SpecStatus.CREATED,
            share=Protocol.NVMF,
            managed=True,
            owner=VOLUME,
            allowed_hosts=["nqn.2019-05.io.openebs:node-name:app-1"],
            operation=OperationRecord(operation="Publish", result=True),
        ),
        VolumeSpec(
            uuid=VOLUME,
            size=1 << 30,
            num_replicas=3,
            status=SpecStatus.CREATED,
            policy=VolumePolicy(self_heal=True),
            thin=True,
            target=VolumeTarget(
                node="node-2",
                nexus=nexus,
                protocol=VolumeShareProtocol.NVMF,
                frontend_nodes=[NodeAccessInfo(name="app-1", nqn="nqn.x:app-1")],
                publish_context={"ioTimeout": "30"},
            ),
            topology=Topology(
                node_topology=NodeTopology(
                    explicit=ExplicitNodeTopology(allowed_nodes=["node-1"], preferred_nodes=[]),
                    labelled=LabelledTopology(
                        exclusion={"zone": ""}, inclusion={"ssd": "yes"}, affinity_key=["rack"]
                    ),
                ),
                pool_topology=PoolTopology(labelled=LabelledTopology(inclusion={"class": "ssd"})),
            ),
            labels={"app": "db"},
            affinity_group=AffinityGroup(id="group-1"),
            operation=OPERATION,
            num_snapshots=0,
            max_snapshots=10,
            health_info_id=nexus,
            target_generation=4,
        ),
        AppNodeSpec(id="app-1", endpoint="10.0.0.9:50055", labels={"zone": "east"}),
        NodeSecretSpec(id="app-1", secret="DHHC-1:00:" + "A" * 48 + ":"),
    ]


def volume(n: int = 1, **fields: object) -> VolumeSpec:
    base: dict[str, object] = {
        "uuid": uuid.UUID(int=n),
        "size": 1 << 20,
        "num_replicas": 1,
        "status": SpecStatus.CREATED,
        "policy": VolumePolicy(self_heal=True),
        "thin": False,
    }
    return VolumeSpec.model_validate({**base, **fields})


def node(name: str, **fields: object) -> NodeSpec:
    return NodeSpec.model_validate({"id": name, "grpcEndpoint": "127.0.0.1:1", **fields})


# ------------------------------------------------------------------ strategies

names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
labels = st.dictionaries(names, st.text(max_size=8), max_size=3)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
operations = st.one_of(
    st.none(),
    st.builds(
        OperationRecord,
        operation=st.sampled_from(["Create", "Destroy", "Publish", "Unpublish", "Resize"]),
        result=st.one_of(st.none(), st.booleans()),
        args=st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    ),
)
statuses = st.sampled_from(SpecStatus)
sizes = st.integers(0, 1 << 62)
uuids = st.uuids()
label_topologies = st.builds(
    LabelledTopology,
    exclusion=labels,
    inclusion=labels,
    affinity_key=st.lists(names, max_size=2),
)

node_specs = st.builds(
    NodeSpec,
    id=names,
    grpcEndpoint=names,
    labels=labels,
    cordondrainstate=st.one_of(
        st.none(),
        st.builds(
            CordonDrainState, cordonedstate=st.builds(CordonedState, cordonlabels=st.lists(names))
        ),
        st.builds(
            CordonDrainState,
            drainedstate=st.builds(
                DrainState, cordonlabels=st.lists(names), drainlabels=st.lists(names)
            ),
        ),
    ),
    node_nqn=st.one_of(st.none(), names),
    version=st.one_of(st.none(), names),
)
pool_specs = st.builds(
    PoolSpec,
    node=names,
    id=names,
    disks=st.lists(names, min_size=1, max_size=2),
    status=statuses,
    labels=labels,
    operation=operations,
)
replica_specs = st.builds(
    ReplicaSpec,
    uuid=uuids,
    name=names,
    size=sizes,
    pool=names,
    node=names,
    poolUuid=st.one_of(st.none(), uuids),
    share=st.sampled_from(Protocol),
    allowed_hosts=st.lists(names, max_size=2),
    thin=st.booleans(),
    status=statuses,
    managed=st.booleans(),
    owners=st.builds(
        ReplicaOwners, volume=st.one_of(st.none(), uuids), nexuses=st.lists(uuids, max_size=2)
    ),
    operation=operations,
    kind_=st.sampled_from(["Regular", "Snapshot"]),
)
nexus_specs = st.builds(
    NexusSpec,
    uuid=uuids,
    name=names,
    node=names,
    children=st.lists(names, max_size=3),
    size=sizes,
    status=statuses,
    share=st.sampled_from(Protocol),
    managed=st.booleans(),
    owner=st.one_of(st.none(), uuids),
    allowed_hosts=st.lists(names, max_size=2),
    operation=operations,
)
volume_specs = st.builds(
    VolumeSpec,
    uuid=uuids,
    size=sizes,
    num_replicas=st.integers(1, 5),
    status=statuses,
    policy=st.builds(VolumePolicy, self_heal=st.booleans()),
    thin=st.booleans(),
    target=st.one_of(
        st.none(),
        st.builds(
            VolumeTarget,
            node=names,
            nexus=st.one_of(st.none(), uuids),
            protocol=st.sampled_from(VolumeShareProtocol),
            frontend_nodes=st.lists(st.builds(NodeAccessInfo, name=names, nqn=names), max_size=2),
            publish_context=labels,
        ),
    ),
    topology=st.one_of(
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
                            allowed_nodes=st.lists(names, max_size=2),
                            preferred_nodes=st.lists(names, max_size=2),
                        ),
                    ),
                    labelled=st.one_of(st.none(), label_topologies),
                ),
            ),
            pool_topology=st.one_of(
                st.none(), st.builds(PoolTopology, labelled=st.one_of(st.none(), label_topologies))
            ),
        ),
    ),
    labels=st.one_of(st.none(), labels),
    affinity_group=st.one_of(st.none(), st.builds(AffinityGroup, id=names)),
    operation=operations,
    num_snapshots=st.integers(0, 100),
    max_snapshots=st.one_of(st.none(), st.integers(0, 100)),
    health_info_id=st.one_of(st.none(), uuids),
    target_generation=st.integers(0, 1 << 40),
)
app_node_specs = st.builds(AppNodeSpec, id=names, endpoint=names, labels=labels)
any_spec = st.one_of(
    node_specs, pool_specs, replica_specs, nexus_specs, volume_specs, app_node_specs
)


# ============================================================================ codec


@settings(max_examples=300, deadline=None)
@given(any_spec)
def test_a_spec_read_back_from_its_stored_json_is_the_same_spec(spec: SpecModel) -> None:
    stored = spec.to_store()
    assert isinstance(json.loads(stored), dict)
    assert type(spec).from_store(stored) == spec


@settings(max_examples=100, deadline=None)
@given(any_spec, st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=3))
def test_fields_of_a_newer_writer_are_left_out_not_refused(
    spec: SpecModel, extra: dict[str, object]
) -> None:
    document = json.loads(spec.to_store())
    known = set(document) | {f.alias or name for name, f in type(spec).model_fields.items()}
    document.update({k: v for k, v in extra.items() if k not in known})
    assert type(spec).from_store(json.dumps(document).encode()) == spec


def test_every_spec_kind_is_covered_here() -> None:
    assert {type(s) for s in every_kind()} == set(SPEC_KINDS)


# ============================================================================ round trips


async def test_every_spec_kind_survives_a_save_and_a_load_in_a_new_registry(
    registry: SpecRegistry, flaky: FlakyStore
) -> None:
    specs = every_kind()
    for spec in specs:
        await registry.save(spec)
    fresh = await reloaded(flaky)
    for spec in specs:
        assert fresh.get(type(spec), spec_id(spec)) == spec
        assert registry.get(type(spec), spec_id(spec)) == spec
    for kind in SPEC_KINDS:
        assert fresh.all(kind) == registry.all(kind)


async def test_specs_are_stored_as_json_under_mayastors_key_layout(
    registry: SpecRegistry, inner: EmbeddedStore
) -> None:
    specs = every_kind()
    await registry.commit(saves=specs)
    for spec in specs:
        entry = await inner.get(f"{BASE}/{type(spec).kind}/{spec_id(spec)}")
        assert entry is not None, type(spec).kind
        document = json.loads(entry.value)
        assert document == json.loads(spec.to_store())
    entry = await inner.get(f"{BASE}/VolumeSpec/{VOLUME}")
    assert entry is not None
    stored = json.loads(entry.value)
    assert stored["uuid"] == str(VOLUME)
    assert stored["policy"] == {"self_heal": True}


async def test_ids_with_odd_characters_come_back_under_the_same_id(
    registry: SpecRegistry, flaky: FlakyStore
) -> None:
    for name in ("node with space", "ümlaut", "a/b", "dots.and-dashes_1"):
        await registry.save(node(name))
    fresh = await reloaded(flaky)
    assert [n.id for n in fresh.all(NodeSpec)] == sorted(
        ["node with space", "ümlaut", "a/b", "dots.and-dashes_1"]
    )
    assert fresh.get(NodeSpec, "a/b") == node("a/b")


async def test_reads_are_copies_that_do_not_change_the_registry(registry: SpecRegistry) -> None:
    await registry.save(node("node-1", labels={"zone": "a"}))
    got = registry.get(NodeSpec, "node-1")
    assert got is not None
    got.labels["zone"] = "changed"
    registry.all(NodeSpec)[0].labels["zone"] = "changed too"
    assert registry.get(NodeSpec, "node-1") == node("node-1", labels={"zone": "a"})


async def test_replicas_and_nexuses_of_a_volume_are_those_it_owns(registry: SpecRegistry) -> None:
    specs = every_kind()
    other = ReplicaSpec.model_validate(
        {**specs[2].model_dump(), "uuid": uuid.UUID(int=0xB2), "owners": {}}
    )
    await registry.commit(saves=[*specs, other])
    vol = registry.get(VolumeSpec, str(VOLUME))
    assert vol is not None
    assert [r.uuid for r in registry.replicas_of(vol)] == [uuid.UUID(int=0xB1)]
    assert [n.uuid for n in registry.nexuses_of(str(VOLUME))] == [uuid.UUID(int=0xC1)]


# ============================================================================ revisions


async def test_a_new_spec_whose_key_another_writer_created_is_refused(
    registry: SpecRegistry, inner: EmbeddedStore
) -> None:
    await inner.put(f"{BASE}/VolumeSpec/{uuid.UUID(int=1)}", volume(size=5).to_store())
    with pytest.raises(RevisionMismatch):
        await registry.save(volume())
    assert registry.get(VolumeSpec, str(uuid.UUID(int=1))) is None


async def test_a_spec_another_writer_changed_is_not_overwritten(
    registry: SpecRegistry, inner: EmbeddedStore
) -> None:
    await registry.save(volume())
    key = f"{BASE}/VolumeSpec/{uuid.UUID(int=1)}"
    await inner.put(key, volume(size=999).to_store())
    with pytest.raises(RevisionMismatch):
        await registry.save(volume(size=2 << 20))
    entry = await inner.get(key)
    assert entry is not None
    assert VolumeSpec.from_store(entry.value) == volume(size=999)
    assert registry.get(VolumeSpec, str(uuid.UUID(int=1))) == volume()


async def test_saving_a_spec_again_and_again_keeps_working(
    registry: SpecRegistry, flaky: FlakyStore
) -> None:
    for size in range(1, 6):
        await registry.save(volume(size=size << 20))
    assert (await reloaded(flaky)).get(VolumeSpec, str(uuid.UUID(int=1))) == volume(size=5 << 20)


async def test_remove_deletes_the_spec_from_store_and_memory(
    registry: SpecRegistry, flaky: FlakyStore
) -> None:
    await registry.commit(saves=[volume(1), volume(2)])
    await registry.remove(volume(1))
    assert registry.get(VolumeSpec, str(uuid.UUID(int=1))) is None
    assert [v.uuid for v in (await reloaded(flaky)).volumes()] == [uuid.UUID(int=2)]
    await registry.remove(volume(3))  # never saved: nothing to do
    await registry.remove(volume(1))
    assert [v.uuid for v in registry.volumes()] == [uuid.UUID(int=2)]


# ============================================================================ commits


async def test_a_commit_saves_and_removes_together(
    registry: SpecRegistry, flaky: FlakyStore
) -> None:
    await registry.commit(saves=[volume(1), node("node-1")])
    await registry.commit(saves=[volume(2), node("node-1", labels={"a": "b"})], removes=[volume(1)])
    for reg in (registry, await reloaded(flaky)):
        assert [v.uuid for v in reg.volumes()] == [uuid.UUID(int=2)]
        assert reg.all(NodeSpec) == [node("node-1", labels={"a": "b"})]


async def test_a_commit_with_one_conflict_changes_nothing_in_store_or_memory(
    registry: SpecRegistry, flaky: FlakyStore, inner: EmbeddedStore
) -> None:
    await registry.commit(saves=[volume(1), volume(2)])
    await inner.put(f"{BASE}/VolumeSpec/{uuid.UUID(int=2)}", volume(2, size=7).to_store())
    before = await inner.list(BASE)
    with pytest.raises(RevisionMismatch):
        await registry.commit(
            saves=[volume(3), volume(2, size=8 << 20), node("node-1")], removes=[volume(1)]
        )
    assert await inner.list(BASE) == before
    assert [v.uuid for v in registry.volumes()] == [uuid.UUID(int=1), uuid.UUID(int=2)]
    assert registry.get(VolumeSpec, str(uuid.UUID(int=2))) == volume(2)
    assert registry.all(NodeSpec) == []


# ============================================================================ failures


async def test_a_write_that_failed_changes_nothing_in_memory(
    registry: SpecRegistry, flaky: FlakyStore
) -> None:
    await registry.save(volume(1))
    flaky.fail_commit = "before"
    with pytest.raises(StoreUnavailable):
        await registry.commit(saves=[volume(1, size=9 << 20), volume(2)], removes=[])
    assert registry.volumes() == [volume(1)]
    assert (await reloaded(flaky)).volumes() == [volume(1)]


async def test_a_key_whose_write_failed_is_read_again_before_the_next_write(
    registry: SpecRegistry, flaky: FlakyStore
) -> None:
    key = f"{BASE}/VolumeSpec/{uuid.UUID(int=1)}"
    await registry.save(volume(1))
    flaky.fail_commit = "before"
    with pytest.raises(StoreUnavailable):
        await registry.save(volume(1, size=9 << 20))
    flaky.gets.clear()
    await registry.save(volume(1, size=10 << 20))
    assert flaky.gets == [key]
    flaky.gets.clear()
    await registry.save(volume(1, size=11 << 20))
    assert flaky.gets == []  # read once; known again since
    assert (await reloaded(flaky)).volumes() == [volume(1, size=11 << 20)]


async def test_a_write_applied_but_unanswered_is_not_taken_for_a_conflict_later(
    registry: SpecRegistry, flaky: FlakyStore
) -> None:
    await registry.save(volume(1))
    flaky.fail_commit = "after"
    with pytest.raises(StoreUnavailable):
        await registry.save(volume(1, size=9 << 20))
    assert registry.get(VolumeSpec, str(uuid.UUID(int=1))) == volume(1)
    await registry.save(volume(1, size=10 << 20))
    assert registry.volumes() == [volume(1, size=10 << 20)]
    assert (await reloaded(flaky)).volumes() == [volume(1, size=10 << 20)]


async def test_a_new_spec_created_but_unanswered_can_be_saved_again(
    registry: SpecRegistry, flaky: FlakyStore
) -> None:
    flaky.fail_commit = "after"
    with pytest.raises(StoreUnavailable):
        await registry.save(volume(1))
    assert registry.volumes() == []
    await registry.save(volume(1, size=3 << 20))
    assert registry.volumes() == [volume(1, size=3 << 20)]


async def test_a_remove_applied_but_unanswered_is_finished_by_the_next_remove(
    registry: SpecRegistry, flaky: FlakyStore
) -> None:
    await registry.commit(saves=[volume(1), volume(2)])
    flaky.fail_commit = "after"
    with pytest.raises(StoreUnavailable):
        await registry.remove(volume(1))
    assert len(registry.volumes()) == 2  # not known to be gone
    await registry.remove(volume(1))
    assert [v.uuid for v in registry.volumes()] == [uuid.UUID(int=2)]
    assert [v.uuid for v in (await reloaded(flaky)).volumes()] == [uuid.UUID(int=2)]


async def test_a_closed_store_fails_writes_and_reads_go_on_from_memory(
    registry: SpecRegistry, flaky: FlakyStore
) -> None:
    await registry.commit(saves=every_kind())
    await flaky.close()
    with pytest.raises(StoreUnavailable):
        await registry.save(volume(5))
    with pytest.raises(StoreUnavailable):
        await registry.remove(every_kind()[0])
    for spec in every_kind():
        assert registry.get(type(spec), spec_id(spec)) == spec
    assert registry.get(VolumeSpec, str(uuid.UUID(int=5))) is None


# ============================================================================ load


async def test_a_stored_value_that_is_no_spec_is_corrupt_metadata_naming_its_key(
    registry: SpecRegistry, inner: EmbeddedStore
) -> None:
    key = f"{BASE}/PoolSpec/pool-1"
    await inner.put(key, b'{"node": "node-1"}')
    with pytest.raises(CorruptMetadata, match=key):
        await registry.load()


async def test_load_replaces_what_was_in_memory_with_what_is_stored(
    registry: SpecRegistry, flaky: FlakyStore
) -> None:
    await registry.commit(saves=[volume(1), volume(2)])
    other = await reloaded(flaky)  # another agent, after taking the lease over
    await other.remove(volume(2))
    await other.save(volume(1, size=4 << 20))
    await registry.load()
    assert registry.volumes() == [volume(1, size=4 << 20)]
    await registry.save(volume(1, size=5 << 20))  # the revision read by load, not the old one
    await registry.save(volume(2, size=6 << 20))  # created again: it does not exist now
    assert (await reloaded(flaky)).volumes() == [volume(1, size=5 << 20), volume(2, size=6 << 20)]


async def test_a_load_that_fails_half_way_leaves_memory_as_it_was(
    registry: SpecRegistry, flaky: FlakyStore
) -> None:
    await registry.commit(saves=every_kind())
    other = await reloaded(flaky)
    await other.commit(removes=every_kind())
    flaky.lists = 0
    flaky.fail_lists_after = 2
    with pytest.raises(StoreUnavailable):
        await registry.load()
    for spec in every_kind():
        assert registry.get(type(spec), spec_id(spec)) == spec
