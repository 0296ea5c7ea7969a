"""Nexus info kept in the cluster store, for an io-engine that belongs to a cluster.

Which children of a nexus hold every acknowledged write must outlive this io-engine,
so that the control plane can make the volume's next nexus on any node trusting only
those. Two ways into the cluster store, after Mayastor:

* `EtcdNexusInfoStore`: straight to etcd (``--ps-endpoint``), so a child can be
  retired (and its I/O acknowledged) even while no core agent runs;
* `CoreNexusInfoStore`: through the core agent's gRPC API, when the store is the core
  agent's embedded one.

Both retry a write for a while (the store or the agent may be restarting) before they
raise, and the I/O that needed it fails. Deleting does nothing: the record is the
control plane's to consult when it makes the volume's next nexus, and to remove with
the volume.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import uuid as uuid_mod
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aetcd
import aetcd.exceptions
import grpc

from mayastor.api.store_keys import SUPERSEDED_BY, StoreKeys, parse_etcd_url
from mayastor.api.v1 import registration_pb2, registration_pb2_grpc
from mayastor.credentials import grpc_tls
from mayastor.credentials.grpc_tls import GrpcTls
from mayastor.errors import InvalidArgument, Superseded, Unavailable
from mayastor.nexus import NexusInfo

log = logging.getLogger(__name__)

_T = TypeVar("_T")

RETRY_FOR = 15.0
"""Seconds a read or write of nexus info keeps trying before it fails."""


class _Retry(Exception):
    """A failure worth trying again (the store or the agent is away for now)."""


async def _retrying(what: str, retry_for: float, call: Callable[[], Awaitable[_T]]) -> _T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + retry_for
    delay = 0.1
    while True:
        try:
            return await call()
        except _Retry as exc:
            if loop.time() + delay > deadline:
                raise Unavailable(f"cannot {what}: {exc}") from exc
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


def _refuse_superseded(nexus_uuid: uuid_mod.UUID, data: bytes | None) -> None:
    """Raise Superseded when a stored record carries the core agent's mark."""
    if data is None:
        return
    try:
        doc = json.loads(data)
    except ValueError:
        return  # NexusInfo.from_json says what is wrong with it
    if isinstance(doc, dict) and doc.get(SUPERSEDED_BY):
        raise Superseded(
            f"the nexus info of {nexus_uuid} is marked superseded by nexus "
            f"{doc[SUPERSEDED_BY]}: the volume has a newer nexus"
        )


class CoreNexusInfoStore:
    """A `NexusInfoStore` reached through the core agent's gRPC API.

    Args:
        endpoint: the core agent's gRPC endpoint.
        retry_for: seconds a get or put keeps trying.
    """

    def __init__(
        self, endpoint: str, retry_for: float = RETRY_FOR, *, tls: GrpcTls | None = None
    ) -> None:
        self.endpoint = endpoint
        self.retry_for = retry_for
        self._channel = grpc_tls.aio_channel(endpoint, tls)
        self._stub = registration_pb2_grpc.NexusInfoStoreStub(self._channel)

    async def _call(self, call: Callable[[], Awaitable[_T]]) -> _T:
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            text = f"the core agent at {self.endpoint}: {exc.code().name}: {exc.details()}"
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise _Retry(text) from exc
            if exc.code() is grpc.StatusCode.FAILED_PRECONDITION:
                raise Superseded(text) from exc
            raise Unavailable(text) from exc

    async def get(self, nexus_uuid: uuid_mod.UUID) -> NexusInfo | None:
        key = registration_pb2.NexusInfoKey(nexus_uuid=str(nexus_uuid))
        reply: registration_pb2.NexusInfoValue = await _retrying(
            f"read the nexus info of {nexus_uuid}",
            self.retry_for,
            lambda: self._call(lambda: self._stub.GetNexusInfo(key, timeout=5.0)),
        )
        if not reply.found:
            return None
        return NexusInfo.from_json(reply.json, f"of nexus {nexus_uuid} in the cluster store")

    async def put(self, nexus_uuid: uuid_mod.UUID, info: NexusInfo) -> None:
        request = registration_pb2.PutNexusInfoRequest(
            nexus_uuid=str(nexus_uuid), json=info.to_json()
        )
        await _retrying(
            f"write the nexus info of {nexus_uuid}",
            self.retry_for,
            lambda: self._call(lambda: self._stub.PutNexusInfo(request, timeout=5.0)),
        )

    async def delete(self, nexus_uuid: uuid_mod.UUID) -> None:
        return None

    async def close(self) -> None:
        await self._channel.close()


class EtcdNexusInfoStore:
    """A `NexusInfoStore` in etcd, under the cluster's keys.

    Args:
        url: ``etcd://HOST:PORT[,HOST:PORT…]``.
        keys: the cluster's key layout, known once the core agent has answered a
            registration (None until then: nexus info cannot be kept yet).
        retry_for: seconds a get or put keeps trying.
        timeout: seconds allowed for each etcd call.
    """

    def __init__(
        self,
        url: str,
        keys: Callable[[], StoreKeys | None],
        *,
        retry_for: float = RETRY_FOR,
        timeout: float = 5.0,
    ) -> None:
        try:
            self.endpoints = parse_etcd_url(url)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        self.keys = keys
        self.retry_for = retry_for
        self.timeout = timeout
        self._current = 0
        self._client: aetcd.Client | None = None
        self._revisions: dict[uuid_mod.UUID, int] = {}
        """The revision each nexus's record had when this store last wrote it."""

    def _key(self, nexus_uuid: uuid_mod.UUID) -> bytes:
        keys = self.keys()
        if keys is None:
            raise _Retry("the core agent has not said which cluster this io-engine is in yet")
        return keys.nexus_info(nexus_uuid).encode()

    async def _call(self, call: Callable[[aetcd.Client], Awaitable[_T]]) -> _T:
        if self._client is None:
            host, port = self.endpoints[self._current]
            self._client = aetcd.Client(host=host, port=port, timeout=math.ceil(self.timeout))
        client = self._client
        try:
            async with asyncio.timeout(self.timeout):
                return await call(client)
        except (aetcd.exceptions.ClientError, grpc.RpcError, OSError, TimeoutError) as exc:
            self._client = None
            with contextlib.suppress(aetcd.exceptions.ClientError, grpc.RpcError, OSError):
                await client.close()
            host, port = self.endpoints[self._current]
            self._current = (self._current + 1) % len(self.endpoints)
            raise _Retry(f"etcd at {host}:{port}: {exc or type(exc).__name__}") from exc

    async def get(self, nexus_uuid: uuid_mod.UUID) -> NexusInfo | None:
        async def read() -> bytes | None:
            key = self._key(nexus_uuid)
            found = await self._call(lambda client: client.get(key))
            self._revisions[nexus_uuid] = 0 if found is None else int(found.mod_revision)
            return None if found is None else bytes(found.value)

        data = await _retrying(f"read the nexus info of {nexus_uuid}", self.retry_for, read)
        if data is None:
            return None
        _refuse_superseded(nexus_uuid, data)
        return NexusInfo.from_json(data, f"of nexus {nexus_uuid} in etcd")

    async def put(self, nexus_uuid: uuid_mod.UUID, info: NexusInfo) -> None:
        """Store the record unless someone else changed it since this store last read
        or wrote it (the core agent marks the record of a nexus it replaced).

        Raises:
            Superseded: the record was marked superseded or removed meanwhile.
            Unavailable: etcd did not answer within `retry_for`.
        """
        payload = info.to_json()

        async def write() -> None:
            key = self._key(nexus_uuid)
            expected = self._revisions.get(nexus_uuid)
            if expected is None:
                found = await self._call(lambda client: client.get(key))
                _refuse_superseded(nexus_uuid, None if found is None else bytes(found.value))
                expected = 0 if found is None else int(found.mod_revision)

            async def txn(client: aetcd.Client) -> tuple[bool, list[Any]]:
                compare = (
                    client.transactions.version(key) == 0
                    if expected == 0
                    else client.transactions.mod(key) == expected
                )
                ok, responses = await client.transaction(
                    compare=[compare], success=[client.transactions.put(key, payload)], failure=[]
                )
                return bool(ok), list(responses)

            ok, responses = await self._call(txn)
            if ok:
                self._revisions[nexus_uuid] = int(responses[0].response_put.header.revision)
                return
            found = await self._call(lambda client: client.get(key))
            if found is not None and bytes(found.value) == payload:
                # Our own put of an earlier try, whose answer was lost.
                self._revisions[nexus_uuid] = int(found.mod_revision)
                return
            self._revisions.pop(nexus_uuid, None)
            raise Superseded(
                f"the nexus info of {nexus_uuid} was changed or removed by the control "
                "plane: the volume has a newer nexus"
            )

        await _retrying(f"write the nexus info of {nexus_uuid}", self.retry_for, write)

    async def delete(self, nexus_uuid: uuid_mod.UUID) -> None:
        return None

    async def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(aetcd.exceptions.ClientError, grpc.RpcError, OSError):
                await self._client.close()
            self._client = None
