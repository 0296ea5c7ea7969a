"""Writes whose fate is recorded, so a test can prove no acknowledged write was lost.

`WriteLedger` keeps, for every block written, the contents it may hold now: after an
acknowledged write, exactly the data written; after a write that failed or whose
answer never came (the process died, the path went away), either the old or the new
data. `verify` reads every recorded block back and reports those that hold anything
else.

`BackgroundLoad` runs a write load against an ``nvmf://`` URI in a thread of its own
(its own event loop and our initiator), so synchronous tests can SIGKILL, SIGSTOP and
restart io-engines while it runs. Errors do not stop it: it records them, waits a
little and goes on, so I/O resumes by itself when the path comes back.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from mayastor.bdev import BlockDevice, NvmfDevice
from mayastor.errors import MayastorError
from mayastor.nvmf.host import ControllerOptions

TESTER_NQN = "nqn.2014-08.org.nvmexpress:uuid:7e57e57e-0000-4000-8000-00000000f00d"


def fingerprint(data: bytes | bytearray | memoryview) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


ZEROES: dict[int, bytes] = {}


def zero_fingerprint(size: int) -> bytes:
    if size not in ZEROES:
        ZEROES[size] = fingerprint(bytes(size))
    return ZEROES[size]


@dataclass
class Mismatch:
    lba: int
    allowed: int  # how many contents were acceptable
    reason: str


@dataclass
class WriteLedger:
    """What each written unit (``unit_blocks`` blocks at a multiple of them) may hold.

    Units never written are expected to hold zeroes when `fresh` (a new device).
    """

    block_size: int
    unit_blocks: int
    fresh: bool = True
    may_hold: dict[int, set[bytes]] = field(default_factory=dict)
    acknowledged: int = 0
    failed: int = 0

    @property
    def unit_bytes(self) -> int:
        return self.block_size * self.unit_blocks

    def _current(self, lba: int) -> set[bytes]:
        found = self.may_hold.get(lba)
        if found is None:
            return {zero_fingerprint(self.unit_bytes)} if self.fresh else set()
        return found

    def record(self, lba: int, data: bytes, ok: bool) -> None:
        """Record the outcome of writing `data` to the unit at `lba`."""
        new = fingerprint(data)
        if ok:
            self.may_hold[lba] = {new}
            self.acknowledged += 1
        else:
            self.may_hold[lba] = self._current(lba) | {new}
            self.failed += 1

    def units(self) -> list[int]:
        return sorted(self.may_hold)

    async def verify(
        self, device: BlockDevice, lbas: Iterable[int] | None = None
    ) -> list[Mismatch]:
        """Read every recorded unit of `device`; the ones holding anything unexpected."""
        wrong: list[Mismatch] = []
        for lba in sorted(lbas if lbas is not None else self.may_hold):
            data = bytes(await device.read(lba, self.unit_blocks))
            allowed = self.may_hold.get(lba) or self._current(lba)
            if fingerprint(data) not in allowed:
                reason = "zeroes" if fingerprint(data) == zero_fingerprint(len(data)) else "other"
                wrong.append(Mismatch(lba, len(allowed), reason))
        return wrong


def unit_data(lba: int, seq: int, size: int, rng: random.Random) -> bytes:
    """Distinct data for each write: the unit's LBA and a sequence number, then noise."""
    head = lba.to_bytes(8, "little") + seq.to_bytes(8, "little")
    return head + rng.randbytes(size - len(head))


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
