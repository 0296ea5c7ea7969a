"""Crash safety, in-process: random workloads, power cuts and process crashes at any command.

Each round creates a small pool on a `SimDisk` (16 MiB, 1 MiB clusters, so the pool fills
up, the journal wraps into checkpoints and clusters are reused) and runs generations of
a random workload: lvol create/destroy/resize/set-properties, pool grow, concurrent
writes to thick and thin lvols (thin allocation, group commit, pool full), unmap, write
zeroes, flush. The disk dies at a random command; what survives is either everything
that reached its cache (process crash) or the durable image plus a random subset of the
unflushed writes with one torn at a block boundary (power cut). The pool is imported
from that and checked against a model of what was acknowledged:

* every acknowledged metadata change is there; an interrupted one is all there or not at all;
* every acknowledged write reads back after a process crash; after a power cut, every
  block holds its value as of the lvol's last acknowledged flush or a later write;
* unwritten blocks (including clusters that other lvols used before) read as zeroes;
* no cluster belongs to two lvols; thick lvols have all their clusters; used space is
  the sum of the allocations, and filling the pool takes exactly the free clusters.

Then the next generation goes on from the imported pool (so crashes also hit a pool
recovered from a crash). Seeds are fixed, so a failure names a reproducible round.
"""

from __future__ import annotations

import asyncio
import random
import uuid as uuid_mod
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from mayastor.errors import (
    AlreadyExists,
    DeviceError,
    FailedPrecondition,
    MayastorError,
    NoSpace,
    ResourceExhausted,
)
from mayastor.lvs import Lvol, LvolProperties, Pool, ShareProtocol
from tests.unit.lvs.disks import SimDisk

MIB = 1 << 20
CLUSTER = MIB
NAMES = [f"lv{i}" for i in range(7)]
ROUNDS = 30


def block_of(tag: int, bs: int) -> bytes:
    return tag.to_bytes(8, "little") * (bs // 8)


@dataclass
class LvolModel:
    uuid: uuid_mod.UUID
    name: str
    size: int
    thin: bool
    props: LvolProperties
    last: dict[int, int] = field(default_factory=dict)
    maybe: dict[int, set[int]] = field(default_factory=dict)
    cand: dict[int, set[int]] = field(default_factory=dict)

    def meta(self) -> tuple[str, int, bool, LvolProperties]:
        return (self.name, self.size, self.thin, self.props)

    def acked(self, block: int, tag: int) -> None:
        self.last[block] = tag
        self.cand.setdefault(block, {0}).add(tag)
        self.maybe.pop(block, None)

    def failed(self, block: int, tag: int) -> None:
        self.maybe.setdefault(block, set()).add(tag)
        self.cand.setdefault(block, {0}).add(tag)

    def flushed(self) -> None:
        blocks = set(self.cand) | set(self.last)
        self.cand = {b: {self.last.get(b, 0)} | self.maybe.get(b, set()) for b in blocks}

    def truncate(self, nblocks: int) -> None:
        for d in (self.last, self.maybe, self.cand):
            for b in [b for b in d if b >= nblocks]:
                del d[b]


@dataclass
class Model:
    lvols: dict[uuid_mod.UUID, LvolModel] = field(default_factory=dict)
    capacity: int = 0

    def metas(self) -> dict[uuid_mod.UUID, tuple[str, int, bool, LvolProperties]]:
        return {u: m.meta() for u, m in self.lvols.items()}


@dataclass
class InFlight:
    """What was going on when the power went off."""

    metas: list[dict[uuid_mod.UUID, tuple[str, int, bool, LvolProperties]]]
    capacities: set[int]
    writes: dict[tuple[uuid_mod.UUID, int], set[int]] = field(default_factory=dict)
    created: LvolModel | None = None


class Crashed(Exception):
    pass


class Workload:
    def __init__(self, rng: random.Random, pool: Pool, disk: SimDisk, model: Model) -> None:
        self.rng = rng
        self.pool = pool
        self.disk = disk
        self.model = model
        self.bs = disk.block_size
        self.tag = rng.randrange(1 << 40) + 1
        self.inflight = InFlight([], set())

    def next_tag(self) -> int:
        self.tag += 1
        return self.tag

    def lvol(self, model: LvolModel) -> Lvol:
        return self.pool.lookup_uuid(model.uuid)

    def crashed_during(self, after: Model | None = None, capacity: int | None = None) -> None:
        if after is not None:
            self.inflight.metas.append(after.metas())
        if capacity is not None:
            self.inflight.capacities.add(capacity)
        raise Crashed

    async def run(self, steps: int) -> InFlight:
        actions = [
            (self.create, 4),
            (self.destroy, 2),
            (self.resize, 2),
            (self.set_props, 2),
            (self.writes, 10),
            (self.zero, 2),
            (self.flush, 3),
            (self.fill, 1),
            (self.grow, 1),
            (self.churn, 1),
        ]
        funcs = [a for a, _ in actions]
        weights = [w for _, w in actions]
        try:
            for _ in range(steps):
                await self.rng.choices(funcs, weights)[0]()
        except Crashed:
            pass
        self.disk.dead = True
        self.inflight.metas.append(self.model.metas())
        self.inflight.capacities.add(self.model.capacity)
        return self.inflight

    def _snapshot_model(self) -> Model:
        copy = Model(capacity=self.model.capacity)
        copy.lvols = dict(self.model.lvols)
        return copy

    async def create(self) -> None:
        rng = self.rng
        name = rng.choice(NAMES)
        size = rng.choice(
            [self.bs, CLUSTER, CLUSTER + self.bs, 2 * CLUSTER, rng.randrange(1, 3 * MIB)]
        )
        thin = rng.random() < 0.6
        props = self.random_props()
        new_uuid = uuid_mod.uuid4()
        rounded = -(-size // self.bs) * self.bs
        created = LvolModel(new_uuid, name, rounded, thin, props)
        try:
            await self.pool.create_lvol(name, size, uuid=new_uuid, thin=thin, properties=props)
        except AlreadyExists:
            assert any(m.name == name for m in self.model.lvols.values())
            return
        except ResourceExhausted:
            assert not thin
            return
        except MayastorError:
            if not self.disk.dead:
                raise
            after = self._snapshot_model()
            after.lvols[new_uuid] = created
            self.inflight.created = created
            self.crashed_during(after)
        self.model.lvols[new_uuid] = created

    def pick(self) -> LvolModel | None:
        if not self.model.lvols:
            return None
        return self.rng.choice(list(self.model.lvols.values()))

    async def destroy(self) -> None:
        target = self.pick()
        if target is None:
            return
        try:
            await self.pool.destroy_lvol(self.lvol(target))
        except MayastorError:
            if not self.disk.dead:
                raise
            after = self._snapshot_model()
            del after.lvols[target.uuid]
            self.crashed_during(after)
        del self.model.lvols[target.uuid]

    async def resize(self) -> None:
        target = self.pick()
        if target is None:
            return
        rng = self.rng
        size = rng.choice(
            [
                target.size + self.bs,
                target.size * 2,
                max(self.bs, target.size // 2),
                rng.randrange(1, 3 * MIB),
            ]
        )
        size = -(-size // self.bs) * self.bs
        try:
            await self.pool.resize_lvol(self.lvol(target), size)
        except (FailedPrecondition, ResourceExhausted):
            if self.disk.dead:
                raise
            return
        except MayastorError:
            if not self.disk.dead:
                raise
            after = self._snapshot_model()
            after.lvols[target.uuid] = LvolModel(
                target.uuid, target.name, size, target.thin, target.props
            )
            self.crashed_during(after)
        target.size = size
        target.truncate(size // self.bs)

    def random_props(self) -> LvolProperties:
        rng = self.rng
        share = rng.choice(list(ShareProtocol))
        hosts = tuple(
            f"nqn.2014-08.org.example:host{rng.randrange(99)}" for _ in range(rng.randrange(3))
        )
        entity = rng.choice([None, "", str(uuid_mod.UUID(int=rng.getrandbits(128)))])
        return LvolProperties(share, hosts, entity)

    async def set_props(self) -> None:
        target = self.pick()
        if target is None:
            return
        props = self.random_props()
        try:
            await self.pool.set_lvol_properties(self.lvol(target), props)
        except MayastorError:
            if not self.disk.dead:
                raise
            after = self._snapshot_model()
            after.lvols[target.uuid] = LvolModel(
                target.uuid, target.name, target.size, target.thin, props
            )
            self.crashed_during(after)
        target.props = props

    async def churn(self) -> None:
        """Many small transactions in a row: the journal fills and checkpoints rotate."""
        for _ in range(self.rng.randrange(10, 70)):
            await self.set_props()

    async def grow(self) -> None:
        if self.rng.random() < 0.5 or self.disk.capacity_blocks * self.bs >= 40 * MIB:
            return
        self.disk.grow(self.rng.choice([1, 2, 3]) * CLUSTER // self.bs)
        data_offset = self.pool._sb.data_offset
        new_capacity = (self.disk.capacity_blocks * self.bs - data_offset) // CLUSTER * CLUSTER
        try:
            grew = await self.pool.grow()
        except MayastorError:
            if not self.disk.dead:
                raise
            self.crashed_during(capacity=new_capacity)
        assert grew
        assert self.pool.capacity == new_capacity
        self.model.capacity = new_capacity

    def random_range(self, target: LvolModel) -> tuple[int, int]:
        rng = self.rng
        nblocks = target.size // self.bs
        count = min(nblocks, rng.choice([1, 1, 2, 3, 8]))
        if rng.random() < 0.3:
            boundary = rng.randrange(0, target.size, CLUSTER) // self.bs
            lba = max(0, min(nblocks - count, boundary - rng.randrange(count + 1)))
        else:
            lba = rng.randrange(nblocks - count + 1)
        return lba, count

    async def writes(self) -> None:
        jobs = []
        taken: set[tuple[uuid_mod.UUID, int]] = set()
        for _ in range(self.rng.choice([1, 1, 2, 3, 4])):
            target = self.pick()
            if target is None:
                return
            lba, count = self.random_range(target)
            blocks = {(target.uuid, lba + i) for i in range(count)}
            if blocks & taken:
                continue  # concurrent writes to one block have no defined winner
            taken |= blocks
            tags = [self.next_tag() for _ in range(count)]
            jobs.append((target, lba, tags))
        results = await asyncio.gather(
            *(
                self.lvol(t).write(lba, b"".join(block_of(tag, self.bs) for tag in tags))
                for t, lba, tags in jobs
            ),
            return_exceptions=True,
        )
        self.settle(jobs, results)

    def settle(
        self, jobs: list[tuple[LvolModel, int, list[int]]], results: Sequence[object]
    ) -> None:
        crashed = False
        for (target, lba, tags), result in zip(jobs, results, strict=True):
            if result is None:
                for i, tag in enumerate(tags):
                    target.acked(lba + i, tag)
            elif self.disk.dead and isinstance(result, MayastorError):
                crashed = True
                for i, tag in enumerate(tags):
                    self.inflight.writes.setdefault((target.uuid, lba + i), set()).add(tag)
            elif isinstance(result, NoSpace):
                for i, tag in enumerate(tags):
                    target.failed(lba + i, tag)
            else:
                raise AssertionError(f"unexpected failure {result!r}")
        if crashed:
            raise Crashed

    async def zero(self) -> None:
        target = self.pick()
        if target is None:
            return
        lba, count = self.random_range(target)
        lvol = self.lvol(target)
        op = lvol.unmap if self.rng.random() < 0.5 else lvol.write_zeroes
        try:
            await op(lba, count)
            result: object = None
        except MayastorError as exc:
            result = exc
        self.settle([(target, lba, [0] * count)], [result])

    async def flush(self) -> None:
        target = self.pick()
        if target is None:
            return
        try:
            await self.lvol(target).flush()
        except MayastorError:
            if not self.disk.dead:
                raise
            raise Crashed from None
        target.flushed()

    async def fill(self) -> None:
        thins = [m for m in self.model.lvols.values() if m.thin]
        if not thins:
            return
        target = self.rng.choice(thins)
        clusters = -(-target.size // CLUSTER)
        for c in range(clusters):
            lba = c * CLUSTER // self.bs
            tag = self.next_tag()
            try:
                await self.lvol(target).write(lba, block_of(tag, self.bs))
                result: object = None
            except MayastorError as exc:
                result = exc
            self.settle([(target, lba, [tag])], [result])
            if isinstance(result, NoSpace):
                return


async def check_pool(pool: Pool, model: Model, inflight: InFlight, power_cut: bool) -> None:
    """Compare the imported pool with the model; then make the model what the pool holds."""
    bs = pool.base.block_size
    actual = {lv.uuid: (lv.name, lv.size, lv.thin, lv.properties) for lv in pool.lvols()}
    assert actual in inflight.metas, (
        "lvols after the crash are neither the state before nor after the interrupted change"
    )
    assert pool.capacity in inflight.capacities
    # invariants: clusters owned once, thick lvols complete, space adds up
    owners: dict[int, str] = {}
    allocated = 0
    for lv in pool.lvols():
        meta = lv.meta
        for _lc, pc, n in meta.iter_extents():
            for c in range(pc, pc + n):
                assert c not in owners, f"cluster {c} belongs to {owners[c]} and {lv.name}"
                assert c < pool.capacity // CLUSTER
                owners[c] = lv.name
        assert lv.num_allocated_clusters == sum(n for _a, _b, n in meta.iter_extents())
        if not lv.thin:
            assert lv.num_allocated_clusters == lv.num_clusters
        allocated += lv.num_allocated_clusters
    assert pool.used == allocated * CLUSTER
    assert pool.used <= pool.capacity
    # adopt what an interrupted change left, then check the data
    resolved = Model(capacity=pool.capacity)
    for lv in pool.lvols():
        known = model.lvols.get(lv.uuid)
        if known is None:
            assert inflight.created is not None
            assert inflight.created.uuid == lv.uuid
            known = inflight.created
        known.name, known.size, known.thin, known.props = actual[lv.uuid]
        known.truncate(known.size // bs)
        resolved.lvols[lv.uuid] = known
    for lv in pool.lvols():
        known = resolved.lvols[lv.uuid]
        data = bytearray(await lv.read(0, lv.num_blocks))
        modeled = set(known.last) | set(known.cand) | set(known.maybe)
        modeled |= {b for (u, b) in inflight.writes if u == lv.uuid and b < lv.num_blocks}
        for block in sorted(modeled):
            raw = bytes(data[block * bs : (block + 1) * bs])
            tag = int.from_bytes(raw[:8], "little")
            assert raw == block_of(tag, bs), f"{lv.name} block {block} holds garbage"
            possible = set(inflight.writes.get((lv.uuid, block), ()))
            if power_cut:
                possible |= known.cand.get(block, {0})
            else:
                possible |= {known.last.get(block, 0)} | known.maybe.get(block, set())
            assert tag in possible, (
                f"{lv.name} block {block} holds {tag}, expected one of {sorted(possible)}"
            )
            known.last[block] = tag
            known.maybe.pop(block, None)
            known.cand[block] = {tag}
            data[block * bs : (block + 1) * bs] = bytes(bs)
        assert data.count(0) == len(data), f"{lv.name}: a block never written is not zero"
    model.lvols = resolved.lvols
    model.capacity = resolved.capacity


async def fill_takes_exactly_the_free_clusters(pool: Pool) -> None:
    free = (pool.capacity - pool.used) // CLUSTER
    lvol = await pool.create_lvol("filler", (free + 2) * CLUSTER, uuid=uuid_mod.uuid4(), thin=True)
    written = 0
    for c in range(free + 2):
        try:
            await lvol.write(c * CLUSTER // lvol.block_size, bytes(lvol.block_size))
        except NoSpace:
            break
        written += 1
    assert written == free
    assert pool.used == pool.capacity


async def one_round(seed: int) -> None:
    rng = random.Random(seed)
    bs = rng.choice([512, 512, 4096])
    disk = SimDisk(16 * MIB // bs, bs)
    disk.jitter = random.Random(seed + 1)
    pool = await Pool.create(
        disk, "crashpool", disk="sim://0", cluster_size=CLUSTER, max_expansion="4x"
    )
    model = Model(capacity=pool.capacity)
    for generation in range(3):
        disk.die_at = disk.mutations + rng.randrange(1, 500)
        inflight = await Workload(rng, pool, disk, model).run(steps=rng.randrange(10, 60))
        try:
            await pool.export()
        except DeviceError:
            pass
        power_cut = rng.random() < 0.6
        image = disk.image_after_power_cut(rng) if power_cut else disk.image_after_process_crash()
        disk = SimDisk.like(disk, image)
        disk.jitter = random.Random(seed + 2 + generation)
        if rng.random() < 0.3:
            disk.die_at = rng.randrange(1, 8)  # the power may go off again while importing
        try:
            pool = await Pool.import_(disk, disk="sim://0", name="crashpool")
        except DeviceError:  # it went off while the import repaired a metadata copy
            power_cut = power_cut or rng.random() < 0.5
            image = (
                disk.image_after_power_cut(rng) if power_cut else disk.image_after_process_crash()
            )
            disk = SimDisk.like(disk, image)
            pool = await Pool.import_(disk, disk="sim://0", name="crashpool")
        disk.die_at = None
        try:
            await check_pool(pool, model, inflight, power_cut)
        except AssertionError as exc:
            raise AssertionError(f"seed {seed} generation {generation}: {exc}") from exc
    # a clean export and import keeps everything, and the free space adds up
    await pool.export()
    disk = SimDisk.like(disk, disk.image_after_process_crash())
    pool = await Pool.import_(disk, disk="sim://0")
    await check_pool(pool, model, InFlight([model.metas()], {model.capacity}), power_cut=False)
    await fill_takes_exactly_the_free_clusters(pool)
    await pool.export()


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(6))
async def test_acknowledged_changes_and_writes_survive_crashes_at_any_command(chunk: int) -> None:
    for seed in range(chunk * ROUNDS, (chunk + 1) * ROUNDS):
        await one_round(seed)
