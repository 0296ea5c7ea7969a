"""Pools: a disk turned into clusters, with the lvols carved out of them.

A `Pool` owns its base device from the moment `create`/`import_` return it (a failed
create or import leaves the device to the caller). Metadata changes go through the
pool's `MetadataStore` (group commit, crash safe); everything a change needs is
checked and reserved synchronously first (names, uuids, clusters, metadata space), so
refusals change nothing on disk and concurrent changes cannot both take one thing.
Clusters are taken by the pool's `ClusterAllocator` (`mayastor.lvs._clusters`), the
superblock copies read and written by `mayastor.lvs._superblocks`, and the options
of a create checked by `mayastor.lvs._pool_options`.

Decisions (the brief left them open):

* lvol size: the requested size rounded up to the block size; clusters are
  allocated whole, so `num_clusters` is the size rounded up to clusters.
* unmap zeroes clusters and does not free them (see `mayastor.lvs._lvol`).
* `destroy` destroys the lvols with the pool; it closes them first (waiting for their
  I/O in flight). Knowing whether someone else still uses an lvol (a nexus, a share)
  is the io-engine's business: it refuses before calling.
* shrinking an lvol is refused when a cluster that would be cut off is allocated (a
  thick lvol therefore shrinks only within its last cluster); growing zeroes the end
  of the old last cluster first, so data from before a shrink never reappears.
* metadata is sized at create for the disk growing to `max_expansion` (a factor
  such as ``"4x"``, a size such as ``"2TiB"``, or bytes; default ten times the disk).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import uuid as uuid_mod
from collections.abc import AsyncIterator
from dataclasses import dataclass

from mayastor.bdev import BlockDevice, IoStats, ReservationState, SpaceBelow
from mayastor.errors import (
    AlreadyExists,
    CorruptMetadata,
    DeviceError,
    DiskNotBlank,
    FailedPrecondition,
    InvalidArgument,
    NoSpace,
    NotFound,
    ResourceExhausted,
)
from mayastor.lvs._catalog import Catalog, LvolMeta
from mayastor.lvs._clusters import ClusterAllocator, extents
from mayastor.lvs._disk_claim import probe_disk, wipe_signatures
from mayastor.lvs._lvol import DataPath, Lvol
from mayastor.lvs._pool_options import check_cluster_size, check_uuid, max_disk_bytes
from mayastor.lvs._properties import (
    DEFAULT_CLUSTER_SIZE,
    POOL_STATE_TABLE,
    LvolProperties,
    PoolEvent,
    PoolState,
    check_name,
    check_properties,
)
from mayastor.lvs._store import MetadataStore
from mayastor.lvs._superblocks import read_superblock, write_superblock
from mayastor.lvs.format import (
    CHECKPOINT_HEADER_SIZE,
    EXTENT_BYTES,
    INCOMPAT_RESERVATIONS,
    MAX_CLUSTERS,
    PAGE_SIZE,
    DestroyRecord,
    ExtentsRecord,
    LvolRecord,
    PoolSizeRecord,
    PropertiesRecord,
    Record,
    ReservationRecord,
    ResizeRecord,
    Superblock,
    compute_layout,
    record_size,
)

log = logging.getLogger(__name__)

_EXTENTS_HEADER_BYTES = 9


@dataclass(frozen=True)
class PoolMetadataInfo:
    """How full the pool's metadata is (for the API's PoolMetadataInfo).

    Attributes:
        page_size: bytes per metadata page.
        pages: pages of one checkpoint slot (what the whole catalog may take).
        used_pages: pages the catalog takes now.
    """

    page_size: int
    pages: int
    used_pages: int


class Pool:
    """A pool on one base device; see the module docstring. Use the class methods.

    Attributes:
        name, uuid: the pool's identity, as stored on its disk.
        base: the base device (owned by the pool).
        disk: the URI or path the base device was opened from.
        cluster_size: bytes per cluster.
    """

    def __init__(self, base: BlockDevice, disk: str, sb: Superblock, store: MetadataStore) -> None:
        self.base = base
        self.disk = disk
        self.name = sb.name
        self.uuid = sb.pool_uuid
        self.cluster_size = sb.cluster_size
        self._sb = sb
        self._store = store
        self._catalog = store.catalog
        self._state = PoolState.ONLINE
        self._clusters = ClusterAllocator(sb.name, disk, base, sb, store, self._on_data_error)
        self._data = DataPath(
            base, sb.data_offset, sb.cluster_size, self._clusters.allocate, self._on_data_error
        )
        self._lvols: dict[int, Lvol] = {
            lvol_id: Lvol(self, meta, self._data) for lvol_id, meta in self._catalog.lvols.items()
        }
        self._lvol_locks: dict[int, asyncio.Lock] = {}
        self._grow_lock = asyncio.Lock()
        self._feature_lock = asyncio.Lock()
        self._reserved_names: set[str] = set()
        self._reserved_uuids: set[uuid_mod.UUID] = set()
        self._reserved_bytes = 0
        self._next_id = self._catalog.next_lvol_id
        self._ops = 0
        self._ops_done: asyncio.Event | None = None
        self._closed: str | None = None
        self.overwritten: tuple[str, ...] = ()
        """What a forced create found on the disk and wiped (empty otherwise)."""
        store.on_failure = self._on_metadata_failure

    def __repr__(self) -> str:
        return f"<Pool {self.name!r} {self.uuid} on {self.disk} {self._state.value}>"

    # ------------------------------------------------------------------ numbers

    @property
    def state(self) -> PoolState:
        return self._state

    @property
    def capacity(self) -> int:
        """Bytes usable for data: data clusters times the cluster size."""
        return self._catalog.data_clusters * self.cluster_size

    @property
    def used(self) -> int:
        """Bytes of allocated clusters."""
        return self._catalog.used_clusters * self.cluster_size

    @property
    def committed(self) -> int:
        """The sum of the sizes of all lvols, thick and thin."""
        return sum(meta.size for meta in self._catalog.lvols.values())

    @property
    def disk_capacity(self) -> int:
        """Bytes of the base device now (more than the pool uses before a grow)."""
        return self.base.size

    def space_warning(self) -> str | None:
        """What to tell an operator when the disk is a sparse file larger than the room
        left under it (some of the pool can then never be written), else None.

        Read afresh on each call: the file system under the disk changes."""
        space: SpaceBelow | None = self.base.space_below()
        if space is None or not space.shortfall:
            return None
        return (
            f"disk {self.disk} is a sparse file of {_human(space.size)} that takes "
            f"{_human(space.allocated)}, and its file system has {_human(space.free)} free: "
            f"{_human(space.shortfall)} of the pool cannot be written (thick replicas and "
            "thin writes beyond the room left fail with no space)"
        )

    @property
    def max_expandable_size(self) -> int:
        """The largest disk, in bytes, that the metadata was sized for."""
        return self._sb.data_offset + self._sb.max_data_clusters * self.cluster_size

    @property
    def md_info(self) -> PoolMetadataInfo:
        catalog = self._catalog
        used = (
            CHECKPOINT_HEADER_SIZE
            + catalog.record_bytes
            + sum(len(m.extents) // 3 for m in catalog.lvols.values()) * EXTENT_BYTES
        )
        return PoolMetadataInfo(PAGE_SIZE, self._sb.slot_pages, -(-used // PAGE_SIZE))

    @property
    def stats(self) -> IoStats:
        """Pool-level I/O counters: those of the base device."""
        return self.base.stats

    def lvols(self) -> list[Lvol]:
        return list(self._lvols.values())

    def lookup(self, name: str) -> Lvol:
        """The lvol called `name`.

        Raises:
            NotFound: no such lvol in this pool.
        """
        meta = self._catalog.by_name.get(name)
        if meta is None or meta.lvol_id not in self._lvols:
            raise NotFound(f"lvol {name!r} not found in pool {self.name!r}")
        return self._lvols[meta.lvol_id]

    def lookup_uuid(self, lvol_uuid: uuid_mod.UUID | str) -> Lvol:
        """The lvol with uuid `lvol_uuid`.

        Raises:
            NotFound: no such lvol in this pool (or not a uuid).
        """
        try:
            key = lvol_uuid if isinstance(lvol_uuid, uuid_mod.UUID) else uuid_mod.UUID(lvol_uuid)
        except (ValueError, TypeError, AttributeError):
            raise NotFound(f"lvol uuid {lvol_uuid!r} not found in pool {self.name!r}") from None
        meta = self._catalog.by_uuid.get(key)
        if meta is None or meta.lvol_id not in self._lvols:
            raise NotFound(f"lvol uuid {key} not found in pool {self.name!r}")
        return self._lvols[meta.lvol_id]

    # ------------------------------------------------------------------ create / import

    @classmethod
    async def create(
        cls,
        base: BlockDevice,
        name: str,
        *,
        disk: str,
        uuid: uuid_mod.UUID | None = None,
        cluster_size: int = DEFAULT_CLUSTER_SIZE,
        max_expansion: str | int | None = None,
        force: bool = False,
    ) -> Pool:
        """Make a new, empty pool on `base`.

        The disk is read first (head and tail, from the disk itself): when it holds a
        known signature (a file system, a partition table, LVM, md RAID, LUKS, swap,
        another pool; see `mayastor.lvs.signatures`) the create is refused and nothing
        is written, unless `force`, which wipes those signatures' magic and goes on.
        Room for the metadata is then reserved below the disk (`MetadataStore.reserve_room`),
        so that metadata writes never meet a full file system under a sparse disk file.

        Args:
            base: the disk; the pool owns it once this returns.
            name: the pool name (1-255 bytes of UTF-8, no '/', no control characters).
            disk: the URI or path `base` was opened from (reported, not opened).
            uuid: the pool uuid; a random one by default.
            cluster_size: bytes per cluster, a multiple of 1 MiB (at most 1 GiB).
            max_expansion: how large the disk may grow: a factor ("4x"), a size
                ("2TiB", "500GB") or bytes; default ten times its size now.
            force: overwrite whatever the disk holds.

        Raises:
            InvalidArgument: a bad name, uuid, cluster size or max_expansion, or a
                disk too small for the metadata and one cluster.
            DiskNotBlank: the disk holds a known signature (another pool among them;
                named in the message) and `force` is False.
            CorruptMetadata: the disk holds pool metadata that cannot be read (it is
                not overwritten unless `force`).
            ResourceExhausted: the file system under a disk file has no room for the
                pool's metadata.
            DeviceError: reading the disk or writing the new metadata failed.
        """
        check_name(name, "pool")
        pool_uuid = check_uuid(uuid, "pool uuid") or uuid_mod.uuid4()
        check_cluster_size(cluster_size)
        max_disk = max_disk_bytes(base.size, max_expansion, cluster_size)
        found = await read_superblock(base, disk, forced=force)
        if found is not None and not force:
            sb = found[0]
            raise DiskNotBlank(
                f"disk {disk} already holds pool {sb.name!r} ({sb.pool_uuid}); import it, "
                "destroy it first, or create with force to overwrite it",
                (f"Mayastor pool {sb.name!r} ({sb.pool_uuid})",),
            )
        layout = compute_layout(base.size, cluster_size, max_disk)
        signatures = await probe_disk(base)
        if signatures and not force:
            listed = tuple(str(sig) for sig in signatures)
            raise DiskNotBlank(
                f"disk {disk} is not blank: it holds {'; '.join(listed)}. Nothing was "
                "written; if what it holds may be lost, create the pool with force "
                "(mayastor-client pool create --force)",
                listed,
            )
        sb = Superblock(
            pool_uuid=pool_uuid,
            name=name,
            nonce=secrets.randbits(64),
            block_size=base.block_size,
            cluster_size=cluster_size,
            copy_pages=layout.copy_pages,
            slot_pages=layout.slot_pages,
            journal_pages=layout.journal_pages,
            data_offset=layout.data_offset,
            max_data_clusters=layout.max_data_clusters,
        )
        catalog = Catalog(
            cluster_size,
            layout.data_clusters,
            layout.max_data_clusters,
            layout.slot_pages * PAGE_SIZE,
        )
        store = MetadataStore.new(base, sb, catalog)
        try:
            await store.reserve_room()
        except NoSpace as exc:
            raise ResourceExhausted(
                f"disk {disk}: the file system under it has no room for the pool's "
                f"metadata ({exc}); nothing was written"
            ) from exc
        await wipe_signatures(base, signatures)
        await store.checkpoint()
        await write_superblock(base, sb)
        pool = cls(base, disk, sb, store)
        pool.overwritten = tuple(str(sig) for sig in signatures)
        return pool

    @classmethod
    async def import_(
        cls,
        base: BlockDevice,
        *,
        disk: str,
        name: str | None = None,
        uuid: uuid_mod.UUID | None = None,
    ) -> Pool:
        """Open the pool that `base` holds.

        Args:
            base: the disk; the pool owns it once this returns.
            disk: the URI or path `base` was opened from.
            name, uuid: when given, the pool on the disk must have them.

        Raises:
            NotFound: the disk holds no pool.
            FailedPrecondition: the disk holds another pool than `name`/`uuid`, a pool
                of an unknown format version, or one made for another block size.
            CorruptMetadata: both metadata copies are damaged, or they contradict
                themselves (a cluster of two lvols, a cluster outside the pool, ...).
            DeviceError: reading the disk (or repairing one copy) failed.
        """
        pool_uuid = check_uuid(uuid, "pool uuid")
        found = await read_superblock(base, disk)
        if found is None:
            raise NotFound(f"disk {disk} holds no pool")
        sb, repair_copy = found
        if (name is not None and sb.name != name) or (
            pool_uuid is not None and sb.pool_uuid != pool_uuid
        ):
            wanted = " ".join(x for x in (repr(name) if name else "", str(pool_uuid or "")) if x)
            raise FailedPrecondition(
                f"disk {disk} holds pool {sb.name!r} ({sb.pool_uuid}), not {wanted}"
            )
        if sb.block_size != base.block_size:
            raise FailedPrecondition(
                f"pool {sb.name!r} on {disk} was made with {sb.block_size}-byte blocks; the "
                f"disk is open with {base.block_size}-byte blocks"
            )
        if base.size < sb.metadata_pages * PAGE_SIZE:
            raise CorruptMetadata(f"disk {disk} is smaller than pool {sb.name!r}'s metadata")
        store, disagree = await MetadataStore.load(base, sb)
        try:
            await store.reserve_room()
        except NoSpace as exc:
            log.warning(
                "pool %s imported, but the file system under %s has no room for its metadata "
                "(%s): changes are refused until it has",
                sb.name,
                disk,
                exc,
            )
        needed = sb.data_offset + store.catalog.data_clusters * sb.cluster_size
        if base.size < needed:
            raise CorruptMetadata(
                f"pool {sb.name!r} needs {needed} bytes but disk {disk} has {base.size}: "
                "the disk shrank"
            )
        if repair_copy is not None:
            await write_superblock(base, sb, (repair_copy,))
        if disagree:
            await store.request_checkpoint()
        return cls(base, disk, sb, store)

    @classmethod
    async def create_or_import(
        cls,
        base: BlockDevice,
        name: str,
        *,
        disk: str,
        uuid: uuid_mod.UUID | None = None,
        cluster_size: int = DEFAULT_CLUSTER_SIZE,
        max_expansion: str | int | None = None,
        force: bool = False,
    ) -> Pool:
        """Create the pool, or import it when the disk already holds this very pool.

        With `force`, a disk that holds another pool (or damaged pool metadata) gets a
        new pool instead; this very pool is still imported.

        Raises:
            DiskNotBlank: the disk holds another pool (other name, or other uuid when
                one is given), or something else `create` refuses, and not `force`.
            and what `create` and `import_` raise.
        """
        check_name(name, "pool")
        found = await read_superblock(base, disk, forced=force)
        wanted = check_uuid(uuid, "pool uuid")
        same = found is not None and found[0].name == name and wanted in (None, found[0].pool_uuid)
        if found is None or (force and not same):
            return await cls.create(
                base,
                name,
                disk=disk,
                uuid=uuid,
                cluster_size=cluster_size,
                max_expansion=max_expansion,
                force=force,
            )
        if not same:
            sb = found[0]
            raise DiskNotBlank(
                f"disk {disk} holds pool {sb.name!r} ({sb.pool_uuid}), not "
                f"{name!r}{f' ({wanted})' if wanted else ''}; import it under its own name, "
                "or create with force to overwrite it",
                (f"Mayastor pool {sb.name!r} ({sb.pool_uuid})",),
            )
        return await cls.import_(base, disk=disk, name=name, uuid=uuid)

    # ------------------------------------------------------------------ pool changes

    async def export(self) -> None:
        """Close the lvols and the base device, leaving the pool intact on disk.

        Pending changes are written and a checkpoint makes the next import quick.
        Exporting twice is harmless. A faulted pool is closed without writing.
        """
        if self._closed is not None:
            return
        self._closed = "exported"
        await self._quiesce()
        try:
            if self._store.failure is None:
                if self._store.journal_pos:
                    await self._store.request_checkpoint()
                await self.base.flush()
        finally:
            await self.base.close()

    async def destroy(self) -> None:
        """Destroy the pool and its lvols: wipe its superblocks and checkpoints, close the disk.

        The lvols are closed first (their I/O in flight completes). Afterwards the disk
        holds no pool (an import finds nothing).

        Raises:
            FailedPrecondition: the pool was exported or destroyed already.
            DeviceError: the wipe failed (the disk is closed anyway).
        """
        if self._closed is not None:
            raise FailedPrecondition(f"pool {self.name!r} was {self._closed}")
        self._closed = "destroyed"
        await self._quiesce()
        try:
            await self._store.wipe()
        finally:
            await self.base.close()

    async def grow(self) -> bool:
        """Take new space after the base device grew.

        Returns:
            True when the pool grew, False when the disk has no new whole cluster.

        Raises:
            FailedPrecondition: the disk grew beyond what the metadata was sized for
                (`max_expandable_size`), the disk shrank, or the pool is faulted or closed.
        """
        async with self._op("grow"), self._grow_lock:
            await self.base.refresh_size()
            sb = self._sb
            clusters = (self.base.size - sb.data_offset) // self.cluster_size
            if clusters < self._catalog.data_clusters:
                raise FailedPrecondition(
                    f"disk {self.disk} shrank to {self.base.size} bytes, below the "
                    f"{sb.data_offset + self.capacity} bytes pool {self.name!r} occupies"
                )
            if clusters == self._catalog.data_clusters:
                return False
            if clusters > sb.max_data_clusters:
                raise FailedPrecondition(
                    f"disk {self.disk} grew to {self.base.size} bytes, beyond the "
                    f"{self.max_expandable_size} bytes pool {self.name!r}'s metadata was sized "
                    "for at create (max_expansion); the pool was not grown"
                )
            record = PoolSizeRecord(clusters)
            await self._store.commit([record], lambda: self._catalog.apply(record))
            return True

    # ------------------------------------------------------------------ lvol changes

    async def create_lvol(
        self,
        name: str,
        size: int,
        *,
        uuid: uuid_mod.UUID | None = None,
        thin: bool = False,
        properties: LvolProperties = LvolProperties(),  # noqa: B008 - frozen value
    ) -> Lvol:
        """Create an lvol of `size` bytes (rounded up to the block size).

        A thick lvol gets all its clusters now, zeroed; a thin one gets them on first write.

        Raises:
            InvalidArgument: a bad name, size (zero, negative, too large), uuid or properties.
            AlreadyExists: the name or uuid is taken in this pool.
            ResourceExhausted: a thick lvol needs more clusters than are free, or the
                pool metadata is full.
            FailedPrecondition: the pool is faulted, exported or destroyed.
            DeviceError: zeroing its clusters or writing the metadata failed.
        """
        async with self._op("create an lvol"):
            check_name(name, "lvol")
            lvol_uuid = check_uuid(uuid, "lvol uuid") or uuid_mod.uuid4()
            size = self._check_size(size, name)
            check_properties(properties)
            if not isinstance(thin, bool):
                raise InvalidArgument(f"thin must be True or False, got {thin!r}")
            catalog = self._catalog
            if name in catalog.by_name or name in self._reserved_names:
                raise AlreadyExists(f"lvol {name!r} already exists in pool {self.name!r}")
            if lvol_uuid in catalog.by_uuid or lvol_uuid in self._reserved_uuids:
                raise AlreadyExists(f"lvol uuid {lvol_uuid} is taken in pool {self.name!r}")
            lvol_id = self._next_id
            record = LvolRecord(
                lvol_id,
                lvol_uuid,
                name,
                size,
                thin,
                properties.share.value,
                properties.allowed_hosts,
                properties.entity_id,
            )
            nbytes = record_size(record) + _EXTENTS_HEADER_BYTES
            self._check_metadata_room(nbytes, f"lvol {name!r}")
            nclusters = -(-size // self.cluster_size)
            runs = None if thin else self._clusters.reserve(nclusters, f"thick lvol {name!r}")
            self._next_id += 1
            self._reserved_names.add(name)
            self._reserved_uuids.add(lvol_uuid)
            self._reserved_bytes += nbytes
            try:
                records: list[Record] = [record]
                if runs:
                    records.append(ExtentsRecord(lvol_id, extents(0, runs)))
                await self._clusters.commit(records, runs)
            except NoSpace as exc:
                if self._store.failure is not None:
                    raise
                raise self._clusters.out_of_space(f"thick lvol {name!r}", nclusters, exc) from exc
            finally:
                self._reserved_names.discard(name)
                self._reserved_uuids.discard(lvol_uuid)
                self._reserved_bytes -= nbytes
            lvol = Lvol(self, catalog.lvols[lvol_id], self._data)
            self._lvols[lvol_id] = lvol
            return lvol

    async def destroy_lvol(self, lvol: Lvol) -> None:
        """Destroy an lvol: close it (its I/O in flight completes), then free its clusters.

        Raises:
            NotFound: the lvol is not (or no longer) in this pool.
            FailedPrecondition: the pool is faulted, exported or destroyed.
            DeviceError: writing the metadata failed.
        """
        async with self._op("destroy an lvol"), self._lvol_lock(lvol) as meta:
            await lvol.close()
            await self._clusters.wait(meta.lvol_id)
            record = DestroyRecord(meta.lvol_id)

            def on_durable() -> None:
                self._catalog.apply(record)
                self._lvols.pop(meta.lvol_id, None)
                self._lvol_locks.pop(meta.lvol_id, None)

            await self._store.commit([record], on_durable)

    async def resize_lvol(self, lvol: Lvol, new_size: int) -> None:
        """Grow an lvol, or shrink it where no allocated cluster is cut off.

        Raises:
            InvalidArgument: a bad size.
            FailedPrecondition: the shrink would cut off allocated clusters (the message
                says which), or the pool is faulted or closed.
            ResourceExhausted: a thick lvol's growth needs more clusters than are free.
            NotFound: the lvol is not in this pool.
            DeviceError: zeroing or writing the metadata failed.
        """
        async with self._op("resize an lvol"), self._lvol_lock(lvol) as meta:
            size = self._check_size(new_size, meta.name)
            if size == meta.size:
                return
            cs = self.cluster_size
            old_n, new_n = meta.nclusters, -(-size // cs)
            records: list[Record] = [ResizeRecord(meta.lvol_id, size)]
            runs = None
            if new_n < old_n:
                highest = Catalog.highest_mapped(meta)
                if highest >= new_n:
                    raise FailedPrecondition(
                        f"cannot shrink lvol {meta.name!r} to {size} bytes: its cluster "
                        f"{highest} (bytes {highest * cs}..{(highest + 1) * cs - 1}) is "
                        "allocated and would be lost"
                    )
                if self._clusters.allocating_from(meta.lvol_id, new_n):
                    raise FailedPrecondition(
                        f"cannot shrink lvol {meta.name!r} now: writes beyond the new end "
                        "are allocating clusters"
                    )
                meta.alloc_limit = new_n
            elif new_n > old_n and not meta.thin:
                runs = self._clusters.reserve(new_n - old_n, f"growing thick lvol {meta.name!r}")
                records.append(ExtentsRecord(meta.lvol_id, extents(old_n, runs)))
            try:
                zeroed = await self._clusters.zero_tail(meta, size) if size > meta.size else False
            except BaseException:
                if runs:
                    self._catalog.unreserve(runs)
                raise

            def after() -> None:
                lvol.num_blocks = size // lvol.block_size

            try:
                await self._clusters.commit(records, runs, after=after, data_flush=zeroed)
            except NoSpace as exc:
                if self._store.failure is not None:
                    raise
                grown = f"growing thick lvol {meta.name!r}"
                raise self._clusters.out_of_space(grown, new_n - old_n, exc) from exc

    async def set_lvol_properties(self, lvol: Lvol, properties: LvolProperties) -> None:
        """Replace an lvol's properties, atomically and durably.

        Raises:
            InvalidArgument: properties that cannot be stored.
            ResourceExhausted: the pool metadata has no room for them.
            NotFound, FailedPrecondition, DeviceError: as for `resize_lvol`.
        """
        check_properties(properties)
        async with self._op("change lvol properties"), self._lvol_lock(lvol) as meta:
            record = PropertiesRecord(
                meta.lvol_id,
                properties.share.value,
                properties.allowed_hosts,
                properties.entity_id,
            )
            new = LvolRecord(
                meta.lvol_id,
                meta.uuid,
                meta.name,
                meta.size,
                meta.thin,
                record.share,
                record.allowed_hosts,
                record.entity_id,
            )
            growth = record_size(new) + _EXTENTS_HEADER_BYTES - meta.record_bytes
            if growth > 0:
                self._check_metadata_room(growth, f"the properties of lvol {meta.name!r}")
            await self._store.commit([record], lambda: self._catalog.apply(record))

    async def set_lvol_reservation(self, lvol: Lvol, state: ReservationState) -> None:
        """Store an lvol's NVMe reservation state, atomically and durably (its
        `ReservationCell` calls this before a change takes effect).

        The first time the pool holds one, its superblocks get the RESERVATIONS
        incompatible feature first, so that software that does not know the record
        refuses the pool instead of calling it corrupt.

        Raises:
            ResourceExhausted: the pool metadata has no room for it.
            NotFound, FailedPrecondition, DeviceError: as for `resize_lvol`.
        """
        async with self._op("store an lvol's reservation"), self._lvol_lock(lvol) as meta:
            record = ReservationRecord(
                meta.lvol_id,
                state.generation,
                state.rtype,
                state.ptpl,
                state.holder,
                tuple((r.hostid, r.key) for r in state.registrants),
            )
            growth = record_size(record) - meta.reservation_bytes
            if growth > 0:
                self._check_metadata_room(growth, f"the reservation of lvol {meta.name!r}")
            await self._enable_features(INCOMPAT_RESERVATIONS)
            await self._store.commit([record], lambda: self._catalog.apply(record))

    @property
    def incompat_features(self) -> int:
        """The incompatible feature flags of the pool's superblock."""
        return self._sb.incompat_features

    async def _enable_features(self, flags: int) -> None:
        """Set incompatible feature `flags` in both superblock copies (A, then B)."""
        if self._sb.incompat_features & flags == flags:
            return
        async with self._feature_lock:
            if self._sb.incompat_features & flags == flags:
                return
            sb = dataclasses.replace(self._sb, incompat_features=self._sb.incompat_features | flags)
            await write_superblock(self.base, sb)
            self._sb = sb

    # ------------------------------------------------------------------ internals

    @contextlib.asynccontextmanager
    async def _op(self, what: str) -> AsyncIterator[None]:
        if self._closed is not None:
            raise FailedPrecondition(f"cannot {what}: pool {self.name!r} was {self._closed}")
        if self._store.failure is not None:
            raise FailedPrecondition(
                f"cannot {what}: pool {self.name!r} is faulted (a metadata write failed: "
                f"{self._store.failure})"
            )
        self._ops += 1
        try:
            yield
        finally:
            self._ops -= 1
            if not self._ops and self._ops_done is not None:
                self._ops_done.set()

    @contextlib.asynccontextmanager
    async def _lvol_lock(self, lvol: Lvol) -> AsyncIterator[LvolMeta]:
        meta = self._meta_of(lvol)
        lock = self._lvol_locks.setdefault(meta.lvol_id, asyncio.Lock())
        async with lock:
            yield self._meta_of(lvol)

    def _meta_of(self, lvol: Lvol) -> LvolMeta:
        if not isinstance(lvol, Lvol) or lvol.pool is not self:
            name = getattr(lvol, "name", lvol)
            raise NotFound(f"lvol {name!r} is not in pool {self.name!r}")
        meta = lvol.meta
        if self._lvols.get(meta.lvol_id) is not lvol:
            raise NotFound(f"lvol {meta.name!r} no longer exists in pool {self.name!r}")
        return meta

    def _check_size(self, size: int, name: str) -> int:
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise InvalidArgument(f"lvol {name!r}: size must be a positive number of bytes")
        bs = self.base.block_size
        size = -(-size // bs) * bs
        if -(-size // self.cluster_size) > MAX_CLUSTERS:
            raise InvalidArgument(f"lvol {name!r}: size {size} is larger than a pool can address")
        return size

    def _check_metadata_room(self, nbytes: int, what: str) -> None:
        catalog = self._catalog
        if catalog.record_bytes + self._reserved_bytes + nbytes > catalog.record_budget:
            raise ResourceExhausted(
                f"pool {self.name!r} metadata is full: no room for {what} "
                f"({catalog.record_bytes} of {catalog.record_budget} bytes used)"
            )

    async def _quiesce(self) -> None:
        while self._ops:
            self._ops_done = asyncio.Event()
            await self._ops_done.wait()
        await asyncio.gather(*(lvol.close() for lvol in self._lvols.values()))
        await self._clusters.wait()
        await self._store.drain()

    def _on_data_error(self, exc: DeviceError) -> None:
        self._state = POOL_STATE_TABLE[(self._state, PoolEvent.DATA_IO_FAILED)]

    def _on_metadata_failure(self, exc: BaseException) -> None:
        self._state = POOL_STATE_TABLE[(self._state, PoolEvent.METADATA_WRITE_FAILED)]
        self._data.faulted = f"a metadata write failed: {exc}"


# ---------------------------------------------------------------------- helpers


def _human(nbytes: int) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift:
            return f"{nbytes / (1 << shift):.1f} {unit}"
    return f"{nbytes} bytes"
