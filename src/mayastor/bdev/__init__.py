"""Block devices: the BlockDevice contract, bdev URIs and the local drivers.

Public surface:

* the contract: `BlockDevice`, `IoStats`, `SpaceBelow`, `Buffer`, `BLOCK_SIZES`, and
  for callers and drivers of callback I/O `IoDone` and `IoRequest`;
* URIs: `parse_bdev_uri` and what it returns (`BdevUri`, `MallocUri`, `FileUri`,
  `NvmfUri`, `LoopbackUri`);
* running an I/O coroutine inline, in the caller's frame: `run_inline`, and
  `finish_in_task` for one that had to wait;
* opening: `DeviceOpener` (one per io-engine; other layers register nvmf and bdev);
* NVMe reservations (`mayastor.bdev.reservations`): the state of a namespace and the
  cell that holds it (`ReservationCell`, `ReservationState`), and the names a user of
  the BlockDevice reservation calls needs (`ReservationType`, `RegisterAction`,
  `AcquireAction`, `ReleaseAction`, `ChangePtpl`, `ReservationStatus`);
* drivers: `MallocDevice`, `AioDevice` (files and block devices via worker threads),
  `UringDevice` (the same via io_uring) and `uring_unavailable_reason`, `NvmfDevice`
  (a remote NVMe-oF namespace, through our initiator; the io-engine enables nvmf://
  with `register_nvmf`).
"""

from mayastor.bdev._inline import finish_in_task, run_inline
from mayastor.bdev.aio import DEFAULT_AIO_THREADS, AioDevice
from mayastor.bdev.device import (
    BLOCK_SIZES,
    BlockDevice,
    Buffer,
    IoDone,
    IoRequest,
    IoStats,
    SpaceBelow,
)
from mayastor.bdev.malloc import MallocDevice
from mayastor.bdev.nvmf import NvmfDevice, register_nvmf
from mayastor.bdev.opener import DeviceOpener, OpenFn
from mayastor.bdev.reservations import ReservationCell, ReservationState
from mayastor.bdev.uri import (
    DEFAULT_NVMF_PORT,
    SCHEMES,
    BdevUri,
    FileUri,
    LoopbackUri,
    MallocUri,
    NvmfUri,
    parse_bdev_uri,
)
from mayastor.bdev.uring import DEFAULT_URING_ENTRIES, UringDevice, uring_unavailable_reason
from mayastor.nvmf.spec import (
    AcquireAction,
    ChangePtpl,
    RegisterAction,
    ReleaseAction,
    ReservationStatus,
    ReservationType,
)

__all__ = [
    "BLOCK_SIZES",
    "DEFAULT_AIO_THREADS",
    "DEFAULT_NVMF_PORT",
    "DEFAULT_URING_ENTRIES",
    "SCHEMES",
    "AcquireAction",
    "AioDevice",
    "BdevUri",
    "BlockDevice",
    "Buffer",
    "ChangePtpl",
    "DeviceOpener",
    "FileUri",
    "IoDone",
    "IoRequest",
    "IoStats",
    "LoopbackUri",
    "MallocDevice",
    "MallocUri",
    "NvmfDevice",
    "NvmfUri",
    "OpenFn",
    "RegisterAction",
    "ReleaseAction",
    "ReservationCell",
    "ReservationState",
    "ReservationStatus",
    "ReservationType",
    "SpaceBelow",
    "UringDevice",
    "finish_in_task",
    "parse_bdev_uri",
    "register_nvmf",
    "run_inline",
    "uring_unavailable_reason",
]
