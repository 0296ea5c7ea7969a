"""The cluster store on etcd v3, through the aetcd asyncio client.

Revision checks and the leader guard are etcd transactions: a put with an expected
revision compares the key's mod revision (0: its version is 0, it does not exist)
and the guard compares the create revision of the leader key, which is unique to one
tenure of the lease. Every call has a deadline, so an etcd that hangs is reported as
unavailable instead of blocking the API; with several endpoints, a failed call moves
on to the next one for the calls that follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aetcd
import aetcd.exceptions
import aetcd.rpc
import grpc

from mayastor.api.store_keys import parse_etcd_url
from mayastor.control.store._interface import (
    Delete,
    Entry,
    Leadership,
    NotLeader,
    Operation,
    Put,
    RevisionMismatch,
    check_key,
    check_operations,
)
from mayastor.errors import InvalidArgument, StoreUnavailable

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_FAILURES = (
    aetcd.exceptions.ClientError,
    grpc.RpcError,
    OSError,
    TimeoutError,
)


class _CallCancelled(OSError):
    """gRPC cancelled a call because its channel was closed under it (another call gave
    the connection up): the call failed; the task that made it was not cancelled."""


async def _uncancelled(call: Awaitable[_T]) -> _T:
    """Await `call`; a CancelledError that is not this task's own cancellation (gRPC
    raises one in the calls of a channel being closed) becomes `_CallCancelled`, a
    failure of the call like any other, so that it cannot stop the caller."""
    try:
        return await call
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        raise _CallCancelled("the call was cancelled: its connection was closed") from None


def _refused(exc: BaseException) -> bool:
    """Whether etcd refused the request itself (an empty key, a value too large, too many
    operations): asking again, or another endpoint, gives the same answer. (A full
    database is RESOURCE_EXHAUSTED too, but that is the store's trouble, not the call's.)"""
    if isinstance(exc, aetcd.exceptions.InvalidArgumentError):
        return True
    cause = exc if isinstance(exc, grpc.RpcError) else exc.__cause__
    code, details = getattr(cause, "code", None), getattr(cause, "details", None)
    if not callable(code) or not callable(details):
        return False
    return bool(
        code() == grpc.StatusCode.INVALID_ARGUMENT
        or (code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in str(details()))
    )


def _detach(exc: BaseException) -> None:
    """Drop the tracebacks of `exc` and its causes: their frames hold the gRPC call and so
    its channel and sockets, for as long as anyone keeps the error (a log record does)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__


def _never_sent(exc: BaseException) -> bool:
    """Whether the request failed before it reached etcd (no connection could be made),
    so that sending it to another endpoint cannot apply it twice."""
    cause = exc if isinstance(exc, grpc.RpcError) else exc.__cause__
    details = getattr(cause, "details", None)
    return callable(details) and "failed to connect" in str(details()).lower()


def parse_etcd_endpoints(url: str) -> list[tuple[str, int]]:
    """``etcd://HOST:PORT[,HOST:PORT…]`` (or without the scheme) as (host, port) pairs.

    Raises:
        InvalidArgument: an endpoint that is not HOST:PORT (see `parse_etcd_url`).
    """
    try:
        return parse_etcd_url(url)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None


class EtcdStore:
    """The `ClusterStore` on an etcd v3 cluster.

    Args:
        url: ``etcd://HOST:PORT[,HOST:PORT…]``.
        timeout: seconds allowed for each call.
    """

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.endpoints = parse_etcd_endpoints(url)
        self.description = "etcd://" + ",".join(f"{h}:{p}" for h, p in self.endpoints)
        self.guard: Leadership | None = None
        self.timeout = timeout
        self._current = 0
        self._client: aetcd.Client | None = None
        self._leases: set[Leadership] = set()
        self._closed = False

    # ------------------------------------------------------------------ plumbing

    def _connection(self) -> tuple[int, aetcd.Client]:
        """The client of the endpoint in use (made on first use) and that endpoint's index."""
        if self._closed:
            raise StoreUnavailable(f"store {self.description} is closed")
        if self._client is None:
            host, port = self.endpoints[self._current]
            self._client = aetcd.Client(host=host, port=port, timeout=math.ceil(self.timeout))
        return self._current, self._client

    def _endpoint(self, index: int) -> str:
        host, port = self.endpoints[index]
        return f"{host}:{port}"

    def _give_up(self, index: int, client: aetcd.Client) -> None:
        """Stop using `client` (of endpoint `index`): the next call connects to the next
        endpoint. Another call that already gave it up has moved on; leave that be."""
        if self._client is client:
            self._client = None
            self._current = (index + 1) % len(self.endpoints)

    async def _call(
        self,
        what: str,
        call: Callable[[aetcd.Client], Awaitable[_T]],
        *,
        timeout: float | None = None,
        idempotent: bool = False,
    ) -> _T:
        """Run `call` on the endpoint in use, within the deadline (`timeout`, else the
        store's). An endpoint that fails is given up for the next one; the call itself
        moves on to it (within the same deadline) when asking again cannot do a change
        twice: it only reads, or the failed endpoint never got the request.

        Raises:
            StoreUnavailable: naming every endpoint tried and why it failed.
            InvalidArgument: etcd refused the request itself.
        """
        deadline = self.timeout if timeout is None else timeout
        failures: list[str] = []
        given_up: list[aetcd.Client] = []
        index, client = self._connection()
        try:
            async with asyncio.timeout(deadline):
                while True:
                    try:
                        return await _uncancelled(call(client))
                    except (RevisionMismatch, NotLeader):
                        raise
                    except _FAILURES as exc:
                        _detach(exc)
                        if _refused(exc):
                            raise InvalidArgument(
                                f"etcd at {self._endpoint(index)} refused {what}: {exc}"
                            ) from exc
                        reason = str(exc) or type(exc).__name__
                        failures.append(f"{self._endpoint(index)}: {reason}")
                        self._give_up(index, client)
                        given_up.append(client)
                        if len(failures) >= len(self.endpoints) or not (
                            idempotent or _never_sent(exc)
                        ):
                            raise StoreUnavailable(
                                f"etcd at {'; '.join(failures)} ({what})"
                            ) from exc
                        index, client = self._connection()
        except TimeoutError as exc:
            _detach(exc)
            self._give_up(index, client)
            given_up.append(client)
            failures.append(f"{self._endpoint(index)}: no answer within {deadline:g} s")
            raise StoreUnavailable(f"etcd at {'; '.join(failures)} ({what})") from exc
        finally:
            for old in given_up:
                await self._drop(old)

    async def _drop(self, client: aetcd.Client) -> None:
        if self._client is client:
            self._client = None
        with contextlib.suppress(*_FAILURES, asyncio.CancelledError):
            await client.close()

    def _guard_compares(self, client: aetcd.Client) -> list[Any]:
        guard = self.guard
        if guard is None:
            return []
        if not guard.held:
            raise NotLeader(f"the lease {guard.name!r} of {guard.holder} is lost")
        return [client.transactions.create(guard.name.encode()) == guard.token]

    @staticmethod
    def _revision_compare(client: aetcd.Client, key: str, revision: int) -> Any:
        if revision == 0:
            return client.transactions.version(key.encode()) == 0
        return client.transactions.mod(key.encode()) == revision

    async def _explain(self, client: aetcd.Client, operations: Sequence[Operation]) -> Exception:
        """After a failed transaction: the error that says which check did not hold."""
        guard = self.guard
        if guard is not None:
            found = await client.get(guard.name.encode())
            if found is None or found.create_revision != guard.token:
                return NotLeader(f"the lease {guard.name!r} is no longer held by {guard.holder}")
        for op in operations:
            if op.revision is None:
                continue
            found = await client.get(op.key.encode())
            now = 0 if found is None else found.mod_revision
            if now != op.revision:
                state = "does not exist" if found is None else f"is at revision {now}"
                return RevisionMismatch(f"{op.key} {state}, not at revision {op.revision}")
        return RevisionMismatch("a revision changed while the transaction ran")

    # ------------------------------------------------------------------ key-value

    async def get(self, key: str) -> Entry | None:
        check_key(key)

        async def call(client: aetcd.Client) -> Entry | None:
            found = await client.get(key.encode())
            return None if found is None else Entry(key, found.value, found.mod_revision)

        return await self._call(f"get {key}", call, idempotent=True)

    async def list(self, prefix: str) -> list[Entry]:
        async def call(client: aetcd.Client) -> list[Entry]:
            if prefix:
                found = await client.get_prefix(prefix.encode(), sort_order="ascend")
            else:  # etcd has no empty key: the empty prefix is the range of all keys
                found = await client.get_all(sort_order="ascend")
            return [Entry(kv.key.decode(), kv.value, kv.mod_revision) for kv in found]

        return await self._call(f"list {prefix}", call, idempotent=True)

    async def put(self, key: str, value: bytes, *, revision: int | None = None) -> int:
        check_key(key)
        return await self._transaction(f"put {key}", [Put(key, value, revision)])

    async def delete(self, key: str, *, revision: int | None = None) -> bool:
        check_key(key)

        async def call(client: aetcd.Client) -> bool:
            compares = self._guard_compares(client)
            if revision is not None:
                compares.append(self._revision_compare(client, key, revision))
            ok, responses = await client.transaction(
                compare=compares,
                success=[client.transactions.delete(key.encode())],
                failure=[],
            )
            if not ok:
                raise await self._explain(client, [Delete(key, revision)])
            return bool(responses[0].response_delete_range.deleted)

        return await self._call(f"delete {key}", call)

    async def commit(self, operations: Sequence[Operation]) -> int:
        check_operations(operations)
        if not operations:
            return 0
        return await self._transaction("commit", operations)

    async def _transaction(self, what: str, operations: Sequence[Operation]) -> int:
        async def call(client: aetcd.Client) -> int:
            compares = self._guard_compares(client)
            success = []
            for op in operations:
                if op.revision is not None:
                    compares.append(self._revision_compare(client, op.key, op.revision))
                if isinstance(op, Put):
                    success.append(client.transactions.put(op.key.encode(), bytes(op.value)))
                else:
                    success.append(client.transactions.delete(op.key.encode()))
            ok, responses = await client.transaction(compare=compares, success=success, failure=[])
            if not ok:
                raise await self._explain(client, operations)
            # aetcd keeps the transaction's own header from us; an operation that changed
            # nothing (a delete of a missing key) reports the revision before the change,
            # the others the revision of the change.
            return max(
                int(getattr(response, response.WhichOneof("response")).header.revision)
                for response in responses
            )

        return await self._call(what, call)

    # ------------------------------------------------------------------ leases

    async def campaign(self, name: str, holder: str, ttl: float) -> Leadership:
        seconds = max(2, math.ceil(ttl))
        poll = max(0.2, seconds / 4)
        waiting_logged = False
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            try:
                lease = await self._try_acquire(name, holder, seconds)
            except StoreUnavailable as exc:
                log.warning("lease %s: store unavailable, trying again: %s", name, exc)
                lease = None
            if lease is not None:
                lease.keeper = loop.create_task(self._keep(lease, asked), name=f"lease {name}")
                self._leases.add(lease)
                return lease
            if not waiting_logged:
                log.info("lease %s is held by another holder; waiting for it", name)
                waiting_logged = True
            await asyncio.sleep(poll)

    async def _try_acquire(self, name: str, holder: str, seconds: int) -> Leadership | None:
        async def call(client: aetcd.Client) -> Leadership | None:
            grant = await client.lease(seconds)
            key = name.encode()
            ok, responses = await client.transaction(
                compare=[client.transactions.version(key) == 0],
                success=[client.transactions.put(key, holder.encode(), lease=grant.id)],
                failure=[],
            )
            if not ok:
                await client.revoke_lease(grant.id)
                return None
            token = int(responses[0].response_put.header.revision)
            return _EtcdLeadership(
                name=name, holder=holder, ttl=float(seconds), token=token, lease_id=grant.id
            )

        return await self._call(f"campaign {name}", call)

    async def lease_holder(self, name: str) -> str | None:
        async def call(client: aetcd.Client) -> str | None:
            found = await client.get(name.encode())
            return None if found is None else bytes(found.value).decode(errors="replace")

        return await self._call(f"lease holder of {name}", call, idempotent=True)

    async def _keep(self, lease: Leadership, confirmed: float) -> None:
        """Renew `lease` every third of its TTL until it is lost or given back.

        `confirmed` is when the last request etcd answered with the lease alive was
        sent: etcd counts the TTL from no earlier than that. Once a whole TTL has passed
        since without an answer, the lease is lost to us: etcd may have let it expire
        and given it to another agent (or, restarted, revive it for a while; we revoke
        it then, so that the others need not wait).
        """
        assert isinstance(lease, _EtcdLeadership)
        loop = asyncio.get_running_loop()

        async def refresh(client: aetcd.Client) -> int:
            # aetcd's refresh_lease returns from inside its keep-alive stream and leaves
            # the stream open (on etcd too) until garbage collection; this one ends it.
            await client.connect()
            call = client.leasestub.LeaseKeepAlive(timeout=self.timeout, metadata=client.metadata)
            try:
                await call.write(aetcd.rpc.LeaseKeepAliveRequest(ID=lease.lease_id))
                await call.done_writing()
                reply = await call.read()
                return 0 if reply is grpc.aio.EOF else int(reply.TTL)
            finally:
                call.cancel()

        while lease.held:
            await asyncio.sleep(lease.ttl / 3)
            sent = loop.time()
            left = confirmed + lease.ttl - sent
            try:
                if left <= 0:
                    raise StoreUnavailable(f"no renewal of lease {lease.name} answered")
                remaining = await self._call(
                    f"renew {lease.name}", refresh, timeout=left, idempotent=True
                )
            except StoreUnavailable as exc:
                if loop.time() < confirmed + lease.ttl:
                    log.warning("lease %s: cannot renew: %s", lease.name, exc)
                    continue
                log.error(
                    "lease %s of %s is lost: not renewed for %g s (%s)",
                    lease.name,
                    lease.holder,
                    lease.ttl,
                    exc,
                )
                lease.lost.set()
                await self._revoke(lease)
                return
            if remaining <= 0:
                log.error("lease %s of %s is lost: etcd let it expire", lease.name, lease.holder)
                lease.lost.set()
                return
            confirmed = sent

    async def _revoke(self, lease: _EtcdLeadership) -> None:
        async def revoke(client: aetcd.Client) -> None:
            await client.revoke_lease(lease.lease_id)

        with contextlib.suppress(StoreUnavailable):
            await self._call(f"resign {lease.name}", revoke, idempotent=True)

    async def resign(self, leadership: Leadership) -> None:
        leadership.lost.set()
        if leadership.keeper is not None:
            leadership.keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await leadership.keeper
        self._leases.discard(leadership)
        if isinstance(leadership, _EtcdLeadership):
            await self._revoke(leadership)

    async def close(self) -> None:
        self._closed = True
        for lease in list(self._leases):
            lease.lost.set()  # nobody renews it any more
            if lease.keeper is not None:
                lease.keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lease.keeper
        self._leases.clear()
        if self._client is not None:
            await self._drop(self._client)


class _EtcdLeadership(Leadership):
    """A leadership backed by an etcd lease (its id is needed to renew it)."""

    def __init__(self, *, lease_id: int, **fields: Any) -> None:
        super().__init__(**fields)
        self.lease_id = lease_id
