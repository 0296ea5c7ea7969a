"""The write ledger of the failure tests catches lost writes and accepts uncertain ones."""

from __future__ import annotations

import random

from mayastor.bdev import MallocDevice
from tests.support.verified_writes import WriteLedger, unit_data


async def test_acknowledged_writes_that_read_back_pass() -> None:
    dev = MallocDevice("m", num_blocks=256, block_size=512)
    ledger = WriteLedger(512, 8)
    data = unit_data(8, 1, 4096, random.Random(1))
    await dev.write(8, data)
    ledger.record(8, data, ok=True)
    assert await ledger.verify(dev) == []
    await dev.close()


async def test_a_lost_acknowledged_write_is_reported() -> None:
    dev = MallocDevice("m", num_blocks=256, block_size=512)
    ledger = WriteLedger(512, 8)
    ledger.record(16, unit_data(16, 1, 4096, random.Random(1)), ok=True)
    (wrong,) = await ledger.verify(dev)
    assert wrong.lba == 16
    assert wrong.reason == "zeroes"
    await dev.close()


async def test_a_failed_write_may_have_landed_or_not() -> None:
    dev = MallocDevice("m", num_blocks=256, block_size=512)
    ledger = WriteLedger(512, 8)
    rng = random.Random(2)
    first, second = unit_data(0, 1, 4096, rng), unit_data(0, 2, 4096, rng)
    await dev.write(0, first)
    ledger.record(0, first, ok=True)
    ledger.record(0, second, ok=False)
    assert await ledger.verify(dev) == []
    await dev.write(0, second)
    assert await ledger.verify(dev) == []
    await dev.write(0, unit_data(0, 3, 4096, rng))
    assert [m.reason for m in await ledger.verify(dev)] == ["other"]
    await dev.close()
