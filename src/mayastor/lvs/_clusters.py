"""A pool's clusters taken for lvols: reserved, zeroed, then mapped by a durable commit.

The `ClusterAllocator` is the one place where free clusters become an lvol's: a thick
lvol's at create or growth, a thin lvol's on its first write to a cluster. Its rules:

* clusters are reserved in the catalog synchronously, before anything is awaited, so
  two changes can never take the same cluster and a refusal changes nothing;
* reserved clusters are zeroed before the record that maps them is committed, so an
  lvol never shows what a cluster held before;
* when the storage below runs out of space while zeroing (`NoSpace`: a sparse disk
  file whose file system is full), the clusters' blocks are given back (unmapped)
  and the reservation released, leaving the file system as it was found;
* a thin lvol's cluster is allocated once however many writes want it at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from array import array
from collections.abc import Callable, Sequence

from mayastor.bdev import BlockDevice
from mayastor.errors import (
    DeviceError,
    FailedPrecondition,
    InternalDeviceError,
    LbaOutOfRange,
    NoSpace,
    ResourceExhausted,
)
from mayastor.lvs._catalog import Catalog, LvolMeta
from mayastor.lvs._store import MetadataStore
from mayastor.lvs.format import ExtentsRecord, Record, Superblock

log = logging.getLogger(__name__)

Runs = list[tuple[int, int]]
"""Runs of clusters: (first cluster, count)."""


def extents(first_lvol_cluster: int, runs: Runs) -> array[int]:
    """The extents (lvol cluster, pool cluster, count) that map `runs` to an lvol's
    clusters from `first_lvol_cluster` on, as an ExtentsRecord holds them."""
    out = array("I")
    lc = first_lvol_cluster
    for start, count in runs:
        out.extend((lc, start, count))
        lc += count
    return out


class ClusterAllocator:
    """Takes free clusters of one pool for its lvols; see the module docstring.

    Args:
        pool_name, disk: named in errors and log lines.
        base: the pool's base device.
        sb: the pool's superblock (where the data area starts, the cluster size).
        store: the pool's metadata store (its catalog is the one reserved from).
        on_data_error: told when zeroing fails on the disk itself (not for `NoSpace`).
    """

    def __init__(
        self,
        pool_name: str,
        disk: str,
        base: BlockDevice,
        sb: Superblock,
        store: MetadataStore,
        on_data_error: Callable[[DeviceError], None],
    ) -> None:
        self._pool_name = pool_name
        self._disk = disk
        self._base = base
        self._store = store
        self._catalog: Catalog = store.catalog
        self._cluster_size = sb.cluster_size
        self._data_lba = sb.data_offset // base.block_size
        self._bpc = sb.cluster_size // base.block_size
        self._on_data_error = on_data_error
        self._allocating: dict[tuple[int, int], asyncio.Task[int]] = {}

    def reserve(self, count: int, what: str) -> Runs:
        """Reserve `count` free clusters for `what` (named in the error).

        Raises:
            ResourceExhausted: fewer than `count` clusters are free.
        """
        runs = self._catalog.reserve(count)
        if runs is None:
            free = self._catalog.free_clusters
            raise ResourceExhausted(
                f"pool {self._pool_name!r}: {what} needs {count} clusters of "
                f"{self._cluster_size} bytes; only {free} are free "
                f"({free * self._cluster_size} bytes)"
            )
        return runs

    def out_of_space(self, what: str, clusters: int, exc: NoSpace) -> ResourceExhausted:
        """The error for `what`, which needed `clusters` when the storage below filled up."""
        return ResourceExhausted(
            f"pool {self._pool_name!r}: {what} needs {clusters * self._cluster_size} bytes, "
            f"but the storage under disk {self._disk} ran out of space ({exc}); what it had "
            "allocated was given back and the pool is unchanged"
        )

    async def commit(
        self,
        records: list[Record],
        runs: Runs | None,
        *,
        after: Callable[[], None] | None = None,
        data_flush: bool = False,
    ) -> None:
        """Zero the reserved `runs`, then commit `records` (which map them); `after`
        runs once the records are durable and applied. On failure the runs are
        released (and given back when the storage below ran out of space)."""
        catalog = self._catalog
        applied = False
        try:
            if runs:
                try:
                    for start, count in runs:
                        await self.zero(start * self._bpc, count * self._bpc)
                except NoSpace:
                    await self._give_back(runs)
                    raise

            def on_durable() -> None:
                nonlocal applied
                applied = True
                if runs:
                    catalog.unreserve(runs)
                for record in records:
                    catalog.apply(record)
                if after is not None:
                    after()

            await self._store.commit(records, on_durable, data_flush=data_flush or bool(runs))
        except BaseException as exc:
            if runs and not applied and self._store.failure is None:
                if isinstance(exc, ResourceExhausted):
                    await self._give_back(runs)
                catalog.unreserve(runs)
            raise

    async def zero(self, rel_lba: int, nblocks: int) -> None:
        """Zero blocks of the data area (`rel_lba` counts from cluster 0)."""
        try:
            await self._base.write_zeroes(self._data_lba + rel_lba, nblocks)
        except NoSpace:
            raise  # the storage below is full; the disk itself is fine
        except DeviceError as exc:
            self._on_data_error(exc)
            raise

    async def zero_tail(self, meta: LvolMeta, new_size: int) -> bool:
        """Zero what lies past the lvol's old end in its old last cluster, if that
        cluster is allocated (so data from before a shrink never reappears).

        Returns:
            True when something was zeroed (the metadata commit must flush data).
        """
        bs = self._base.block_size
        cs = self._cluster_size
        old = meta.size
        last = (old - 1) // cs
        end = min(new_size, (last + 1) * cs)
        pc = meta.lookup(last)
        if pc < 0 or end <= old:
            return False
        offset_in_cluster = old - last * cs
        await self.zero((pc * cs + offset_in_cluster) // bs, (end - old) // bs)
        return True

    def allocating_from(self, lvol_id: int, first_cluster: int) -> bool:
        """True while an allocation for the lvol's cluster `first_cluster` or a later
        one is in flight (a shrink below it must wait)."""
        return any(k[0] == lvol_id and k[1] >= first_cluster for k in self._allocating)

    async def allocate(self, meta: LvolMeta, clusters: Sequence[int]) -> list[int]:
        """The pool clusters for a thin lvol's first writes to `clusters`: all or none.

        The clusters that no allocation in flight is taking are reserved together,
        before anything is awaited, so a write that cannot get all its clusters takes
        none of them and changes nothing on disk (one allocation per cluster, however
        many writes want it).

        Raises:
            NoSpace: not enough free clusters (or the storage below is full).
            LbaOutOfRange: a cluster past the lvol's end.
            InternalDeviceError: the pool is faulted.
        """
        allocating = self._allocating
        wanted = [c for c in dict.fromkeys(clusters) if (meta.lvol_id, c) not in allocating]
        if wanted:
            if self._store.failure is not None:
                raise InternalDeviceError(
                    f"{meta.name}: pool {self._pool_name!r} is faulted", device=meta.name
                )
            beyond = [c for c in wanted if c >= meta.alloc_limit]
            if beyond:
                raise LbaOutOfRange(
                    f"{meta.name}: cluster {beyond[0]} is past the end of the lvol",
                    device=meta.name,
                )
            runs = self._catalog.reserve(len(wanted))
            if runs is None:
                free = self._catalog.free_clusters
                raise NoSpace(
                    f"{meta.name}: pool {self._pool_name!r} has no free cluster left for this write"
                    if not free
                    else f"{meta.name}: this write needs {len(wanted)} new clusters; pool "
                    f"{self._pool_name!r} has {free} free",
                    device=meta.name,
                )
            pcs = [pc for start, count in runs for pc in range(start, start + count)]
            loop = asyncio.get_running_loop()
            for cluster, pc in zip(wanted, pcs, strict=True):
                key = (meta.lvol_id, cluster)
                task = loop.create_task(self._allocate_cluster(meta, cluster, pc))
                allocating[key] = task
                task.add_done_callback(functools.partial(self._allocation_done, key))
        tasks = [allocating[(meta.lvol_id, c)] for c in clusters]
        if len(tasks) == 1:
            return [await asyncio.shield(tasks[0])]
        return list(await asyncio.shield(asyncio.gather(*tasks)))

    async def wait(self, lvol_id: int | None = None) -> None:
        """Until the allocations in flight (of one lvol, or all) are done."""
        tasks = [t for k, t in self._allocating.items() if lvol_id is None or k[0] == lvol_id]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _allocation_done(self, key: tuple[int, int], task: asyncio.Task[int]) -> None:
        if self._allocating.get(key) is task:
            del self._allocating[key]
        if not task.cancelled():
            task.exception()

    async def _allocate_cluster(self, meta: LvolMeta, cluster: int, pc: int) -> int:
        record = ExtentsRecord(meta.lvol_id, array("I", (cluster, pc, 1)))
        try:
            await self.commit([record], [(pc, 1)])
        except ResourceExhausted as exc:
            raise NoSpace(f"{meta.name}: {exc}", device=meta.name) from exc
        except FailedPrecondition as exc:
            raise InternalDeviceError(
                f"{meta.name}: pool {self._pool_name!r} cannot allocate: {exc}", device=meta.name
            ) from exc
        return pc

    async def _give_back(self, runs: Runs) -> None:
        """Unmap reserved (still free) clusters: a sparse disk file gets its blocks back."""
        for start, count in runs:
            try:
                await self._base.unmap(self._data_lba + start * self._bpc, count * self._bpc)
            except DeviceError as exc:
                log.warning(
                    "pool %s: clusters %d..%d could not be given back after running out of "
                    "space: %s",
                    self._pool_name,
                    start,
                    start + count - 1,
                    exc,
                )
