"""What a command handler answers, and the completion statuses the target uses.

A `Reply` is the status, the two command-specific dwords and any data going back to
the host; the queue pair turns it into C2HData and CapsuleResp PDUs. Statuses that
no retry can fix carry DNR, as a drive sets it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mayastor.nvmf.spec import (
    SUCCESS,
    CommandSpecificStatus,
    GenericStatus,
    NvmeStatus,
    StatusCodeType,
)
from mayastor.target._controller_state import ControllerAction

_G = StatusCodeType.GENERIC
_C = StatusCodeType.COMMAND_SPECIFIC

INVALID_OPCODE = NvmeStatus(_G, GenericStatus.INVALID_OPCODE, dnr=True)
INVALID_FIELD = NvmeStatus(_G, GenericStatus.INVALID_FIELD, dnr=True)
COMMAND_ID_CONFLICT = NvmeStatus(_G, GenericStatus.COMMAND_ID_CONFLICT, dnr=True)
INTERNAL_ERROR = NvmeStatus(_G, GenericStatus.INTERNAL_ERROR)
INVALID_NAMESPACE = NvmeStatus(_G, GenericStatus.INVALID_NAMESPACE_OR_FORMAT, dnr=True)
COMMAND_SEQUENCE_ERROR = NvmeStatus(_G, GenericStatus.COMMAND_SEQUENCE_ERROR, dnr=True)
SGL_LENGTH_INVALID = NvmeStatus(_G, GenericStatus.DATA_SGL_LENGTH_INVALID, dnr=True)
SGL_TYPE_INVALID = NvmeStatus(_G, GenericStatus.SGL_DESCRIPTOR_TYPE_INVALID, dnr=True)
SGL_OFFSET_INVALID = NvmeStatus(_G, GenericStatus.SGL_OFFSET_INVALID, dnr=True)
TRANSIENT_TRANSPORT_ERROR = NvmeStatus(_G, GenericStatus.TRANSIENT_TRANSPORT_ERROR)
LBA_OUT_OF_RANGE = NvmeStatus(_G, GenericStatus.LBA_OUT_OF_RANGE, dnr=True)
INVALID_LOG_PAGE = NvmeStatus(_C, CommandSpecificStatus.INVALID_LOG_PAGE, dnr=True)
AER_LIMIT_EXCEEDED = NvmeStatus(
    _C, CommandSpecificStatus.ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED, dnr=True
)
FEATURE_NOT_SAVEABLE = NvmeStatus(_C, CommandSpecificStatus.FEATURE_NOT_SAVEABLE, dnr=True)
CONNECT_INCOMPATIBLE_FORMAT = NvmeStatus(
    _C, CommandSpecificStatus.CONNECT_INCOMPATIBLE_FORMAT, dnr=True
)
CONNECT_CONTROLLER_BUSY = NvmeStatus(_C, CommandSpecificStatus.CONNECT_CONTROLLER_BUSY)
CONNECT_INVALID_PARAMETERS = NvmeStatus(
    _C, CommandSpecificStatus.CONNECT_INVALID_PARAMETERS, dnr=True
)
CONNECT_INVALID_HOST = NvmeStatus(_C, CommandSpecificStatus.CONNECT_INVALID_HOST, dnr=True)
AUTHENTICATION_REQUIRED = NvmeStatus(_C, CommandSpecificStatus.AUTHENTICATION_REQUIRED, dnr=True)


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to one command.

    Attributes:
        status: the completion status.
        dw0, dw1: completion dwords 0 and 1 (command specific).
        data: data for the host (Identify, Get Log Page), sent before the completion.
        then: what the controller's owner does next (a Property Set of CC may start,
            reset or shut down the controller).
    """

    status: NvmeStatus = SUCCESS
    dw0: int = 0
    dw1: int = 0
    data: bytes | None = None
    then: ControllerAction = ControllerAction.NONE


OK = Reply()
"""Success, nothing else."""


def failed(status: NvmeStatus, dw0: int = 0) -> Reply:
    """A reply carrying only an error status (and, for Connect, the IATTR/IPO dword)."""
    return Reply(status, dw0)
