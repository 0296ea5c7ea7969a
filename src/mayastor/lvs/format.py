"""The on-disk format of a pool (DESIGN.md section 6), version 1: pure encode and decode.

This module turns pool metadata into bytes and back; it does no I/O and knows nothing
of block devices or asyncio. `mayastor.lvs._store` reads and writes what it encodes.

Layout (all integers little-endian; a *page* is 4096 bytes, whatever the block size)::

    page 0            superblock, copy A
    page 1            superblock, copy B (byte-identical to copy A)
    copy A region     checkpoint slot A (slot_pages) | journal A (journal_pages)
    copy B region     checkpoint slot B (slot_pages) | journal B (journal_pages)
    (padding up to a cluster boundary: `data_offset`)
    data clusters     cluster c occupies bytes data_offset + c*cluster_size ...

Superblock (one page, written at create and wiped at destroy; between the two only its
feature flags change): magic ``MYSTLVS1``, format version, feature flags, pool uuid, a random
64-bit *nonce* drawn at every create (so nothing left on the disk by an earlier pool,
even one of the same uuid, is ever taken for ours), block size, metadata page size,
cluster size, the metadata layout (where the copies are, how big the slots and journals
are), `data_offset` and `max_data_clusters` (metadata is sized at create for growing up
to that many clusters), the pool name. The last 4 bytes of the page are the CRC32C of
the rest, in every version: a copy whose CRC fails is damaged; a copy whose CRC holds
but whose version is unknown is a pool of a newer format and is refused as such.

Checkpoint (a slot holds one): a 128-byte header (magic ``MYSTCKPT``, pool nonce and
uuid, generation, the sequence number of the last journal transaction it contains, the
number of data clusters, the next lvol id, lvol count, body length, body CRC32C, header
CRC32C) followed by the body: the records that rebuild the catalog, one `LvolRecord`
and one `ExtentsRecord` per lvol. A checkpoint is valid only when both CRCs hold.

Journal page (one page): a 56-byte header (magic ``MYSTJRNL``, pool nonce, epoch = the
generation of the checkpoint it follows, its index in the journal, flags, payload
length, transaction sequence number, the CRC of the previous journal page (for index 0,
the header CRC of the checkpoint), a random session id of the writer), the payload, and
the CRC32C of the page in its last 4 bytes. The payload of the pages of one transaction,
concatenated, is a stream of records; the last page of a transaction has `PAGE_END`.
The chain of previous-page CRCs makes any page that was not written right after its
predecessor (a stale page from an earlier run, from before a checkpoint, from another
pool) end the replay.

Record (checkpoint body and journal payload): type (u8), payload length (u32), payload.
Types 1-8 are defined below; 16-31 are reserved for snapshots, clones and shared-cluster
reference counts (a later format version with an incompatible-feature flag); any other
type in a version 1 pool is corruption. Extents are triples of u32 ``(lvol cluster,
pool cluster, count)``.

Feature flags (superblock): an *incompatible* feature is one that software which does
not know it must not import the pool with (it refuses it by name, as it refuses an
unknown format version); pools without it stay readable by older software.

* `INCOMPAT_RESERVATIONS` (bit 0): the metadata may hold RESERVATION records (type 8,
  an lvol's NVMe reservation state: generation, type, holder, registrants with their
  keys, PTPL). It is set, in both superblock copies (A, then B, each flushed), before
  the first such record is written; a pool that never held a reservation keeps it
  clear. Two intact superblock copies that differ only in their feature flags are a
  crash between those two writes: the copy with more flags wins and the other is
  repaired.

Sizing: a checkpoint slot holds the records of all lvols (a byte budget of
`LVOL_RECORD_BUDGET` per expected lvol, at least `MIN_LVOL_BUDGET` lvols) plus one
extent per data cluster at the maximum expansion (the worst case of a fully fragmented
thin pool); the journal has as many pages as a slot, between 64 and 1024 (4 MiB). The metadata
of a 100 MiB pool with 4 MiB clusters then fits in its first cluster (96 MiB capacity).
"""

from __future__ import annotations

import struct
import sys
import uuid as uuid_mod
from array import array
from collections.abc import Callable
from dataclasses import dataclass

from crc32c import crc32c

from mayastor.errors import CorruptMetadata, FailedPrecondition, InvalidArgument

FORMAT_VERSION = 1
INCOMPAT_RESERVATIONS = 0x1
"""Incompatible feature: the pool may hold RESERVATION records (see the module docstring)."""
KNOWN_INCOMPAT_FEATURES = INCOMPAT_RESERVATIONS
"""The incompatible features this software reads; a pool with any other is refused."""
PAGE_SIZE = 4096
SUPERBLOCK_MAGIC = b"MYSTLVS1"
CHECKPOINT_MAGIC = b"MYSTCKPT"
JOURNAL_MAGIC = b"MYSTJRNL"

MIB = 1 << 20
MAX_NAME_BYTES = 255
MAX_HOSTS = 1024
MAX_HOST_BYTES = 223  # the NVMe limit for an NQN
MAX_ENTITY_ID_BYTES = 1024

EXTENT_BYTES = 12
LVOL_RECORD_BUDGET = 256
MIN_LVOL_BUDGET = 1024
MAX_LVOL_BUDGET = 262_144
MIN_JOURNAL_PAGES = 64
MAX_JOURNAL_PAGES = 1024
UNMAPPED = 0xFFFF_FFFF
"""A u32 that is never a cluster number: an unmapped slot of a cluster map."""
MAX_CLUSTERS = UNMAPPED - 1

PAGE_END = 0x1
"""Journal page flag: the last page of its transaction."""

# ----------------------------------------------------------------------- CRC helpers


def crc_of(data: bytes | bytearray | memoryview) -> int:
    """CRC32C (Castagnoli), as NVMe/TCP digests and most storage formats use."""
    return int(crc32c(data))


# ----------------------------------------------------------------------- superblock

_SB = struct.Struct("<8sII QQ 16sQ II QQQQQQQ H")
_SB_NAME_OFFSET = _SB.size
_SB_CRC_OFFSET = PAGE_SIZE - 4
_U32 = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class Superblock:
    """The fixed description of a pool; see the module docstring."""

    pool_uuid: uuid_mod.UUID
    name: str
    nonce: int
    block_size: int
    cluster_size: int
    copy_pages: tuple[int, int]
    slot_pages: int
    journal_pages: int
    data_offset: int
    max_data_clusters: int
    version: int = FORMAT_VERSION
    incompat_features: int = 0
    compat_features: int = 0

    def journal_page(self, copy: int) -> int:
        """First page of the journal of `copy` (0 = A, 1 = B)."""
        return self.copy_pages[copy] + self.slot_pages

    @property
    def metadata_pages(self) -> int:
        """Pages from the start of the disk to the end of copy B."""
        return self.copy_pages[1] + self.slot_pages + self.journal_pages


def encode_superblock(sb: Superblock) -> bytes:
    """One page holding `sb` and its CRC."""
    name = sb.name.encode()
    page = bytearray(PAGE_SIZE)
    _SB.pack_into(
        page,
        0,
        SUPERBLOCK_MAGIC,
        sb.version,
        _SB.size,
        sb.incompat_features,
        sb.compat_features,
        sb.pool_uuid.bytes,
        sb.nonce,
        sb.block_size,
        PAGE_SIZE,
        sb.cluster_size,
        sb.copy_pages[0],
        sb.copy_pages[1],
        sb.slot_pages,
        sb.journal_pages,
        sb.data_offset,
        sb.max_data_clusters,
        len(name),
    )
    page[_SB_NAME_OFFSET : _SB_NAME_OFFSET + len(name)] = name
    _U32.pack_into(page, _SB_CRC_OFFSET, crc_of(memoryview(page)[:_SB_CRC_OFFSET]))
    return bytes(page)


def has_superblock_magic(page: bytes | bytearray | memoryview) -> bool:
    """True when `page` starts like a superblock (intact or not)."""
    return bytes(page[: len(SUPERBLOCK_MAGIC)]) == SUPERBLOCK_MAGIC


def decode_superblock(page: bytes | bytearray | memoryview, *, where: str) -> Superblock | None:
    """The superblock in `page`, or None when the page holds none at all.

    Args:
        page: one page read from the disk.
        where: says which disk and copy, for error messages.

    Raises:
        CorruptMetadata: the page looks like a superblock but fails its CRC or checks.
        FailedPrecondition: an intact superblock of a format version this software
            does not know (or with features it does not support).
    """
    if len(page) < PAGE_SIZE or not has_superblock_magic(page):
        return None
    view = memoryview(page)[:PAGE_SIZE]
    (stored_crc,) = _U32.unpack_from(view, _SB_CRC_OFFSET)
    if crc_of(view[:_SB_CRC_OFFSET]) != stored_crc:
        raise CorruptMetadata(f"{where}: superblock fails its CRC")
    (
        _magic,
        version,
        _header_size,
        incompat,
        compat,
        uuid_bytes,
        nonce,
        block_size,
        page_size,
        cluster_size,
        copy_a,
        copy_b,
        slot_pages,
        journal_pages,
        data_offset,
        max_data_clusters,
        name_len,
    ) = _SB.unpack_from(view, 0)
    if version != FORMAT_VERSION:
        raise FailedPrecondition(
            f"{where}: the pool is in on-disk format version {version}; this software "
            f"reads format version {FORMAT_VERSION} only (upgrade the software to import it)"
        )
    if incompat & ~KNOWN_INCOMPAT_FEATURES:
        raise FailedPrecondition(
            f"{where}: the pool uses features {incompat & ~KNOWN_INCOMPAT_FEATURES:#x} that "
            "this software does not know (upgrade the software to import it)"
        )
    if name_len > MAX_NAME_BYTES:
        raise CorruptMetadata(f"{where}: superblock name length {name_len} is impossible")
    try:
        name = bytes(view[_SB_NAME_OFFSET : _SB_NAME_OFFSET + name_len]).decode()
    except UnicodeDecodeError:
        raise CorruptMetadata(f"{where}: superblock pool name is not UTF-8") from None
    sb = Superblock(
        pool_uuid=uuid_mod.UUID(bytes=uuid_bytes),
        name=name,
        nonce=nonce,
        block_size=block_size,
        cluster_size=cluster_size,
        copy_pages=(copy_a, copy_b),
        slot_pages=slot_pages,
        journal_pages=journal_pages,
        data_offset=data_offset,
        max_data_clusters=max_data_clusters,
        version=version,
        incompat_features=incompat,
        compat_features=compat,
    )
    problem = _layout_problem(sb, page_size)
    if problem:
        raise CorruptMetadata(f"{where}: superblock layout is impossible: {problem}")
    return sb


def _layout_problem(sb: Superblock, page_size: int) -> str | None:
    if page_size != PAGE_SIZE:
        return f"metadata page size {page_size}"
    if sb.block_size not in (512, 4096):
        return f"block size {sb.block_size}"
    if sb.cluster_size <= 0 or sb.cluster_size % MIB:
        return f"cluster size {sb.cluster_size}"
    if not sb.name:
        return "empty pool name"
    if sb.copy_pages[0] != 2 or sb.copy_pages[1] != 2 + sb.slot_pages + sb.journal_pages:
        return f"metadata copies at pages {sb.copy_pages}"
    if sb.slot_pages < 1 or sb.journal_pages < 1:
        return "empty checkpoint slot or journal"
    if sb.data_offset % sb.cluster_size or sb.data_offset < sb.metadata_pages * PAGE_SIZE:
        return f"data offset {sb.data_offset}"
    if not 0 < sb.max_data_clusters <= MAX_CLUSTERS:
        return f"max data clusters {sb.max_data_clusters}"
    return None


# ----------------------------------------------------------------------- layout


@dataclass(frozen=True, slots=True)
class Layout:
    """Where things go on a disk of a given size; what `compute_layout` decides."""

    slot_pages: int
    journal_pages: int
    data_offset: int
    data_clusters: int
    max_data_clusters: int

    @property
    def copy_pages(self) -> tuple[int, int]:
        return (2, 2 + self.slot_pages + self.journal_pages)


def slot_capacity_for(max_clusters: int) -> int:
    """Bytes a checkpoint slot must hold for a pool of up to `max_clusters` clusters."""
    lvols = min(max(max_clusters, MIN_LVOL_BUDGET), MAX_LVOL_BUDGET)
    return CHECKPOINT_HEADER_SIZE + lvols * LVOL_RECORD_BUDGET + max_clusters * EXTENT_BYTES


def compute_layout(disk_bytes: int, cluster_size: int, max_disk_bytes: int) -> Layout:
    """Size the metadata for growth up to `max_disk_bytes` and place the data clusters.

    Args:
        disk_bytes: the size of the disk now.
        cluster_size: bytes per cluster, a multiple of 1 MiB.
        max_disk_bytes: the largest the disk may grow to (>= disk_bytes).

    Raises:
        InvalidArgument: the disk cannot hold the metadata and one data cluster, or
            the maximum size needs more clusters than the format can number.
    """
    if cluster_size <= 0 or cluster_size % MIB:
        raise InvalidArgument(f"cluster size {cluster_size} is not a positive multiple of 1 MiB")
    max_clusters = max_disk_bytes // cluster_size
    if max_clusters > MAX_CLUSTERS:
        raise InvalidArgument(
            f"a pool of up to {max_disk_bytes} bytes needs {max_clusters} clusters of "
            f"{cluster_size} bytes; the format numbers at most {MAX_CLUSTERS}: use larger clusters"
        )
    slot_pages = -(-slot_capacity_for(max_clusters) // PAGE_SIZE)
    journal_pages = min(max(slot_pages, MIN_JOURNAL_PAGES), MAX_JOURNAL_PAGES)
    md_bytes = (2 + 2 * (slot_pages + journal_pages)) * PAGE_SIZE
    data_offset = -(-md_bytes // cluster_size) * cluster_size
    data_clusters = (disk_bytes - data_offset) // cluster_size
    if data_clusters < 1:
        raise InvalidArgument(
            f"a disk of {disk_bytes} bytes is too small for a pool with {cluster_size}-byte "
            f"clusters: it needs at least {data_offset + cluster_size} bytes"
        )
    max_data_clusters = (max_disk_bytes - data_offset) // cluster_size
    return Layout(slot_pages, journal_pages, data_offset, data_clusters, max_data_clusters)


# ----------------------------------------------------------------------- records


class RecordType:
    """Record type codes (u8). 16-31 are reserved for snapshots and clones."""

    LVOL = 1  # an lvol: identity, size, thin flag, properties (create; checkpoint)
    EXTENTS = 2  # clusters mapped to an lvol (allocation; checkpoint)
    DESTROY = 3  # an lvol and its clusters are gone
    RESIZE = 4  # an lvol's new size in bytes
    PROPERTIES = 5  # an lvol's new properties
    POOL_SIZE = 6  # the pool's number of data clusters (grow)
    RELEASE = 7  # clusters of an lvol given back (reserved: version 1 never writes it)
    RESERVATION = 8  # an lvol's NVMe reservation state (INCOMPAT_RESERVATIONS pools only)
    SNAPSHOT = 16  # reserved
    CLONE = 17  # reserved
    CLUSTER_REFCOUNT = 18  # reserved: shared clusters


# Records are values: built once, never changed. Not frozen only because frozen
# dataclasses are several times slower to build, and import builds thousands.


@dataclass(slots=True)
class LvolRecord:
    lvol_id: int
    uuid: uuid_mod.UUID
    name: str
    size: int
    thin: bool
    share: int
    allowed_hosts: tuple[str, ...]
    entity_id: str | None


@dataclass(slots=True)
class ExtentsRecord:
    """Mappings added to lvol `lvol_id`: flattened ``(lvol cluster, pool cluster, count)``."""

    lvol_id: int
    extents: array[int]


@dataclass(slots=True)
class DestroyRecord:
    lvol_id: int


@dataclass(slots=True)
class ResizeRecord:
    lvol_id: int
    size: int


@dataclass(slots=True)
class PropertiesRecord:
    lvol_id: int
    share: int
    allowed_hosts: tuple[str, ...]
    entity_id: str | None


@dataclass(slots=True)
class PoolSizeRecord:
    data_clusters: int


MAX_RESERVATION_REGISTRANTS = 1024
"""The most registrants a RESERVATION record may list (more is corruption)."""


@dataclass(slots=True)
class ReservationRecord:
    """An lvol's NVMe reservation state, replacing the one before.

    Payload: lvol id (u32), generation (u32), reservation type (u8, 0: none), flags
    (u8: bit 0 PTPL, bit 1 a holder follows), holder host identifier (16 bytes, zero
    without one), registrant count (u16), then per registrant its host identifier (16
    bytes) and key (u64).
    """

    lvol_id: int
    generation: int
    rtype: int
    ptpl: bool
    holder: uuid_mod.UUID | None
    registrants: tuple[tuple[uuid_mod.UUID, int], ...]


Record = (
    LvolRecord
    | ExtentsRecord
    | DestroyRecord
    | ResizeRecord
    | PropertiesRecord
    | PoolSizeRecord
    | ReservationRecord
)

_REC_HEADER = struct.Struct("<BI")
_LVOL_FIXED = struct.Struct("<I16sQBH")
_ID = struct.Struct("<I")
_RESIZE = struct.Struct("<IQ")
_POOL_SIZE = struct.Struct("<Q")
_PROPS_FIXED = struct.Struct("<BH")
_STR = struct.Struct("<H")
_RESV_FIXED = struct.Struct("<IIBB16sH")
_RESV_ENTRY = struct.Struct("<16sQ")
_RESV_PTPL = 0x1
_RESV_HOLDER = 0x2
_LITTLE = sys.byteorder == "little"


def _u32_array(data: bytes | bytearray | memoryview) -> array[int]:
    out = array("I")
    if not len(data):
        return out
    out.frombytes(data)
    if not _LITTLE:  # pragma: no cover - the format is little-endian
        out.byteswap()
    return out


def _u32_bytes(values: array[int]) -> bytes:
    if _LITTLE:
        return values.tobytes()
    swapped = array("I", values)  # pragma: no cover
    swapped.byteswap()  # pragma: no cover
    return swapped.tobytes()  # pragma: no cover


def _encode_str(text: str) -> bytes:
    raw = text.encode()
    return _STR.pack(len(raw)) + raw


def _encode_props(share: int, hosts: tuple[str, ...], entity_id: str | None) -> bytes:
    parts = [_PROPS_FIXED.pack(share, len(hosts))]
    parts.extend(_encode_str(h) for h in hosts)
    if entity_id is None:
        parts.append(b"\x00")
    else:
        parts.append(b"\x01" + _encode_str(entity_id))
    return b"".join(parts)


def _payload(record: Record) -> tuple[int, bytes]:
    if isinstance(record, ExtentsRecord):
        return RecordType.EXTENTS, _ID.pack(record.lvol_id) + _u32_bytes(record.extents)
    if isinstance(record, LvolRecord):
        name = record.name.encode()
        fixed = _LVOL_FIXED.pack(
            record.lvol_id, record.uuid.bytes, record.size, int(record.thin), len(name)
        )
        props = _encode_props(record.share, record.allowed_hosts, record.entity_id)
        return RecordType.LVOL, fixed + name + props
    if isinstance(record, DestroyRecord):
        return RecordType.DESTROY, _ID.pack(record.lvol_id)
    if isinstance(record, ResizeRecord):
        return RecordType.RESIZE, _RESIZE.pack(record.lvol_id, record.size)
    if isinstance(record, PropertiesRecord):
        props = _encode_props(record.share, record.allowed_hosts, record.entity_id)
        return RecordType.PROPERTIES, _ID.pack(record.lvol_id) + props
    if isinstance(record, ReservationRecord):
        return RecordType.RESERVATION, _encode_reservation(record)
    return RecordType.POOL_SIZE, _POOL_SIZE.pack(record.data_clusters)


def _encode_reservation(record: ReservationRecord) -> bytes:
    flags = (_RESV_PTPL if record.ptpl else 0) | (_RESV_HOLDER if record.holder else 0)
    holder = record.holder.bytes if record.holder is not None else bytes(16)
    parts = [
        _RESV_FIXED.pack(
            record.lvol_id,
            record.generation,
            record.rtype,
            flags,
            holder,
            len(record.registrants),
        )
    ]
    parts.extend(_RESV_ENTRY.pack(host.bytes, key) for host, key in record.registrants)
    return b"".join(parts)


def encode_record(record: Record) -> bytes:
    """Type, length and payload of one record."""
    kind, payload = _payload(record)
    return _REC_HEADER.pack(kind, len(payload)) + payload


def lvol_record_size(record: LvolRecord) -> int:
    """Bytes `encode_record` produces for an LVOL record (without encoding it)."""
    return (
        _REC_HEADER.size
        + _LVOL_FIXED.size
        + len(record.name.encode())
        + _props_size(record.allowed_hosts, record.entity_id)
    )


def _props_size(hosts: tuple[str, ...], entity_id: str | None) -> int:
    size = _PROPS_FIXED.size + 1 + sum(2 + len(h.encode()) for h in hosts)
    return size if entity_id is None else size + 2 + len(entity_id.encode())


def record_size(record: Record) -> int:
    """Bytes `encode_record` produces for `record`."""
    if isinstance(record, LvolRecord):
        return lvol_record_size(record)
    return len(encode_record(record))


class _Corrupt(Exception):
    """A field out of its bounds, inside a decoder (becomes CorruptMetadata)."""


def _text(data: memoryview, pos: int, limit: int) -> tuple[str, int]:
    (length,) = _STR.unpack_from(data, pos)
    pos += 2
    end = pos + length
    if length > limit or end > len(data):
        raise _Corrupt(f"record string of {length} bytes is out of bounds")
    return str(data[pos:end], "utf-8"), end


def _decode_props(data: memoryview, pos: int) -> tuple[int, tuple[str, ...], str | None, int]:
    share, count = _PROPS_FIXED.unpack_from(data, pos)
    pos += _PROPS_FIXED.size
    if count > MAX_HOSTS:
        raise _Corrupt(f"record lists {count} allowed hosts")
    hosts = []
    for _ in range(count):
        host, pos = _text(data, pos, MAX_HOST_BYTES)
        hosts.append(host)
    has_entity = data[pos]
    pos += 1
    entity = None
    if has_entity == 1:
        entity, pos = _text(data, pos, MAX_ENTITY_ID_BYTES)
    elif has_entity:
        raise _Corrupt("record entity-id flag is neither 0 nor 1")
    return share, tuple(hosts), entity, pos


def _finish(data: memoryview, pos: int) -> None:
    if pos != len(data):
        raise _Corrupt("record has bytes left over after its fields")


def _decode_lvol(data: memoryview) -> Record:
    lvol_id, uuid_bytes, size, flags, name_len = _LVOL_FIXED.unpack_from(data, 0)
    pos = _LVOL_FIXED.size
    if name_len > MAX_NAME_BYTES or pos + name_len > len(data):
        raise _Corrupt("lvol record name is out of bounds")
    name = str(data[pos : pos + name_len], "utf-8")
    if flags > 1:
        raise _Corrupt(f"lvol record flags {flags} are unknown")
    share, hosts, entity, pos = _decode_props(data, pos + name_len)
    _finish(data, pos)
    return LvolRecord(
        lvol_id, uuid_mod.UUID(bytes=uuid_bytes), name, size, bool(flags), share, hosts, entity
    )


def _decode_extents(data: memoryview) -> Record:
    if len(data) < 4 or (len(data) - 4) % EXTENT_BYTES:
        raise _Corrupt(f"extents record of {len(data)} bytes is malformed")
    (lvol_id,) = _ID.unpack_from(data, 0)
    return ExtentsRecord(lvol_id, _u32_array(data[4:]))


def _decode_destroy(data: memoryview) -> Record:
    _finish(data, _ID.size)
    return DestroyRecord(_ID.unpack_from(data, 0)[0])


def _decode_resize(data: memoryview) -> Record:
    _finish(data, _RESIZE.size)
    return ResizeRecord(*_RESIZE.unpack_from(data, 0))


def _decode_properties(data: memoryview) -> Record:
    (lvol_id,) = _ID.unpack_from(data, 0)
    share, hosts, entity, pos = _decode_props(data, _ID.size)
    _finish(data, pos)
    return PropertiesRecord(lvol_id, share, hosts, entity)


def _decode_pool_size(data: memoryview) -> Record:
    _finish(data, _POOL_SIZE.size)
    return PoolSizeRecord(_POOL_SIZE.unpack_from(data, 0)[0])


def _decode_reservation(data: memoryview) -> Record:
    lvol_id, generation, rtype, flags, holder, count = _RESV_FIXED.unpack_from(data, 0)
    if flags & ~(_RESV_PTPL | _RESV_HOLDER) or rtype > 6 or count > MAX_RESERVATION_REGISTRANTS:
        raise _Corrupt(f"reservation record with flags {flags}, type {rtype}, {count} registrants")
    _finish(data, _RESV_FIXED.size + count * _RESV_ENTRY.size)
    registrants = tuple(
        (uuid_mod.UUID(bytes=host), key)
        for host, key in (
            _RESV_ENTRY.unpack_from(data, _RESV_FIXED.size + i * _RESV_ENTRY.size)
            for i in range(count)
        )
    )
    return ReservationRecord(
        lvol_id,
        generation,
        rtype,
        bool(flags & _RESV_PTPL),
        uuid_mod.UUID(bytes=holder) if flags & _RESV_HOLDER else None,
        registrants,
    )


_DECODERS: dict[int, Callable[[memoryview], Record]] = {
    RecordType.LVOL: _decode_lvol,
    RecordType.EXTENTS: _decode_extents,
    RecordType.DESTROY: _decode_destroy,
    RecordType.RESIZE: _decode_resize,
    RecordType.PROPERTIES: _decode_properties,
    RecordType.POOL_SIZE: _decode_pool_size,
    RecordType.RESERVATION: _decode_reservation,
}


def decode_records(data: bytes | bytearray | memoryview) -> list[Record]:
    """Every record in a checkpoint body or a transaction's payload.

    Raises:
        CorruptMetadata: a record is truncated, malformed or of an unknown type.
    """
    view = memoryview(data)
    out: list[Record] = []
    append = out.append
    unpack_header = _REC_HEADER.unpack_from
    header_size = _REC_HEADER.size
    pos = 0
    end = len(view)
    kind = 0
    try:
        while pos < end:
            if pos + header_size > end:
                raise _Corrupt("truncated record header")
            kind, length = unpack_header(view, pos)
            pos += header_size
            if pos + length > end:
                raise _Corrupt(f"record runs {pos + length - end} bytes past its end")
            decoder = _DECODERS.get(kind)
            if decoder is None:
                raise _Corrupt(f"record type {kind} is not part of format {FORMAT_VERSION}")
            append(decoder(view[pos : pos + length]))
            pos += length
    except (_Corrupt, struct.error, IndexError, UnicodeDecodeError) as exc:
        detail = str(exc) if isinstance(exc, _Corrupt) else f"a field is malformed ({exc})"
        raise CorruptMetadata(f"record of type {kind} at byte {pos}: {detail}") from None
    return out


# ----------------------------------------------------------------------- checkpoint

_CKPT = struct.Struct("<8sQ16sQQQIIQI")
CHECKPOINT_HEADER_SIZE = 128
_CKPT_CRC_OFFSET = CHECKPOINT_HEADER_SIZE - 4


@dataclass(frozen=True, slots=True)
class CheckpointHeader:
    nonce: int
    pool_uuid: uuid_mod.UUID
    generation: int
    last_seq: int
    data_clusters: int
    next_lvol_id: int
    lvol_count: int
    body_len: int
    body_crc: int
    crc: int = 0
    """The header's own CRC: the first journal page of this generation chains from it."""

    @property
    def pages(self) -> int:
        return -(-(CHECKPOINT_HEADER_SIZE + self.body_len) // PAGE_SIZE)


def encode_checkpoint(header: CheckpointHeader, body: bytes) -> tuple[bytes, int]:
    """The checkpoint blob (header and body padded to whole pages) and its header CRC.

    The `body_len`, `body_crc` and `crc` fields of `header` are computed here.
    """
    blob = bytearray(-(-(CHECKPOINT_HEADER_SIZE + len(body)) // PAGE_SIZE) * PAGE_SIZE)
    _CKPT.pack_into(
        blob,
        0,
        CHECKPOINT_MAGIC,
        header.nonce,
        header.pool_uuid.bytes,
        header.generation,
        header.last_seq,
        header.data_clusters,
        header.next_lvol_id,
        header.lvol_count,
        len(body),
        crc_of(body),
    )
    crc = crc_of(memoryview(blob)[:_CKPT_CRC_OFFSET])
    _U32.pack_into(blob, _CKPT_CRC_OFFSET, crc)
    blob[CHECKPOINT_HEADER_SIZE : CHECKPOINT_HEADER_SIZE + len(body)] = body
    return bytes(blob), crc


def decode_checkpoint_header(
    data: bytes | bytearray | memoryview, nonce: int
) -> CheckpointHeader | None:
    """The header at the start of a slot, or None when it is absent, damaged or not ours."""
    view = memoryview(data)
    if len(view) < CHECKPOINT_HEADER_SIZE or bytes(view[:8]) != CHECKPOINT_MAGIC:
        return None
    (stored,) = _U32.unpack_from(view, _CKPT_CRC_OFFSET)
    if crc_of(view[:_CKPT_CRC_OFFSET]) != stored:
        return None
    (_m, got_nonce, uuid_bytes, gen, last_seq, clusters, next_id, count, body_len, body_crc) = (
        _CKPT.unpack_from(view, 0)
    )
    if got_nonce != nonce:
        return None
    return CheckpointHeader(
        got_nonce,
        uuid_mod.UUID(bytes=uuid_bytes),
        gen,
        last_seq,
        clusters,
        next_id,
        count,
        body_len,
        body_crc,
        stored,
    )


def checkpoint_body(
    header: CheckpointHeader, blob: bytes | bytearray | memoryview
) -> memoryview | None:
    """The body of a checkpoint blob when its CRC holds, else None."""
    view = memoryview(blob)
    end = CHECKPOINT_HEADER_SIZE + header.body_len
    if len(view) < end:
        return None
    body = view[CHECKPOINT_HEADER_SIZE:end]
    return body if crc_of(body) == header.body_crc else None


# ----------------------------------------------------------------------- journal

_JP = struct.Struct("<8sQQIHHQIQ")
JOURNAL_HEADER_SIZE = 56
JOURNAL_PAYLOAD = PAGE_SIZE - JOURNAL_HEADER_SIZE - 4
_JP_CRC_OFFSET = PAGE_SIZE - 4


@dataclass(frozen=True, slots=True)
class JournalPage:
    nonce: int
    epoch: int
    index: int
    flags: int
    seq: int
    prev_crc: int
    session: int
    payload: memoryview
    crc: int


def encode_journal_pages(
    payload: bytes,
    *,
    nonce: int,
    epoch: int,
    first_index: int,
    seq: int,
    prev_crc: int,
    session: int,
) -> tuple[bytes, int]:
    """The pages of one transaction and the CRC of its last page (the next `prev_crc`)."""
    count = max(1, -(-len(payload) // JOURNAL_PAYLOAD))
    out = bytearray(count * PAGE_SIZE)
    view = memoryview(out)
    prev = prev_crc
    for i in range(count):
        chunk = payload[i * JOURNAL_PAYLOAD : (i + 1) * JOURNAL_PAYLOAD]
        base = i * PAGE_SIZE
        flags = PAGE_END if i == count - 1 else 0
        _JP.pack_into(
            out,
            base,
            JOURNAL_MAGIC,
            nonce,
            epoch,
            first_index + i,
            flags,
            len(chunk),
            seq,
            prev,
            session,
        )
        out[base + JOURNAL_HEADER_SIZE : base + JOURNAL_HEADER_SIZE + len(chunk)] = chunk
        prev = crc_of(view[base : base + _JP_CRC_OFFSET])
        _U32.pack_into(out, base + _JP_CRC_OFFSET, prev)
    return bytes(out), prev


def pages_for_payload(nbytes: int) -> int:
    """Journal pages one transaction of `nbytes` of records takes."""
    return max(1, -(-nbytes // JOURNAL_PAYLOAD))


def peek_journal_epoch(page: bytes | bytearray | memoryview, nonce: int) -> int | None:
    """The epoch a page claims when it has our magic and nonce (CRC not checked)."""
    if bytes(page[:8]) != JOURNAL_MAGIC:
        return None
    _m, got_nonce, epoch = struct.unpack_from("<8sQQ", page, 0)
    return int(epoch) if got_nonce == nonce else None


def decode_journal_page(page: memoryview, nonce: int) -> JournalPage | None:
    """The page when its magic, nonce and CRC hold, else None."""
    if len(page) < PAGE_SIZE or bytes(page[:8]) != JOURNAL_MAGIC:
        return None
    (stored,) = _U32.unpack_from(page, _JP_CRC_OFFSET)
    if crc_of(page[:_JP_CRC_OFFSET]) != stored:
        return None
    _m, got_nonce, epoch, index, flags, length, seq, prev, session = _JP.unpack_from(page, 0)
    if got_nonce != nonce or length > JOURNAL_PAYLOAD:
        return None
    payload = page[JOURNAL_HEADER_SIZE : JOURNAL_HEADER_SIZE + length]
    return JournalPage(nonce, epoch, index, flags, seq, prev, session, payload, stored)
