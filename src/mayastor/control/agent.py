"""The core agent: takes the store's lease, then serves gRPC and REST and reconciles.

A core agent that starts while another holds the lease binds nothing and waits; when
the lease comes free (the other died or stopped) it takes it, loads every spec and
serves on the same endpoints. One that loses its lease (another agent took it after
it could not renew) stops at once: two agents never act together.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass

import grpc
import uvicorn

from mayastor.api.v1 import registration_pb2_grpc
from mayastor.control.cluster import Cluster, ResourceLocks
from mayastor.control.events import EventCategory, EventLog
from mayastor.control.grpc_services import NexusInfoService, RegistrationService
from mayastor.control.healing import VolumeHealer
from mayastor.control.nats_sink import NatsEventSink
from mayastor.control.nodes import NodeRegistry
from mayastor.control.placement import CommitmentLimits
from mayastor.control.reconciler import Reconciler
from mayastor.control.rest import create_app
from mayastor.control.spec_registry import SpecRegistry
from mayastor.control.state_watch import StateWatcher
from mayastor.control.store import ClusterStore, Leadership, StoreKeys, new_holder_id
from mayastor.control.switch_over import TargetSwitchOver
from mayastor.credentials import grpc_tls
from mayastor.credentials.grpc_tls import GrpcTls
from mayastor.credentials.rest_tls import RestServerTls
from mayastor.credentials.rest_tokens import TokenTable
from mayastor.errors import StoreUnavailable, Unavailable

log = logging.getLogger(__name__)

BIND_WAIT = 60.0
"""Seconds a new leader keeps trying to bind endpoints an old one may still hold."""


@dataclass(frozen=True)
class AgentConfig:
    """The core agent's settings (its command-line flags)."""

    store: str
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    rest_host: str = "127.0.0.1"
    rest_port: int = 8081
    cluster_id: str = "mayastor"
    namespace: str = "mayastor"
    node_deadline: float = 10.0
    poll_period: float = 2.0
    reconcile_busy: float = 10.0
    reconcile_idle: float = 30.0
    lease_ttl: float = 10.0
    faulted_child_wait: float = 600.0
    max_rebuilds: int | None = None
    switch_over: bool = True
    switch_over_wait: float = 5.0
    events_url: str = ""
    pool_commitment: float = 2.5
    volume_commitment_initial: float = 0.4
    log_level: str = "info"
    grpc_tls: GrpcTls | None = None
    """TLS of the gRPC server and of the calls to io-engines (None: plain)."""
    rest_tls: RestServerTls | None = None
    """HTTPS for REST, with client certificates when it names a client CA."""
    rest_tokens: TokenTable | None = None
    """The bearer tokens REST requires (None: none)."""
    dhchap: bool = False
    """Share every replica and nexus with per-node DH-HMAC-CHAP secrets."""

    @property
    def grpc_endpoint(self) -> str:
        return f"{self.grpc_host}:{self.grpc_port}"

    @property
    def rest_url(self) -> str:
        scheme = "http" if self.rest_tls is None else "https"
        return f"{scheme}://{self.rest_host}:{self.rest_port}"


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside our own event loop: the agent handles the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _bind(host: str, port: int, what: str, flag: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise Unavailable(f"cannot listen for {what} on {host}:{port} ({exc}); see {flag}") from exc
    sock.listen(128)
    sock.setblocking(False)
    return sock


class CoreAgent:
    """One core agent over one store.

    Args:
        config: its settings.
        store: the cluster store (the agent closes it when it stops).
    """

    def __init__(self, config: AgentConfig, store: ClusterStore) -> None:
        self.config = config
        self.store = store
        self.keys = StoreKeys(config.cluster_id, config.namespace)
        self.holder = new_holder_id()
        self.leadership: Leadership | None = None
        self.cluster: Cluster | None = None
        self.reconciler: Reconciler | None = None
        self.watcher: StateWatcher | None = None
        self.events: EventLog | None = None
        self._grpc: grpc.aio.Server | None = None
        self._rest: _EmbeddedServer | None = None
        self._rest_task: asyncio.Task[None] | None = None
        self.serving = asyncio.Event()

    async def start(self) -> None:
        """Wait for the lease, load the specs, then serve.

        Raises:
            Unavailable: an endpoint cannot be bound.
        """
        cfg = self.config
        log.info(
            "core agent %s: store %s, cluster %s; waiting for the lease",
            self.holder,
            self.store.description,
            cfg.cluster_id,
        )
        self.leadership = await self.store.campaign(self.keys.leader(), self.holder, cfg.lease_ttl)
        self.store.guard = self.leadership
        log.info("core agent %s holds the lease; loading the specs", self.holder)
        specs = SpecRegistry(self.store, self.keys)
        while True:
            try:
                await specs.load()
                break
            except StoreUnavailable as exc:
                log.warning("cannot load the specs yet: %s", exc)
                await asyncio.sleep(1.0)
        nodes = NodeRegistry(
            deadline=cfg.node_deadline, poll_period=cfg.poll_period, tls=cfg.grpc_tls
        )
        events = self.events = EventLog(self.store, self.keys)
        await events.load()
        if cfg.events_url:
            events.sinks.append(NatsEventSink(cfg.events_url))
        cluster = Cluster(
            store=self.store,
            keys=self.keys,
            specs=specs,
            nodes=nodes,
            limits=CommitmentLimits(cfg.pool_commitment, cfg.volume_commitment_initial),
            locks=ResourceLocks(),
            events=events,
            dhchap=cfg.dhchap,
        )
        self.cluster = cluster
        self.reconciler = self._new_reconciler(cluster)
        self.watcher = StateWatcher(cluster, events, period=cfg.poll_period)

        async def node_changed(name: str, event: str) -> None:
            assert self.reconciler is not None
            self.reconciler.poke()
            if event in ("online", "offline", "restarted"):
                record = nodes.record(name)
                why = {
                    "online": "it registers and answers again",
                    "offline": (record.poll_failed if record and record.poll_failed else "")
                    or ("it said goodbye" if record and record.deregistered else "")
                    or f"no registration for {cfg.node_deadline:g} s",
                    "restarted": "its io-engine started again (a new instance)",
                }[event]
                events.emit(
                    EventCategory.NODE, event.capitalize(), name, f"node {name}: {why}", node=name
                )

        async def poke() -> None:
            assert self.reconciler is not None
            self.reconciler.poke()

        nodes.add_listener(node_changed)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BIND_WAIT
        for attempt in itertools.count():
            try:
                rest_socket, server = self._listen(cluster, poke)
                break
            except Unavailable as exc:
                if loop.time() > deadline:
                    raise
                if attempt % 10 == 0:
                    log.warning("%s; a previous agent may still be stopping: trying again", exc)
                await asyncio.sleep(1.0)
        await server.start()
        self._grpc = server
        app = create_app(cluster, cfg.rest_tokens)
        https = {} if cfg.rest_tls is None else cfg.rest_tls.uvicorn_options()
        self._rest = _EmbeddedServer(
            uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, **https)
        )
        self._rest_task = asyncio.get_running_loop().create_task(
            self._rest.serve(sockets=[rest_socket]), name="rest"
        )
        nodes.start()
        self.reconciler.start()
        self.watcher.start()
        self.serving.set()
        log.info(
            "core agent serving: REST %s/v0, gRPC %s; node deadline %g s",
            cfg.rest_url,
            cfg.grpc_endpoint,
            cfg.node_deadline,
        )

    def _new_reconciler(self, cluster: Cluster) -> Reconciler:
        cfg = self.config
        switch_over = TargetSwitchOver(
            cluster,
            enabled=cfg.switch_over,
            wait=cfg.switch_over_wait,
            wake=lambda: self.reconciler.poke() if self.reconciler is not None else None,
        )
        healer = VolumeHealer(
            cluster, faulted_child_wait=cfg.faulted_child_wait, max_rebuilds=cfg.max_rebuilds
        )
        reconciler = Reconciler(
            cluster,
            busy_period=cfg.reconcile_busy,
            idle_period=cfg.reconcile_idle,
            healer=healer,
            switch_over=switch_over,
        )
        cluster.reconcile_soon = reconciler.poke
        return reconciler

    def _listen(
        self, cluster: Cluster, poke: Callable[[], Awaitable[None]]
    ) -> tuple[socket.socket, grpc.aio.Server]:
        """Bind the REST socket and a gRPC server with our services (not started yet)."""
        cfg = self.config
        rest_socket = _bind(cfg.rest_host, cfg.rest_port, "REST", "--rest-endpoint")
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        registration_pb2_grpc.add_RegistrationServicer_to_server(
            RegistrationService(cluster, poke), server
        )
        registration_pb2_grpc.add_NexusInfoStoreServicer_to_server(
            NexusInfoService(cluster), server
        )
        try:
            grpc_tls.add_secure_port(server, cfg.grpc_endpoint, cfg.grpc_tls)
        except RuntimeError as exc:
            rest_socket.close()
            raise Unavailable(
                f"cannot listen for gRPC on {cfg.grpc_endpoint} ({exc}); see --grpc-endpoint"
            ) from exc
        return rest_socket, server

    async def wait(self, stop: asyncio.Event) -> bool:
        """Serve until `stop` is set; True when another agent took the lease.

        A lease lost because the store could not be reached (renewals failed for a whole
        TTL) is not the end: the agent stops reconciling, goes on answering (reads from
        memory, changes refused with 503), and takes the lease again once the store is
        back and nobody else holds it, reloading every spec. Another agent holding it
        means this one must stop.
        """
        while True:
            assert self.leadership is not None
            lost = asyncio.ensure_future(self.leadership.lost.wait())
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait([lost, stopped], return_when=asyncio.FIRST_COMPLETED)
            for task in (lost, stopped):
                task.cancel()
            if stop.is_set():
                return False
            log.warning(
                "core agent %s lost its lease (the store did not answer for %g s): "
                "answering reads, refusing changes until it holds the lease again",
                self.holder,
                self.config.lease_ttl,
            )
            if self.reconciler is not None:
                await self.reconciler.close()
            regain = asyncio.ensure_future(self._regain())
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait([regain, stopped], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if stop.is_set():
                regain.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await regain
                return False
            if not regain.result():
                return True

    async def _regain(self) -> bool:
        """Take the lease again once it is free; False when another agent holds it."""
        assert self.cluster is not None
        name = self.keys.leader()
        while True:
            try:
                holder = await self.store.lease_holder(name)
            except StoreUnavailable:
                await asyncio.sleep(1.0)
                continue
            if holder is not None and holder != self.holder:
                return False
            if self.leadership is not None:
                await self.store.resign(self.leadership)
            try:
                lease = await asyncio.wait_for(
                    self.store.campaign(name, self.holder, self.config.lease_ttl),
                    timeout=2 * self.config.lease_ttl,
                )
            except TimeoutError:
                continue
            self.leadership = lease
            self.store.guard = lease
            try:
                await self.cluster.specs.load()
                if self.events is not None:
                    await self.events.load()
            except StoreUnavailable as exc:
                log.warning("cannot load the specs after taking the lease again: %s", exc)
                continue
            self.reconciler = self._new_reconciler(self.cluster)
            self.reconciler.start()
            log.info("core agent %s holds the lease again; specs reloaded", self.holder)
            return True

    async def stop(self) -> None:
        """Stop serving and reconciling, give the lease back, close the store."""
        if self.reconciler is not None:
            await self.reconciler.close()
        if self.watcher is not None:
            await self.watcher.close()
        if self.events is not None:
            await self.events.close()
        if self._rest is not None and self._rest_task is not None:
            self._rest.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._rest_task
        if self._grpc is not None:
            await self._grpc.stop(1.0)
        if self.cluster is not None:
            await self.cluster.nodes.close()
        if self.leadership is not None and self.leadership.held:
            await self.store.resign(self.leadership)
        await self.store.close()
        log.info("core agent %s stopped", self.holder)
