"""Fixtures for our initiator against our target: an in-process target serving malloc
namespaces, and a fault proxy in front of it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from mayastor.bdev import MallocDevice
from mayastor.nvmf.host import ControllerOptions
from mayastor.target import NvmfTarget, TargetConfig, openebs_nqn
from tests.integration.nvmf_host.proxy import FaultProxy

HOSTNQN = "nqn.2019-05.io.openebs:node-name:initiator-test"
NS_BLOCKS = 32768  # 16 MiB of 512-byte blocks


@dataclass
class Served:
    """One subsystem of the test target."""

    target: NvmfTarget
    port: int
    nqn: str
    device: MallocDevice

    def uri(self, port: int | None = None) -> str:
        return f"nvmf://127.0.0.1:{port or self.port}/{self.nqn}"


ServeFn = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve() -> AsyncIterator[ServeFn]:
    """Factory: a fresh in-process target serving one malloc namespace."""
    targets: list[tuple[NvmfTarget, MallocDevice]] = []

    async def make(
        *,
        config: TargetConfig | None = None,
        allowed_hosts: list[str] | None = None,
        block_size: int = 512,
        num_blocks: int = NS_BLOCKS,
    ) -> Served:
        target = NvmfTarget("127.0.0.1", config=config)
        device = MallocDevice(f"m{len(targets)}", num_blocks, block_size)
        targets.append((target, device))
        port = await target.listen(0)
        nqn = openebs_nqn(uuid.uuid4())
        target.add_subsystem(nqn, device, port=port, allowed_hosts=allowed_hosts)
        return Served(target, port, nqn, device)

    yield make
    for target, device in targets:
        await target.close()
        await device.close()


@pytest.fixture
async def served(serve: ServeFn) -> Served:
    return await serve()


@pytest.fixture
async def proxy(served: Served) -> AsyncIterator[FaultProxy]:
    fault_proxy = FaultProxy(served.port)
    await fault_proxy.start()
    yield fault_proxy
    await fault_proxy.close()


def options(**kwargs: object) -> ControllerOptions:
    """Options for tests: our host NQN and short timeouts unless a test says otherwise."""
    defaults: dict[str, object] = {
        "hostnqn": HOSTNQN,
        "io_timeout": 10.0,
        "connect_timeout": 5.0,
        "reconnect_delay": 0.1,
    }
    defaults.update(kwargs)
    return ControllerOptions(**defaults)  # type: ignore[arg-type]
