"""The one error hierarchy of the product.

Three families, each saying whose fault it is and what to do:

* `UsageError`: the caller asked for something that cannot be done (a wrong URI, a
  name that is taken, a missing object). Nothing was changed. Mapped to gRPC status
  codes at the API edge (`mayastor.engine.grpc_errors`), in one table.
* `DeviceError`: an I/O failed. It carries the NVMe status the target puts in the
  completion and that the nexus uses to decide whether to retire a child. Subclasses
  register by status, so an initiator turns a completion into the right exception
  with one lookup (`DeviceError.from_status`).
* `CorruptMetadata`: what is on a disk cannot be trusted; never guessed around.

Errors keep their fields (`lba`, `nblocks`, `device`, ...) and their cause
(``raise ... from exc``; in the modules compiled with mypyc, ``raise caused_by(...,
exc)``). This module knows nothing of gRPC, sockets or asyncio.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from mayastor.nvmf.spec.status import (
    CommandSpecificStatus,
    GenericStatus,
    MediaStatus,
    NvmeStatus,
    PathStatus,
    StatusCodeType,
)


class MayastorError(Exception):
    """Base of every error the product raises on purpose."""


# --------------------------------------------------------------------------- usage


class UsageError(MayastorError):
    """The request cannot be carried out as asked; nothing was changed."""


class InvalidArgument(UsageError):
    """An argument is malformed or out of its allowed range."""


class NotFound(UsageError):
    """The named object does not exist."""


class AlreadyExists(UsageError):
    """An object of that name (or uuid) already exists."""


class FailedPrecondition(UsageError):
    """The object is not in a state that allows the operation."""


class PermissionDenied(UsageError):
    """The caller may not do this here (a disk outside the io-engine's --disk-allow)."""


class DiskNotBlank(FailedPrecondition):
    """A pool create found something on the disk (a file system, a partition table,
    another pool, ...) and was not forced; nothing was written.

    Attributes:
        found: what was found, for people (``ext4 file system (UUID ...) at byte 1080``).
    """

    def __init__(self, message: str, found: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.found = found


class Superseded(FailedPrecondition):
    """A newer owner has taken over what this writer wrote for: the nexus info of a
    nexus whose volume has a newer target (the nexus is fenced on it)."""


class ResourceExhausted(UsageError):
    """Not enough space (or another resource) to carry out the request."""


class Unavailable(UsageError):
    """A remote party could not be reached; trying again later may work."""


class Conflict(UsageError):
    """The request contradicts the object as it stands (another spec under the same id,
    a revision that moved on, an operation already under way)."""


class InUse(Conflict):
    """The object is still used by others (a pool holding replicas, ...)."""


class StoreUnavailable(Unavailable):
    """The cluster store cannot be reached; nothing was changed, try again later."""


class CorruptMetadata(MayastorError):
    """Metadata on a device failed its checks; it is refused rather than guessed at."""


# --------------------------------------------------------------------------- devices


class DeviceError(MayastorError):
    """An I/O (or an admin command on a device) failed with an NVMe status.

    Subclasses set `status` with a class keyword and are found again by
    `from_status`; a status without a subclass gives a plain `DeviceError`.

    Attributes:
        status: the NVMe status for the completion.
        device: name of the device that failed, when known.
        lba, nblocks: the range of the failed I/O, when it had one.
    """

    status: NvmeStatus = NvmeStatus(StatusCodeType.GENERIC, GenericStatus.INTERNAL_ERROR)
    _registry: ClassVar[dict[tuple[int, int], type[DeviceError]]] = {}

    def __init_subclass__(cls, status: NvmeStatus | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
            DeviceError._registry.setdefault((status.sct, status.sc), cls)

    def __init__(
        self,
        message: str,
        *,
        status: NvmeStatus | None = None,
        device: str | None = None,
        lba: int | None = None,
        nblocks: int | None = None,
    ) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.device = device
        self.lba = lba
        self.nblocks = nblocks

    @classmethod
    def from_status(cls, status: NvmeStatus, message: str, **fields: Any) -> DeviceError:
        """The registered subclass for `status`, or a plain DeviceError carrying it."""
        klass = cls._registry.get((status.sct, status.sc), DeviceError)
        return klass(message, status=status, **fields)

    @property
    def retryable(self) -> bool:
        """False when the status says that trying the same I/O again cannot help."""
        return not self.status.dnr


def _status(sct: StatusCodeType, sc: int, dnr: bool = False) -> NvmeStatus:
    return NvmeStatus(sct, sc, dnr=dnr)


_G = StatusCodeType.GENERIC


class InvalidOpcode(DeviceError, status=_status(_G, GenericStatus.INVALID_OPCODE, True)):
    """The device does not support this command."""


class InvalidField(DeviceError, status=_status(_G, GenericStatus.INVALID_FIELD, True)):
    """A field of the command is invalid (e.g. a buffer not a multiple of the block size)."""


class DataTransferError(DeviceError, status=_status(_G, GenericStatus.DATA_TRANSFER_ERROR)):
    """The data could not be moved between host and device."""


class InternalDeviceError(DeviceError, status=_status(_G, GenericStatus.INTERNAL_ERROR)):
    """The device failed for a reason of its own (an OS error on the backing file, ...)."""


class AbortRequested(DeviceError, status=_status(_G, GenericStatus.ABORT_REQUESTED)):
    """The I/O was aborted before it completed (e.g. the device is being closed)."""


class InvalidNamespace(
    DeviceError, status=_status(_G, GenericStatus.INVALID_NAMESPACE_OR_FORMAT, True)
):
    """The namespace does not exist."""


class LbaOutOfRange(DeviceError, status=_status(_G, GenericStatus.LBA_OUT_OF_RANGE, True)):
    """The I/O reaches past the end of the device."""


class NoSpace(DeviceError, status=_status(_G, GenericStatus.CAPACITY_EXCEEDED, True)):
    """A thin device needed a new cluster and its pool has none left."""


class DeviceNotReady(DeviceError, status=_status(_G, GenericStatus.NAMESPACE_NOT_READY)):
    """The device is closed, closing or not yet open."""


class ReservationConflict(
    DeviceError, status=_status(_G, GenericStatus.RESERVATION_CONFLICT, True)
):
    """Another host's NVMe reservation (or registration) excludes this command.

    On an I/O it means this host was fenced: another host holds a reservation that
    does not let this one read or write (a nexus that gets it has been superseded by
    a newer one); on a reservation command, that the key given is not this host's or
    that another host holds the reservation. The message says so for an operator.
    """

    HINT = (
        "reservation conflict: another host holds an NVMe reservation on the namespace "
        "that excludes this one (it was preempted or never registered)"
    )

    def __init__(self, message: str, **fields: Any) -> None:
        if "reservation" not in message.lower():
            message = f"{message} ({self.HINT})"
        super().__init__(message, **fields)


class WriteFault(DeviceError, status=_status(StatusCodeType.MEDIA, MediaStatus.WRITE_FAULT)):
    """The medium failed to store the data."""


class UnrecoveredReadError(
    DeviceError, status=_status(StatusCodeType.MEDIA, MediaStatus.UNRECOVERED_READ_ERROR)
):
    """The medium failed to return the data."""


class PathError(DeviceError, status=_status(StatusCodeType.PATH, PathStatus.INTERNAL_PATH_ERROR)):
    """The path to a remote device failed; the device itself may be fine."""


class PathLost(PathError, status=_status(StatusCodeType.PATH, PathStatus.HOST_PATHING_ERROR)):
    """The connection to the remote device is gone and did not come back in time."""


class PathGone(PathLost):
    """The initiator gave up reconnecting: the path will never come back to this handle.

    A `PathLost` may be over once the path is back; this one is final (the controller
    failed for good after its ctrl_loss_timeout).
    """


class AnaInaccessible(PathError, status=_status(StatusCodeType.PATH, PathStatus.ANA_INACCESSIBLE)):
    """The namespace cannot be reached through this controller (ANA Inaccessible), but
    may be through another path: a fenced nexus answers its host's I/O so, so that a
    host with multipath retries where the volume's target is now."""


class IoTimeout(PathError, status=_status(StatusCodeType.PATH, PathStatus.COMMAND_ABORTED_BY_HOST)):
    """The remote device did not complete the command within its timeout."""


class ConnectRefused(
    DeviceError,
    status=_status(StatusCodeType.COMMAND_SPECIFIC, CommandSpecificStatus.CONNECT_INVALID_HOST),
):
    """A Fabrics Connect was refused (e.g. our host NQN is not on the allow-list)."""


class AuthenticationFailed(
    ConnectRefused,
    status=_status(
        StatusCodeType.COMMAND_SPECIFIC, CommandSpecificStatus.AUTHENTICATION_REQUIRED, True
    ),
):
    """In-band authentication (DH-HMAC-CHAP) did not admit us: the controller asks for
    it and we hold no secret, it refused our secret, or it did not prove its own."""


class ConnectInvalidParameters(
    DeviceError,
    status=_status(
        StatusCodeType.COMMAND_SPECIFIC, CommandSpecificStatus.CONNECT_INVALID_PARAMETERS, True
    ),
):
    """A Fabrics Connect named a subsystem or controller that does not exist."""


_E = TypeVar("_E", bound=BaseException)


def caused_by(error: _E, cause: BaseException) -> _E:
    """`error` with `cause` as its ``__cause__``, for ``raise caused_by(X(...), exc)``.

    The same as ``raise X(...) from exc``, which the compiled modules cannot use: mypyc
    (2.4.1) drops a ``from`` clause, leaving the cause unset (tests/unit/
    test_compiled_modules.py keeps ``from`` out of them).
    """
    error.__cause__ = cause
    return error
