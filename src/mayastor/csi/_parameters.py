"""StorageClass parameters (Mayastor's names) and the NVMe settings they carry to the node.

`VolumeParameters.parse` reads the ``parameters`` of CreateVolume (and of GetCapacity
and ValidateVolumeCapabilities): every key must be one of `KNOWN` or one Kubernetes
adds itself (``csi.storage.k8s.io/...``); an unknown or malformed one is refused by
name. What the node needs later (file system, NVMe timeouts) goes back to the CO in
the volume context, which it hands to ControllerPublishVolume and NodeStageVolume;
`NvmeSettings.from_context` reads it there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mayastor.csi.errors import InvalidArgument

REPL = "repl"
PROTOCOL = "protocol"
FS_TYPE = "fsType"
THIN = "thin"
NVME_IO_TIMEOUT = "nvmeIoTimeout"
NVME_NR_IO_QUEUES = "nvmeNrIoQueues"
NVME_CTRL_LOSS_TMO = "nvmeCtrlLossTmo"
NVME_KEEP_ALIVE_TMO = "nvmeKeepAliveTmo"
POOL_AFFINITY = "poolAffinityTopologyLabel"
NODE_AFFINITY = "nodeAffinityTopologyLabel"
NODE_HAS_KEY = "nodeHasTopologyKey"
STS_AFFINITY_GROUP = "stsAffinityGroup"
KNOWN = (
    REPL,
    PROTOCOL,
    FS_TYPE,
    THIN,
    NVME_IO_TIMEOUT,
    NVME_NR_IO_QUEUES,
    NVME_CTRL_LOSS_TMO,
    NVME_KEEP_ALIVE_TMO,
    POOL_AFFINITY,
    NODE_AFFINITY,
    NODE_HAS_KEY,
    STS_AFFINITY_GROUP,
)
KUBERNETES_PREFIX = "csi.storage.k8s.io/"
"""Keys the external-provisioner adds (``csi.storage.k8s.io/pvc/name``, ...): taken, not ours."""
PVC_NAME = KUBERNETES_PREFIX + "pvc/name"
PVC_NAMESPACE = KUBERNETES_PREFIX + "pvc/namespace"

FILESYSTEMS = ("ext4", "xfs", "btrfs")
"""File systems the node plugin makes, mounts and grows; the first is the default."""
NVME_KEYS = (NVME_IO_TIMEOUT, NVME_NR_IO_QUEUES, NVME_CTRL_LOSS_TMO, NVME_KEEP_ALIVE_TMO)

_LABEL_NAME = r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"^([A-Za-z0-9][A-Za-z0-9.-]{{0,252}}/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")
_DURATION = re.compile(r"^(\d+)(s|m|h)?$")
_UNIT_SECONDS = {None: 1, "s": 1, "m": 60, "h": 3600}
_ORDINAL = re.compile(r"^(.+)-\d+$")


def _int(key: str, text: str, *, low: int, high: int) -> int:
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise InvalidArgument(f"parameter {key}={text!r} is not a whole number") from None
    if not low <= value <= high:
        raise InvalidArgument(f"parameter {key}={text!r} must be between {low} and {high}")
    return value


def _bool(key: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0"):
        return False
    raise InvalidArgument(f"parameter {key}={text!r} is not a boolean (true or false)")


def _seconds(key: str, text: str, *, allow_forever: bool = False) -> int:
    """Seconds from ``30``, ``30s``, ``2m`` or ``1h``; ``-1`` (forever) where allowed."""
    stripped = text.strip()
    if allow_forever and stripped == "-1":
        return -1
    match = _DURATION.match(stripped)
    if not match:
        raise InvalidArgument(
            f"parameter {key}={text!r} is not a duration (seconds, or a number with s, m or h)"
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds < 1 or seconds > 86400 * 365:
        raise InvalidArgument(f"parameter {key}={text!r} must be between 1 s and a year")
    return seconds


def _labels(key: str, text: str) -> dict[str, str]:
    """``key: value`` lines (a YAML block, as Mayastor's StorageClasses write them)."""
    labels: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not _LABEL_KEY.match(name) or not value or not _LABEL_VALUE.match(value):
            raise InvalidArgument(
                f"parameter {key}: {line.strip()!r} is not a 'label-key: label-value' line"
            )
        labels[name] = value
    if not labels:
        raise InvalidArgument(f"parameter {key} holds no 'label-key: label-value' line")
    return labels


def _keys(key: str, text: str) -> list[str]:
    """One label key per line."""
    keys = [line.strip() for line in text.splitlines() if line.strip()]
    for name in keys:
        if not _LABEL_KEY.match(name):
            raise InvalidArgument(f"parameter {key}: {name!r} is not a label key")
    if not keys:
        raise InvalidArgument(f"parameter {key} holds no label key")
    return keys


@dataclass(frozen=True)
class NvmeSettings:
    """How the node's kernel connects to the target; None leaves the kernel's default.

    Attributes:
        io_timeout: seconds before the kernel aborts an I/O (the device's io_timeout).
        nr_io_queues: I/O queues to ask for (``nvme connect --nr-io-queues``).
        ctrl_loss_tmo: seconds of reconnecting before the controller is given up; -1 never.
        keep_alive_tmo: seconds of the keep-alive timeout (``--keep-alive-tmo``).
    """

    io_timeout: int | None = None
    nr_io_queues: int | None = None
    ctrl_loss_tmo: int | None = None
    keep_alive_tmo: int | None = None

    @classmethod
    def from_context(cls, context: Mapping[str, str]) -> NvmeSettings:
        """Read the settings a volume or publish context carries (StorageClass names).

        Raises:
            InvalidArgument: a malformed value, naming its key.
        """
        values: dict[str, Any] = {}
        if NVME_IO_TIMEOUT in context:
            values["io_timeout"] = _seconds(NVME_IO_TIMEOUT, context[NVME_IO_TIMEOUT])
        if NVME_NR_IO_QUEUES in context:
            values["nr_io_queues"] = _int(
                NVME_NR_IO_QUEUES, context[NVME_NR_IO_QUEUES], low=1, high=1024
            )
        if NVME_CTRL_LOSS_TMO in context:
            values["ctrl_loss_tmo"] = _seconds(
                NVME_CTRL_LOSS_TMO, context[NVME_CTRL_LOSS_TMO], allow_forever=True
            )
        if NVME_KEEP_ALIVE_TMO in context:
            values["keep_alive_tmo"] = _seconds(NVME_KEEP_ALIVE_TMO, context[NVME_KEEP_ALIVE_TMO])
        return cls(**values)

    def context(self) -> dict[str, str]:
        """The settings as context entries (only those that are set)."""
        out = {}
        for key, value in (
            (NVME_IO_TIMEOUT, self.io_timeout),
            (NVME_NR_IO_QUEUES, self.nr_io_queues),
            (NVME_CTRL_LOSS_TMO, self.ctrl_loss_tmo),
            (NVME_KEEP_ALIVE_TMO, self.keep_alive_tmo),
        ):
            if value is not None:
                out[key] = str(value)
        return out


def check_fs_type(fs_type: str, what: str = FS_TYPE) -> str:
    """`fs_type` if the node plugin can make it; an empty one means the default.

    Raises:
        InvalidArgument: a file system the node plugin does not make.
    """
    if not fs_type:
        return FILESYSTEMS[0]
    if fs_type not in FILESYSTEMS:
        raise InvalidArgument(
            f"{what} {fs_type!r} is not supported (one of {', '.join(FILESYSTEMS)})"
        )
    return fs_type


@dataclass(frozen=True)
class VolumeParameters:
    """A StorageClass's parameters, checked.

    Attributes:
        replicas: ``repl``, the number of replicas (1 by default).
        fs_type: ``fsType``, the file system of mount volumes (ext4 by default).
        thin: ``thin``, thin provisioning.
        nvme: the ``nvme*`` settings for the node's initiator.
        pool_labels: ``poolAffinityTopologyLabel``: labels a replica's pool must carry.
        node_labels: ``nodeAffinityTopologyLabel`` and ``nodeHasTopologyKey`` (as
            ``key: ""``, any value): labels a replica's node must carry.
        affinity_group: the StatefulSet affinity group (``stsAffinityGroup``), if asked.
        given: the parameters as given, without Kubernetes' own keys.
    """

    replicas: int = 1
    fs_type: str = FILESYSTEMS[0]
    thin: bool = False
    nvme: NvmeSettings = NvmeSettings()
    pool_labels: dict[str, str] = field(default_factory=dict)
    node_labels: dict[str, str] = field(default_factory=dict)
    affinity_group: str | None = None
    given: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, parameters: Mapping[str, str]) -> VolumeParameters:
        """Check and read `parameters`.

        Raises:
            InvalidArgument: an unknown parameter or a malformed value, naming it.
        """
        unknown = sorted(
            k for k in parameters if k not in KNOWN and not k.startswith(KUBERNETES_PREFIX)
        )
        if unknown:
            raise InvalidArgument(
                f"unknown StorageClass parameter(s): {', '.join(unknown)} "
                f"(known: {', '.join(KNOWN)})"
            )
        values: dict[str, Any] = {}
        if REPL in parameters:
            values["replicas"] = _int(REPL, parameters[REPL], low=1, high=255)
        protocol = parameters.get(PROTOCOL, "nvmf").strip()
        if protocol != "nvmf":
            raise InvalidArgument(f"parameter {PROTOCOL}={protocol!r} is not supported (nvmf)")
        if FS_TYPE in parameters:
            values["fs_type"] = check_fs_type(parameters[FS_TYPE].strip(), f"parameter {FS_TYPE}")
        if THIN in parameters:
            values["thin"] = _bool(THIN, parameters[THIN])
        values["nvme"] = NvmeSettings.from_context(parameters)
        if POOL_AFFINITY in parameters:
            values["pool_labels"] = _labels(POOL_AFFINITY, parameters[POOL_AFFINITY])
        node_labels: dict[str, str] = {}
        if NODE_HAS_KEY in parameters:
            node_labels.update(dict.fromkeys(_keys(NODE_HAS_KEY, parameters[NODE_HAS_KEY]), ""))
        if NODE_AFFINITY in parameters:
            node_labels.update(_labels(NODE_AFFINITY, parameters[NODE_AFFINITY]))
        values["node_labels"] = node_labels
        if STS_AFFINITY_GROUP in parameters and _bool(
            STS_AFFINITY_GROUP, parameters[STS_AFFINITY_GROUP]
        ):
            values["affinity_group"] = _affinity_group(parameters)
        given = {k: v for k, v in parameters.items() if not k.startswith(KUBERNETES_PREFIX)}
        return cls(**values, given=given)

    def topology(self) -> dict[str, Any] | None:
        """Mayastor's ``Topology`` for the REST API, or None when nothing restricts placement."""
        topology: dict[str, Any] = {}
        if self.node_labels:
            topology["node_topology"] = {"labelled": {"inclusion": dict(self.node_labels)}}
        if self.pool_labels:
            topology["pool_topology"] = {"labelled": {"inclusion": dict(self.pool_labels)}}
        return topology or None

    def volume_context(self) -> dict[str, str]:
        """What the node needs later, under the StorageClass names: the file system,
        the protocol and the NVMe settings, plus every parameter as given."""
        context = dict(self.given)
        context[PROTOCOL] = "nvmf"
        context[FS_TYPE] = self.fs_type
        context[REPL] = str(self.replicas)
        context[THIN] = str(self.thin).lower()
        context.update(self.nvme.context())
        return context


def _affinity_group(parameters: Mapping[str, str]) -> str:
    """The affinity group of a StatefulSet's volume: its namespace and the claim name
    without the pod ordinal (``data-web-2`` in ``shop`` -> ``shop/data-web``), so the
    replicas of one StatefulSet's volumes are spread apart.

    Raises:
        InvalidArgument: the CO did not pass the claim's name and namespace.
    """
    name = parameters.get(PVC_NAME, "")
    namespace = parameters.get(PVC_NAMESPACE, "")
    if not name or not namespace:
        raise InvalidArgument(
            f"parameter {STS_AFFINITY_GROUP}=true needs {PVC_NAME} and {PVC_NAMESPACE} "
            "(run the external-provisioner with --extra-create-metadata)"
        )
    match = _ORDINAL.match(name)
    if not match:
        raise InvalidArgument(
            f"parameter {STS_AFFINITY_GROUP}=true: claim {name!r} is not a StatefulSet's "
            "(<template>-<statefulset>-<ordinal>)"
        )
    return f"{namespace}/{match.group(1)}"
