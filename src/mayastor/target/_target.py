"""`NvmfTarget`: the NVMe/TCP target of one io-engine (listeners, subsystems, timers).

The public face of the package. It checks arguments, keeps the subsystem registry,
opens listeners (one `asyncio` server per port, on the target's address, holding at
most `max_connections`), runs the keep-alive check of every controller and the
write-data check of every connection that owes data, and closes connections when a
subsystem is removed or the target closes, waiting for their I/O in flight so that
the caller may close the devices afterwards.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import uuid as uuid_mod
from collections.abc import Iterable, Mapping

from mayastor.bdev import BlockDevice
from mayastor.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from mayastor.nvmf.auth import ControllerKeys
from mayastor.nvmf.spec import DISCOVERY_NQN, AnaState, SpecError, validate_nqn
from mayastor.target._config import TargetConfig
from mayastor.target._connection import Connection, new_receive_buffer
from mayastor.target._controller import free_controller
from mayastor.target._controller_state import ControllerEvent
from mayastor.target._subsystem import (
    DEFAULT_MODEL,
    ControllerInfo,
    Subsystem,
    SubsystemRegistry,
    default_serial,
)

log = logging.getLogger(__name__)

REPLICA_PORT = 8420
"""Where an io-engine serves its replicas."""
NEXUS_PORT = 4421
"""Where an io-engine serves its nexuses."""
OPENEBS_NQN_PREFIX = "nqn.2019-05.io.openebs:"
LISTEN_BACKLOG = 1024
"""Connections the kernel queues for accepting: a burst of hosts is not refused."""
MAX_CNTLID = 0xFFEF
"""The highest controller ID a subsystem may give out (FFF0h and up are reserved)."""


class _Listener:
    """The connections accepted on one port, oldest first."""

    __slots__ = ("connections", "port")

    def __init__(self) -> None:
        self.port = 0
        self.connections: dict[Connection, None] = {}


def openebs_nqn(name: object) -> str:
    """The NQN Mayastor gives a replica or a nexus: ``nqn.2019-05.io.openebs:<uuid>``."""
    return f"{OPENEBS_NQN_PREFIX}{name}"


def _check_nqn(nqn: object, what: str) -> str:
    if not isinstance(nqn, str):
        raise InvalidArgument(f"{what} must be a string, not {type(nqn).__name__}")
    try:
        return validate_nqn(nqn)
    except SpecError as exc:
        raise InvalidArgument(f"{what}: {exc}") from exc


def _check_hosts(hosts: Iterable[str] | None) -> frozenset[str] | None:
    if hosts is None:
        return None
    if isinstance(hosts, str | bytes):
        raise InvalidArgument("allowed hosts must be a collection of host NQNs, not one string")
    return frozenset(_check_host_entry(host) for host in hosts)


def _check_host_keys(keys: Mapping[str, ControllerKeys] | None) -> dict[str, ControllerKeys]:
    if keys is None:
        return {}
    if not isinstance(keys, Mapping):
        raise InvalidArgument(f"host keys {keys!r} are not a mapping of host NQN to keys")
    checked: dict[str, ControllerKeys] = {}
    for host, value in keys.items():
        if not isinstance(value, ControllerKeys):
            raise InvalidArgument(f"host keys of {host!r} are not ControllerKeys")
        checked[_check_host_entry(host)] = value
    return checked


def _check_host_entry(host: object) -> str:
    """A host NQN, or an NQN prefix ending in ``*`` (checked as if it went on)."""
    if isinstance(host, str) and host.endswith("*"):
        _check_nqn(host[:-1] + "x", "allowed host NQN prefix")
        return host
    return _check_nqn(host, "allowed host NQN")


def _check_text(value: object, what: str, size: int) -> str:
    if (
        not isinstance(value, str)
        or not value
        or len(value) > size
        or not value.isascii()
        or not value.isprintable()
    ):
        raise InvalidArgument(f"{what} must be 1 to {size} printable ASCII characters: {value!r}")
    return value


def _check_port(port: object, *, allow_zero: bool) -> int:
    low = 0 if allow_zero else 1
    if not isinstance(port, int) or isinstance(port, bool) or not low <= port <= 65535:
        raise InvalidArgument(f"port must be an integer {low}..65535, not {port!r}")
    return port


class NvmfTarget:
    """The NVMe-over-TCP target of one io-engine; serves any BlockDevice.

    Args:
        address: the IPv4 address to listen on (and to put in discovery log entries).
        discovery: serve the discovery subsystem on every port.
        config: limits (queue and data sizes, timers); the defaults suit the Linux host.

    Raises:
        InvalidArgument: an address that is not IPv4.
    """

    def __init__(
        self,
        address: str = "127.0.0.1",
        *,
        discovery: bool = True,
        config: TargetConfig | None = None,
    ) -> None:
        try:
            ipaddress.IPv4Address(address)
        except (ipaddress.AddressValueError, ValueError) as exc:
            raise InvalidArgument(f"target address {address!r} is not an IPv4 address") from exc
        self._config = config or TargetConfig()
        self._registry = SubsystemRegistry(address, self._config, discovery=discovery)
        self._servers: dict[int, asyncio.Server] = {}
        self._listeners: dict[int, _Listener] = {}
        self._connections: set[Connection] = set()
        self._receive_buffer = new_receive_buffer()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<NvmfTarget {self.address} ports={sorted(self._servers)}>"

    @property
    def address(self) -> str:
        return self._registry.address

    @property
    def config(self) -> TargetConfig:
        return self._config

    @property
    def ports(self) -> tuple[int, ...]:
        """The ports listened on, ascending."""
        return tuple(sorted(self._servers))

    # ------------------------------------------------------------------ listening

    async def listen(self, port: int = REPLICA_PORT) -> int:
        """Accept connections on `port` (0 picks a free one).

        Returns:
            the port listened on.

        Raises:
            InvalidArgument: not a port number.
            AlreadyExists: already listening there.
            FailedPrecondition: the target is closed, or the port cannot be bound.
        """
        _check_port(port, allow_zero=True)
        if self._closed:
            raise FailedPrecondition("the target is closed")
        if port in self._servers:
            raise AlreadyExists(f"already listening on {self.address}:{port}")
        loop = asyncio.get_running_loop()
        listener = _Listener()
        try:
            server = await loop.create_server(
                functools.partial(self._new_connection, listener),
                self.address,
                port,
                reuse_address=True,
                backlog=LISTEN_BACKLOG,
            )
        except OSError as exc:
            raise FailedPrecondition(f"cannot listen on {self.address}:{port}: {exc}") from exc
        actual = int(server.sockets[0].getsockname()[1])
        listener.port = actual
        self._listeners[actual] = listener
        self._servers[actual] = server
        self._registry.ports.add(actual)
        self._registry.changed()
        if self._timer is None:
            self._schedule_keep_alive_check()
        log.info("NVMe/TCP target listening on %s:%d", self.address, actual)
        return actual

    # ------------------------------------------------------------------ subsystems

    def add_subsystem(
        self,
        nqn: str,
        device: BlockDevice,
        *,
        port: int,
        allowed_hosts: Iterable[str] | None = None,
        serial: str | None = None,
        model: str = DEFAULT_MODEL,
        cntlid_range: tuple[int, int] = (1, MAX_CNTLID),
        ana_state: AnaState | int = AnaState.OPTIMIZED,
        host_keys: Mapping[str, ControllerKeys] | None = None,
        namespace_uuid: uuid_mod.UUID | None = None,
    ) -> Subsystem:
        """Serve `device` as the one namespace (NSID 1) of subsystem `nqn` on `port`.

        The namespace's NGUID and UUID are `namespace_uuid`, else the device's uuid.
        Serving one volume from two targets (multipath) needs the same NQN and the same
        namespace identifiers on both, with disjoint controller ID ranges.

        Args:
            nqn: the subsystem NQN, e.g. `openebs_nqn(replica_uuid)`.
            device: any BlockDevice.
            port: the port it is served on (connecting through another is refused).
            allowed_hosts: host NQNs that may connect; None for any, empty for none.
            serial: SN of Identify Controller; default from the namespace's uuid.
            model: MN of Identify Controller.
            cntlid_range: the controller IDs handed out, inclusive, within 1..FFEFh.
            ana_state: the ANA state reported for the namespace.
            host_keys: DH-HMAC-CHAP secrets by host NQN; with any, a host is admitted
                only after it proves its own (see `Subsystem`).
            namespace_uuid: the namespace's UUID and NGUID (default: the device's).

        Returns:
            the subsystem (for reading; change it through the target's methods).

        Raises:
            InvalidArgument: a malformed NQN, host NQN, serial, model, port, range or
                state, the discovery NQN, or something that is not a BlockDevice.
            AlreadyExists: a subsystem with that NQN exists.
        """
        _check_nqn(nqn, "subsystem NQN")
        if nqn == DISCOVERY_NQN:
            raise InvalidArgument(f"{nqn} is the discovery subsystem's NQN")
        if not isinstance(device, BlockDevice):
            raise InvalidArgument(f"subsystem {nqn}: {device!r} is not a BlockDevice")
        _check_port(port, allow_zero=False)
        hosts = _check_hosts(allowed_hosts)
        keys = _check_host_keys(host_keys)
        serial = _check_text(
            default_serial(namespace_uuid or device.uuid) if serial is None else serial,
            "serial",
            20,
        )
        _check_text(model, "model", 40)
        if (
            not isinstance(cntlid_range, tuple)
            or len(cntlid_range) != 2
            or not all(isinstance(v, int) for v in cntlid_range)
            or not 1 <= cntlid_range[0] <= cntlid_range[1] <= MAX_CNTLID
        ):
            raise InvalidArgument(f"controller ID range {cntlid_range!r} is not within 1..FFEFh")
        try:
            state = AnaState(ana_state)
        except ValueError as exc:
            raise InvalidArgument(f"{ana_state!r} is not an ANA state") from exc
        if nqn in self._registry.subsystems:
            raise AlreadyExists(f"subsystem {nqn} already exists")
        sub = Subsystem(
            nqn,
            device,
            port=port,
            allowed_hosts=hosts,
            serial=serial,
            model=model,
            cntlid_range=cntlid_range,
            ana_state=state,
            host_keys=keys,
            namespace_uuid=namespace_uuid,
        )
        self._registry.subsystems[nqn] = sub
        self._registry.changed()
        log.info("serving %s (%s) as %s on port %d", device.name, device.uuid, nqn, port)
        return sub

    def subsystem(self, nqn: str) -> Subsystem:
        """The subsystem `nqn`.

        Raises:
            NotFound: no such subsystem.
        """
        found = self._registry.subsystems.get(nqn)
        if found is None:
            raise NotFound(f"no subsystem {nqn}")
        return found

    def subsystems(self) -> list[Subsystem]:
        """Every subsystem (not the discovery one), by NQN."""
        return [sub for _, sub in sorted(self._registry.subsystems.items())]

    def set_allowed_hosts(self, nqn: str, hosts: Iterable[str] | None) -> None:
        """Replace the allow-list of `nqn`; it applies to connections made from now on.

        Raises:
            NotFound: no such subsystem.
            InvalidArgument: a malformed host NQN.
        """
        sub = self.subsystem(nqn)
        sub.allowed_hosts = _check_hosts(hosts)
        self._registry.changed()

    def set_host_keys(self, nqn: str, host_keys: Mapping[str, ControllerKeys] | None) -> None:
        """Replace the DH-HMAC-CHAP secrets of `nqn`; they apply to queues connected
        from now on (queues that authenticated stay).

        Raises:
            NotFound: no such subsystem.
            InvalidArgument: a malformed host NQN or something that is not keys.
        """
        sub = self.subsystem(nqn)
        sub.host_keys = _check_host_keys(host_keys)

    def set_ana_state(self, nqn: str, state: AnaState | int) -> None:
        """Report a new ANA state for the namespace of `nqn` (with an ANA change event).

        Raises:
            NotFound: no such subsystem.
            InvalidArgument: not an ANA state.
        """
        sub = self.subsystem(nqn)
        try:
            sub.set_ana_state(AnaState(state))
        except ValueError as exc:
            raise InvalidArgument(f"{state!r} is not an ANA state") from exc

    def namespace_changed(self, nqn: str) -> None:
        """Tell the hosts of `nqn` that its namespace changed (e.g. its device grew).

        Raises:
            NotFound: no such subsystem.
        """
        self.subsystem(nqn).namespace_changed()

    async def remove_subsystem(self, nqn: str) -> None:
        """Stop serving `nqn`: new Connects are refused, its controllers are freed and
        their connections closed, and their I/O in flight is waited for.

        Raises:
            NotFound: no such subsystem.
        """
        sub = self.subsystem(nqn)
        del self._registry.subsystems[nqn]
        self._registry.changed()
        closing = self._connections_of(sub)
        for ctrl in list(sub.controllers.values()):
            free_controller(ctrl, ControllerEvent.DELETE)
        await self._wait_closed(closing)
        log.info("stopped serving %s", nqn)

    def share_uri(self, nqn: str) -> str:
        """``nvmf://<address>:<port>/<nqn>``, what a host connects to.

        Raises:
            NotFound: no such subsystem.
        """
        sub = self.subsystem(nqn)
        return f"nvmf://{self.address}:{sub.port}/{nqn}"

    def controllers(self, nqn: str) -> list[ControllerInfo]:
        """The controllers of `nqn` (the discovery NQN too), by controller ID.

        Raises:
            NotFound: no such subsystem.
        """
        if nqn == DISCOVERY_NQN and self._registry.discovery is not None:
            sub = self._registry.discovery
        else:
            sub = self.subsystem(nqn)
        return [ctrl.info() for _, ctrl in sorted(sub.controllers.items())]

    # ------------------------------------------------------------------ closing

    async def close(self) -> None:
        """Stop listening, free every controller, close every connection, and wait
        for their I/O in flight. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for server in self._servers.values():
            server.close()
        for ctrl in self._registry.all_controllers():
            free_controller(ctrl, ControllerEvent.DELETE)
        closing = list(self._connections)
        for conn in closing:
            conn.close()
        await self._wait_closed(closing)
        for server in self._servers.values():
            await server.wait_closed()
        self._registry.ports.clear()
        log.info("NVMe/TCP target on %s closed", self.address)

    # ------------------------------------------------------------------ internals

    def connection_count(self, port: int) -> int:
        """Connections held on `port` (0 when not listening there)."""
        listener = self._listeners.get(port)
        return len(listener.connections) if listener is not None else 0

    def _new_connection(self, listener: _Listener) -> Connection:
        conn = Connection(
            self._registry,
            functools.partial(self._connection_gone, listener),
            self._receive_buffer,
        )
        self._connections.add(conn)
        held = listener.connections
        limit = self._config.max_connections
        if len(held) >= limit:
            now = asyncio.get_running_loop().time()
            victim = next((c for c in held if not c.associated), None)
            if victim is None:
                self._registry.limits.hit(
                    "max_connections", now, "port %d holds %d connected hosts; a new "
                    "connection is closed", listener.port, limit,
                )  # fmt: skip
                conn.refuse()
                return conn
            self._registry.limits.hit(
                "max_connections", now, "port %d holds %d connections; the oldest that has "
                "not connected a queue is closed", listener.port, limit,
            )  # fmt: skip
            del held[victim]
            victim.refuse()
        held[conn] = None
        return conn

    def _connection_gone(self, listener: _Listener, conn: Connection) -> None:
        self._connections.discard(conn)
        listener.connections.pop(conn, None)

    def _connections_of(self, sub: Subsystem) -> list[Connection]:
        return [
            conn
            for conn in self._connections
            if conn.queue_pair is not None
            and conn.queue_pair.controller is not None
            and conn.queue_pair.controller.subsystem is sub
        ]

    async def _wait_closed(self, connections: list[Connection]) -> None:
        if connections:
            timeout = self._config.drain_timeout
            await asyncio.gather(*(conn.wait_closed(timeout) for conn in connections))

    def _schedule_keep_alive_check(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(
            self._config.keep_alive_check_interval, self._check_keep_alive
        )

    def _check_keep_alive(self) -> None:
        now = asyncio.get_running_loop().time()
        self._registry.write_budget.check(now)
        for ctrl in self._registry.all_controllers():
            deadline = ctrl.authentication_deadline
            if deadline is not None:
                if now > deadline:
                    log.warning(
                        "controller %d of %s (host %s) did not authenticate in time",
                        ctrl.cntlid,
                        ctrl.subsystem.nqn,
                        ctrl.hostnqn,
                    )
                    free_controller(ctrl, ControllerEvent.KEEP_ALIVE_EXPIRED)
                continue
            if ctrl.keep_alive.expired(now):
                log.warning(
                    "controller %d of %s (host %s): keep-alive timeout of %d ms expired",
                    ctrl.cntlid,
                    ctrl.subsystem.nqn,
                    ctrl.hostnqn,
                    ctrl.keep_alive.timeout_ms,
                )
                free_controller(ctrl, ControllerEvent.KEEP_ALIVE_EXPIRED)
        if not self._closed:
            self._schedule_keep_alive_check()
