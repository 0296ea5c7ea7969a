"""Pools: a disk turned into clusters, with the lvols carved out of them.

A `Pool` owns its base device from the moment `create`/`import_` return it (a failed
create or import leaves the device to the caller). Metadata changes go through the
pool's `MetadataStore` (group commit, crash safe); everything a change needs is
checked and reserved synchronously first (names, uuids, clusters, metadata space), so
refusals change nothing on disk and concurrent changes cannot both take one thing.

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
import functools
import logging
import re
import secrets
import uuid as uuid_mod
from array import array
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from mayastor.bdev import BlockDevice, IoStats, ReservationState, SpaceBelow
from mayastor.errors import (
    AlreadyExists,
    CorruptMetadata,
    DeviceError,
    DiskNotBlank,
    FailedPrecondition,
    InternalDeviceError,
    InvalidArgument,
    LbaOutOfRange,
    NoSpace,
    NotFound,
    ResourceExhausted,
)
from mayastor.lvs._catalog import Catalog, LvolMeta
from mayastor.lvs._disk_claim import probe_disk, wipe_signatures
from mayastor.lvs._lvol import DataPath, Lvol
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
from mayastor.lvs.format import (
    CHECKPOINT_HEADER_SIZE,
    EXTENT_BYTES,
    INCOMPAT_RESERVATIONS,
    MAX_CLUSTERS,
    MIB,
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
    decode_superblock,
    encode_superblock,
    record_size,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_EXPANSION = 10
"""Metadata is sized for the disk growing to this many times its size at create."""
MAX_CLUSTER_SIZE = 1 << 30

_EXTENTS_HEADER_BYTES = 9
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kib": 1 << 10,
    "kb": 1000,
    "m": 1 << 20,
    "mib": 1 << 20,
    "mb": 1000**2,
    "g": 1 << 30,
    "gib": 1 << 30,
    "gb": 1000**3,
    "t": 1 << 40,
    "tib": 1 << 40,
    "tb": 1000**4,
    "p": 1 << 50,
    "pib": 1 << 50,
    "pb": 1000**5,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")


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
        self._data = DataPath(
            base, sb.data_offset, sb.cluster_size, self._allocate, self._on_data_error
        )
        self._lvols: dict[int, Lvol] = {
            lvol_id: Lvol(self, meta, self._data) for lvol_id, meta in self._catalog.lvols.items()
        }
        self._allocating: dict[tuple[int, int], asyncio.Task[int]] = {}
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
        pool_uuid = _check_uuid(uuid, "pool uuid") or uuid_mod.uuid4()
        _check_cluster_size(cluster_size)
        max_disk = _max_disk_bytes(base.size, max_expansion, cluster_size)
        found = await _read_superblock(base, disk, forced=force)
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
        page = encode_superblock(sb)
        bpp = PAGE_SIZE // base.block_size
        for copy in (0, 1):
            await base.write(copy * bpp, page)
            await base.flush()
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
        pool_uuid = _check_uuid(uuid, "pool uuid")
        found = await _read_superblock(base, disk)
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
            bpp = PAGE_SIZE // base.block_size
            await base.write(repair_copy * bpp, encode_superblock(sb))
            await base.flush()
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
        found = await _read_superblock(base, disk, forced=force)
        wanted = _check_uuid(uuid, "pool uuid")
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
            lvol_uuid = _check_uuid(uuid, "lvol uuid") or uuid_mod.uuid4()
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
            runs = None if thin else self._reserve(nclusters, f"thick lvol {name!r}")
            self._next_id += 1
            self._reserved_names.add(name)
            self._reserved_uuids.add(lvol_uuid)
            self._reserved_bytes += nbytes
            try:
                records: list[Record] = [record]
                if runs:
                    records.append(ExtentsRecord(lvol_id, _extents(0, runs)))
                await self._commit_allocating(records, runs)
            except NoSpace as exc:
                if self._store.failure is not None:
                    raise
                raise self._out_of_space(f"thick lvol {name!r}", nclusters, exc) from exc
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
            await self._wait_allocations(meta.lvol_id)
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
                if any(k[0] == meta.lvol_id and k[1] >= new_n for k in self._allocating):
                    raise FailedPrecondition(
                        f"cannot shrink lvol {meta.name!r} now: writes beyond the new end "
                        "are allocating clusters"
                    )
                meta.alloc_limit = new_n
            elif new_n > old_n and not meta.thin:
                runs = self._reserve(new_n - old_n, f"growing thick lvol {meta.name!r}")
                records.append(ExtentsRecord(meta.lvol_id, _extents(old_n, runs)))
            try:
                zeroed = await self._zero_tail(meta, size) if size > meta.size else False
            except BaseException:
                if runs:
                    self._catalog.unreserve(runs)
                raise

            def after() -> None:
                lvol.num_blocks = size // lvol.block_size

            try:
                await self._commit_allocating(records, runs, after=after, data_flush=zeroed)
            except NoSpace as exc:
                if self._store.failure is not None:
                    raise
                grown = f"growing thick lvol {meta.name!r}"
                raise self._out_of_space(grown, new_n - old_n, exc) from exc

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
            page = encode_superblock(sb)
            bpp = PAGE_SIZE // self.base.block_size
            for copy in (0, 1):
                await self.base.write(copy * bpp, page)
                await self.base.flush()
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

    def _out_of_space(self, what: str, clusters: int, exc: NoSpace) -> ResourceExhausted:
        return ResourceExhausted(
            f"pool {self.name!r}: {what} needs {clusters * self.cluster_size} bytes, but the "
            f"storage under disk {self.disk} ran out of space ({exc}); what it had "
            "allocated was given back and the pool is unchanged"
        )

    def _reserve(self, count: int, what: str) -> list[tuple[int, int]]:
        runs = self._catalog.reserve(count)
        if runs is None:
            free = self._catalog.free_clusters
            raise ResourceExhausted(
                f"pool {self.name!r}: {what} needs {count} clusters of {self.cluster_size} "
                f"bytes; only {free} are free ({free * self.cluster_size} bytes)"
            )
        return runs

    async def _commit_allocating(
        self,
        records: list[Record],
        runs: list[tuple[int, int]] | None,
        *,
        after: Callable[[], None] | None = None,
        data_flush: bool = False,
    ) -> None:
        """Zero newly reserved clusters, then commit `records` (which map them).

        When the storage under the disk runs out of space while zeroing (`NoSpace`:
        a sparse disk file whose file system is full), the clusters' blocks are given
        back (unmapped) before the error is raised, so the failure leaves the file
        system as it found it.
        """
        catalog = self._catalog
        applied = False
        try:
            if runs:
                bpc = self._data.bpc
                try:
                    for start, count in runs:
                        await self._data_io_zero(start * bpc, count * bpc)
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

    async def _data_io_zero(self, rel_lba: int, nblocks: int) -> None:
        try:
            await self.base.write_zeroes(self._data.data_lba + rel_lba, nblocks)
        except NoSpace:
            raise  # the storage below is full; the disk itself is fine
        except DeviceError as exc:
            self._on_data_error(exc)
            raise

    async def _give_back(self, runs: list[tuple[int, int]]) -> None:
        """Unmap reserved (still free) clusters: a sparse disk file gets its blocks back."""
        bpc = self._data.bpc
        for start, count in runs:
            try:
                await self.base.unmap(self._data.data_lba + start * bpc, count * bpc)
            except DeviceError as exc:
                log.warning(
                    "pool %s: clusters %d..%d could not be given back after running out of "
                    "space: %s",
                    self.name,
                    start,
                    start + count - 1,
                    exc,
                )

    async def _zero_tail(self, meta: LvolMeta, new_size: int) -> bool:
        """Zero what lies past the old end in the old last cluster, if it is allocated."""
        bs = self.base.block_size
        cs = self.cluster_size
        old = meta.size
        last = (old - 1) // cs
        end = min(new_size, (last + 1) * cs)
        pc = meta.lookup(last)
        if pc < 0 or end <= old:
            return False
        offset_in_cluster = old - last * cs
        await self._data_io_zero((pc * cs + offset_in_cluster) // bs, (end - old) // bs)
        return True

    async def _allocate(self, meta: LvolMeta, clusters: Sequence[int]) -> list[int]:
        """The pool clusters for a thin lvol's first writes to `clusters`: all or none.

        The clusters that no allocation in flight is taking are reserved together,
        before anything is awaited, so a write that cannot get all its clusters takes
        none of them and changes nothing on disk (one allocation per cluster, however
        many writes want it).
        """
        allocating = self._allocating
        wanted = [c for c in dict.fromkeys(clusters) if (meta.lvol_id, c) not in allocating]
        if wanted:
            if self._store.failure is not None:
                raise InternalDeviceError(
                    f"{meta.name}: pool {self.name!r} is faulted", device=meta.name
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
                    f"{meta.name}: pool {self.name!r} has no free cluster left for this write"
                    if not free
                    else f"{meta.name}: this write needs {len(wanted)} new clusters; pool "
                    f"{self.name!r} has {free} free",
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

    def _allocation_done(self, key: tuple[int, int], task: asyncio.Task[int]) -> None:
        if self._allocating.get(key) is task:
            del self._allocating[key]
        if not task.cancelled():
            task.exception()

    async def _allocate_cluster(self, meta: LvolMeta, cluster: int, pc: int) -> int:
        record = ExtentsRecord(meta.lvol_id, array("I", (cluster, pc, 1)))
        try:
            await self._commit_allocating([record], [(pc, 1)])
        except ResourceExhausted as exc:
            raise NoSpace(f"{meta.name}: {exc}", device=meta.name) from exc
        except FailedPrecondition as exc:
            raise InternalDeviceError(
                f"{meta.name}: pool {self.name!r} cannot allocate: {exc}", device=meta.name
            ) from exc
        return pc

    async def _wait_allocations(self, lvol_id: int | None = None) -> None:
        tasks = [t for k, t in self._allocating.items() if lvol_id is None or k[0] == lvol_id]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _quiesce(self) -> None:
        while self._ops:
            self._ops_done = asyncio.Event()
            await self._ops_done.wait()
        await asyncio.gather(*(lvol.close() for lvol in self._lvols.values()))
        await self._wait_allocations()
        await self._store.drain()

    def _on_data_error(self, exc: DeviceError) -> None:
        self._state = POOL_STATE_TABLE[(self._state, PoolEvent.DATA_IO_FAILED)]

    def _on_metadata_failure(self, exc: BaseException) -> None:
        self._state = POOL_STATE_TABLE[(self._state, PoolEvent.METADATA_WRITE_FAILED)]
        self._data.faulted = f"a metadata write failed: {exc}"


# ---------------------------------------------------------------------- helpers


def _extents(first_lvol_cluster: int, runs: list[tuple[int, int]]) -> array[int]:
    out = array("I")
    lc = first_lvol_cluster
    for start, count in runs:
        out.extend((lc, start, count))
        lc += count
    return out


def _human(nbytes: int) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift:
            return f"{nbytes / (1 << shift):.1f} {unit}"
    return f"{nbytes} bytes"


def _check_uuid(value: object, what: str) -> uuid_mod.UUID | None:
    if value is None:
        return None
    if isinstance(value, uuid_mod.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid_mod.UUID(value)
        except ValueError:
            pass
    raise InvalidArgument(f"{what} {value!r} is not a UUID")


def _check_cluster_size(cluster_size: object) -> None:
    if (
        isinstance(cluster_size, bool)
        or not isinstance(cluster_size, int)
        or cluster_size <= 0
        or cluster_size % MIB
        or cluster_size > MAX_CLUSTER_SIZE
    ):
        raise InvalidArgument(
            f"cluster size {cluster_size!r} is not a multiple of 1 MiB between 1 MiB and 1 GiB"
        )


def _max_disk_bytes(disk_bytes: int, max_expansion: object, cluster_size: int) -> int:
    """The largest disk the metadata is sized for (see `Pool.create`)."""
    if max_expansion is None:
        wanted = disk_bytes * DEFAULT_MAX_EXPANSION
        return min(wanted, MAX_CLUSTERS * cluster_size)
    if isinstance(max_expansion, bool):
        raise InvalidArgument(f"max_expansion {max_expansion!r} is neither a factor nor a size")
    if isinstance(max_expansion, int):
        wanted = max_expansion
    elif isinstance(max_expansion, str):
        text = max_expansion.strip().lower()
        if text.endswith("x"):
            try:
                factor = float(text[:-1])
            except ValueError:
                raise InvalidArgument(f"max_expansion {max_expansion!r} is not a factor") from None
            if not factor >= 1:
                raise InvalidArgument(f"max_expansion factor {max_expansion!r} is below 1")
            wanted = int(disk_bytes * factor)
        else:
            match = _SIZE_RE.match(text)
            if not match or match.group(2) not in _UNITS:
                raise InvalidArgument(
                    f"max_expansion {max_expansion!r} is neither a factor ('4x') nor a size "
                    "('2TiB', '500GB', bytes)"
                )
            wanted = int(float(match.group(1)) * _UNITS[match.group(2)])
    else:
        raise InvalidArgument(f"max_expansion {max_expansion!r} is neither a factor nor a size")
    if wanted < disk_bytes:
        raise InvalidArgument(
            f"max_expansion {max_expansion!r} ({wanted} bytes) is smaller than the disk "
            f"({disk_bytes} bytes)"
        )
    return wanted


async def _read_superblock(
    base: BlockDevice, disk: str, *, forced: bool = False
) -> tuple[Superblock, int | None] | None:
    """The pool superblock on `base` and the copy to repair (None: both fine), or None.

    Args:
        forced: a forced create asks: damaged superblocks count as none.

    Raises:
        CorruptMetadata: superblocks are there but none is intact, or they disagree
            (not when `forced`).
        FailedPrecondition: an intact superblock of an unknown format version.
    """
    if forced:
        try:
            return await _read_superblock(base, disk)
        except CorruptMetadata:
            return None
    bpp = PAGE_SIZE // base.block_size
    if base.num_blocks < 2 * bpp:
        return None
    data = memoryview(await base.read(0, 2 * bpp))
    found: list[tuple[int, Superblock]] = []
    damaged: list[CorruptMetadata] = []
    for copy in (0, 1):
        page = data[copy * PAGE_SIZE : (copy + 1) * PAGE_SIZE]
        where = f"disk {disk} (superblock copy {'AB'[copy]})"
        try:
            sb = decode_superblock(page, where=where)
        except CorruptMetadata as exc:
            damaged.append(exc)
            continue
        if sb is not None:
            found.append((copy, sb))
    if not found:
        if damaged:
            raise CorruptMetadata(
                f"disk {disk} holds pool metadata but both superblock copies are damaged: "
                + "; ".join(str(e) for e in damaged)
            )
        return None
    if len(found) == 2:
        (_, a), (_, b) = found
        if a == b:
            return a, None
        # A crash between the two writes that set a feature: the copy with the features
        # wins, and the other is repaired. Anything else is not ours to guess at.
        same = dataclasses.replace(b, incompat_features=0, compat_features=0) == (
            dataclasses.replace(a, incompat_features=0, compat_features=0)
        )
        if same:
            if _has_features_of(a, b):
                return a, 1
            if _has_features_of(b, a):
                return b, 0
        raise CorruptMetadata(f"disk {disk}: the two superblock copies disagree")
    copy, sb = found[0]
    return sb, 1 - copy


def _has_features_of(sb: Superblock, other: Superblock) -> bool:
    """True when `sb` has every feature flag `other` has."""
    return (
        sb.incompat_features | other.incompat_features == sb.incompat_features
        and sb.compat_features | other.compat_features == sb.compat_features
    )
