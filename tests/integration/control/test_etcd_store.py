"""The etcd store against Debian's etcd: the conformance suite, and etcd's own faults.

The conformance tests share one etcd (each keeps to its own keys); the fault tests get
an etcd of their own (the `etcd` fixture) to kill, stop and restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import TypeVar

import pytest

from mayastor.cluster.processes import EtcdProcess, free_port
from mayastor.control.store import (
    EtcdStore,
    NotLeader,
    Put,
    open_store,
    parse_etcd_endpoints,
)
from mayastor.errors import InvalidArgument, StoreUnavailable
from tests.conformance.store import ClusterStoreConformance, wait_until

_T = TypeVar("_T")

DEADLINE = 1.0
"""The per-call deadline of the stores of the fault tests."""


def _tcp_sockets() -> set[str]:
    """The inodes of this process's TCP sockets."""
    inodes = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            inodes |= {line.split()[9] for line in list(lines)[1:]}
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:[") and target[8:-1] in inodes:
                mine.add(target)
    return mine


@pytest.fixture(autouse=True)
async def _grpc_connections_closed() -> AsyncIterator[None]:
    """After a test closed its stores, wait for gRPC to close their TCP connections, which
    it does in its own threads a moment later (a loaded machine makes that moment longer);
    a connection still open after that is left to the suite's check of leftovers."""
    before = _tcp_sockets()
    yield
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while _tcp_sockets() - before and loop.time() < deadline:
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def shared_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdProcess]:
    """One etcd for the conformance tests of this module (each test keeps to its own keys)."""
    process = EtcdProcess(tmp_path_factory.mktemp("etcd"))
    process.start()
    yield process
    process.stop()


class TestEtcdStoreConformance(ClusterStoreConformance):
    ttl = 3.0

    @pytest.fixture
    def store_location(self, shared_etcd: EtcdProcess) -> str:
        return shared_etcd.url


@pytest.fixture
async def store(etcd: EtcdProcess) -> AsyncIterator[EtcdStore]:
    """A store on the test's own etcd, with a short deadline."""
    store = EtcdStore(etcd.url, timeout=DEADLINE)
    yield store
    await store.close()


async def not_hanging(call: Awaitable[_T]) -> _T:
    """`call`, failing the test if it does not end well after the store's deadline."""
    async with asyncio.timeout(DEADLINE + 20):
        return await call


async def answers(store: EtcdStore) -> bool:
    try:
        await store.get("/probe")
    except StoreUnavailable:
        return False
    return True


# ============================================================================ etcd away


async def test_calls_to_a_killed_etcd_are_store_unavailable_naming_the_endpoint(
    etcd: EtcdProcess, store: EtcdStore
) -> None:
    await store.put("/k", b"v")
    etcd.kill()
    endpoint = f"127.0.0.1:{etcd.client_port}"
    for call in (
        store.get("/k"),
        store.list("/"),
        store.put("/k", b"w"),
        store.delete("/k"),
        store.commit([Put("/a", b"a"), Put("/b", b"b")]),
    ):
        with pytest.raises(StoreUnavailable, match=endpoint):
            await not_hanging(call)


async def test_calls_to_a_stopped_etcd_are_store_unavailable_by_the_deadline(
    etcd: EtcdProcess, store: EtcdStore
) -> None:
    await store.put("/k", b"v")
    etcd.pause()
    try:
        with pytest.raises(StoreUnavailable, match=f"{etcd.client_port}.*no answer within"):
            await not_hanging(store.get("/k"))
        with pytest.raises(StoreUnavailable, match=str(etcd.client_port)):
            await not_hanging(store.put("/j", b"w"))
    finally:
        etcd.resume()
    await wait_until(lambda: answers(store), "the store answers again after SIGCONT")
    entry = await store.get("/k")
    assert entry is not None
    assert entry.value == b"v"


async def test_a_restarted_etcd_is_reconnected_by_the_same_store_with_its_data(
    etcd: EtcdProcess, store: EtcdStore
) -> None:
    before = await store.put("/k", b"before the restart")
    etcd.kill()
    with pytest.raises(StoreUnavailable):
        await not_hanging(store.get("/k"))
    etcd.start()
    await wait_until(lambda: answers(store), "the store answers again after the restart")
    entry = await store.get("/k")
    assert entry is not None
    assert (entry.value, entry.revision) == (b"before the restart", before)
    after = await store.put("/k", b"after the restart", revision=before)
    assert after > before


async def test_a_commit_cut_off_by_a_stopped_etcd_is_applied_whole_or_not_at_all(
    etcd: EtcdProcess, store: EtcdStore
) -> None:
    await store.put("/k", b"v")  # connected before etcd stops
    etcd.pause()
    try:
        with pytest.raises(StoreUnavailable):
            await not_hanging(store.commit([Put(f"/c/{i}", b"x") for i in range(5)]))
    finally:
        etcd.resume()
    await wait_until(lambda: answers(store), "the store answers again after SIGCONT")
    found = [e.key for e in await store.list("/c/")]
    assert found in ([], [f"/c/{i}" for i in range(5)])


async def test_a_campaign_waits_out_an_etcd_that_is_away(
    etcd: EtcdProcess, store: EtcdStore
) -> None:
    etcd.kill()
    campaign = asyncio.ensure_future(store.campaign("/leader", "agent-a", 2))
    try:
        await asyncio.sleep(2 * DEADLINE)
        assert not campaign.done()
        etcd.start()
        lease = await asyncio.wait_for(campaign, 60)
    finally:
        campaign.cancel()
    assert lease.held
    await store.resign(lease)


# ============================================================================ endpoints


async def test_a_dead_first_endpoint_is_passed_over_within_the_first_call(
    etcd: EtcdProcess,
) -> None:
    url = f"etcd://127.0.0.1:{free_port()},127.0.0.1:{etcd.client_port}"
    writer = EtcdStore(url, timeout=DEADLINE)
    reader = EtcdStore(url, timeout=DEADLINE)
    try:
        revision = await not_hanging(writer.put("/k", b"through the second endpoint"))
        entry = await not_hanging(reader.get("/k"))
        assert entry is not None
        assert (entry.value, entry.revision) == (b"through the second endpoint", revision)
        lease = await not_hanging(reader.campaign("/leader", "agent-a", 2))
        await reader.resign(lease)
    finally:
        await writer.close()
        await reader.close()


async def test_with_every_endpoint_dead_the_error_names_each_of_them() -> None:
    ports = [free_port(), free_port()]
    store = EtcdStore(",".join(f"127.0.0.1:{p}" for p in ports), timeout=DEADLINE)
    try:
        for call in (store.get("/k"), store.put("/k", b"v")):
            with pytest.raises(StoreUnavailable) as info:
                await not_hanging(call)
            for port in ports:
                assert f"127.0.0.1:{port}" in str(info.value)
    finally:
        await store.close()


@pytest.mark.parametrize(
    "url",
    [
        "etcd://",
        "etcd://host",
        "etcd://host:",
        "etcd://:2379",
        "etcd://host:0",
        "etcd://host:65536",
        "etcd://host:-1",
        "etcd://host:port",
        "etcd://host:2379/path",
        "etcd://a:1,,b:2",
        "etcd://a:1,b",
        "etcd://a b:2379",
        "etcd://user@host:2379",
        "etcd://user:secret@host:2379",
        "http://host:2379",
        "etcd://[::1:2379",
    ],
)
def test_a_malformed_etcd_url_is_an_invalid_argument(url: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_etcd_endpoints(url)
    with pytest.raises(InvalidArgument):
        EtcdStore(url)
    if url.startswith("etcd://"):
        with pytest.raises(InvalidArgument):
            open_store(url)


@pytest.mark.parametrize(
    ("url", "endpoints"),
    [
        ("etcd://127.0.0.1:2379", [("127.0.0.1", 2379)]),
        ("etcd://a:1,b.example:65535", [("a", 1), ("b.example", 65535)]),
        ("etcd://[::1]:2379", [("::1", 2379)]),
        ("etcd://etcd-0.etcd:2379/", [("etcd-0.etcd", 2379)]),
        ("127.0.0.1:2379, 127.0.0.2:2380", [("127.0.0.1", 2379), ("127.0.0.2", 2380)]),
    ],
)
def test_a_well_formed_etcd_url_names_its_endpoints_in_order(
    url: str, endpoints: list[tuple[str, int]]
) -> None:
    assert parse_etcd_endpoints(url) == endpoints


# ============================================================================ refusals


async def test_a_value_larger_than_etcd_takes_is_an_invalid_argument_and_nothing_else(
    store: EtcdStore,
) -> None:
    for size in (1_600_000, 3 << 20):
        with pytest.raises(InvalidArgument):
            await store.put("/big", b"x" * size)
    with pytest.raises(InvalidArgument):
        await store.commit([Put(f"/many/{i}", b"") for i in range(200)])
    assert await store.get("/big") is None
    assert await store.list("/many/") == []
    await store.put("/small", b"fine")


# ============================================================================ leases


async def test_a_lease_is_kept_across_a_short_etcd_restart(etcd: EtcdProcess) -> None:
    ttl = 6.0
    holder = EtcdStore(etcd.url, timeout=DEADLINE)
    other = EtcdStore(etcd.url, timeout=DEADLINE)
    try:
        lease = await holder.campaign("/leader", "agent-a", ttl)
        holder.guard = lease
        etcd.kill()
        etcd.start()
        await wait_until(lambda: answers(holder), "the store answers again after the restart")
        rival = asyncio.ensure_future(other.campaign("/leader", "agent-b", ttl))
        try:
            await asyncio.sleep(ttl + 1)  # a lease not renewed after the restart is lost by now
            assert lease.held
            assert not rival.done()
            await holder.put("/k", b"still the leader")
        finally:
            rival.cancel()
        await holder.resign(lease)
    finally:
        await holder.close()
        await other.close()


async def test_a_lease_is_lost_when_etcd_is_away_longer_than_its_ttl(etcd: EtcdProcess) -> None:
    holder = EtcdStore(etcd.url, timeout=DEADLINE)
    other = EtcdStore(etcd.url, timeout=DEADLINE)
    try:
        lease = await holder.campaign("/leader", "agent-a", 2)
        holder.guard = lease
        await holder.put("/k", b"while the leader")
        etcd.kill()
        await asyncio.wait_for(lease.lost.wait(), 60)
        etcd.start()
        await wait_until(lambda: answers(other), "the store answers again after the restart")
        with pytest.raises(NotLeader):
            await holder.put("/k", b"after losing the lease")
        with pytest.raises(NotLeader):
            await holder.commit([Put("/j", b"after losing the lease")])
        entry = await other.get("/k")
        assert entry is not None
        assert entry.value == b"while the leader"
        assert await other.get("/j") is None
        taken = await asyncio.wait_for(other.campaign("/leader", "agent-b", 2), 60)
        other.guard = taken
        await other.put("/k", b"the new leader")
        await other.resign(taken)
    finally:
        await holder.close()
        await other.close()
