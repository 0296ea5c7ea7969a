"""A replica's NVMe reservation survives its io-engine: made durable in the pool before
the command completes, so that after a SIGKILL and a restart (the pool imported again,
the replica shared again) hosts find the same registrations and holder, and a host
that is not the holder is still refused."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from mayastor.bdev import (
    AcquireAction,
    RegisterAction,
    ReservationType,
)
from mayastor.bdev.nvmf import NvmfDevice
from mayastor.cluster.processes import EngineProcess
from mayastor.errors import ReservationConflict
from mayastor.nvmf.host import ControllerOptions
from mayastor.nvmf.spec import ReservationCapabilities
from tests.integration.conftest import make_sparse_file

pytestmark = pytest.mark.slow

HOSTNQN = "nqn.2019-05.io.openebs:node-name:resv-host"
HOST_A = uuid.UUID("aaaaaaaa-2222-4222-8222-aaaaaaaaaaaa")
HOST_B = uuid.UUID("bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb")


async def open_as(uri: str, hostid: uuid.UUID) -> NvmfDevice:
    options = ControllerOptions(hostnqn=HOSTNQN, hostid=hostid, io_queues=1, ctrl_loss_timeout=0)
    return await NvmfDevice.open(uri, options=options)


def shared_replica(engine: EngineProcess) -> str:
    replica = json.loads(
        engine.client(
            "-o", "json", "replica", "create", "pool", "r1", "--size=8", "--share", "nvmf",
            check=True,
        ).stdout
    )  # fmt: skip
    return str(replica["uri"])


async def test_a_replicas_reservation_survives_a_sigkill_of_its_io_engine(
    engine: EngineProcess, tmp_path: Path
) -> None:
    engine.stop()
    disk = make_sparse_file(tmp_path / "pool.img", 64 << 20)
    engine.pools = [f"pool={disk}"]
    engine.start()
    uri = await asyncio.to_thread(shared_replica, engine)
    a = await open_as(uri, HOST_A)
    try:
        namespace = await a.controller.identify_namespace(1)
        assert namespace.rescap & ReservationCapabilities.PERSIST_THROUGH_POWER_LOSS
        await a.reservation_register(RegisterAction.REGISTER, new_key=0xA)
        await a.reservation_acquire(
            AcquireAction.ACQUIRE, ReservationType.EXCLUSIVE_ACCESS, current_key=0xA
        )
        before = await a.reservation_report()
        assert before.ptpls
    finally:
        await a.close()
    engine.kill()  # the moment the acquire was answered, it was in the pool
    await asyncio.to_thread(engine.start)
    a, b = await open_as(uri, HOST_A), await open_as(uri, HOST_B)
    try:
        after = await b.reservation_report()
        assert after == before
        assert [(r.hostid, r.rkey, r.holds) for r in after.registrants] == [
            (HOST_A.bytes, 0xA, True)
        ]
        with pytest.raises(ReservationConflict):
            await b.write(0, bytes(512))
        with pytest.raises(ReservationConflict):
            await b.read(0, 1)
        await a.write(0, b"\x0a" * 512)
    finally:
        await a.close()
        await b.close()


async def test_nexus_create_flags_choose_the_key_and_type_held_on_the_replica(
    engine: EngineProcess, tmp_path: Path
) -> None:
    engine.stop()
    disk = make_sparse_file(tmp_path / "pool.img", 64 << 20)
    engine.pools = [f"pool={disk}"]
    engine.start()
    uri = await asyncio.to_thread(shared_replica, engine)
    replica_uuid = uri.rsplit("uuid=", 1)[1]
    nexus_uuid = str(uuid.uuid4())
    created = await asyncio.to_thread(
        engine.client,
        "nexus", "create", nexus_uuid, "8", f"bdev:///r1?uuid={replica_uuid}",
        "--resv-key", "0x5", "--resv-type", "WriteExclusive", "--preempt-key", "7",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    reader = await open_as(uri, HOST_B)
    try:
        status = await reader.reservation_report()
        assert status.rtype == ReservationType.WRITE_EXCLUSIVE
        assert [(r.rkey, r.holds) for r in status.registrants] == [(0x5, True)]
        assert bytes(await reader.read(0, 1)) == bytes(512)  # write exclusive: reads go on
    finally:
        await reader.close()
    await asyncio.to_thread(engine.client, "nexus", "destroy", nexus_uuid, check=True)


@pytest.mark.parametrize(
    "flags",
    [("--resv-key", "nope"), ("--resv-type", "Shared"), ("--preempt-policy", "everyone")],
)
def test_bad_reservation_flags_are_usage_errors(
    engine: EngineProcess, flags: tuple[str, str]
) -> None:
    done = engine.client("nexus", "create", str(uuid.uuid4()), "8", "malloc:///m?size_mb=8", *flags)
    assert done.returncode == 2
    assert flags[0] in done.stderr
