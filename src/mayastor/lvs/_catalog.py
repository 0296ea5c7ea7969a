"""The catalog: what a pool's metadata says, held in memory, and the one way to change it.

A catalog is the lvols of a pool (identity, size, properties, cluster map) and the
cluster bitmap derived from their maps. It changes only by `Catalog.apply(record)`:
the same function replays the journal at import and applies a committed transaction
at run time, so what is on disk and what is in memory cannot drift apart. Every
record is checked before it changes anything; a record that does not fit (a cluster
of two lvols, a cluster outside the pool, an unknown lvol) is `CorruptMetadata`.

The catalog also hands out free clusters (`reserve`): a reserved cluster is marked in
the bitmap so nobody else takes it, and is released (`unreserve`) just before the
record that maps it is applied. No I/O here and no asyncio.
"""

from __future__ import annotations

import uuid as uuid_mod
from array import array
from collections.abc import Callable, Iterator

from mayastor.errors import CorruptMetadata
from mayastor.lvs._properties import LvolProperties, ShareProtocol
from mayastor.lvs.format import (
    CHECKPOINT_HEADER_SIZE,
    EXTENT_BYTES,
    MAX_CLUSTERS,
    UNMAPPED,
    CheckpointHeader,
    DestroyRecord,
    ExtentsRecord,
    LvolRecord,
    PoolSizeRecord,
    PropertiesRecord,
    Record,
    ReservationRecord,
    ResizeRecord,
    decode_records,
    encode_record,
    lvol_record_size,
    record_size,
)

_EXTENTS_HEADER_BYTES = 9  # record header (5) + lvol id (4)
_ONE = b"\x01"


class LvolMeta:
    """One lvol as the catalog knows it.

    Thick lvols map every cluster (`thick_map`, an array indexed by lvol cluster);
    thin lvols map only what was written (`thin_map`, a dict), so a pool of many
    large thin lvols costs memory only for what is allocated. `extents` is the same
    mapping as flattened ``(lvol cluster, pool cluster, count)`` triples, in
    allocation order, which is what checkpoints store.
    """

    __slots__ = (
        "alloc_limit",
        "allocated",
        "extents",
        "lvol_id",
        "name",
        "nclusters",
        "properties",
        "record_bytes",
        "reservation",
        "reservation_bytes",
        "size",
        "thick_map",
        "thin",
        "thin_map",
        "uuid",
    )

    def __init__(self, record: LvolRecord, cluster_size: int) -> None:
        self.lvol_id = record.lvol_id
        self.uuid = record.uuid
        self.name = record.name
        self.size = record.size
        self.thin = record.thin
        self.properties = _properties(record.share, record.allowed_hosts, record.entity_id)
        self.nclusters = -(-record.size // cluster_size)
        self.alloc_limit = self.nclusters
        self.extents: array[int] = array("I")
        self.allocated = 0
        self.thin_map: dict[int, int] | None = {} if record.thin else None
        self.thick_map: array[int] | None = (
            None if record.thin else array("I", [UNMAPPED]) * self.nclusters
        )
        self.record_bytes = lvol_record_size(record) + _EXTENTS_HEADER_BYTES
        self.reservation: ReservationRecord | None = None
        """The lvol's NVMe reservation state, when one was ever stored."""
        self.reservation_bytes = 0

    def record(self) -> LvolRecord:
        """The LVOL record that recreates this lvol (without its extents)."""
        props = self.properties
        return LvolRecord(
            self.lvol_id,
            self.uuid,
            self.name,
            self.size,
            self.thin,
            props.share.value,
            props.allowed_hosts,
            props.entity_id,
        )

    def lookup(self, lvol_cluster: int) -> int:
        """The pool cluster of `lvol_cluster`, or -1 when it is not allocated."""
        if self.thin_map is not None:
            return self.thin_map.get(lvol_cluster, -1)
        assert self.thick_map is not None
        pc = self.thick_map[lvol_cluster]
        return -1 if pc == UNMAPPED else pc

    def iter_extents(self) -> Iterator[tuple[int, int, int]]:
        ext = self.extents
        for i in range(0, len(ext), 3):
            yield ext[i], ext[i + 1], ext[i + 2]


_SHARE = {protocol.value: protocol for protocol in ShareProtocol}
_NO_PROPERTIES = LvolProperties()


def _properties(share: int, hosts: tuple[str, ...], entity_id: str | None) -> LvolProperties:
    protocol = _SHARE.get(share)
    if protocol is None:
        raise CorruptMetadata(f"share protocol code {share} is unknown")
    if protocol is ShareProtocol.NONE and not hosts and entity_id is None:
        return _NO_PROPERTIES
    return LvolProperties(protocol, hosts, entity_id)


class Catalog:
    """The lvols and cluster bitmap of one pool; see the module docstring.

    Args:
        cluster_size: bytes per cluster.
        data_clusters: clusters in the pool now.
        max_data_clusters: the most clusters the metadata was sized for.
        slot_bytes: bytes of one checkpoint slot (bounds the metadata of all lvols).
    """

    def __init__(
        self, cluster_size: int, data_clusters: int, max_data_clusters: int, slot_bytes: int
    ) -> None:
        self.cluster_size = cluster_size
        self.max_data_clusters = max_data_clusters
        self.lvols: dict[int, LvolMeta] = {}
        self.by_name: dict[str, LvolMeta] = {}
        self.by_uuid: dict[uuid_mod.UUID, LvolMeta] = {}
        self.bitmap = bytearray(data_clusters)
        self.used_clusters = 0
        self.reserved_clusters = 0
        self.last_seq = 0
        self.next_lvol_id = 1
        self.record_bytes = 0
        self.record_budget = slot_bytes - CHECKPOINT_HEADER_SIZE - max_data_clusters * EXTENT_BYTES
        self._hint = 0
        self._apply: dict[type, Callable[[object], None]] = {
            LvolRecord: self._apply_lvol,  # type: ignore[dict-item]
            ExtentsRecord: self._apply_extents,  # type: ignore[dict-item]
            DestroyRecord: self._apply_destroy,  # type: ignore[dict-item]
            ResizeRecord: self._apply_resize,  # type: ignore[dict-item]
            PropertiesRecord: self._apply_properties,  # type: ignore[dict-item]
            PoolSizeRecord: self._apply_pool_size,  # type: ignore[dict-item]
            ReservationRecord: self._apply_reservation,  # type: ignore[dict-item]
        }

    # ------------------------------------------------------------------ numbers

    @property
    def data_clusters(self) -> int:
        return len(self.bitmap)

    @property
    def free_clusters(self) -> int:
        """Clusters neither allocated nor reserved."""
        return len(self.bitmap) - self.used_clusters - self.reserved_clusters

    # ------------------------------------------------------------------ changes

    def apply(self, record: Record) -> None:
        """Change the catalog as `record` says, after checking that it fits.

        Raises:
            CorruptMetadata: the record contradicts the catalog (nothing was changed
                by the part of the record that failed).
        """
        self._apply[type(record)](record)

    def _lvol(self, lvol_id: int) -> LvolMeta:
        meta = self.lvols.get(lvol_id)
        if meta is None:
            raise CorruptMetadata(f"record names lvol id {lvol_id}, which does not exist")
        return meta

    def _apply_lvol(self, rec: LvolRecord) -> None:
        if rec.lvol_id in self.lvols or not 0 < rec.lvol_id < 1 << 32:
            raise CorruptMetadata(f"lvol id {rec.lvol_id} is created twice or out of range")
        if rec.name in self.by_name or rec.uuid in self.by_uuid:
            raise CorruptMetadata(f"lvol {rec.name!r} ({rec.uuid}): name or uuid is taken")
        if rec.size <= 0 or -(-rec.size // self.cluster_size) > MAX_CLUSTERS:
            raise CorruptMetadata(f"lvol {rec.name!r} has an impossible size {rec.size}")
        meta = LvolMeta(rec, self.cluster_size)
        self.lvols[rec.lvol_id] = meta
        self.by_name[meta.name] = meta
        self.by_uuid[meta.uuid] = meta
        self.next_lvol_id = max(self.next_lvol_id, rec.lvol_id + 1)
        self.record_bytes += meta.record_bytes

    def _apply_extents(self, rec: ExtentsRecord) -> None:
        meta = self._lvol(rec.lvol_id)
        ext = rec.extents
        bitmap = self.bitmap
        for i in range(0, len(ext), 3):
            lc, pc, n = ext[i], ext[i + 1], ext[i + 2]
            if n < 1 or lc + n > meta.alloc_limit or pc + n > len(bitmap):
                raise CorruptMetadata(
                    f"lvol {meta.name!r}: extent ({lc}, {pc}, {n}) lies outside the lvol "
                    f"({meta.alloc_limit} clusters) or the pool ({len(bitmap)} clusters)"
                )
            if bitmap.find(1, pc, pc + n) != -1:
                raise CorruptMetadata(
                    f"lvol {meta.name!r}: pool clusters {pc}..{pc + n - 1} already belong "
                    "to another lvol (or to this one)"
                )
            self._map(meta, lc, pc, n)
            bitmap[pc : pc + n] = _ONE * n
            self.used_clusters += n
            meta.allocated += n
            self._append_extent(meta, lc, pc, n)

    @staticmethod
    def _map(meta: LvolMeta, lc: int, pc: int, n: int) -> None:
        if meta.thin_map is not None:
            tmap = meta.thin_map
            if any(k in tmap for k in range(lc, lc + n)):
                raise CorruptMetadata(f"lvol {meta.name!r}: cluster {lc}.. is mapped twice")
            tmap.update(zip(range(lc, lc + n), range(pc, pc + n), strict=True))
            return
        amap = meta.thick_map
        assert amap is not None
        if amap[lc : lc + n].count(UNMAPPED) != n:
            raise CorruptMetadata(f"lvol {meta.name!r}: cluster {lc}.. is mapped twice")
        amap[lc : lc + n] = array("I", range(pc, pc + n))

    @staticmethod
    def _append_extent(meta: LvolMeta, lc: int, pc: int, n: int) -> None:
        ext = meta.extents
        if ext and ext[-3] + ext[-1] == lc and ext[-2] + ext[-1] == pc:
            ext[-1] += n
        else:
            ext.extend((lc, pc, n))

    def _apply_destroy(self, rec: DestroyRecord) -> None:
        meta = self._lvol(rec.lvol_id)
        bitmap = self.bitmap
        for _lc, pc, n in meta.iter_extents():
            bitmap[pc : pc + n] = bytes(n)
        self.used_clusters -= meta.allocated
        del self.lvols[meta.lvol_id]
        del self.by_name[meta.name]
        del self.by_uuid[meta.uuid]
        self.record_bytes -= meta.record_bytes + meta.reservation_bytes

    def _apply_resize(self, rec: ResizeRecord) -> None:
        meta = self._lvol(rec.lvol_id)
        new = -(-rec.size // self.cluster_size)
        if rec.size <= 0 or new > MAX_CLUSTERS:
            raise CorruptMetadata(f"lvol {meta.name!r} resized to an impossible size {rec.size}")
        if new < meta.nclusters and self.highest_mapped(meta) >= new:
            raise CorruptMetadata(
                f"lvol {meta.name!r} shrunk to {new} clusters below an allocated cluster"
            )
        if meta.thick_map is not None:
            if new > meta.nclusters:
                meta.thick_map.extend(array("I", [UNMAPPED]) * (new - meta.nclusters))
            else:
                del meta.thick_map[new:]
        meta.size = rec.size
        meta.nclusters = new
        meta.alloc_limit = new

    @staticmethod
    def highest_mapped(meta: LvolMeta) -> int:
        """The highest allocated lvol cluster of `meta`, or -1."""
        if meta.thin_map is not None:
            return max(meta.thin_map, default=-1)
        ext = meta.extents
        return max((ext[i] + ext[i + 2] - 1 for i in range(0, len(ext), 3)), default=-1)

    def _apply_properties(self, rec: PropertiesRecord) -> None:
        meta = self._lvol(rec.lvol_id)
        meta.properties = _properties(rec.share, rec.allowed_hosts, rec.entity_id)
        before = meta.record_bytes
        meta.record_bytes = lvol_record_size(meta.record()) + _EXTENTS_HEADER_BYTES
        self.record_bytes += meta.record_bytes - before

    def _apply_reservation(self, rec: ReservationRecord) -> None:
        meta = self._lvol(rec.lvol_id)
        hosts = [host for host, _key in rec.registrants]
        if (
            len(set(hosts)) != len(hosts)
            or not all(key for _host, key in rec.registrants)
            or (rec.rtype == 0) != (rec.holder is None)
            or (rec.holder is not None and rec.holder not in hosts)
        ):
            raise CorruptMetadata(
                f"lvol {meta.name!r}: its reservation record contradicts itself (a holder "
                "that is not registered, a type without a holder, a key of 0 or a host twice)"
            )
        size = record_size(rec)
        self.record_bytes += size - meta.reservation_bytes
        meta.reservation = rec
        meta.reservation_bytes = size

    def _apply_pool_size(self, rec: PoolSizeRecord) -> None:
        now = len(self.bitmap)
        if not now <= rec.data_clusters <= self.max_data_clusters:
            raise CorruptMetadata(
                f"pool resized from {now} to {rec.data_clusters} clusters (at most "
                f"{self.max_data_clusters})"
            )
        self.bitmap.extend(bytes(rec.data_clusters - now))

    # ------------------------------------------------------------------ allocation

    def reserve(self, count: int) -> list[tuple[int, int]] | None:
        """Take `count` free clusters for an allocation that is about to be committed.

        Returns:
            ``(first cluster, count)`` runs, as long as possible, or None when fewer
            than `count` clusters are free (nothing is taken then).
        """
        if count > self.free_clusters:
            return None
        bitmap = self.bitmap
        size = len(bitmap)
        runs: list[tuple[int, int]] = []
        need = count
        pos = self._hint if self._hint < size else 0
        while need:
            start = bitmap.find(0, pos)
            if start < 0:
                start = bitmap.find(0)
            end = bitmap.find(1, start)
            if end < 0:
                end = size
            n = min(end - start, need)
            bitmap[start : start + n] = _ONE * n
            runs.append((start, n))
            need -= n
            pos = start + n
        self._hint = pos
        self.reserved_clusters += count
        return runs

    def unreserve(self, runs: list[tuple[int, int]]) -> None:
        """Give back clusters taken by `reserve` (before applying the record that maps them)."""
        for start, n in runs:
            self.bitmap[start : start + n] = bytes(n)
            self.reserved_clusters -= n

    # ------------------------------------------------------------------ checkpoints

    def checkpoint_body(self) -> bytes:
        """The records that rebuild this catalog (a checkpoint's body)."""
        parts: list[bytes] = []
        for meta in self.lvols.values():
            parts.append(encode_record(meta.record()))
            parts.append(encode_record(ExtentsRecord(meta.lvol_id, meta.extents)))
            if meta.reservation is not None:
                parts.append(encode_record(meta.reservation))
        return b"".join(parts)

    @classmethod
    def from_checkpoint(
        cls,
        header: CheckpointHeader,
        body: bytes | bytearray | memoryview,
        *,
        cluster_size: int,
        max_data_clusters: int,
        slot_bytes: int,
    ) -> Catalog:
        """The catalog a checkpoint describes.

        Raises:
            CorruptMetadata: the body does not decode or contradicts itself.
        """
        if not 0 < header.data_clusters <= max_data_clusters:
            raise CorruptMetadata(f"checkpoint says the pool has {header.data_clusters} clusters")
        catalog = cls(cluster_size, header.data_clusters, max_data_clusters, slot_bytes)
        for record in decode_records(body):
            if not isinstance(record, LvolRecord | ExtentsRecord | ReservationRecord):
                raise CorruptMetadata(f"checkpoint holds a {type(record).__name__}")
            catalog.apply(record)
        if len(catalog.lvols) != header.lvol_count:
            raise CorruptMetadata(
                f"checkpoint header counts {header.lvol_count} lvols, its body {len(catalog.lvols)}"
            )
        catalog.last_seq = header.last_seq
        catalog.next_lvol_id = max(catalog.next_lvol_id, header.next_lvol_id)
        return catalog

    def check_complete(self) -> None:
        """Refuse a catalog in which a thick lvol lacks clusters (after replay).

        Raises:
            CorruptMetadata: naming the lvol.
        """
        for meta in self.lvols.values():
            if meta.thick_map is not None and meta.allocated != meta.nclusters:
                raise CorruptMetadata(
                    f"thick lvol {meta.name!r} has {meta.allocated} of its "
                    f"{meta.nclusters} clusters"
                )
