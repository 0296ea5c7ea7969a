"""The tunable limits of a target: queue sizes, data sizes, resource bounds, timers.

One frozen `TargetConfig` per target; the identify data, the IC exchange and the
command checks all read their limits from it, so what the host is told and what
the target enforces cannot drift apart. The resource bounds (connections, controllers,
write data asked for and not yet received, the time a connection may take to start)
keep what one host can make the target hold within a known size, whatever it sends.
"""

from __future__ import annotations

from dataclasses import dataclass

from mayastor import __version__
from mayastor.errors import InvalidArgument
from mayastor.nvmf.auth import DEFAULT_DHGROUPS, DEFAULT_HASHES, DhGroupId, HashId

MEMORY_PAGE_SIZE = 4096
"""CAP.MPSMIN: the page size MDTS counts in."""
ADMIN_IN_CAPSULE_DATA = 8192
"""In-capsule data the Linux host may put on the admin queue and in Fabrics commands
whatever IOCCSZ says (NVME_TCP_ADMIN_CCSZ); accepted on every queue for those."""


@dataclass(frozen=True, slots=True)
class TargetConfig:
    """Limits of one target.

    Attributes:
        max_queue_entries: entries of an I/O queue (CAP.MQES + 1, MAXCMD), 2 to 65536.
        max_admin_queue_entries: entries of an admin queue (the discovery log's ASQSZ).
        max_io_queues: I/O queues one controller may have.
        in_capsule_data_size: write data an I/O command may carry in its capsule
            (IOCCSZ is 4 + this / 16); larger writes go by R2T.
        max_h2c_data: MAXH2CDATA, the most data bytes of one H2CData PDU and of one R2T
            (a multiple of 4, at least 4096).
        max_data_transfer: the most bytes one command moves (MDTS): 4096 times a power
            of two.
        async_event_limit: Asynchronous Event Requests held at once (AERL + 1).
        error_log_entries: entries of the error information log page.
        discovery_keep_alive_ms: the keep-alive timeout of a discovery controller
            whose host asked for none, so that forgotten ones are freed.
        keep_alive_check_interval: seconds between checks of the keep-alive timers.
        drain_timeout: seconds a closing connection waits for its I/O in flight
            before cancelling it.
        firmware_revision: FR of Identify Controller (8 ASCII characters at most).
        dhchap_hashes: the hash functions DH-HMAC-CHAP may use, most preferred first.
        dhchap_dhgroups: the DH groups it may use, most preferred first (each costs the
            event loop a modular exponentiation per queue: ffdhe8192 some 100 ms).
        authentication_timeout: seconds the host of a new controller has to
            authenticate its admin queue, in place of the keep-alive timer (which
            starts once it did); then the controller is freed.
        max_connections: TCP connections one listener (port) holds at once; at the
            limit, the oldest connection that has not finished its Fabrics Connect is
            closed to make room, or the new one when every connection is associated.
        max_controllers: controllers one subsystem has at once (the discovery
            subsystem too); a Connect beyond is refused with Controller Busy.
        max_pending_write_bytes: bytes of host data one connection has asked for by
            R2T and not yet received; commands beyond wait for their R2Ts until data
            comes in. At least `max_data_transfer`.
        max_pending_write_bytes_total: the same, over every connection of the target.
        ic_timeout: seconds a new connection may take to send its ICReq.
        connect_timeout: seconds a connection may take from its ICReq to a successful
            Fabrics Connect.
        write_data_timeout: seconds a connection that owes data asked for by R2T may
            go without sending any; then it is closed and its claim released.
    """

    max_queue_entries: int = 128
    max_admin_queue_entries: int = 32
    max_io_queues: int = 32
    in_capsule_data_size: int = 8192
    max_h2c_data: int = 128 * 1024
    max_data_transfer: int = 1 << 20
    async_event_limit: int = 4
    error_log_entries: int = 16
    discovery_keep_alive_ms: int = 120_000
    keep_alive_check_interval: float = 0.2
    drain_timeout: float = 30.0
    firmware_revision: str = __version__
    dhchap_hashes: tuple[HashId, ...] = DEFAULT_HASHES
    dhchap_dhgroups: tuple[DhGroupId, ...] = DEFAULT_DHGROUPS
    authentication_timeout: float = 120.0
    max_connections: int = 2048
    max_controllers: int = 128
    max_pending_write_bytes: int = 8 << 20
    max_pending_write_bytes_total: int = 256 << 20
    ic_timeout: float = 10.0
    connect_timeout: float = 10.0
    write_data_timeout: float = 30.0

    def __post_init__(self) -> None:
        checks = (
            (2 <= self.max_queue_entries <= 65536, "max_queue_entries must be 2..65536"),
            (
                2 <= self.max_admin_queue_entries <= 4096,
                "max_admin_queue_entries must be 2..4096",
            ),
            (1 <= self.max_io_queues <= 0xFFFE, "max_io_queues must be 1..65534"),
            (
                0 <= self.in_capsule_data_size <= (1 << 20) and not self.in_capsule_data_size % 16,
                "in_capsule_data_size must be a multiple of 16 up to 1 MiB",
            ),
            (
                self.max_h2c_data >= 4096 and not self.max_h2c_data % 4,
                "max_h2c_data must be a multiple of 4 and at least 4096",
            ),
            (
                self.max_data_transfer >= MEMORY_PAGE_SIZE
                and (self.max_data_transfer // MEMORY_PAGE_SIZE).bit_count() == 1
                and not self.max_data_transfer % MEMORY_PAGE_SIZE,
                "max_data_transfer must be 4096 times a power of two",
            ),
            (1 <= self.async_event_limit <= 256, "async_event_limit must be 1..256"),
            (1 <= self.error_log_entries <= 256, "error_log_entries must be 1..256"),
            (self.discovery_keep_alive_ms >= 0, "discovery_keep_alive_ms must be >= 0"),
            (self.keep_alive_check_interval > 0, "keep_alive_check_interval must be > 0"),
            (self.drain_timeout >= 0, "drain_timeout must be >= 0"),
            (self.authentication_timeout > 0, "authentication_timeout must be > 0"),
            (1 <= self.max_connections <= 1_000_000, "max_connections must be 1..1000000"),
            (1 <= self.max_controllers <= 0xFFEF, "max_controllers must be 1..65519"),
            (
                self.max_data_transfer
                <= self.max_pending_write_bytes
                <= self.max_pending_write_bytes_total,
                "max_pending_write_bytes must be at least max_data_transfer and at most "
                "max_pending_write_bytes_total",
            ),
            (self.ic_timeout > 0, "ic_timeout must be > 0"),
            (self.connect_timeout > 0, "connect_timeout must be > 0"),
            (self.write_data_timeout > 0, "write_data_timeout must be > 0"),
            (
                len(self.firmware_revision) <= 8 and self.firmware_revision.isascii(),
                "firmware_revision must be at most 8 ASCII characters",
            ),
            (
                bool(self.dhchap_hashes) and all(isinstance(h, HashId) for h in self.dhchap_hashes),
                "dhchap_hashes must name at least one HashId",
            ),
            (
                bool(self.dhchap_dhgroups)
                and all(isinstance(g, DhGroupId) for g in self.dhchap_dhgroups),
                "dhchap_dhgroups must name at least one DhGroupId",
            ),
        )
        for ok, message in checks:
            if not ok:
                raise InvalidArgument(f"target config: {message}")

    @property
    def mdts(self) -> int:
        """MDTS of Identify Controller: log2 of max_data_transfer in memory pages."""
        return (self.max_data_transfer // MEMORY_PAGE_SIZE).bit_length() - 1

    @property
    def ioccsz(self) -> int:
        """IOCCSZ: I/O command capsule size in 16-byte units (SQE plus in-capsule data)."""
        return (64 + self.in_capsule_data_size) // 16

    @property
    def max_pdu_data(self) -> int:
        """The most data bytes any PDU from a host may carry."""
        return max(self.in_capsule_data_size, ADMIN_IN_CAPSULE_DATA, self.max_h2c_data)
