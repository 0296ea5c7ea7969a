"""Fencing across io-engines: a nexus superseded by a newer one over the same replicas
never changes them again.

Three real io-engines: `node-c` holds two shared replicas; nexus A (on `node-a`, or on
`node-c` itself over ``bdev:///`` handles) reserves them with key 0xa and serves a host;
nexus B (on `node-b`) is made over the same replicas with key 0xb and the Holder
preemption policy. A's next write fails with the path status Asymmetric Access
Inaccessible, A is fenced (its subsystem ANA Inaccessible, `nexus list` says so), and
the replicas hold only what A wrote before B and what B wrote. Everything is driven
through `mayastor-client` and our initiator over real TCP.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mayastor.bdev import NvmfDevice
from mayastor.cluster.processes import EngineProcess
from mayastor.errors import AnaInaccessible
from mayastor.nvmf.host import ControllerOptions
from mayastor.nvmf.spec import AnaLog, AnaState, LogPageId, PathStatus, StatusCodeType
from tests.conformance.block_device import pattern
from tests.integration.conftest import make_sparse_file
from tests.support.verified_writes import TESTER_NQN

pytestmark = pytest.mark.slow

NEXUS_A = str(uuid.UUID("fe0ce000-0000-4000-8000-00000000000a"))
NEXUS_B = str(uuid.UUID("fe0ce000-0000-4000-8000-00000000000b"))
SIZE_MIB = 8
VERIFIER_NQN = "nqn.2019-05.io.openebs:node-name:verifier"


def client_json(engine: EngineProcess, *args: str) -> Any:
    return json.loads(engine.client("-o", "json", *args, check=True).stdout)


@dataclass
class Trio:
    a: EngineProcess
    b: EngineProcess
    c: EngineProcess
    shared: list[str]  # the replicas' nvmf:// URIs
    local: list[str]  # the same replicas as node-c reaches them in-process

    def nexus(self, engine: EngineProcess, nexus_uuid: str) -> dict[str, Any]:
        (found,) = [n for n in client_json(engine, "nexus", "list") if n["uuid"] == nexus_uuid]
        return dict(found)


@pytest.fixture
def trio(engines: Callable[..., EngineProcess], tmp_path: Path) -> Trio:
    nodes = []
    for name in ("node-a", "node-b", "node-c"):
        disk = make_sparse_file(tmp_path / f"{name}.img", 64 << 20)
        nodes.append(engines(name, pools=[f"pool={disk}"]))
    a, b, c = nodes
    shared, local = [], []
    for name in ("r1", "r2"):
        replica = client_json(
            c, "replica", "create", "pool", name, f"--size={SIZE_MIB}", "--share", "nvmf"
        )
        shared.append(replica["uri"])
        local.append(f"bdev:///{name}?uuid={replica['uuid']}")
    return Trio(a, b, c, shared, local)


def create(engine: EngineProcess, nexus_uuid: str, children: list[str], *flags: str) -> str:
    """Create and publish a nexus for the tester; its nvmf:// URI."""
    client_json(engine, "nexus", "create", nexus_uuid, str(SIZE_MIB), *children, *flags)
    published = client_json(engine, "nexus", "publish", nexus_uuid, "--allowed-host", TESTER_NQN)
    return str(published["device_uri"])


async def host_of(uri: str) -> NvmfDevice:
    options = ControllerOptions(hostnqn=TESTER_NQN, io_queues=1, ctrl_loss_timeout=0)
    return await NvmfDevice.open(uri, options=options)


async def read_replica(uri: str, lba: int) -> bytes:
    device = await NvmfDevice.open(uri, options=ControllerOptions(hostnqn=VERIFIER_NQN))
    try:
        return bytes(await device.read(lba, 8))
    finally:
        await device.close()


async def ana_state(device: NvmfDevice) -> int:
    log = AnaLog.decode(await device.controller.get_log_page(LogPageId.ANA, 4096))
    return log.groups[0].state


async def supersede_and_check(trio: Trio, old_on: EngineProcess, old_children: list[str]) -> None:
    old_uri = await asyncio.to_thread(create, old_on, NEXUS_A, old_children, "--resv-key", "0xa")
    old = await host_of(old_uri)
    new: NvmfDevice | None = None
    try:
        await old.write(0, pattern(4096, 1))  # before the takeover
        new_uri = await asyncio.to_thread(
            create, trio.b, NEXUS_B, trio.shared, "--resv-key", "0xb", "--preempt-policy", "holder"
        )
        with pytest.raises(AnaInaccessible) as refused:
            await old.write(8, pattern(4096, 2))
        status = refused.value.status
        assert (status.sct, status.sc, status.dnr) == (
            StatusCodeType.PATH,
            PathStatus.ANA_INACCESSIBLE,
            False,
        )
        listed = await asyncio.to_thread(trio.nexus, old_on, NEXUS_A)
        assert listed["fenced"] is True
        assert "reservation conflict" in listed["fence_reason"]
        assert listed["state"] == "NEXUS_FAULTED"
        assert listed["ana_state"] == "NVME_ANA_INACCESSIBLE_STATE"
        assert all(c["state"] == "CHILD_STATE_ONLINE" for c in listed["children"])
        assert await ana_state(old) == AnaState.INACCESSIBLE
        table = await asyncio.to_thread(old_on.client, "nexus", "list", check=True)
        assert "fenced" in table.stdout
        with pytest.raises(AnaInaccessible):
            await old.read(0, 8)
        new = await host_of(new_uri)
        assert bytes(await new.read(0, 8)) == pattern(4096, 1)
        await new.write(16, pattern(4096, 3))
    finally:
        await old.close()
        if new is not None:
            await new.close()
    # B releases on destroy; then every replica is read directly.
    await asyncio.to_thread(trio.b.client, "nexus", "destroy", NEXUS_B, check=True)
    for uri in trio.shared:
        assert await read_replica(uri, 0) == pattern(4096, 1), uri
        assert await read_replica(uri, 8) == bytes(4096), uri  # A's write after B: nowhere
        assert await read_replica(uri, 16) == pattern(4096, 3), uri
    await asyncio.to_thread(old_on.client, "nexus", "destroy", NEXUS_A, check=True)


async def test_a_newer_nexus_fences_the_old_one_on_another_io_engine(trio: Trio) -> None:
    await supersede_and_check(trio, trio.a, trio.shared)


async def test_an_old_nexus_on_the_replicas_own_io_engine_is_fenced_too(trio: Trio) -> None:
    await supersede_and_check(trio, trio.c, trio.local)


async def test_without_a_preempt_policy_a_newer_nexus_is_refused(trio: Trio) -> None:
    await asyncio.to_thread(create, trio.a, NEXUS_A, trio.shared, "--resv-key", "0xa")
    refused = await asyncio.to_thread(
        trio.b.client,
        "nexus",
        "create",
        NEXUS_B,
        str(SIZE_MIB),
        *trio.shared,
        "--resv-key",
        "0xb",
    )
    assert refused.returncode == 1
    assert "permission_denied" in refused.stderr
    assert "reservation" in refused.stderr
    listed = await asyncio.to_thread(trio.nexus, trio.a, NEXUS_A)
    assert listed["fenced"] is False
