"""Block devices: the BlockDevice contract and its drivers.

Public surface: `BlockDevice`, `IoStats`, `Buffer`, `MallocDevice`.
"""

from mayastor.bdev.device import BLOCK_SIZES, BlockDevice, Buffer, IoStats
from mayastor.bdev.malloc import MallocDevice

__all__ = ["BLOCK_SIZES", "BlockDevice", "Buffer", "IoStats", "MallocDevice"]
