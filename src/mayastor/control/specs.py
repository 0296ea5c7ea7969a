"""Specs: the desired state the core agent keeps in the cluster store.

Field names and enums follow Mayastor's REST API v0 (the specs are shown there as
they are stored), plus a few fields of our own that the operations need. A spec
that an operation is changing carries that operation (`OperationRecord`) and, while
objects are being made or removed, a status of Creating or Deleting: written before
the first step runs, so that a core agent killed at any moment leaves enough behind
for the reconciler to finish the operation or undo it.
"""

from __future__ import annotations

import enum
import uuid as uuid_mod
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

NQN_PREFIX = "nqn.2019-05.io.openebs"


def node_nqn(node_name: str) -> str:
    """The host NQN of a node: what its io-engine and its kernel initiator connect as."""
    return f"{NQN_PREFIX}:node-name:{node_name}"


def volume_nqn(volume_uuid: uuid_mod.UUID | str) -> str:
    """The subsystem NQN of a volume's target (its nexus), the same on every node."""
    return f"{NQN_PREFIX}:{volume_uuid}"


class SpecModel(BaseModel):
    """Base of specs: unknown fields of a newer writer are kept out, not refused."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    kind: ClassVar[str] = ""
    """The kind in store keys (``VolumeSpec``, ...)."""

    def to_store(self) -> bytes:
        return self.model_dump_json(exclude_none=True, by_alias=True).encode()

    @classmethod
    def from_store(cls, data: bytes) -> Self:
        return cls.model_validate_json(data)


class SpecStatus(enum.StrEnum):
    CREATING = "Creating"
    CREATED = "Created"
    DELETING = "Deleting"
    DELETED = "Deleted"


class Protocol(enum.StrEnum):
    NONE = "none"
    NVMF = "nvmf"
    ISCSI = "iscsi"
    NBD = "nbd"


class VolumeShareProtocol(enum.StrEnum):
    NVMF = "nvmf"
    ISCSI = "iscsi"


class OperationRecord(SpecModel):
    """The operation under way on a spec, and what is needed to finish or undo it.

    Attributes:
        operation: what is being done (Create, Destroy, Publish, ...).
        result: None while it runs; True or False once it is known (kept briefly).
        args: the operation's own facts, e.g. the node a publish goes to.
    """

    operation: str
    result: bool | None = None
    args: dict[str, Any] = Field(default_factory=dict)


# ============================================================================ nodes


class CordonedState(SpecModel):
    cordonlabels: list[str]


class DrainState(SpecModel):
    cordonlabels: list[str]
    drainlabels: list[str]


class CordonDrainState(SpecModel):
    """Exactly one of the three is set: cordoned, draining (targets being moved off), or
    drained (none left)."""

    cordonedstate: CordonedState | None = None
    drainingstate: DrainState | None = None
    drainedstate: DrainState | None = None

    @property
    def cordon_labels(self) -> list[str]:
        for state in (self.cordonedstate, self.drainingstate, self.drainedstate):
            if state is not None:
                return list(state.cordonlabels)
        return []

    @property
    def drain_labels(self) -> list[str]:
        drain = self.drainingstate or self.drainedstate
        return list(drain.drainlabels) if drain is not None else []

    @property
    def draining(self) -> bool:
        return self.drainingstate is not None

    @classmethod
    def of(
        cls, cordon: list[str], drain: list[str], *, drained: bool = False
    ) -> CordonDrainState | None:
        """The state for these labels (None when there are none)."""
        if drain:
            phase = DrainState(cordonlabels=cordon, drainlabels=drain)
            return cls(drainedstate=phase) if drained else cls(drainingstate=phase)
        if cordon:
            return cls(cordonedstate=CordonedState(cordonlabels=cordon))
        return None


class NodeSpec(SpecModel):
    """A storage node: what it registered as, and what operators set on it."""

    kind: ClassVar[str] = "NodeSpec"
    id: str
    grpcEndpoint: str
    labels: dict[str, str] = Field(default_factory=dict)
    cordondrainstate: CordonDrainState | None = None
    node_nqn: str | None = None
    version: str | None = None

    @property
    def cordoned(self) -> bool:
        """No new replica or target goes here (cordoned, draining or drained)."""
        state = self.cordondrainstate
        return state is not None and bool(state.cordon_labels or state.drain_labels)


# ============================================================================ pools


class PoolSpec(SpecModel):
    """A pool on one disk of one node; created or imported by the core agent."""

    kind: ClassVar[str] = "PoolSpec"
    node: str
    id: str
    disks: list[str]
    status: SpecStatus
    labels: dict[str, str] = Field(default_factory=dict)
    operation: OperationRecord | None = None


# ============================================================================ replicas


class ReplicaOwners(SpecModel):
    volume: uuid_mod.UUID | None = None
    nexuses: list[uuid_mod.UUID] = Field(default_factory=list)


class ReplicaSpec(SpecModel):
    """A replica in a pool; a volume's replicas are owned by it (`owners.volume`)."""

    kind: ClassVar[str] = "ReplicaSpec"
    uuid: uuid_mod.UUID
    name: str
    size: int
    pool: str
    node: str
    poolUuid: uuid_mod.UUID | None = None
    share: Protocol = Protocol.NONE
    allowed_hosts: list[str] = Field(default_factory=list, alias="allowed-hosts")
    thin: bool
    status: SpecStatus
    managed: bool = True
    owners: ReplicaOwners = Field(default_factory=ReplicaOwners)
    operation: OperationRecord | None = None
    kind_: str = Field(default="Regular", alias="kind")


# ============================================================================ nexuses


class NexusNvmfConfig(SpecModel):
    """The NVMe reservation a nexus holds on its children (after Mayastor's
    NexusNvmfConfig): a new target of a volume takes its replicas over from the old
    one, which is fenced from then on.

    Attributes:
        reservation_key: the nexus's key (nonzero; `targets.reservation_key`).
        preempt_reservation_key: the key of the target it replaced, when it did.
        reservation_type: the NVMe reservation type held.
        preempt_policy: how a replica another host holds is taken over (Holder: from
            whichever key holds it).
    """

    reservation_key: int
    preempt_reservation_key: int | None = None
    reservation_type: str = "ExclusiveAccess"
    preempt_policy: str = "Holder"


class NexusSpec(SpecModel):
    """A nexus: the target of a volume on one node, over the volume's replicas.

    Attributes:
        name: the volume uuid (so the subsystem NQN is the volume's on every node).
        children: the child URIs the nexus was created with and has been given since.
        allowed_hosts: host NQNs of the frontend nodes it is published to.
        nvmf_config: its reservation (None: a nexus made before the core fenced).
    """

    kind: ClassVar[str] = "NexusSpec"
    uuid: uuid_mod.UUID
    name: str
    node: str
    children: list[str]
    size: int
    status: SpecStatus
    share: Protocol = Protocol.NONE
    managed: bool = True
    owner: uuid_mod.UUID | None = None
    allowed_hosts: list[str] = Field(default_factory=list)
    operation: OperationRecord | None = None
    nvmf_config: NexusNvmfConfig | None = None


# ============================================================================ volumes


class VolumePolicy(SpecModel):
    self_heal: bool


class LabelledTopology(SpecModel):
    """Label rules, after Mayastor.

    Attributes:
        exclusion: label keys whose values must differ between the volume's replicas.
        inclusion: labels a resource must carry: ``key: value``, or ``key: ""`` for
            any value of that key.
        affinity_key: keys whose value the first choice fixes for the others.
    """

    exclusion: dict[str, str] = Field(default_factory=dict)
    inclusion: dict[str, str] = Field(default_factory=dict)
    affinity_key: list[str] = Field(default_factory=list)


class ExplicitNodeTopology(SpecModel):
    allowed_nodes: list[str] = Field(default_factory=list)
    preferred_nodes: list[str] = Field(default_factory=list)


class NodeTopology(SpecModel):
    explicit: ExplicitNodeTopology | None = None
    labelled: LabelledTopology | None = None


class PoolTopology(SpecModel):
    labelled: LabelledTopology | None = None


class Topology(SpecModel):
    node_topology: NodeTopology | None = None
    pool_topology: PoolTopology | None = None


class AffinityGroup(SpecModel):
    id: str


class NodeAccessInfo(SpecModel):
    """A frontend node: its name and the host NQN its initiator connects with."""

    name: str
    nqn: str


class VolumeTarget(SpecModel):
    """Where a published volume's target is.

    Attributes:
        node: the node running the nexus.
        nexus: the nexus's uuid (a new one each time the target is created).
        frontend_nodes: the nodes allowed to connect.
    """

    node: str
    nexus: uuid_mod.UUID | None = None
    protocol: VolumeShareProtocol = VolumeShareProtocol.NVMF
    frontend_nodes: list[NodeAccessInfo] = Field(default_factory=list)
    publish_context: dict[str, str] = Field(default_factory=dict)


class VolumeSpec(SpecModel):
    """A volume: size, replica count, placement rules, and its target when published.

    Attributes:
        health_info_id: the nexus whose nexus info says which of the volume's replicas
            hold every acknowledged write; consulted before a new nexus is made.
        target_generation: how many targets the volume has had; each new one takes the
            next controller ID range, so an old target a host still knows and the new
            one are two paths of one subsystem, never a clash of controller IDs.
    """

    kind: ClassVar[str] = "VolumeSpec"
    uuid: uuid_mod.UUID
    size: int
    num_replicas: int
    status: SpecStatus
    policy: VolumePolicy
    thin: bool
    target: VolumeTarget | None = None
    topology: Topology | None = None
    labels: dict[str, str] | None = None
    affinity_group: AffinityGroup | None = None
    operation: OperationRecord | None = None
    num_snapshots: int = 0
    max_snapshots: int | None = None
    health_info_id: uuid_mod.UUID | None = None
    target_generation: int = 0


# ============================================================================ app nodes


class AppNodeSpec(SpecModel):
    """An application node: where volumes are used (its CSI node plugin and ha-node agent
    run there). It registers so that the paths it reports failed can be traced to it.

    Attributes:
        id: the node's name.
        endpoint: where its ha-node agent can be reached (informational).
        labels: the operator's labels.
    """

    kind: ClassVar[str] = "AppNodeSpec"
    id: str
    endpoint: str
    labels: dict[str, str] = Field(default_factory=dict)


# ============================================================================ secrets


class NodeSecretSpec(SpecModel):
    """The DH-HMAC-CHAP secret of a node (an io-engine node or an app node), made by the
    core agent started with ``--dhchap``: what the node proves when it connects to a
    replica or a nexus. Never shown by the REST listings.

    Attributes:
        id: the node's name (its host NQN is `node_nqn` of it).
        secret: the secret in the ``DHHC-1:00:<base64>:`` form.
    """

    kind: ClassVar[str] = "NodeSecret"
    id: str
    secret: str


SPEC_KINDS: tuple[type[SpecModel], ...] = (
    NodeSpec,
    PoolSpec,
    ReplicaSpec,
    NexusSpec,
    VolumeSpec,
    AppNodeSpec,
    NodeSecretSpec,
)
