"""A published nexus: the URI `nexus publish` prints, and who may connect to it."""

from __future__ import annotations

import asyncio

import pytest

from mayastor.bdev import NvmfDevice
from mayastor.errors import ConnectRefused
from mayastor.nvmf.host import ControllerOptions
from tests.integration.nexus.conftest import NEXUS_SIZE_MIB, NEXUS_UUID, Cluster
from tests.support.verified_writes import TESTER_NQN

STRANGER_NQN = "nqn.2014-08.org.nvmexpress:uuid:5742a11e-0000-4000-8000-00000000beef"


def test_nexus_publish_prints_the_uri_an_allowed_host_connects_to(cluster: Cluster) -> None:
    cluster.create_nexus()
    out = cluster.a.engine.client(
        "nexus", "publish", NEXUS_UUID, "--allowed-host", TESTER_NQN, check=True
    ).stdout
    uri = out.strip()
    assert uri == (
        f"nvmf://127.0.0.1:{cluster.a.engine.nexus_port}/nqn.2019-05.io.openebs:{NEXUS_UUID}"
    )

    async def write_and_read() -> bytes:
        device = await NvmfDevice.open(uri, options=ControllerOptions(hostnqn=TESTER_NQN))
        try:
            assert device.size == NEXUS_SIZE_MIB << 20
            await device.write(8, b"\x5a" * 4096)
            return bytes(await device.read(8, 4096 // device.block_size))
        finally:
            await device.close()

    assert asyncio.run(write_and_read()) == b"\x5a" * 4096


def test_a_host_not_on_the_allow_list_is_refused_by_the_published_nexus(
    published_nexus: Cluster,
) -> None:
    async def connect() -> None:
        device = await NvmfDevice.open(
            published_nexus.nexus_uri, options=ControllerOptions(hostnqn=STRANGER_NQN)
        )
        await device.close()

    with pytest.raises(ConnectRefused, match=r"(?i)host"):
        asyncio.run(connect())
