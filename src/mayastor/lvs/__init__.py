"""Pools and their lvols (replicas): DESIGN.md section 6.

Public surface:

* `Pool`: create / import / export / destroy / grow a pool on a BlockDevice, and
  create / destroy / resize / set the properties of its lvols;
* `Lvol`: a replica, itself a BlockDevice usable in-process;
* `PoolState`, `ShareProtocol`, `LvolProperties`, `PoolMetadataInfo`,
  `DEFAULT_CLUSTER_SIZE`, `DEFAULT_MAX_EXPANSION`.

The on-disk format is documented (and encoded) in `mayastor.lvs.format`.
"""

from mayastor.lvs._lvol import Lvol
from mayastor.lvs._pool import Pool, PoolMetadataInfo
from mayastor.lvs._pool_options import DEFAULT_MAX_EXPANSION
from mayastor.lvs._properties import DEFAULT_CLUSTER_SIZE, LvolProperties, PoolState, ShareProtocol

__all__ = [
    "DEFAULT_CLUSTER_SIZE",
    "DEFAULT_MAX_EXPANSION",
    "Lvol",
    "LvolProperties",
    "Pool",
    "PoolMetadataInfo",
    "PoolState",
    "ShareProtocol",
]
