"""What a host chooses when it connects to a controller: names, queues, digests, timeouts.

One frozen dataclass, checked when it is made, so a bad value is refused before any
connection is tried. Times are in seconds (floats); the wire wants milliseconds for
KATO and the options convert.
"""

from __future__ import annotations

import math
import uuid as uuid_mod
from dataclasses import dataclass, field

from mayastor.errors import InvalidArgument
from mayastor.nvmf.auth import DhchapSecret
from mayastor.nvmf.host._authenticate import HostSecrets
from mayastor.nvmf.spec import SpecError, validate_nqn

DEFAULT_HOSTNQN = "nqn.2019-05.io.openebs:node-name:unknown"
"""The host NQN when none is given; the io-engine passes its own node name instead."""
ADMIN_QUEUE_SIZE = 32
"""Entries of the admin queue (Linux uses the same)."""
MAX_QUEUE_SIZE = 1024
MAX_IO_QUEUES = 64
_HOSTID_NAMESPACE = uuid_mod.UUID("1f0e0a2c-8f0b-4c5e-9d7a-6d61796173e0")


def hostid_for(hostnqn: str) -> uuid_mod.UUID:
    """The host identifier we send with `hostnqn` when none is chosen: stable per NQN.

    Targets may refuse one host NQN arriving with two host IDs, so the ID is derived
    from the NQN rather than drawn at random.
    """
    return uuid_mod.uuid5(_HOSTID_NAMESPACE, hostnqn)


@dataclass(frozen=True, slots=True)
class ControllerOptions:
    """How our initiator connects to one controller and how it rides out failures.

    Attributes:
        hostnqn: our host NQN (the target's allow-list names it).
        hostid: our host identifier; default derived from `hostnqn`.
        io_queues: I/O queues (TCP connections) to ask for; the controller may grant
            fewer. 0 only for a discovery controller.
        queue_size: commands in flight per I/O queue (SQSIZE is one less); limited
            further by the controller's CAP.MQES.
        header_digest: ask for CRC32C header digests.
        data_digest: ask for CRC32C data digests.
        io_timeout: seconds a command may take before it fails with `IoTimeout`.
        keep_alive_timeout: KATO in seconds (0 disables keep alive); a Keep Alive
            goes out every half of it and must be answered within it.
        connect_timeout: seconds one connect attempt may take (TCP, ICReq, Fabrics
            Connect, enabling the controller).
        reconnect_delay: seconds between reconnect attempts after the path is lost.
        ctrl_loss_timeout: seconds after the loss when we stop trying and every call
            fails with `PathGone`; None tries for ever, 0 never reconnects.
        fast_io_fail_timeout: while reconnecting, calls wait for the path to come back
            until this many seconds after the loss, then fail with `PathLost`; 0
            fails them at once, None lets them wait until `ctrl_loss_timeout`.
        disable_sq_flow_control: ask (Connect CATTR bit 2) that the controller not
            track the submission queue head; it may then complete a read with its
            last C2HData PDU (SUCCESS), without a CapsuleResp. Only for targets
            whose discovery entry says they support it (TREQ bit 2), as Linux does.
        dhchap_secret: our DH-HMAC-CHAP secret, proven to a controller that asks for
            in-band authentication (every queue authenticates); None: we have none,
            and such a controller is refused with `AuthenticationFailed`.
        dhchap_ctrl_secret: the controller must prove this secret (bidirectional);
            needs `dhchap_secret`.
    """

    hostnqn: str = DEFAULT_HOSTNQN
    hostid: uuid_mod.UUID | None = None
    io_queues: int = 2
    queue_size: int = 128
    header_digest: bool = False
    data_digest: bool = False
    io_timeout: float = 30.0
    keep_alive_timeout: float = 10.0
    connect_timeout: float = 10.0
    reconnect_delay: float = 2.0
    ctrl_loss_timeout: float | None = 60.0
    fast_io_fail_timeout: float | None = 5.0
    disable_sq_flow_control: bool = False
    dhchap_secret: DhchapSecret | None = field(default=None, repr=False)
    dhchap_ctrl_secret: DhchapSecret | None = field(default=None, repr=False)
    _hostid: uuid_mod.UUID = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            validate_nqn(self.hostnqn)
        except SpecError as exc:
            raise InvalidArgument(f"hostnqn {self.hostnqn!r} is not a valid NQN: {exc}") from exc
        if not 0 <= self.io_queues <= MAX_IO_QUEUES:
            raise InvalidArgument(
                f"io_queues {self.io_queues} is outside 0..{MAX_IO_QUEUES} (0 only for discovery)"
            )
        if not 2 <= self.queue_size <= MAX_QUEUE_SIZE:
            raise InvalidArgument(f"queue_size {self.queue_size} is outside 2..{MAX_QUEUE_SIZE}")
        _positive("io_timeout", self.io_timeout)
        _positive("connect_timeout", self.connect_timeout)
        _positive("reconnect_delay", self.reconnect_delay)
        _non_negative("keep_alive_timeout", self.keep_alive_timeout)
        if self.keep_alive_timeout and self.keep_alive_timeout < 0.01:
            raise InvalidArgument("keep_alive_timeout below 10 ms is not usable; 0 disables it")
        if math.ceil(self.keep_alive_timeout * 1000) > 0xFFFF_FFFF:
            raise InvalidArgument(f"keep_alive_timeout {self.keep_alive_timeout} s is too long")
        if self.ctrl_loss_timeout is not None:
            _non_negative("ctrl_loss_timeout", self.ctrl_loss_timeout)
        if self.fast_io_fail_timeout is not None:
            _non_negative("fast_io_fail_timeout", self.fast_io_fail_timeout)
        object.__setattr__(self, "_hostid", self.hostid or hostid_for(self.hostnqn))
        if self.dhchap_ctrl_secret is not None and self.dhchap_secret is None:
            raise InvalidArgument("dhchap_ctrl_secret needs dhchap_secret")
        if self.dhchap_secret is not None:
            HostSecrets(self.dhchap_secret, self.dhchap_ctrl_secret)

    @property
    def secrets(self) -> HostSecrets | None:
        """Our DH-HMAC-CHAP secrets, when we have any."""
        if self.dhchap_secret is None:
            return None
        return HostSecrets(self.dhchap_secret, self.dhchap_ctrl_secret)

    @property
    def host_identifier(self) -> uuid_mod.UUID:
        """The host ID sent in every Fabrics Connect."""
        return self._hostid

    @property
    def kato_ms(self) -> int:
        """KATO as the Fabrics Connect carries it: milliseconds, 0 for none."""
        return math.ceil(self.keep_alive_timeout * 1000)


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise InvalidArgument(f"{name} must be a positive number of seconds, not {value!r}")


def _non_negative(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise InvalidArgument(f"{name} must be 0 or more seconds, not {value!r}")
