"""Writes whose fate is recorded, so a test can prove no acknowledged write was lost.

The ledger (`WriteLedger`, `unit_data`, `fingerprint`) is in `tests.support.write_ledger`
and is exported here too.

`BackgroundLoad` runs a write load against an ``nvmf://`` URI in a thread of its own
(its own event loop and our initiator), so synchronous tests can SIGKILL, SIGSTOP and
restart io-engines while it runs. Errors do not stop it: it records them, waits a
little and goes on, so I/O resumes by itself when the path comes back.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time

from mayastor.bdev import NvmfDevice
from mayastor.errors import MayastorError
from mayastor.nvmf.host import ControllerOptions
from tests.support.write_ledger import (
    Mismatch,
    WriteLedger,
    fingerprint,
    unit_data,
    zero_fingerprint,
)

__all__ = [
    "TESTER_NQN",
    "BackgroundLoad",
    "Mismatch",
    "WriteLedger",
    "fingerprint",
    "read_all",
    "unit_data",
    "verify_uri",
    "zero_fingerprint",
]

TESTER_NQN = "nqn.2014-08.org.nvmexpress:uuid:7e57e57e-0000-4000-8000-00000000f00d"


class BackgroundLoad:
    """Random writes (and some reads) kept in flight against an nvmf URI, in a thread.

    Args:
        uri: the device to write (a published nexus, a shared replica).
        units: how many units of `unit_blocks` blocks, from LBA 0, it writes over.
        depth: writes in flight at once; no two ever target the same unit.
        hostnqn: who we are to the target.
        options: initiator options (timeouts).
    """

    def __init__(
        self,
        uri: str,
        *,
        units: int = 1024,
        unit_blocks: int = 8,
        depth: int = 8,
        hostnqn: str = TESTER_NQN,
        options: ControllerOptions | None = None,
        seed: int = 1,
    ) -> None:
        self.uri = uri
        self.units = units
        self.unit_blocks = unit_blocks
        self.depth = depth
        self.options = options or ControllerOptions(
            hostnqn=hostnqn,
            io_timeout=10.0,
            reconnect_delay=0.5,
            ctrl_loss_timeout=None,
            fast_io_fail_timeout=0.0,
        )
        self.rng = random.Random(seed)
        self.ledger: WriteLedger | None = None
        self.errors: list[str] = []
        self.completed_at: list[float] = []
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._failure: BaseException | None = None

    # ------------------------------------------------------------ control (sync)

    def start(self, timeout: float = 30.0) -> BackgroundLoad:
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError(f"the write load did not connect to {self.uri}: {self.errors}")
        if self._failure is not None:
            raise RuntimeError(f"the write load could not start: {self._failure!r}")
        return self

    def stop(self) -> WriteLedger:
        self._stop.set()
        self._thread.join(timeout=120)
        if self._thread.is_alive():
            raise RuntimeError("the write load did not stop")
        if self._failure is not None:
            raise RuntimeError(f"the write load failed: {self._failure!r}")
        assert self.ledger is not None
        return self.ledger

    def acknowledged_since(self, when: float) -> int:
        """Writes acknowledged after `when` (time.monotonic)."""
        return sum(1 for t in self.completed_at if t > when)

    def wait_for_progress(self, writes: int = 50, timeout: float = 30.0) -> None:
        """Block until `writes` more writes have been acknowledged."""
        start = time.monotonic()
        while self.acknowledged_since(start) < writes:
            if time.monotonic() - start > timeout:
                raise AssertionError(
                    f"fewer than {writes} writes acknowledged in {timeout} s; "
                    f"last errors: {self.errors[-3:]}"
                )
            time.sleep(0.05)

    # ------------------------------------------------------------ the loop

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start/stop
            self._failure = exc
            self._started.set()

    async def _main(self) -> None:
        device = await NvmfDevice.open(self.uri, options=self.options)
        try:
            self.ledger = WriteLedger(device.block_size, self.unit_blocks)
            self._started.set()
            busy: set[int] = set()
            seq = 0

            async def writer() -> None:
                nonlocal seq
                assert self.ledger is not None
                size = self.ledger.unit_bytes
                while not self._stop.is_set():
                    unit = self.rng.randrange(self.units)
                    if unit in busy:
                        await asyncio.sleep(0)
                        continue
                    busy.add(unit)
                    lba = unit * self.unit_blocks
                    seq += 1
                    data = unit_data(lba, seq, size, self.rng)
                    try:
                        await device.write(lba, data)
                    except MayastorError as exc:
                        self.ledger.record(lba, data, ok=False)
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                        await asyncio.sleep(0.2)
                    else:
                        self.ledger.record(lba, data, ok=True)
                        self.completed_at.append(time.monotonic())
                    finally:
                        busy.discard(unit)

            await asyncio.gather(*(writer() for _ in range(self.depth)))
        finally:
            await device.close()


async def read_all(uri: str, *, hostnqn: str = TESTER_NQN) -> bytes:
    """The whole contents of an nvmf device."""
    device = await NvmfDevice.open(uri, options=ControllerOptions(hostnqn=hostnqn))
    try:
        step = (1 << 20) // device.block_size
        parts = [
            bytes(await device.read(lba, min(step, device.num_blocks - lba)))
            for lba in range(0, device.num_blocks, step)
        ]
        return b"".join(parts)
    finally:
        await device.close()


async def verify_uri(ledger: WriteLedger, uri: str, *, hostnqn: str = TESTER_NQN) -> list[Mismatch]:
    """`ledger.verify` over a fresh connection to `uri`."""
    device = await NvmfDevice.open(uri, options=ControllerOptions(hostnqn=hostnqn))
    try:
        return await ledger.verify(device)
    finally:
        await device.close()
