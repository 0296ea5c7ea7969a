"""Subsystems a target serves, and the registry a Connect looks them up in.

A `Subsystem` is one NVM subsystem with one namespace (NSID 1) over a BlockDevice,
served on one port, with a host allow-list, a serial, a model, a range of controller
IDs and an ANA state; or the discovery subsystem, which has no namespace and is
served on every port. The `SubsystemRegistry` holds them by NQN, knows the ports the
target listens on and keeps the discovery log's generation counter.

Nothing here touches a socket; the public API in `_target.py` checks arguments
before they reach these classes.
"""

from __future__ import annotations

import os
import uuid as uuid_mod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mayastor.bdev import BlockDevice, ReservationCell
from mayastor.nvmf.auth import ControllerKeys, SequenceNumbers
from mayastor.nvmf.spec import DISCOVERY_NQN, AnaState, AsyncEvent
from mayastor.target._limits import LimitLog, WriteBudget

if TYPE_CHECKING:
    from mayastor.target._config import TargetConfig
    from mayastor.target._controller import Controller

DEFAULT_MODEL = "Mayastor NVMe controller"
"""Identify Controller MN of every subsystem unless told otherwise."""
ANA_GROUP = 1
"""The one ANA group of a subsystem (its namespace's ANAGRPID)."""
NSID = 1
"""The one namespace of a subsystem."""


def default_serial(device_uuid: uuid_mod.UUID) -> str:
    """A 20-character serial number derived from the device's uuid."""
    return device_uuid.hex[:20]


class Subsystem:
    """An NVM subsystem (one namespace over `device`) or the discovery subsystem.

    Args:
        nqn: the subsystem NQN.
        device: the namespace's device; None for the discovery subsystem.
        port: the port it is served on; None for the discovery subsystem (all ports).
        allowed_hosts: host NQNs that may connect; None means any host.
        serial: Identify Controller SN (20 ASCII characters at most).
        model: Identify Controller MN (40 ASCII characters at most).
        cntlid_range: the controller IDs it hands out, inclusive.
        ana_state: the ANA state of its namespace's group.
        host_keys: DH-HMAC-CHAP secrets by host NQN (an entry ending in ``*`` matches
            as in the allow-list); when there are any, only a host that has one and
            proves it is admitted. None or empty: no authentication.
        namespace_uuid: the namespace's UUID and NGUID; None for the device's uuid.

    Attributes:
        reservations: the namespace's reservation state: the device's own when it keeps
            one (a replica, so that it survives a restart and applies to in-process
            users too), else one in memory for this subsystem.
    """

    def __init__(
        self,
        nqn: str,
        device: BlockDevice | None,
        *,
        port: int | None,
        allowed_hosts: Iterable[str] | None,
        serial: str,
        model: str,
        cntlid_range: tuple[int, int],
        ana_state: AnaState = AnaState.OPTIMIZED,
        host_keys: Mapping[str, ControllerKeys] | None = None,
        namespace_uuid: uuid_mod.UUID | None = None,
    ) -> None:
        self.nqn = nqn
        self.host_keys: dict[str, ControllerKeys] = dict(host_keys or {})
        self.device = device
        self.port = port
        self.allowed_hosts: frozenset[str] | None = (
            None if allowed_hosts is None else frozenset(allowed_hosts)
        )
        self.serial = serial
        self.model = model
        self.cntlid_range = cntlid_range
        self.ana_state = ana_state
        self.ana_change_count = 0
        self.controllers: dict[int, Controller] = {}
        self._next_cntlid = cntlid_range[0]
        own = device.reservations if device is not None else None
        self.reservations = own if own is not None else ReservationCell()
        self._namespace_uuid = namespace_uuid

    def __repr__(self) -> str:
        return f"<Subsystem {self.nqn} port={self.port} controllers={len(self.controllers)}>"

    @property
    def is_discovery(self) -> bool:
        return self.device is None

    @property
    def namespace_uuid(self) -> uuid_mod.UUID:
        """The namespace UUID (and NGUID): the one given, else the device's uuid."""
        assert self.device is not None
        return self._namespace_uuid or self.device.uuid

    def allows(self, hostnqn: str) -> bool:
        """True when `hostnqn` may connect (None allows everyone, empty nobody).

        An entry ending in ``*`` admits every host NQN that starts with what comes
        before it: ``nqn.2019-05.io.openebs:node-name:*`` admits every io-engine.
        """
        hosts = self.allowed_hosts
        if hosts is None or hostnqn in hosts:
            return True
        return any(h.endswith("*") and hostnqn.startswith(h[:-1]) for h in hosts)

    @property
    def requires_authentication(self) -> bool:
        return bool(self.host_keys)

    def keys_for(self, hostnqn: str) -> ControllerKeys | None:
        """The secrets `hostnqn` must prove: its own entry, else the longest matching
        ``prefix*`` entry; None when it has none."""
        keys = self.host_keys
        found = keys.get(hostnqn)
        if found is not None:
            return found
        patterns = [h for h in keys if h.endswith("*") and hostnqn.startswith(h[:-1])]
        return keys[max(patterns, key=len)] if patterns else None

    def allocate_cntlid(self) -> int | None:
        """The next free controller ID of the range, round robin; None when all are taken."""
        low, high = self.cntlid_range
        span = high - low + 1
        for step in range(span):
            candidate = low + (self._next_cntlid - low + step) % span
            if candidate not in self.controllers:
                self._next_cntlid = low + (candidate - low + 1) % span
                return candidate
        return None

    def set_ana_state(self, state: AnaState) -> None:
        """Change the ANA state and tell every controller (an ANA change event)."""
        if state == self.ana_state:
            return
        self.ana_state = state
        self.ana_change_count += 1
        for ctrl in list(self.controllers.values()):
            ctrl.post_event(AsyncEvent.ana_change())

    def namespace_changed(self) -> None:
        """The namespace changed (e.g. it grew): tell every controller."""
        for ctrl in list(self.controllers.values()):
            ctrl.changed_nsids.add(NSID)
            ctrl.post_event(AsyncEvent.namespace_attribute_changed())


@dataclass(frozen=True, slots=True)
class ControllerInfo:
    """One controller of a subsystem, for listings and tests.

    Attributes:
        cntlid: the controller ID.
        hostnqn: the host that connected it.
        hostid: the host identifier from its Connect.
        queues: connected queues, the admin queue included.
        keep_alive_ms: its keep-alive timeout (0: none).
        state: `ControllerState` value (``"ready"``, ``"disabled"``, ...).
        header_digest, data_digest: what its admin queue negotiated.
        peer: the address of its admin queue's host, ``host:port``.
    """

    cntlid: int
    hostnqn: str
    hostid: uuid_mod.UUID
    queues: int
    keep_alive_ms: int
    state: str
    header_digest: bool
    data_digest: bool
    peer: str


class SubsystemRegistry:
    """The subsystems of one target, by NQN, and the ports it listens on; with the
    write-data budget its connections share and the log of limits hit.

    Args:
        address: the address the target listens on (for discovery log entries).
        config: the target's limits.
        discovery: serve the discovery subsystem on every port.
    """

    def __init__(self, address: str, config: TargetConfig, *, discovery: bool) -> None:
        self.address = address
        self.config = config
        self.subsystems: dict[str, Subsystem] = {}
        self.ports: set[int] = set()
        self.generation = 0
        self.auth_seqnums = SequenceNumbers(os.urandom)
        """S1 of the DH-HMAC-CHAP challenges of every queue of this target."""
        self.write_budget = WriteBudget(config.max_pending_write_bytes_total)
        self.limits = LimitLog()
        self.discovery: Subsystem | None = (
            Subsystem(
                DISCOVERY_NQN,
                None,
                port=None,
                allowed_hosts=None,
                serial="",
                model=DEFAULT_MODEL,
                cntlid_range=(1, 0xFFEF),
            )
            if discovery
            else None
        )

    def find(self, nqn: str, port: int) -> Subsystem | None:
        """The subsystem a Connect through `port` names, or None when it is not served there."""
        if nqn == DISCOVERY_NQN:
            return self.discovery if port in self.ports else None
        found = self.subsystems.get(nqn)
        if found is None or found.port != port:
            return None
        return found

    def visible_to(self, hostnqn: str) -> list[Subsystem]:
        """The subsystems `hostnqn` may connect to, on ports we listen on, by NQN."""
        return [
            sub
            for _, sub in sorted(self.subsystems.items())
            if sub.port in self.ports and sub.allows(hostnqn)
        ]

    def all_controllers(self) -> list[Controller]:
        """Every controller of every subsystem, the discovery subsystem's included."""
        subs = list(self.subsystems.values())
        if self.discovery is not None:
            subs.append(self.discovery)
        return [ctrl for sub in subs for ctrl in sub.controllers.values()]

    def changed(self) -> None:
        """The discovery log changed: new generation, and an event for discovery hosts."""
        self.generation += 1
        if self.discovery is not None:
            for ctrl in list(self.discovery.controllers.values()):
                ctrl.post_event(AsyncEvent.discovery_log_change())
