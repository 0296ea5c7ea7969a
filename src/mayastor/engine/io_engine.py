"""One io-engine: its registry of objects and its gRPC server, started and stopped.

`IoEngine` holds no process-wide state, so tests may run several in one process; the
`mayastor` command (`mayastor.engine.main`) runs one until SIGTERM or SIGINT, and then
stops it cleanly: the gRPC server stops taking requests and every pool is exported.
"""

from __future__ import annotations

import dataclasses
import logging
from errno import EADDRNOTAVAIL
from pathlib import Path

import grpc

from mayastor.api.v1 import (
    bdev_pb2_grpc,
    host_pb2_grpc,
    nexus_pb2_grpc,
    pool_pb2_grpc,
    replica_pb2_grpc,
    stats_pb2_grpc,
)
from mayastor.bdev import DeviceOpener, register_nvmf
from mayastor.compiled import compiled_modules
from mayastor.credentials import grpc_tls
from mayastor.engine.cluster_nexus_info import CoreNexusInfoStore, EtcdNexusInfoStore
from mayastor.engine.config import EngineConfig, parse_endpoint, read_dhchap_secret
from mayastor.engine.disk_allow import DiskAllowList
from mayastor.engine.host_secrets import ShareSecrets
from mayastor.engine.metrics import EngineCollector, MetricsServer
from mayastor.engine.nexuses import Nexuses
from mayastor.engine.registration import Registrar
from mayastor.engine.registry import Registry
from mayastor.engine.services.bdev import BdevService
from mayastor.engine.services.host import HostService
from mayastor.engine.services.nexus import NexusService
from mayastor.engine.services.pool import PoolService
from mayastor.engine.services.replica import ReplicaService
from mayastor.engine.services.stats import StatsService
from mayastor.engine.target_flags import describe
from mayastor.errors import MayastorError, Unavailable
from mayastor.nexus import FileNexusInfoStore, NexusInfoStore
from mayastor.nvmf import poll
from mayastor.nvmf.host import ControllerOptions
from mayastor.target import NvmfTarget

log = logging.getLogger(__name__)


class IoEngine:
    """The objects and services of one storage node."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.disk_allow = DiskAllowList(config.disk_patterns)
        self.opener = DeviceOpener(check_path=self.disk_allow.check)
        own_secret = (
            read_dhchap_secret(config.dhchap_secret_file) if config.dhchap_secret_file else None
        )
        self.registrar: Registrar | None = None
        if config.registration_endpoint:
            self.registrar = Registrar(
                config,
                config.registration_endpoint,
                config.registration_interval,
                dhchap_secret=own_secret,
            )
        register_nvmf(
            self.opener,
            hostnqn=config.hostnqn,
            options=ControllerOptions(
                io_timeout=config.child_io_timeout,
                fast_io_fail_timeout=0.0,
                # One event loop serves them all: a second TCP connection per child
                # only halves the commands each send and receive carries.
                io_queues=1,
                disable_sq_flow_control=True,
                dhchap_secret=own_secret,
            ),
            dhchap_secret=self.registrar.initiator_secret if self.registrar else None,
        )
        target_config = dataclasses.replace(
            config.nvmf_limits,
            dhchap_hashes=config.dhchap_hashes,
            dhchap_dhgroups=config.dhchap_dhgroups,
        )
        self.target = NvmfTarget(config.nvmf_address, config=target_config)
        log.info("NVMe/TCP target bounds: %s", describe(config.nvmf_limits))
        self.registry = Registry(
            self.opener,
            self.target,
            config.replica_port,
            ShareSecrets(Path(config.state_path) / "dhchap-secrets.json"),
        )
        store: NexusInfoStore
        self._cluster_store: CoreNexusInfoStore | EtcdNexusInfoStore | None = None
        if (registrar := self.registrar) is not None:
            if config.ps_endpoint:
                store = self._cluster_store = EtcdNexusInfoStore(
                    config.ps_endpoint, lambda: registrar.keys
                )
            else:
                store = self._cluster_store = CoreNexusInfoStore(
                    config.registration_endpoint, tls=config.tls
                )
        else:
            store = FileNexusInfoStore(Path(config.state_path) / "nexus-info")
        self.nexuses = Nexuses(self.registry, self.opener, store, self.target, config.nexus_port)
        self._server: grpc.aio.Server | None = None
        self.metrics: MetricsServer | None = None
        if config.metrics_endpoint:
            host, port = parse_endpoint(config.metrics_endpoint, 9502)
            collector = EngineCollector(config.node_name, self.registry, self.nexuses)
            self.metrics = MetricsServer(collector, host, port)

    async def start(self) -> None:
        """Listen for NVMe/TCP, bring back the pools of the configuration (and share
        again the replicas that were shared), then serve the gRPC API.

        A pool that cannot be brought back is logged as an error and left out; the others
        are served.

        Raises:
            Unavailable: a port cannot be bound (e.g. another io-engine has it).
        """
        cfg = self.config
        log.info(
            "io-engine %s starting; state in %s; disks allowed: %s; poll budget %g us",
            cfg.node_name,
            cfg.state_path,
            " ".join(self.disk_allow.patterns),
            cfg.poll_budget_us,
        )
        poll.configure(cfg.poll_budget_us)
        for port in (cfg.replica_port, cfg.nexus_port):
            try:
                await self.target.listen(port)
            except MayastorError as exc:
                await self.target.close()
                if isinstance(exc.__cause__, OSError) and exc.__cause__.errno == EADDRNOTAVAIL:
                    hint = f"is {cfg.nvmf_address} an address of this machine? (see --nvmf-address)"
                else:
                    hint = "is another io-engine using it? (see --replica-port, --nexus-port)"
                raise Unavailable(
                    f"cannot listen for NVMe/TCP on {cfg.nvmf_address}:{port} ({exc}); {hint}"
                ) from exc
        for pool in cfg.pools:
            try:
                await self.registry.create_pool(pool.name, [pool.disk])
            except MayastorError as exc:
                log.error("pool %s on %s could not be brought back: %s", pool.name, pool.disk, exc)
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        pool_pb2_grpc.add_PoolRpcServicer_to_server(PoolService(self.registry), server)
        replica_pb2_grpc.add_ReplicaRpcServicer_to_server(ReplicaService(self.registry), server)
        bdev_pb2_grpc.add_BdevRpcServicer_to_server(BdevService(self.registry), server)
        host_pb2_grpc.add_HostRpcServicer_to_server(HostService(cfg, self.registry), server)
        stats_pb2_grpc.add_StatsRpcServicer_to_server(StatsService(self.registry), server)
        nexus_pb2_grpc.add_NexusRpcServicer_to_server(NexusService(self.nexuses), server)
        try:
            grpc_tls.add_secure_port(server, cfg.grpc_endpoint, cfg.tls)
        except RuntimeError as exc:
            await self.registry.close()
            await self.target.close()
            raise Unavailable(
                f"cannot listen for gRPC on {cfg.grpc_endpoint} ({exc}); "
                "is another io-engine using that port? (see --grpc-endpoint)"
            ) from exc
        if self.metrics is not None:
            try:
                await self.metrics.start()
            except Unavailable:
                await self.registry.close()
                await self.target.close()
                raise
        await server.start()
        self._server = server
        if self.registrar is not None:
            self.registrar.start()
        log.info("io-engine %s: %s", cfg.node_name, compiled_modules().summary)
        log.info(
            "io-engine %s ready: gRPC on %s, NVMe/TCP on %s ports %d (replicas) and %d (nexus)",
            cfg.node_name,
            cfg.grpc_endpoint,
            cfg.nvmf_address,
            cfg.replica_port,
            cfg.nexus_port,
        )

    async def stop(self, grace: float = 2.0) -> None:
        """Stop serving, shut every nexus down, export every pool, close every device."""
        log.info("io-engine %s stopping", self.config.node_name)
        if self.registrar is not None:
            await self.registrar.stop()
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        if self.metrics is not None:
            await self.metrics.close()
        await self.nexuses.close()
        await self.registry.close()
        await self.target.close()
        if self._cluster_store is not None:
            await self._cluster_store.close()
        log.info("io-engine %s stopped; every pool exported", self.config.node_name)
