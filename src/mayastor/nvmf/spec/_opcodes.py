"""Command opcodes: admin (NVMe Base 1.4 Figure 139), NVM I/O (NVM Command Set,
Figure 346 of Base 1.4) and Fabrics command types (NVMe-oF 1.1 Figure 10)."""

from __future__ import annotations

import enum


class AdminOpcode(enum.IntEnum):
    """Opcodes of the admin queue that a fabrics controller may see."""

    DELETE_IO_SQ = 0x00  # not over fabrics (queues come from Connect)
    CREATE_IO_SQ = 0x01  # not over fabrics
    GET_LOG_PAGE = 0x02
    DELETE_IO_CQ = 0x04  # not over fabrics
    CREATE_IO_CQ = 0x05  # not over fabrics
    IDENTIFY = 0x06
    ABORT = 0x08
    SET_FEATURES = 0x09
    GET_FEATURES = 0x0A
    ASYNC_EVENT_REQUEST = 0x0C
    NAMESPACE_MANAGEMENT = 0x0D
    KEEP_ALIVE = 0x18
    DIRECTIVE_SEND = 0x19
    DIRECTIVE_RECEIVE = 0x1A
    FABRICS = 0x7F  # the command's FCTYPE says which Fabrics command


class IoOpcode(enum.IntEnum):
    """Opcodes of the NVM command set on I/O queues."""

    FLUSH = 0x00
    WRITE = 0x01
    READ = 0x02
    WRITE_UNCORRECTABLE = 0x04
    COMPARE = 0x05
    WRITE_ZEROES = 0x08
    DATASET_MANAGEMENT = 0x09
    RESERVATION_REGISTER = 0x0D
    RESERVATION_REPORT = 0x0E
    RESERVATION_ACQUIRE = 0x11
    RESERVATION_RELEASE = 0x15
    FABRICS = 0x7F  # Fabrics commands may be sent on any queue


class FabricsCommandType(enum.IntEnum):
    """FCTYPE of a Fabrics command (opcode 7Fh), byte 4 of the SQE."""

    PROPERTY_SET = 0x00
    CONNECT = 0x01
    PROPERTY_GET = 0x04
    AUTHENTICATION_SEND = 0x05
    AUTHENTICATION_RECEIVE = 0x06
    DISCONNECT = 0x08
