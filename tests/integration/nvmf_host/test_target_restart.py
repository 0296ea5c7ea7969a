"""Our target killed (SIGKILL) under load and started again: the initiator reports the
lost path for the writes in flight, reconnects, I/O resumes, and every write that was
acknowledged is on the target's disk."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mayastor.bdev import NvmfDevice
from mayastor.errors import PathLost
from mayastor.nvmf.host import Controller, ControllerState
from mayastor.target import openebs_nqn
from tests.conformance.block_device import pattern
from tests.integration.nvmf_host.conftest import options

ROOT = Path(__file__).resolve().parents[3]
SIZE = 16 << 20
BLOCKS_PER_WRITE = 8
WRITERS = 8
SLOTS_PER_WRITER = 64


def state_of(controller: Controller) -> ControllerState:
    """The controller's state now (a call, so mypy does not keep an earlier narrowing)."""
    return controller.state


class TargetProcess:
    """Our target serving `backing` as `nqn`, in a child process that tests may kill."""

    def __init__(self, backing: Path) -> None:
        self.backing = backing
        self.replica = uuid.uuid4()
        self.nqn = openebs_nqn(self.replica)
        self.port = 0
        self.processes: list[asyncio.subprocess.Process] = []

    async def start(self) -> None:
        """Start it (on the port it had before, if any)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.integration.nvmf_host.target_process",
            "--file",
            str(self.backing),
            "--nqn",
            self.nqn,
            "--uuid",
            str(self.replica),
            "--port",
            str(self.port),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        self.processes.append(proc)
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = (await proc.stdout.readline()).decode()
        assert line.startswith("READY "), line
        self.port = int(line.split()[1])

    def kill(self) -> None:
        self.processes[-1].kill()

    async def stop(self) -> None:
        for proc in self.processes:
            if proc.returncode is None:
                proc.terminate()
            await proc.wait()


@pytest.fixture
async def target(tmp_path: Path) -> AsyncIterator[TargetProcess]:
    backing = tmp_path / "replica.img"
    backing.touch()
    os.truncate(backing, SIZE)
    process = TargetProcess(backing)
    await process.start()
    yield process
    await process.stop()


async def test_a_target_killed_under_load_and_restarted_loses_no_acknowledged_write(
    target: TargetProcess,
) -> None:
    dev = await NvmfDevice.open(
        f"nvmf://127.0.0.1:{target.port}/{target.nqn}",
        options=options(
            io_queues=2, reconnect_delay=0.2, ctrl_loss_timeout=30.0, fast_io_fail_timeout=None
        ),
    )
    acknowledged: dict[int, bytes] = {}
    lost: list[PathLost] = []
    acks = [0]
    stop = asyncio.Event()

    async def writer(worker: int) -> None:
        seq = 0
        while not stop.is_set():
            lba = (worker * SLOTS_PER_WRITER + seq % SLOTS_PER_WRITER) * BLOCKS_PER_WRITE
            data = pattern(BLOCKS_PER_WRITE * 512, worker * 1_000_000 + seq)
            try:
                await dev.write(lba, data)
            except PathLost as exc:
                lost.append(exc)
                acknowledged.pop(lba, None)
            else:
                acknowledged[lba] = data
                acks[0] += 1
            seq += 1

    workers = [asyncio.ensure_future(writer(w)) for w in range(WRITERS)]
    try:
        try:
            async with asyncio.timeout(60):
                while acks[0] < 200:
                    await asyncio.sleep(0.01)
                target.kill()
                while state_of(dev.controller) is not ControllerState.RECONNECTING:
                    await asyncio.sleep(0.01)
                await target.start()
                before = acks[0]
                while (
                    state_of(dev.controller) is not ControllerState.LIVE or acks[0] < before + 200
                ):
                    await asyncio.sleep(0.01)
        finally:
            stop.set()
            await asyncio.gather(*workers)
        assert dev.controller.reconnects == 1
        assert lost, "the writes in flight when the target died were not reported"
        for lba, data in acknowledged.items():
            assert bytes(await dev.read(lba, BLOCKS_PER_WRITE)) == data, lba
    finally:
        await dev.close()
    on_disk = target.backing.read_bytes()
    wrong = [
        lba
        for lba, data in acknowledged.items()
        if on_disk[lba * 512 : lba * 512 + len(data)] != data
    ]
    assert wrong == []
