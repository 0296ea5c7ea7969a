"""Our initiator against a reference target: the Linux kernel's nvmet-tcp, in a VM.

One VM boots for the whole module (`nvmf_host_kernel_target.sh`); the host reaches
its target through a qemu hostfwd port on 127.0.0.1. Under TCG the guest is slow:
these tests check behaviour (connect, identify, data verified with and without
digests, deep queues, keep alive, refusals, a target that goes away and comes back),
never speed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mayastor.bdev import BlockDevice, NvmfDevice
from mayastor.errors import ConnectInvalidParameters, ConnectRefused, PathLost
from mayastor.nvmf.host import Controller, ControllerOptions, ControllerState, discover
from mayastor.nvmf.spec import SubsystemType
from tests.conformance.block_device import BlockDeviceConformance, pattern

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
GUEST_SCRIPT = HERE / "nvmf_host_kernel_target.sh"
RUN_GUEST_CANDIDATES = (
    HERE / "kernel_initiator" / "run-guest",
    Path("/work/shared/tools/kernel-initiator/run-guest"),
)
NQN = "nqn.2024-01.io.example:initiator-peer"
NS_MB = 32
BOOT_TIMEOUT = 120.0
HOSTNQN = "nqn.2019-05.io.openebs:node-name:interop"


def state_of(controller: Controller) -> ControllerState:
    """The controller's state now (a call, so mypy does not keep an earlier narrowing)."""
    return controller.state


@dataclass
class KernelTarget:
    """The guest's nvmet-tcp target, as the host reaches it."""

    port: int
    control: Path

    @property
    def uri(self) -> str:
        return f"nvmf://127.0.0.1:{self.port}/{NQN}"

    async def _order(self, what: str) -> None:
        done = self.control / f"{what}.done"
        done.unlink(missing_ok=True)
        (self.control / what).touch()
        deadline = time.monotonic() + 60
        while not done.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the guest did not answer {what!r}")
            await asyncio.sleep(0.05)

    async def go_away(self) -> None:
        """Unlink the subsystems from the port: connections drop, nothing listens."""
        await self._order("down")

    async def come_back(self) -> None:
        await self._order("up")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def kernel_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelTarget]:
    run_guest = next((p for p in RUN_GUEST_CANDIDATES if p.exists()), RUN_GUEST_CANDIDATES[0])
    work = tmp_path_factory.mktemp("kernel-target")
    control = work / "ctl"
    control.mkdir()
    log_path = work / "console.log"
    port = _free_port()
    argv = [
        str(run_guest),
        "--script",
        str(GUEST_SCRIPT),
        "--hostfwd",
        f"{port}:4420",
        "--share",
        f"{control}:/mnt/ctl",
        "--env",
        f"NQN={NQN}",
        "--env",
        f"NS_MB={NS_MB}",
        "--no-tools",
        "--timeout",
        "600",
    ]
    with open(log_path, "wb") as log:
        vm = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while b"NVMF-HOST-PEER-READY" not in log_path.read_bytes():
            if vm.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the kernel target VM did not come up:\n{log_path.read_text(errors='replace')}"
                )
            time.sleep(0.2)
        yield KernelTarget(port, control)
    finally:
        (control / "stop").touch()
        try:
            vm.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(vm.pid, signal.SIGTERM)
            vm.wait(timeout=30)


def options(**kwargs: object) -> ControllerOptions:
    defaults: dict[str, object] = {"hostnqn": HOSTNQN, "io_timeout": 20.0, "connect_timeout": 20.0}
    defaults.update(kwargs)
    return ControllerOptions(**defaults)  # type: ignore[arg-type]


# ------------------------------------------------------------------ discovery and identify


async def test_discovery_lists_the_subsystem_we_may_use_and_not_the_closed_one(
    kernel_target: KernelTarget,
) -> None:
    page = await discover("127.0.0.1", kernel_target.port, options())
    subsystems = {e.subnqn: e for e in page.entries if e.subtype == SubsystemType.NVME}
    assert set(subsystems) == {NQN}
    assert subsystems[NQN].trsvcid == "4420"


async def test_connect_identifies_the_linux_controller_and_its_namespace(
    kernel_target: KernelTarget,
) -> None:
    controller = Controller("127.0.0.1", kernel_target.port, NQN, options(io_queues=2))
    await controller.connect()
    try:
        assert controller.state is ControllerState.LIVE
        assert controller.identify.mn == "Linux"
        assert controller.identify.subnqn == NQN
        assert controller.io_queue_count == 2
        assert await controller.active_namespaces() == [1]
        namespace = await controller.identify_namespace(1)
        assert namespace.nsze * namespace.block_size == NS_MB << 20
    finally:
        await controller.close()
    assert state_of(controller) is ControllerState.CLOSED


async def test_a_subsystem_that_does_not_allow_our_host_refuses_the_connect(
    kernel_target: KernelTarget,
) -> None:
    with pytest.raises(ConnectRefused):
        await NvmfDevice.open(f"{kernel_target.uri}-closed", options=options())


async def test_a_subsystem_that_does_not_exist_is_an_invalid_connect_parameter(
    kernel_target: KernelTarget,
) -> None:
    controller = Controller("127.0.0.1", kernel_target.port, f"{NQN}-missing", options())
    with pytest.raises(ConnectInvalidParameters):
        await controller.connect()
    assert controller.state is ControllerState.IDLE


# ------------------------------------------------------------------ data


VARIANTS = {
    "no-digests": {},
    "digests": {"header_digest": True, "data_digest": True},
    "no-sq-flow-control": {"disable_sq_flow_control": True},
}


@pytest.fixture(params=list(VARIANTS))
async def device(
    request: pytest.FixtureRequest, kernel_target: KernelTarget
) -> AsyncIterator[NvmfDevice]:
    dev = await NvmfDevice.open(
        kernel_target.uri, options=options(io_queues=2, **VARIANTS[request.param])
    )
    await dev.write_zeroes(0, dev.num_blocks)
    yield dev
    await dev.close()


async def test_transfers_from_512_bytes_to_4_mib_read_back(device: NvmfDevice) -> None:
    sizes = [1, 7, 8, 255, 256, 2048, 8192]  # blocks of 512 bytes: 512 B .. 4 MiB
    places = []
    lba = 3
    for seed, nblocks in enumerate(sizes):
        places.append((lba, nblocks, pattern(nblocks * 512, seed)))
        lba += nblocks + 5
    await asyncio.gather(*(device.write(lba, data) for lba, _, data in places))
    reads = await asyncio.gather(*(device.read(lba, n) for lba, n, _ in places))
    assert [bytes(r) == data for r, (_, _, data) in zip(reads, places, strict=True)] == [True] * 7


async def test_a_deep_queue_of_concurrent_writes_and_reads_is_verified(device: NvmfDevice) -> None:
    count = 2 * 128
    datas = [pattern(4096, 1000 + i) for i in range(count)]
    await asyncio.gather(*(device.write(8 * i, d) for i, d in enumerate(datas)))
    reads = await asyncio.gather(*(device.read(8 * i, 8) for i in range(count)))
    assert sum(bytes(r) == d for r, d in zip(reads, datas, strict=True)) == count


class TestConformanceOnTheKernelTarget(BlockDeviceConformance):
    @pytest.fixture
    async def device(self, kernel_target: KernelTarget) -> AsyncIterator[BlockDevice]:
        dev = await NvmfDevice.open(kernel_target.uri, options=options())
        await dev.write_zeroes(0, dev.num_blocks)
        yield dev
        await dev.close()


# ------------------------------------------------------------------ keep alive and path loss


@pytest.mark.slow
async def test_keep_alive_keeps_an_idle_controller_connected(kernel_target: KernelTarget) -> None:
    dev = await NvmfDevice.open(kernel_target.uri, options=options(keep_alive_timeout=2.0))
    try:
        await asyncio.sleep(5.0)
        assert dev.controller.state is ControllerState.LIVE
        assert dev.controller.reconnects == 0
        await dev.write(0, pattern(512, 5))
        assert bytes(await dev.read(0, 1)) == pattern(512, 5)
    finally:
        await dev.close()


@pytest.mark.slow
async def test_a_target_that_goes_away_under_load_is_reported_then_io_resumes(
    kernel_target: KernelTarget,
) -> None:
    dev = await NvmfDevice.open(
        kernel_target.uri,
        options=options(reconnect_delay=0.5, ctrl_loss_timeout=60.0, fast_io_fail_timeout=None),
    )
    acknowledged: dict[int, bytes] = {}
    lost: list[PathLost] = []
    acks = [0]
    stop = asyncio.Event()

    async def writer(worker: int) -> None:
        seq = 0
        while not stop.is_set():
            lba = (worker * 1024 + seq % 1024) * 8
            data = pattern(4096, worker * 1_000_000 + seq)
            try:
                await dev.write(lba, data)
            except PathLost as exc:
                lost.append(exc)
                acknowledged.pop(lba, None)
            else:
                acknowledged[lba] = data
                acks[0] += 1
            seq += 1

    workers = [asyncio.ensure_future(writer(w)) for w in range(4)]
    outages = 0
    try:
        try:
            async with asyncio.timeout(240):
                # The kernel may answer every write in flight before it drops the
                # connection (a host descheduled meanwhile then sees the answers and the
                # close together, with nothing in flight): go away again until some were.
                while outages < 3 and not lost:
                    before = acks[0]
                    while acks[0] < before + 50:
                        await asyncio.sleep(0.05)
                    await kernel_target.go_away()
                    outages += 1
                    while state_of(dev.controller) is not ControllerState.RECONNECTING:
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(1.0)
                    await kernel_target.come_back()
                    before = acks[0]
                    while (
                        state_of(dev.controller) is not ControllerState.LIVE
                        or acks[0] < before + 50
                    ):
                        await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.gather(*workers)
        assert dev.controller.reconnects == outages
        assert lost, f"no write in flight was reported lost over {outages} outages"
        assert all(exc.lba is not None for exc in lost)
        for lba, data in acknowledged.items():
            assert bytes(await dev.read(lba, 8)) == data, lba
    finally:
        await dev.close()
