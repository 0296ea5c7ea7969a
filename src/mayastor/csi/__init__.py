"""The CSI driver ``io.openebs.csi-mayastor``: how Kubernetes provisions and mounts volumes.

Two plugins, each a gRPC server on a unix socket (DESIGN.md section 12):

- the controller (`mayastor.csi.controller`, ``mayastor-csi-controller``) turns
  CreateVolume, ControllerPublishVolume and the rest into calls of the core agent's
  REST API; it reaches the control plane through REST only;
- the node plugin (`mayastor.csi.node`, ``mayastor-csi-node``) attaches a published
  volume with the kernel's NVMe/TCP initiator, formats it only when blank, mounts it,
  and undoes all that.

Errors are typed (`mayastor.csi.errors`) and mapped to gRPC status codes in one table
at the edge (`mayastor.csi.server`). Importing this package loads neither plugin.
"""

from mayastor.csi._volumes import (
    DRIVER_NAME,
    TOPOLOGY_KEY,
    node_nqn,
    volume_nqn,
    volume_uuid_for_name,
)

__all__ = ["DRIVER_NAME", "TOPOLOGY_KEY", "node_nqn", "volume_nqn", "volume_uuid_for_name"]
