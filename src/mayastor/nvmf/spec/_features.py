"""Features (NVMe Base 1.4 section 5.21.1) a fabrics controller serves, and the
completion DW0 of an Asynchronous Event Request.

Each feature class turns the CDW11 of Set Features (and the DW0 that Get Features
returns) into named fields and back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mayastor.nvmf.spec._errors import SpecError


class FeatureId(enum.IntEnum):
    """Feature identifiers (FID)."""

    ARBITRATION = 0x01
    POWER_MANAGEMENT = 0x02
    TEMPERATURE_THRESHOLD = 0x04
    ERROR_RECOVERY = 0x05
    VOLATILE_WRITE_CACHE = 0x06
    NUMBER_OF_QUEUES = 0x07
    INTERRUPT_COALESCING = 0x08
    INTERRUPT_VECTOR_CONFIGURATION = 0x09
    WRITE_ATOMICITY = 0x0A
    ASYNC_EVENT_CONFIGURATION = 0x0B
    TIMESTAMP = 0x0E
    KEEP_ALIVE_TIMER = 0x0F
    HOST_IDENTIFIER = 0x81
    RESERVATION_NOTIFICATION_MASK = 0x82
    RESERVATION_PERSISTENCE = 0x83


@dataclass(frozen=True, slots=True)
class NumberOfQueues:
    """Number of Queues (07h): I/O queues asked for (Set) or granted (DW0 of both).

    Attributes:
        nsqr: I/O submission queues, 0-based (bits 15:0).
        ncqr: I/O completion queues, 0-based (bits 31:16).
    """

    nsqr: int
    ncqr: int

    @property
    def submission_queues(self) -> int:
        return self.nsqr + 1

    @property
    def completion_queues(self) -> int:
        return self.ncqr + 1

    def encode(self) -> int:
        """CDW11 / DW0 (SpecError when a count does not fit, or is FFFFh, which is
        reserved)."""
        for name, value in (("NSQR", self.nsqr), ("NCQR", self.ncqr)):
            if not 0 <= value < 0xFFFF:
                raise SpecError(f"{name} {value} is outside 0..FFFEh")
        return self.nsqr | self.ncqr << 16

    @classmethod
    def decode(cls, value: int) -> NumberOfQueues:
        return cls(value & 0xFFFF, (value >> 16) & 0xFFFF)


@dataclass(frozen=True, slots=True)
class KeepAliveTimer:
    """Keep Alive Timer (0Fh): KATO in milliseconds (CDW11); 0 disables it."""

    kato: int

    def encode(self) -> int:
        if not 0 <= self.kato <= 0xFFFF_FFFF:
            raise SpecError(f"KATO {self.kato} does not fit in 32 bits")
        return self.kato

    @classmethod
    def decode(cls, value: int) -> KeepAliveTimer:
        return cls(value & 0xFFFF_FFFF)


@dataclass(frozen=True, slots=True)
class VolatileWriteCache:
    """Volatile Write Cache (06h): WCE, CDW11 bit 0."""

    enabled: bool

    def encode(self) -> int:
        return int(self.enabled)

    @classmethod
    def decode(cls, value: int) -> VolatileWriteCache:
        return cls(bool(value & 1))


class AsyncEventConfig(enum.IntFlag):
    """Asynchronous Event Configuration (0Bh), CDW11: which notices to send."""

    SMART_SPARE = 1 << 0
    SMART_TEMPERATURE = 1 << 1
    SMART_RELIABILITY = 1 << 2
    SMART_READ_ONLY = 1 << 3
    SMART_VOLATILE_BACKUP = 1 << 4
    NAMESPACE_ATTRIBUTE = 1 << 8
    FIRMWARE_ACTIVATION = 1 << 9
    TELEMETRY_LOG = 1 << 10
    ANA_CHANGE = 1 << 11
    PREDICTABLE_LATENCY = 1 << 12
    LBA_STATUS = 1 << 13
    ENDURANCE_GROUP = 1 << 14
    DISCOVERY_LOG_CHANGE = 1 << 31


class AsyncEventType(enum.IntEnum):
    """Asynchronous event type, completion DW0 bits 2:0."""

    ERROR = 0
    SMART_HEALTH = 1
    NOTICE = 2
    IO_COMMAND_SET = 6
    VENDOR_SPECIFIC = 7


class AsyncEventNotice(enum.IntEnum):
    """Asynchronous event information for type NOTICE, completion DW0 bits 15:8."""

    NAMESPACE_ATTRIBUTE_CHANGED = 0x00  # read log page 04h
    FIRMWARE_ACTIVATION_STARTING = 0x01
    TELEMETRY_LOG_CHANGED = 0x02
    ANA_CHANGE = 0x03  # read log page 0Ch
    PREDICTABLE_LATENCY = 0x04
    LBA_STATUS = 0x05
    ENDURANCE_GROUP = 0x06
    DISCOVERY_LOG_CHANGE = 0xF0  # read log page 70h


@dataclass(frozen=True, slots=True)
class AsyncEvent:
    """The completion DW0 of an Asynchronous Event Request.

    Attributes:
        type: `AsyncEventType` (bits 2:0).
        info: event information (bits 15:8), e.g. an `AsyncEventNotice`.
        log_page: the log page to read to clear the event (bits 23:16).
    """

    type: int
    info: int
    log_page: int

    @classmethod
    def namespace_attribute_changed(cls) -> AsyncEvent:
        """Notice: namespaces were added, removed or resized (read log page 04h)."""
        return cls(AsyncEventType.NOTICE, AsyncEventNotice.NAMESPACE_ATTRIBUTE_CHANGED, 0x04)

    @classmethod
    def ana_change(cls) -> AsyncEvent:
        """Notice: an ANA group changed state (read log page 0Ch)."""
        return cls(AsyncEventType.NOTICE, AsyncEventNotice.ANA_CHANGE, 0x0C)

    @classmethod
    def discovery_log_change(cls) -> AsyncEvent:
        """Notice: the discovery log page changed (read log page 70h)."""
        return cls(AsyncEventType.NOTICE, AsyncEventNotice.DISCOVERY_LOG_CHANGE, 0x70)

    def encode(self) -> int:
        """Completion DW0 (SpecError when a field does not fit)."""
        if not 0 <= self.type <= 7 or not 0 <= self.info <= 0xFF or not 0 <= self.log_page <= 0xFF:
            raise SpecError(f"async event {self} does not fit its bits")
        return self.type | self.info << 8 | self.log_page << 16

    @classmethod
    def decode(cls, dw0: int) -> AsyncEvent:
        return cls(dw0 & 0x7, (dw0 >> 8) & 0xFF, (dw0 >> 16) & 0xFF)
