"""The REST API's objects: actual state, envelopes and request bodies (Mayastor's v0).

Specs (desired state) are in `mayastor.control.specs` and appear here inside the
envelopes (`Node`, `Pool`, `Volume`). Names, enums and the hyphenated keys follow
Mayastor's OpenAPI v0 document; optional fields that have no value are left out of
the JSON rather than sent as null.
"""

from __future__ import annotations

import enum
import uuid as uuid_mod
from datetime import datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    WithJsonSchema,
)

from mayastor.control.names import LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN
from mayastor.control.specs import (
    AffinityGroup,
    AppNodeSpec,
    NexusSpec,
    NodeSpec,
    PoolSpec,
    Protocol,
    ReplicaSpec,
    Topology,
    VolumePolicy,
    VolumeShareProtocol,
    VolumeSpec,
)

MAX_SIZE = (1 << 53) - 1
"""The largest size the API takes (8 PiB): every integer up to it is exact as a JSON
number in any client (a double), and it is far past any disk."""


class ApiModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


# ============================================================================ nodes


class NodeStatus(enum.StrEnum):
    UNKNOWN = "Unknown"
    ONLINE = "Online"
    OFFLINE = "Offline"


class NodeState(ApiModel):
    id: str
    grpcEndpoint: str
    status: NodeStatus
    node_nqn: str | None = None
    version: str | None = None


class Node(ApiModel):
    id: str
    spec: NodeSpec | None = None
    state: NodeState | None = None


# ============================================================================ pools


class PoolStatus(enum.StrEnum):
    UNKNOWN = "Unknown"
    ONLINE = "Online"
    DEGRADED = "Degraded"
    FAULTED = "Faulted"


class PoolState(ApiModel):
    id: str
    node: str
    status: PoolStatus
    disks: list[str]
    capacity: int
    used: int
    committed: int = 0


class Pool(ApiModel):
    id: str
    spec: PoolSpec | None = None
    state: PoolState | None = None


# ============================================================================ replicas


class ReplicaState(enum.StrEnum):
    UNKNOWN = "Unknown"
    ONLINE = "Online"
    DEGRADED = "Degraded"
    FAULTED = "Faulted"


class ReplicaSpaceUsage(ApiModel):
    capacity_bytes: int
    allocated_bytes: int
    allocated_bytes_snapshots: int = 0
    cluster_size: int
    clusters: int
    allocated_clusters: int


class Replica(ApiModel):
    uuid: uuid_mod.UUID
    node: str
    pool: str
    poolUuid: uuid_mod.UUID | None = None
    share: Protocol
    size: int
    space: ReplicaSpaceUsage | None = None
    state: ReplicaState
    thin: bool
    uri: str
    allowed_hosts: list[str] = Field(default_factory=list, alias="allowed-hosts")
    kind: str = "Regular"


# ============================================================================ nexuses


class ChildState(enum.StrEnum):
    UNKNOWN = "Unknown"
    ONLINE = "Online"
    DEGRADED = "Degraded"
    FAULTED = "Faulted"


class ChildStateReason(enum.StrEnum):
    """Why a child is not Online (Mayastor lists OutOfSpace; the others are ours)."""

    OUT_OF_SPACE = "OutOfSpace"
    CANNOT_OPEN = "CannotOpen"
    REBUILD_FAILED = "RebuildFailed"
    IO_FAILURE = "IoFailure"
    BY_CLIENT = "ByClient"
    OUT_OF_SYNC = "OutOfSync"
    TIMED_OUT = "TimedOut"
    OFFLINE = "Offline"


class Child(ApiModel):
    uri: str
    state: ChildState
    state_reason: ChildStateReason | None = None
    rebuildProgress: Annotated[int, Field(ge=0, le=100)] | None = None


class NexusState(enum.StrEnum):
    UNKNOWN = "Unknown"
    ONLINE = "Online"
    DEGRADED = "Degraded"
    FAULTED = "Faulted"
    SHUTTING_DOWN = "ShuttingDown"
    SHUTDOWN = "Shutdown"


class Nexus(ApiModel):
    """A nexus as its io-engine reports it; `fenced` (state Faulted then): another
    nexus of the volume took its replicas over, `fence_reason` says which child refused
    it and how."""

    uuid: uuid_mod.UUID
    node: str
    size: int
    state: NexusState
    children: list[Child]
    deviceUri: str
    rebuilds: int
    protocol: Protocol
    fenced: bool = False
    fence_reason: str | None = None


# ============================================================================ volumes


class VolumeStatus(enum.StrEnum):
    UNKNOWN = "Unknown"
    ONLINE = "Online"
    DEGRADED = "Degraded"
    FAULTED = "Faulted"
    SHUTDOWN = "Shutdown"


class ReplicaUsage(ApiModel):
    capacity: int = 0
    allocated: int = 0
    allocated_snapshots: int = 0
    allocated_all_snapshots: int = 0


class ReplicaTopology(ApiModel):
    node: str | None = None
    pool: str | None = None
    state: ReplicaState
    child_status: ChildState | None = Field(default=None, alias="child-status")
    child_status_reason: ChildStateReason | None = Field(default=None, alias="child-status-reason")
    usage: ReplicaUsage | None = None
    rebuild_progress: Annotated[int, Field(ge=0, le=100)] | None = Field(
        default=None, alias="rebuild-progress"
    )


class VolumeUsage(ApiModel):
    capacity: int
    allocated: int
    allocated_replica: int
    allocated_snapshots: int = 0
    allocated_all_snapshots: int = 0
    total_allocated: int
    total_allocated_replicas: int
    total_allocated_snapshots: int = 0


class VolumeState(ApiModel):
    uuid: uuid_mod.UUID
    size: int
    status: VolumeStatus
    target: Nexus | None = None
    replica_topology: dict[str, ReplicaTopology]
    usage: VolumeUsage | None = None


class Volume(ApiModel):
    spec: VolumeSpec
    state: VolumeState


class Volumes(ApiModel):
    entries: list[Volume]
    next_token: int | None = None


class RebuildJobState(enum.StrEnum):
    INIT = "Init"
    REBUILDING = "Rebuilding"
    STOPPED = "Stopped"
    PAUSED = "Paused"
    FAILED = "Failed"
    COMPLETED = "Completed"


class RebuildRecord(ApiModel):
    childUri: str
    srcUri: str
    rebuildJobState: RebuildJobState
    blocksTotal: int
    blocksRecovered: int
    blocksTransferred: int
    blocksRemaining: int
    blockSize: int
    isPartial: bool
    startTime: datetime
    endTime: datetime


class RebuildHistory(ApiModel):
    targetUuid: uuid_mod.UUID
    records: list[RebuildRecord]


class Specs(ApiModel):
    nexuses: list[NexusSpec]
    pools: list[PoolSpec]
    replicas: list[ReplicaSpec]
    volumes: list[VolumeSpec]


class BlockDevice(ApiModel):
    available: bool
    connection_type: str = ""
    devlinks: list[str]
    devmajor: int
    devminor: int
    devname: str
    devpath: str
    devtype: str
    model: str
    size: int


# ============================================================================ errors


class ErrorKind(enum.StrEnum):
    TIMEOUT = "Timeout"
    DESERIALIZE = "Deserialize"
    INTERNAL = "Internal"
    INVALID_ARGUMENT = "InvalidArgument"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    NOT_FOUND = "NotFound"
    ALREADY_EXISTS = "AlreadyExists"
    PERMISSION_DENIED = "PermissionDenied"
    RESOURCE_EXHAUSTED = "ResourceExhausted"
    FAILED_PRECONDITION = "FailedPrecondition"
    NOT_SHARED = "NotShared"
    NOT_PUBLISHED = "NotPublished"
    ALREADY_PUBLISHED = "AlreadyPublished"
    ALREADY_SHARED = "AlreadyShared"
    ABORTED = "Aborted"
    OUT_OF_RANGE = "OutOfRange"
    UNIMPLEMENTED = "Unimplemented"
    UNAVAILABLE = "Unavailable"
    UNAUTHENTICATED = "Unauthenticated"
    UNAUTHORIZED = "Unauthorized"
    CONFLICT = "Conflict"
    FAILED_PERSIST = "FailedPersist"
    DELETING = "Deleting"
    IN_USE = "InUse"
    CAPACITY_LIMIT_EXCEEDED = "CapacityLimitExceeded"
    NOT_ACCEPTABLE = "NotAcceptable"


class RestJsonError(ApiModel):
    """The one error body: what kind of error, and what happened, for an operator."""

    kind: ErrorKind
    message: str
    details: str


# ============================================================================ request bodies


def _json_integer(value: object) -> object:
    """An integer as JSON Schema has it: 3 or 3.0, never true, "3" or 3.5."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError("must be an integer")


BLOCK = 512
Size = Annotated[
    int,
    Field(ge=BLOCK, le=MAX_SIZE - MAX_SIZE % BLOCK, multiple_of=BLOCK),
    BeforeValidator(_json_integer),
]
"""A volume's size in bytes: a whole number of 512-byte blocks."""


LabelKey = Annotated[StrictStr, Field(pattern=LABEL_KEY_PATTERN)]
LabelValue = Annotated[StrictStr, Field(pattern=LABEL_VALUE_PATTERN)]
Labels = Annotated[
    dict[LabelKey, LabelValue],
    WithJsonSchema(
        {
            "type": "object",
            "propertyNames": {"pattern": LABEL_KEY_PATTERN},
            "additionalProperties": {"type": "string", "pattern": LABEL_VALUE_PATTERN},
        }
    ),
]


class CreatePoolBody(ApiModel):
    disks: Annotated[list[StrictStr], Field(min_length=1, max_length=1)]
    labels: Labels | None = None


class StrictPolicy(VolumePolicy):
    self_heal: StrictBool


class CreateVolumeBody(ApiModel):
    policy: StrictPolicy
    replicas: Annotated[int, Field(ge=1, le=255), BeforeValidator(_json_integer)]
    size: Size
    thin: StrictBool
    topology: Topology | None = None
    labels: dict[StrictStr, StrictStr] | None = None
    affinity_group: AffinityGroup | None = None
    max_snapshots: (
        Annotated[int, Field(ge=0, le=(1 << 31) - 1), BeforeValidator(_json_integer)] | None
    ) = None


class PublishVolumeBody(ApiModel):
    publish_context: dict[StrictStr, StrictStr]
    protocol: VolumeShareProtocol
    reuse_existing: StrictBool | None = None
    node: StrictStr | None = None
    republish: StrictBool | None = None
    frontend_node: StrictStr | None = None


class ResizeVolumeBody(ApiModel):
    size: Size


# ============================================================================ app nodes


class AppNodeStatus(enum.StrEnum):
    ONLINE = "Online"


class AppNodeState(ApiModel):
    id: str
    endpoint: str
    status: AppNodeStatus


class AppNode(ApiModel):
    """An application node: registered by its ha-node agent (Mayastor's AppNode)."""

    id: str
    spec: AppNodeSpec
    state: AppNodeState | None = None


class AppNodes(ApiModel):
    entries: list[AppNode]
    next_token: int | None = None


class RegisterAppNode(ApiModel):
    endpoint: Annotated[StrictStr, Field(min_length=1, max_length=512)]
    labels: Labels | None = None


_HEX = "[0-9A-Fa-f]"
VOLUME_TARGET_NQN_PATTERN = (
    rf"^nqn\.2019-05\.io\.openebs:{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}$"
)
ADDRESS_PATTERN = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$"


class FailedPath(ApiModel):
    """A path of an app node that failed: the target's subsystem NQN and the address
    (``HOST:PORT``) the app node dialled, as the core agent last gave it."""

    target_nqn: Annotated[StrictStr, Field(pattern=VOLUME_TARGET_NQN_PATTERN)]
    address: Annotated[StrictStr, Field(pattern=ADDRESS_PATTERN)] | None = None


class NodeDhchapSecret(ApiModel):
    """A node's DH-HMAC-CHAP secret: what its kernel proves with ``nvme connect
    --dhchap-secret`` to the volumes published for it."""

    host_nqn: str
    secret: str


class ReplacementPath(ApiModel):
    """Where the volume's target is now: the path the app node should connect."""

    target_nqn: str
    uri: str
