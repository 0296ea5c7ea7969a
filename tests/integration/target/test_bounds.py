"""The target's bounds and the end of a session over real sockets.

In-process targets: a connection that sends no ICReq is closed; at the connection
limit the oldest connection that has not connected makes room (a connected host is
never pushed out); SPDK's detach sequence (AER IDs reused for CC read, CC.SHN and
CSTS polls) ends in a clean shutdown; a Flush, and a shutdown, are answered only after
fdatasync of the backing file has returned.

A real io-engine (slow): 10,000 silent connections, and hosts that announce 1 MiB
writes on every queue and never send the data. Its resident memory stays within the
stated bounds and a well-behaved host connects and its writes read back.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid as uuid_mod
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlparse

import pytest

from mayastor.bdev import AioDevice, MallocDevice
from mayastor.cluster.processes import EngineProcess
from mayastor.nvmf.spec import (
    AdminOpcode,
    AsyncEventConfig,
    Command,
    ControllerStatus,
    FeatureId,
    PropertyGet,
    PropertyOffset,
    PropertySet,
    ShutdownStatus,
)
from mayastor.target import NvmfTarget, TargetConfig, openebs_nqn
from tests.integration.target.conftest import Served
from tests.integration.target.nvme_client import HostController, HostQueue
from tests.support.engine_api import EngineApi
from tests.support.hostile_hosts import (
    announce_writes,
    close_all,
    open_silent,
    raise_fd_limit,
    rss_bytes,
)

HOSTS = "nqn.2014-08.org.nvmexpress:*"
MIB = 1 << 20
SILENT = 10_000
SILENT_RSS_BOUND = 64 * MIB
"""What 2048 held connections (the default limit) may add to the io-engine's RSS:
32 KiB each, about twice what one costs (a socket, its transport, a queue pair)."""
HOSTILE_RSS_BOUND = 32 * MIB
"""What hosts owing 1 MiB writes they never send may add: announced data is only
counted, never buffered."""


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def eof_within(sock_reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(sock_reader.read(1), seconds) == b""
    except (ConnectionError, TimeoutError):
        return True


# ------------------------------------------------------------------ connections


@pytest.fixture
async def limited() -> AsyncIterator[Callable[..., NvmfTarget]]:
    made: list[NvmfTarget] = []

    def make(**limits: object) -> NvmfTarget:
        config = TargetConfig(keep_alive_check_interval=0.05, drain_timeout=5.0, **limits)  # type: ignore[arg-type]
        made.append(NvmfTarget("127.0.0.1", config=config))
        return made[-1]

    yield make
    for target in made:
        await target.close()


async def serve_malloc(target: NvmfTarget) -> tuple[int, str]:
    port = await target.listen(0)
    device = MallocDevice("m0", 16384, 512, uuid_mod.uuid4())
    nqn = openebs_nqn(device.uuid)
    target.add_subsystem(nqn, device, port=port)
    return port, nqn


async def test_a_connection_that_sends_no_icreq_is_closed_at_the_ic_timeout(
    limited: Callable[..., NvmfTarget],
) -> None:
    target = limited(ic_timeout=0.3)
    port, _ = await serve_malloc(target)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        assert await eof_within(reader, 5.0)
        await eventually(lambda: target.connection_count(port) == 0)
    finally:
        writer.close()


async def test_at_the_connection_limit_unconnected_ones_make_room_for_a_host(
    limited: Callable[..., NvmfTarget],
) -> None:
    target = limited(max_connections=4)
    port, nqn = await serve_malloc(target)
    silent = await open_silent("127.0.0.1", port, 4)
    try:
        host = await HostController.connect("127.0.0.1", port, nqn, hostnqn=HOSTS[:-1] + "a")
        try:
            more = await open_silent("127.0.0.1", port, 20)
            silent += more
            data = os.urandom(4096)
            assert (await host.io[0].write(8, data, 512)).ok
            assert (await host.io[0].read(8, 8, 512)).data == data
            assert target.connection_count(port) <= 4
        finally:
            await host.close()
    finally:
        close_all(silent)


async def test_a_new_connection_is_closed_when_every_held_one_is_connected(
    limited: Callable[..., NvmfTarget],
) -> None:
    target = limited(max_connections=2)
    port, nqn = await serve_malloc(target)
    host = await HostController.connect("127.0.0.1", port, nqn)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await eof_within(reader, 5.0)
        writer.close()
        assert (await host.io[0].write(0, bytes(512), 512)).ok
    finally:
        await host.close()


async def test_a_write_waiting_for_budget_a_stalled_host_holds_goes_on_once_it_is_closed(
    limited: Callable[..., NvmfTarget],
) -> None:
    target = limited(
        max_pending_write_bytes=MIB, max_pending_write_bytes_total=MIB, write_data_timeout=0.5
    )
    port, nqn = await serve_malloc(target)
    hog = await HostController.connect("127.0.0.1", port, nqn, hostnqn=HOSTS[:-1] + "hog")
    host = await HostController.connect("127.0.0.1", port, nqn, hostnqn=HOSTS[:-1] + "good")
    try:
        announce_writes(hog.io[0], 1, MIB)
        await asyncio.sleep(0.05)
        data = os.urandom(128 * 1024)
        assert (await host.io[0].write(64, data, 512)).ok  # waited for the hog's budget
        assert hog.io[0].closed.is_set()
        assert (await host.io[0].read(64, len(data) // 512, 512)).data == data
    finally:
        await hog.close()
        await host.close()


# ------------------------------------------------------------------ end of session


async def test_spdk_detach_over_a_socket_ends_in_a_clean_shutdown(served: Served) -> None:
    admin = await HostQueue.open("127.0.0.1", served.port)
    try:
        resp = await admin.connect(served.nqn)
        assert resp.ok
        cc = 1 | 6 << 16 | 4 << 20
        assert (await admin.property_set(PropertyOffset.CC, cc)).ok
        events = int(AsyncEventConfig.NAMESPACE_ATTRIBUTE | AsyncEventConfig.ANA_CHANGE)
        assert (
            await admin.admin(
                AdminOpcode.SET_FEATURES, cdw10=FeatureId.ASYNC_EVENT_CONFIGURATION, cdw11=events
            )
        ).ok
        held = [0xF001, 0xF002, 0xF003, 0xF004]
        for cid in held:
            admin.send(admin.pdu_writer.encode_capsule_cmd(Command(0x0C, cid).encode()))
        await asyncio.sleep(0.05)
        # SPDK completes its AERs locally, then reuses their IDs (its own request pool).
        got_cc = await admin.submit(_property_get(held[-1], PropertyOffset.CC))
        assert got_cc.ok
        assert got_cc.completion.dw0 == cc
        set_shn = await admin.submit(_property_set(held[-1], PropertyOffset.CC, cc | 1 << 14))
        assert set_shn.ok
        for _ in range(100):
            csts = await admin.submit(_property_get(held[-2], PropertyOffset.CSTS))
            assert csts.ok
            if ControllerStatus.decode(csts.completion.dw0).shst == ShutdownStatus.COMPLETE:
                break
            await asyncio.sleep(0.01)
        assert ControllerStatus.decode(csts.completion.dw0).shst == ShutdownStatus.COMPLETE
        assert not admin.closed.is_set()
    finally:
        await admin.close()


def _property_get(cid: int, offset: int) -> Command:
    return PropertyGet(offset, 4).to_command(cid)


def _property_set(cid: int, offset: int, value: int) -> Command:
    return PropertySet(offset, value, 4).to_command(cid)


class HeldFdatasync:
    """os.fdatasync that records the files it syncs and waits until released."""

    def __init__(self) -> None:
        self.real = os.fdatasync
        self.entered = threading.Event()
        self.release = threading.Event()
        self.synced: list[str] = []

    def __call__(self, fd: int) -> None:
        self.entered.set()
        self.release.wait(10)
        self.real(fd)
        self.synced.append(os.readlink(f"/proc/self/fd/{fd}"))


@pytest.fixture
async def served_file(
    target: NvmfTarget, tmp_path: Path
) -> AsyncIterator[tuple[NvmfTarget, int, str, Path]]:
    path = tmp_path / "disk.img"
    path.touch()
    os.truncate(path, 8 * MIB)
    device = await AioDevice.open(str(path))
    port = await target.listen(0)
    nqn = openebs_nqn(device.uuid)
    target.add_subsystem(nqn, device, port=port)
    yield target, port, nqn, path
    await target.remove_subsystem(nqn)
    await device.close()


async def test_a_flush_is_answered_only_after_fdatasync_of_the_file_returned(
    served_file: tuple[NvmfTarget, int, str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, port, nqn, path = served_file
    host = await HostController.connect("127.0.0.1", port, nqn)
    try:
        assert (await host.io[0].write(0, os.urandom(4096), 512)).ok
        sync = HeldFdatasync()
        monkeypatch.setattr(os, "fdatasync", sync)
        flush = asyncio.ensure_future(host.io[0].flush())
        assert await asyncio.to_thread(sync.entered.wait, 10)
        await asyncio.sleep(0.2)
        assert not flush.done()  # fdatasync has not returned: no answer yet
        sync.release.set()
        assert (await flush).ok
        assert sync.synced == [str(path)]
    finally:
        await host.close()


async def test_a_shutdown_completes_only_after_fdatasync_of_the_file_returned(
    served_file: tuple[NvmfTarget, int, str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, port, nqn, path = served_file
    host = await HostController.connect("127.0.0.1", port, nqn)
    try:
        sync = HeldFdatasync()
        monkeypatch.setattr(os, "fdatasync", sync)
        cc = 1 | 6 << 16 | 4 << 20 | 1 << 14
        assert (await host.admin.property_set(PropertyOffset.CC, cc)).ok
        assert await asyncio.to_thread(sync.entered.wait, 10)
        csts = await host.admin.property_get(PropertyOffset.CSTS)
        assert ControllerStatus.decode(csts.completion.dw0).shst == ShutdownStatus.OCCURRING
        sync.release.set()
        await eventually(lambda: bool(sync.synced))
        for _ in range(100):
            csts = await host.admin.property_get(PropertyOffset.CSTS)
            if ControllerStatus.decode(csts.completion.dw0).shst == ShutdownStatus.COMPLETE:
                break
            await asyncio.sleep(0.01)
        assert ControllerStatus.decode(csts.completion.dw0).shst == ShutdownStatus.COMPLETE
        assert sync.synced == [str(path)]
    finally:
        await host.close()


# ------------------------------------------------------------------ a real io-engine


@pytest.fixture
def engine_replica(
    engines: Callable[..., EngineProcess], tmp_path: Path
) -> tuple[EngineProcess, int, str]:
    disk = tmp_path / "pool.img"
    with open(disk, "wb") as fh:
        fh.truncate(256 * MIB)
    engine = engines(pools=[f"p0={disk}"])
    api = EngineApi(engine.endpoint)
    try:
        replica = api.create_replica(
            "p0", "r0", str(uuid_mod.uuid4()), 64 * MIB, False, share_with=HOSTS
        )
    finally:
        api.close()
    uri = urlparse(replica.uri)
    assert uri.port is not None
    return engine, uri.port, uri.path.lstrip("/")


async def writes_read_back(host: HostController) -> None:
    for block in (0, 4096, 65536):
        data = os.urandom(MIB if block else 4096)
        assert (await host.io[0].write(block, data, 512)).ok
        assert (await host.io[0].read(block, len(data) // 512, 512)).data == data


@pytest.mark.slow
async def test_ten_thousand_silent_connections_leave_rss_bounded_and_a_host_served(
    engine_replica: tuple[EngineProcess, int, str],
) -> None:
    engine, port, nqn = engine_replica
    raise_fd_limit(SILENT + 1000)
    assert engine.pid is not None
    idle = rss_bytes(engine.pid)
    silent = await open_silent("127.0.0.1", port, SILENT)
    try:
        loaded = rss_bytes(engine.pid)
        host = await HostController.connect("127.0.0.1", port, nqn, hostnqn=HOSTS[:-1] + "good")
        try:
            await writes_read_back(host)
        finally:
            await host.close()
        assert loaded - idle < SILENT_RSS_BOUND, (idle, loaded)
    finally:
        close_all(silent)
    assert "limit max_connections" in engine.log_tail(400)


@pytest.mark.slow
async def test_hosts_that_never_send_announced_write_data_leave_rss_bounded_and_a_host_served(
    engine_replica: tuple[EngineProcess, int, str],
) -> None:
    engine, port, nqn = engine_replica
    assert engine.pid is not None
    idle = rss_bytes(engine.pid)
    hostile: list[HostController] = []
    try:
        for n in range(4):
            ctrl = await HostController.connect(
                "127.0.0.1", port, nqn, hostnqn=HOSTS[:-1] + f"hostile-{n}", io_queues=4
            )
            hostile.append(ctrl)
            for queue in ctrl.io:
                announce_writes(queue, 120, MIB)
        host = await HostController.connect("127.0.0.1", port, nqn, hostnqn=HOSTS[:-1] + "good")
        try:
            await writes_read_back(host)
        finally:
            await host.close()
        assert rss_bytes(engine.pid) - idle < HOSTILE_RSS_BOUND
        assert all(not q.closed.is_set() for c in hostile for q in c.io)
    finally:
        for ctrl in hostile:
            await ctrl.close()
    assert "limit max_pending_write_bytes" in engine.log_tail(400)
