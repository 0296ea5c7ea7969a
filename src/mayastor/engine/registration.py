"""Registration with the core agent, and nexus info kept in the cluster store through it.

An io-engine started with ``--registration-endpoint`` tells the core agent every few
seconds who it is and where it serves (`Registrar`); the core deems the node Offline
when the calls stop, and a new instance uuid tells it the io-engine restarted. Its
nexuses then keep their nexus info in the cluster store (`CoreNexusInfoStore`), so a
nexus can be made again on any node knowing which replicas are current.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid as uuid_mod
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from mayastor import __version__
from mayastor.api.v1 import registration_pb2, registration_pb2_grpc
from mayastor.engine.config import EngineConfig
from mayastor.errors import Unavailable
from mayastor.nexus import NexusInfo

log = logging.getLogger(__name__)

_T = TypeVar("_T")

REGISTRATION_INTERVAL = 5.0
"""Seconds between two registrations (the core's deadline is twice that by default)."""


class Registrar:
    """Registers this io-engine with the core agent until stopped.

    Args:
        config: the io-engine's configuration (node name, endpoints, ports).
        endpoint: the core agent's gRPC endpoint, ``HOST:PORT``.
        interval: seconds between registrations.
    """

    def __init__(
        self, config: EngineConfig, endpoint: str, interval: float = REGISTRATION_INTERVAL
    ) -> None:
        self.config = config
        self.endpoint = endpoint
        self.interval = interval
        self.instance_uuid = str(uuid_mod.uuid4())
        self._channel = grpc.aio.insecure_channel(endpoint)
        self._stub = registration_pb2_grpc.RegistrationStub(self._channel)
        self._task: asyncio.Task[None] | None = None
        self.registered = asyncio.Event()

    def request(self) -> registration_pb2.RegisterNodeRequest:
        cfg = self.config
        return registration_pb2.RegisterNodeRequest(
            id=cfg.node_name,
            grpc_endpoint=cfg.grpc_endpoint,
            hostnqn=cfg.hostnqn,
            instance_uuid=self.instance_uuid,
            version=__version__,
            nvmf_address=cfg.nvmf_address,
            replica_port=cfg.replica_port,
            nexus_port=cfg.nexus_port,
        )

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="registration")

    async def _run(self) -> None:
        ok: bool | None = None
        while True:
            try:
                reply = await self._stub.Register(self.request(), timeout=self.interval)
            except grpc.aio.AioRpcError as exc:
                if ok is not False:
                    log.warning(
                        "cannot register with the core agent at %s (%s: %s); trying every %g s",
                        self.endpoint,
                        exc.code().name,
                        exc.details(),
                        self.interval,
                    )
                ok = False
            else:
                if ok is not True:
                    log.info(
                        "registered with the core agent at %s (cluster %s) as %s",
                        self.endpoint,
                        reply.cluster_id,
                        self.config.node_name,
                    )
                ok = True
                self.registered.set()
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        """Stop registering and tell the core agent (best effort) that the node is going."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            request = registration_pb2.DeregisterNodeRequest(
                id=self.config.node_name, instance_uuid=self.instance_uuid
            )
            try:
                await self._stub.Deregister(request, timeout=2.0)
            except grpc.aio.AioRpcError as exc:
                log.info("could not deregister from the core agent: %s", exc.details())
        await self._channel.close()


class CoreNexusInfoStore:
    """A `NexusInfoStore` in the cluster store, reached through the core agent.

    A put is retried for up to `retry_for` seconds (the core agent may be restarting);
    only then does it raise, and the I/O that needed it fails. Deleting does nothing:
    the record is the control plane's to consult when it makes the volume's next
    nexus, and to remove with the volume.

    Args:
        endpoint: the core agent's gRPC endpoint.
        retry_for: seconds a get or put keeps trying.
    """

    def __init__(self, endpoint: str, retry_for: float = 15.0) -> None:
        self.endpoint = endpoint
        self.retry_for = retry_for
        self._channel = grpc.aio.insecure_channel(endpoint)
        self._stub = registration_pb2_grpc.NexusInfoStoreStub(self._channel)

    async def get(self, nexus_uuid: uuid_mod.UUID) -> NexusInfo | None:
        key = registration_pb2.NexusInfoKey(nexus_uuid=str(nexus_uuid))
        reply = await self._retry(
            "read", nexus_uuid, lambda: self._stub.GetNexusInfo(key, timeout=5.0)
        )
        if not reply.found:
            return None
        return NexusInfo.from_json(reply.json, f"of nexus {nexus_uuid} in the cluster store")

    async def put(self, nexus_uuid: uuid_mod.UUID, info: NexusInfo) -> None:
        request = registration_pb2.PutNexusInfoRequest(
            nexus_uuid=str(nexus_uuid), json=info.to_json()
        )
        await self._retry(
            "write", nexus_uuid, lambda: self._stub.PutNexusInfo(request, timeout=5.0)
        )

    async def delete(self, nexus_uuid: uuid_mod.UUID) -> None:
        return None

    async def _retry(
        self, what: str, nexus_uuid: uuid_mod.UUID, call: Callable[[], Awaitable[_T]]
    ) -> _T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_for
        delay = 0.1
        while True:
            try:
                return await call()
            except grpc.aio.AioRpcError as exc:
                retryable = exc.code() in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                )
                if not retryable or loop.time() + delay > deadline:
                    raise Unavailable(
                        f"cannot {what} the nexus info of {nexus_uuid} through the core agent "
                        f"at {self.endpoint}: {exc.code().name}: {exc.details()}"
                    ) from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def close(self) -> None:
        await self._channel.close()
