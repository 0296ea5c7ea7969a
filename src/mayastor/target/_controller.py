"""A controller: what one host's association with one subsystem holds.

Created by a successful admin-queue Connect, a controller owns its registers (CC and
CSTS, by way of its state table), its keep-alive timer, its features (number of
queues, async event configuration, volatile write cache), the Asynchronous Event
Requests it holds, its error log, and the queues attached to it. It talks to its
queues only through the small `QueueLink` interface, so it needs no socket and no
event loop; the admin command handlers (`_admin.py`) and the queue pair drive it.
"""

from __future__ import annotations

import uuid as uuid_mod
from collections import deque
from typing import TYPE_CHECKING, Protocol

from mayastor.nvmf.spec import (
    VS_1_4,
    ControllerCapabilities,
    ControllerConfiguration,
    ErrorLogEntry,
    LogPageId,
    PropertyOffset,
    ShutdownNotification,
    TransportType,
)
from mayastor.nvmf.spec import AsyncEvent as AsyncEventInfo
from mayastor.nvmf.spec import AsyncEventConfig as Aec
from mayastor.target._controller_state import (
    CONTROLLER_TABLE,
    CSTS_BY_STATE,
    ControllerAction,
    ControllerEvent,
    ControllerState,
    KeepAlive,
)
from mayastor.target._subsystem import ControllerInfo, Subsystem

if TYPE_CHECKING:
    from mayastor.target._subsystem import SubsystemRegistry

NVM_IOSQES = 6
"""CC.IOSQES of the NVM command set: 64-byte SQEs."""
NVM_IOCQES = 4
"""CC.IOCQES: 16-byte CQEs."""
READY_TIMEOUT_UNITS = 15
"""CAP.TO in 500 ms units: how long a host waits for CSTS.RDY."""

IO_CONTROLLER_EVENTS = int(Aec.NAMESPACE_ATTRIBUTE | Aec.ANA_CHANGE)
"""OAES of an I/O controller: the notices it can send."""
DISCOVERY_CONTROLLER_EVENTS = int(Aec.DISCOVERY_LOG_CHANGE)
"""OAES of a discovery controller."""

_EVENT_ENABLE_BIT = {
    AsyncEventInfo.namespace_attribute_changed().encode(): int(Aec.NAMESPACE_ATTRIBUTE),
    AsyncEventInfo.ana_change().encode(): int(Aec.ANA_CHANGE),
    AsyncEventInfo.discovery_log_change().encode(): int(Aec.DISCOVERY_LOG_CHANGE),
}
"""Completion DW0 of each notice -> the Async Event Configuration bit that enables it."""


class QueueLink(Protocol):
    """What a controller needs from a queue attached to it."""

    qid: int

    def complete_async_event(self, cid: int, dw0: int) -> None:
        """Complete a held Asynchronous Event Request (admin queue only)."""

    def controller_gone(self) -> None:
        """The controller was freed or reset: close this queue."""


class PropertyError(ValueError):
    """A Property Get/Set names a property we do not have, or the wrong size."""


class Controller:
    """One controller of a subsystem; see the module docstring.

    Args:
        registry: the target's subsystems (the discovery log reads it).
        subsystem: the subsystem connected to.
        cntlid: the controller ID given out.
        hostnqn, hostid: the host, from the Connect data.
        kato_ms: the Connect's KATO (0: keep-alive off).
        now: the time of the Connect, in seconds.
        admin: the admin queue.
    """

    def __init__(
        self,
        registry: SubsystemRegistry,
        subsystem: Subsystem,
        cntlid: int,
        *,
        hostnqn: str,
        hostid: uuid_mod.UUID,
        kato_ms: int,
        now: float,
        admin: QueueLink,
    ) -> None:
        config = registry.config
        self.registry = registry
        self.subsystem = subsystem
        self.config = config
        self.cntlid = cntlid
        self.hostnqn = hostnqn
        self.hostid = hostid
        self.state = ControllerState.DISABLED
        self.cc = 0
        self.keep_alive = KeepAlive(kato_ms, now)
        self.authentication_deadline: float | None = None
        """While the admin queue's host still has to authenticate: by when it must, in
        place of the keep-alive timer (a host sends no Keep Alive before it is in, and
        its DH computation may take longer than KATO)."""
        self.admin: QueueLink | None = admin
        self.io_queues: dict[int, QueueLink] = {}
        self.granted_io_queues = config.max_io_queues
        self.event_config = 0
        self.write_cache = True
        self.shutdowns = 0  # shutdown notifications so far: only the newest one's flush reports
        self.changed_nsids: set[int] = set()
        self.peer = ""
        self.digests = (False, False)
        self._held_aers: deque[int] = deque()
        self._pending_events: deque[int] = deque()
        self._masked_logs: set[int] = set()
        self._errors: deque[ErrorLogEntry] = deque(maxlen=config.error_log_entries)
        self._error_count = 0

    def __repr__(self) -> str:
        return f"<Controller {self.cntlid} of {self.subsystem.nqn} {self.state.value}>"

    @property
    def is_discovery(self) -> bool:
        return self.subsystem.is_discovery

    @property
    def supported_events(self) -> int:
        """OAES: the notices this controller can send."""
        return DISCOVERY_CONTROLLER_EVENTS if self.is_discovery else IO_CONTROLLER_EVENTS

    @property
    def ready(self) -> bool:
        return self.state is ControllerState.READY

    # ------------------------------------------------------------------ state

    def handle(self, event: ControllerEvent) -> ControllerAction:
        """Take `event` through the state table; the caller carries out the action.

        Raises:
            TransitionError: `event` is not allowed in the current state.
        """
        action, self.state = CONTROLLER_TABLE.step(self.state, event)
        if action is ControllerAction.RESET or action is ControllerAction.FREE:
            self._held_aers.clear()
        return action

    def info(self) -> ControllerInfo:
        return ControllerInfo(
            cntlid=self.cntlid,
            hostnqn=self.hostnqn,
            hostid=self.hostid,
            queues=len(self.io_queues) + (1 if self.admin is not None else 0),
            keep_alive_ms=self.keep_alive.timeout_ms,
            state=self.state.value,
            header_digest=self.digests[0],
            data_digest=self.digests[1],
            peer=self.peer,
        )

    # ------------------------------------------------------------------ properties

    @property
    def capabilities(self) -> int:
        """CAP: MQES, CQR, TO, the NVM command set, 4 KiB pages."""
        return ControllerCapabilities(
            mqes=self.config.max_queue_entries - 1, cqr=True, to=READY_TIMEOUT_UNITS
        ).encode()

    @property
    def csts(self) -> int:
        return CSTS_BY_STATE[self.state]

    def read_property(self, offset: int, size: int) -> int:
        """The value of a property (Property Get).

        Raises:
            PropertyError: an unknown offset or a size that is not the property's.
        """
        values: dict[int, tuple[int, int]] = {
            PropertyOffset.CAP: (8, self.capabilities),
            PropertyOffset.VS: (4, VS_1_4),
            PropertyOffset.CC: (4, self.cc),
            PropertyOffset.CSTS: (4, self.csts),
        }
        found = values.get(offset)
        if found is None or found[0] != size:
            raise PropertyError(f"no {size}-byte property at offset {offset:#x}")
        return found[1]

    def write_property(self, offset: int, size: int, value: int) -> ControllerAction:
        """Write a property (Property Set); only CC is writable.

        Returns:
            the action the write leads to (START, RESET, FLUSH or NONE).

        Raises:
            PropertyError: not CC, or not 4 bytes.
            TransitionError: the write is not allowed in the current state.
        """
        if offset != PropertyOffset.CC or size != 4:
            raise PropertyError(f"the {size}-byte property at offset {offset:#x} is not writable")
        new = ControllerConfiguration.decode(value)
        if new.shn != ShutdownNotification.NONE:
            event = ControllerEvent.SHUTDOWN
        elif not new.en:
            event = ControllerEvent.DISABLE
        elif (
            new.iosqes == NVM_IOSQES
            and new.iocqes == NVM_IOCQES
            and new.css == 0
            and new.mps == 0
            and new.ams == 0
        ) or self.is_discovery:
            event = ControllerEvent.ENABLE
        else:
            event = ControllerEvent.ENABLE_INVALID
        action = self.handle(event)
        self.cc = value & 0xFFFF_FFFF
        return action

    # ------------------------------------------------------------------ async events

    def request_async_event(self, cid: int) -> int | None:
        """Hold an Asynchronous Event Request, or answer it with a pending event.

        Returns:
            the completion DW0 of a pending event to answer with at once, or None
            when the request is held.

        Raises:
            OverflowError: already `async_event_limit` requests are held.
        """
        if self._pending_events:
            return self._pending_events.popleft()
        if len(self._held_aers) >= self.config.async_event_limit:
            raise OverflowError("too many Asynchronous Event Requests outstanding")
        self._held_aers.append(cid)
        return None

    def drop_async_event(self, cid: int) -> bool:
        """Forget the held Asynchronous Event Request `cid`, without completing it.

        A host that gave up its requests on its side (SPDK's, when it detaches) sends
        new admin commands with their command IDs; answering the old request now would
        complete the new command in the host's eyes, so it is dropped silently.

        Returns:
            True when a request with that ID was held.
        """
        try:
            self._held_aers.remove(cid)
        except ValueError:
            return False
        return True

    def post_event(self, event: AsyncEventInfo) -> None:
        """Tell the host about `event` if it enabled it and has read the last one.

        The event completes a held request, or waits for the next one. Events of the
        same log page are not repeated until the host reads that page (without RAE).
        """
        dw0 = event.encode()
        if not self.event_config & _EVENT_ENABLE_BIT.get(dw0, 0):
            return
        if event.log_page in self._masked_logs:
            return
        self._masked_logs.add(event.log_page)
        if self._held_aers and self.admin is not None:
            self.admin.complete_async_event(self._held_aers.popleft(), dw0)
        else:
            self._pending_events.append(dw0)

    def log_page_read(self, lid: int, retain: bool) -> None:
        """The host read log page `lid`; without RAE that clears its pending event."""
        if not retain:
            self._masked_logs.discard(lid)
            if lid == LogPageId.CHANGED_NAMESPACES:
                self.changed_nsids.clear()

    # ------------------------------------------------------------------ errors

    def record_error(
        self, sqid: int, cid: int, status_field: int, *, lba: int = 0, nsid: int = 0
    ) -> None:
        """Add a failed command to the error information log (newest first)."""
        self._error_count += 1
        self._errors.appendleft(
            ErrorLogEntry(
                error_count=self._error_count,
                sqid=sqid,
                cid=cid,
                status_field=status_field << 1,
                lba=lba,
                nsid=nsid,
                trtype=TransportType.TCP,
            )
        )

    @property
    def errors(self) -> tuple[ErrorLogEntry, ...]:
        """The error log, newest first."""
        return tuple(self._errors)


def release_controller(ctrl: Controller) -> None:
    """Forget a freed controller: its subsystem lets its ID go, its queues are closed."""
    sub = ctrl.subsystem
    if sub.controllers.get(ctrl.cntlid) is ctrl:
        del sub.controllers[ctrl.cntlid]
    for queue in list(ctrl.io_queues.values()):
        queue.controller_gone()
    ctrl.io_queues.clear()
    if ctrl.admin is not None:
        admin, ctrl.admin = ctrl.admin, None
        admin.controller_gone()


def free_controller(ctrl: Controller, event: ControllerEvent) -> None:
    """End a controller for `event` (keep-alive expiry, deletion): free it if that
    is what the state table says."""
    if ctrl.handle(event) is ControllerAction.FREE:
        release_controller(ctrl)
