"""The NVMe-over-TCP target: serves any BlockDevice to NVMe/TCP hosts (the Linux
kernel's nvme-tcp, our own initiator).

One `NvmfTarget` per io-engine listens on one address and any number of ports
(`REPLICA_PORT` 8420 for replicas, `NEXUS_PORT` 4421 for nexuses), serves the
discovery subsystem, and one subsystem per shared device, each with one namespace,
a host allow-list, a controller ID range and an ANA state.

Inside, each connection is a thin asyncio shell around a sans-I/O queue pair whose
states, like the controller's, are tables; the admin commands, identify data and
log pages are plain functions.

NVMe reservations: every namespace supports them (`_reservations`), its hosts told
apart by the host identifier of their Connect, every I/O command checked against the
namespace's `ReservationCell` before it reaches the device. A device that keeps its
own cell (a replica, in its pool) is served with that one, so the state survives a
restart and applies to in-process users too; others get one in memory.

This package stands on `mayastor.nvmf` (codec and spec structures) and
`mayastor.bdev`; it knows nothing of pools, replicas or nexuses.

Public surface:

* `NvmfTarget` and its `TargetConfig`;
* `Subsystem` (what `add_subsystem` returns) and `ControllerInfo` (what
  `controllers` lists);
* `openebs_nqn`, `REPLICA_PORT`, `NEXUS_PORT`, `DEFAULT_MODEL`.
"""

from mayastor.target._config import TargetConfig
from mayastor.target._subsystem import DEFAULT_MODEL, ControllerInfo, Subsystem
from mayastor.target._target import NEXUS_PORT, REPLICA_PORT, NvmfTarget, openebs_nqn

__all__ = [
    "DEFAULT_MODEL",
    "NEXUS_PORT",
    "REPLICA_PORT",
    "ControllerInfo",
    "NvmfTarget",
    "Subsystem",
    "TargetConfig",
    "openebs_nqn",
]
