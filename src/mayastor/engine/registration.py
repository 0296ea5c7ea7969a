"""Registration with the core agent.

An io-engine started with ``--registration-endpoint`` tells the core agent every few
seconds who it is and where it serves (`Registrar`); the core deems the node Offline
when the calls stop, and a new instance uuid tells it the io-engine restarted. The
answer names the cluster, which says where this io-engine's nexus info goes in the
cluster store (`mayastor.engine.cluster_nexus_info`), and, when the core agent runs with
``--dhchap``, this node's DH-HMAC-CHAP secret, which its nexuses prove to replicas from
then on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid as uuid_mod

import grpc

from mayastor import __version__
from mayastor.api.store_keys import StoreKeys
from mayastor.api.v1 import registration_pb2, registration_pb2_grpc
from mayastor.credentials import grpc_tls
from mayastor.engine.config import EngineConfig
from mayastor.nvmf.auth import DhchapSecret, SecretError

log = logging.getLogger(__name__)

REGISTRATION_INTERVAL = 5.0
"""Seconds between two registrations (the core's deadline is twice that by default)."""


class Registrar:
    """Registers this io-engine with the core agent until stopped.

    Args:
        config: the io-engine's configuration (node name, endpoints, ports).
        endpoint: the core agent's gRPC endpoint, ``HOST:PORT``.
        interval: seconds between registrations.
        dhchap_secret: the secret the io-engine was started with (``--dhchap-secret-file``),
            proven until the core agent sends one.
    """

    def __init__(
        self,
        config: EngineConfig,
        endpoint: str,
        interval: float = REGISTRATION_INTERVAL,
        dhchap_secret: DhchapSecret | None = None,
    ) -> None:
        self.config = config
        self.endpoint = endpoint
        self.interval = interval
        self.instance_uuid = str(uuid_mod.uuid4())
        self._channel = grpc_tls.aio_channel(endpoint, config.tls)
        self._stub = registration_pb2_grpc.RegistrationStub(self._channel)
        self._task: asyncio.Task[None] | None = None
        self.registered = asyncio.Event()
        self.keys: StoreKeys | None = None
        """The cluster's store keys, once the core agent has answered."""
        self.dhchap_secret = dhchap_secret
        """What this node proves to replicas shared with secrets (`initiator_secret`)."""

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
                self.keys = StoreKeys(reply.cluster_id, reply.namespace or "mayastor")
                self._take_secret(reply.dhchap_secret)
                self.registered.set()
            await asyncio.sleep(self.interval)

    def _take_secret(self, text: str) -> None:
        if not text:
            return
        try:
            secret = DhchapSecret.parse(text)
        except SecretError as exc:
            log.error("the core agent sent a malformed DH-HMAC-CHAP secret (kept ours): %s", exc)
            return
        if secret != self.dhchap_secret:
            log.info("DH-HMAC-CHAP secret of this node received from the core agent")
        self.dhchap_secret = secret

    async def initiator_secret(self) -> DhchapSecret | None:
        """The secret our nexuses prove to replicas: the core agent's (it sends one when
        started with ``--dhchap``), else the one the io-engine was started with.

        Waits for the first answer of the core agent (at most two registration
        intervals), so that a nexus made right after this io-engine registered does not
        connect to its children before the secret is here.
        """
        if not self.registered.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2 * self.interval):
                    await self.registered.wait()
        return self.dhchap_secret

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
