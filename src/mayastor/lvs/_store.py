"""Where a pool's catalog lives on disk: two metadata copies, checkpoints and a journal.

The metadata is kept twice (copy A and copy B, see `format`); every journal page is
written to both copies at the same index before the one flush that makes it durable,
and a checkpoint is written to one copy, flushed, then to the other, so at every
moment at least one copy holds the whole durable state:

* commit (group commit): every change waiting when the committer runs becomes one
  journal transaction. Steps: flush the base device when a change zeroed data
  clusters (so a cluster is zeroed before its allocation is recorded), write the
  transaction's pages to both journals, flush, then apply the records to the catalog
  and wake the callers. A caller is acknowledged only after that flush.
* checkpoint: when the journal is full (and at export and after a repair), the
  catalog is written as a new generation, first into the copy that is not the one
  the state was loaded from, then into the other; the journal restarts at index 0
  in the new epoch, and older pages no longer chain.
* load: each copy's checkpoint is checked (header and body CRC); for each intact one
  the journal is replayed from whichever copy holds a valid, chaining page at each
  index; a transaction applies only when all its pages are there. The result with
  the most transactions wins. If beyond the end of the replay a page of the same
  epoch carries a later transaction, acknowledged records were lost in both copies:
  that is `CorruptMetadata`, never a silent rollback. When the copies disagree the
  caller repairs them with a checkpoint.

Limit: damage to the last transaction in *both* copies looks exactly like a write that
was torn by a crash before it was acknowledged, so that one transaction is dropped
without an error; damage anywhere before it is detected.

Any failure to write or flush metadata is final for this store (`failure`): the pool
becomes faulted, pending and later changes are refused, nothing half-written is
trusted. This module knows the BlockDevice contract and the format; not lvols.

Room below the disk (a sparse disk file in a file system that can fill up): every
metadata write lands in blocks reserved beforehand (`BlockDevice.reserve_space`), so
it never meets ENOSPC. `reserve_room` reserves the superblocks, both journals and a
prefix of both checkpoint slots; before each transaction is written the prefix is
grown to cover an upper bound of the next checkpoint (the last checkpoint plus twice
the payload journaled since: a record adds at most its own size, plus a few header
bytes, to a checkpoint), doubling with at least 1 MiB of headroom. When the file
system cannot give that room, the transaction is refused with `ResourceExhausted`
before anything is written, and the store stays healthy.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from mayastor.bdev import BlockDevice
from mayastor.errors import CorruptMetadata, FailedPrecondition, NoSpace, ResourceExhausted
from mayastor.lvs._catalog import Catalog
from mayastor.lvs.format import (
    CHECKPOINT_HEADER_SIZE,
    PAGE_END,
    PAGE_SIZE,
    CheckpointHeader,
    Record,
    Superblock,
    checkpoint_body,
    decode_checkpoint_header,
    decode_journal_page,
    decode_records,
    encode_checkpoint,
    encode_journal_pages,
    encode_record,
    pages_for_payload,
    peek_journal_epoch,
)


@dataclass
class _Pending:
    payload: bytes
    on_durable: Callable[[], None]
    data_flush: bool
    future: asyncio.Future[None] = field(repr=False)
    checkpoint: bool = False


@dataclass
class _Replay:
    catalog: Catalog
    generation: int
    copy: int
    tail: int
    prev_crc: int
    copies_disagree: bool


class MetadataStore:
    """The metadata of one pool on its base device; see the module docstring.

    Use `format` (new pool) or `load` (existing pool) to get one.
    """

    def __init__(
        self,
        base: BlockDevice,
        sb: Superblock,
        catalog: Catalog,
        *,
        generation: int,
        source_copy: int,
        journal_pos: int,
        prev_crc: int,
    ) -> None:
        self.base = base
        self.sb = sb
        self.catalog = catalog
        self.generation = generation
        self.journal_pos = journal_pos
        self.failure: BaseException | None = None
        self.on_failure: Callable[[BaseException], None] | None = None
        self.checkpoints_written = 0
        self._source = source_copy
        self._highest_generation = generation
        self._prev_crc = prev_crc
        self._session = secrets.randbits(64)
        self._bpp = PAGE_SIZE // base.block_size
        self._queue: list[_Pending] = []
        self._task: asyncio.Task[None] | None = None
        self._where = f"pool {sb.name!r}"
        self._bound = CHECKPOINT_HEADER_SIZE
        """Bytes the next checkpoint may take at most (see the module docstring)."""
        self._reserving = True
        """Room must be reserved below the disk (until its device says it has nothing
        to do: every block backed)."""
        self._room_ok = False
        """Every write the invariant needs is reserved (not yet, or a reserve failed)."""
        self.reserved_slot_pages = 0
        """Pages of each checkpoint slot reserved below the disk."""

    @property
    def slot_bytes(self) -> int:
        return self.sb.slot_pages * PAGE_SIZE

    # ------------------------------------------------------------------ create / load

    @classmethod
    def new(cls, base: BlockDevice, sb: Superblock, catalog: Catalog) -> MetadataStore:
        """The store of a new pool, before anything is written: `reserve_room`, then
        `checkpoint` writes the first checkpoint into both copies (not the superblock)."""
        return cls(base, sb, catalog, generation=0, source_copy=0, journal_pos=0, prev_crc=0)

    @classmethod
    async def format(cls, base: BlockDevice, sb: Superblock, catalog: Catalog) -> MetadataStore:
        """Reserve room and write the first checkpoint of a new pool (not the superblock).

        Raises:
            NoSpace: the file system under the disk has no room for the metadata.
        """
        store = cls.new(base, sb, catalog)
        await store.reserve_room()
        await store.checkpoint()
        return store

    # ------------------------------------------------------------------ room below

    async def reserve_room(self) -> None:
        """Reserve the superblocks, both journals and enough of both checkpoint slots
        below the disk (see the module docstring); nothing to do on a device whose
        blocks are all backed.

        Raises:
            NoSpace: the file system under the disk is full; changes are refused
                (`ResourceExhausted`) until a later attempt succeeds.
        """
        sb = self.sb
        self._room_ok = False
        self._reserving = await self._reserve_pages(0, 2)
        if not self._reserving:
            self._room_ok = True
            return
        for copy in (0, 1):
            await self._reserve_pages(sb.journal_page(copy), sb.journal_pages)
        await self._grow_reservation(self._bound)
        self._room_ok = True

    async def _reserve_pages(self, first: int, count: int) -> bool:
        return await self.base.reserve_space(first * self._bpp, count * self._bpp)

    async def _grow_reservation(self, bound: int) -> None:
        """Make the reserved prefix of both slots cover `bound` bytes (with headroom)."""
        want = -(-bound // PAGE_SIZE)
        have = self.reserved_slot_pages
        if not self._reserving or want <= have:
            return
        target = min(self.sb.slot_pages, want + max(256, want))
        for copy in (0, 1):
            await self._reserve_pages(self.sb.copy_pages[copy] + have, target - have)
        self.reserved_slot_pages = target

    async def _make_room(self, payload_bytes: int) -> None:
        """Room for a transaction of `payload_bytes` and what it adds to a checkpoint.

        Raises:
            ResourceExhausted: the file system under the disk cannot give it.
        """
        try:
            if not self._room_ok:
                await self.reserve_room()
            await self._grow_reservation(self._bound + 2 * payload_bytes)
        except NoSpace as exc:
            raise ResourceExhausted(
                f"{self._where}: no room below its disk for the metadata of this change "
                f"({exc}); nothing was written"
            ) from exc

    @classmethod
    async def load(cls, base: BlockDevice, sb: Superblock) -> tuple[MetadataStore, bool]:
        """Read the newest intact state from the two copies.

        Returns:
            the store and whether the copies disagree (the caller should `checkpoint`
            to repair them once it has decided to keep the pool).

        Raises:
            CorruptMetadata: neither copy holds an intact checkpoint, or records were
                lost in both copies.
        """
        bpp = PAGE_SIZE // base.block_size
        where = f"pool {sb.name!r}"
        slot_bytes = sb.slot_pages * PAGE_SIZE
        intact: list[tuple[int, CheckpointHeader, memoryview]] = []
        for copy in (0, 1):
            first = await base.read(sb.copy_pages[copy] * bpp, bpp)
            header = decode_checkpoint_header(first, sb.nonce)
            if header is None or header.pool_uuid != sb.pool_uuid:
                continue
            if header.pages > sb.slot_pages:
                continue
            blob = await base.read(sb.copy_pages[copy] * bpp, header.pages * bpp)
            body = checkpoint_body(header, blob)
            if body is not None:
                intact.append((copy, header, body))
        if not intact:
            raise CorruptMetadata(
                f"{where}: both metadata copies are damaged (no intact checkpoint in either)"
            )
        journals = [
            memoryview(await base.read(sb.journal_page(copy) * bpp, sb.journal_pages * bpp))
            for copy in (0, 1)
        ]
        results: list[_Replay] = []
        problems: list[CorruptMetadata] = []
        seen: set[int] = set()
        for copy, header, body in intact:
            if header.crc in seen:
                continue
            seen.add(header.crc)
            try:
                catalog = Catalog.from_checkpoint(
                    header,
                    body,
                    cluster_size=sb.cluster_size,
                    max_data_clusters=sb.max_data_clusters,
                    slot_bytes=slot_bytes,
                )
                replay = _replay(catalog, header, copy, journals, sb)
                catalog.check_complete()
                results.append(replay)
            except CorruptMetadata as exc:
                problems.append(exc)
        if not results:
            raise CorruptMetadata(f"{where}: {problems[0]}") from problems[0]
        best = max(results, key=lambda r: (r.catalog.last_seq, r.generation))
        disagree = (
            len(intact) < 2
            or intact[0][1].crc != intact[1][1].crc
            or best.copies_disagree
            or bool(problems)
        )
        store = cls(
            base,
            sb,
            best.catalog,
            generation=best.generation,
            source_copy=best.copy,
            journal_pos=best.tail,
            prev_crc=best.prev_crc,
        )
        loaded = next(h for c, h, _b in intact if c == best.copy)
        store._bound = (loaded.pages + 2 * best.tail) * PAGE_SIZE
        store._highest_generation = max(h.generation for _c, h, _b in intact)
        return store, disagree

    # ------------------------------------------------------------------ commit

    async def commit(
        self, records: list[Record], on_durable: Callable[[], None], *, data_flush: bool = False
    ) -> None:
        """Make `records` durable as one atomic change, then call `on_durable`.

        Changes submitted while a commit is being written are batched into the next
        journal transaction (group commit). `on_durable` runs once the records are
        durable and before any later change; it applies them to the catalog.

        Args:
            records: what changes, in order.
            on_durable: applies the change in memory (must not fail).
            data_flush: the change zeroed data clusters that must be durable first.

        Raises:
            FailedPrecondition: the store failed earlier (pool faulted).
            ResourceExhausted: no room below the disk for it; nothing was written.
            DeviceError: writing or flushing the metadata failed now.
        """
        payload = b"".join(encode_record(r) for r in records)
        await self._submit(_Pending(payload, on_durable, data_flush, self._future()))

    async def request_checkpoint(self) -> None:
        """Write a checkpoint after every change submitted so far (export, repair).

        Raises:
            FailedPrecondition: the store failed earlier.
            DeviceError: writing the checkpoint failed now.
        """
        await self._submit(_Pending(b"", _nothing, False, self._future(), checkpoint=True))

    def _future(self) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        return future

    async def _submit(self, pending: _Pending) -> None:
        if self.failure is not None:
            raise FailedPrecondition(
                f"{self._where} is faulted: a metadata write failed ({self.failure}); "
                "no changes are accepted until it is imported again"
            )
        self._queue.append(pending)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"lvs-commit-{self.sb.name}"
            )
        await asyncio.shield(pending.future)

    async def drain(self) -> None:
        """Wait until every submitted change is written (or has failed)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            changes = [p for p in batch if not p.checkpoint]
            checkpoint = len(changes) != len(batch)
            if changes and self._reserving:
                try:
                    await self._make_room(sum(len(p.payload) for p in changes))
                except ResourceExhausted as refusal:
                    for pending in changes:
                        pending.future.set_exception(refusal)
                    changes = []
            try:
                if changes:
                    await self._write_batch(changes)
                if checkpoint:
                    await self.checkpoint()
            except BaseException as exc:
                self._fail(exc)
                for pending in batch + self._queue:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                self._queue = []
                return
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_result(None)

    async def _write_batch(self, batch: list[_Pending]) -> None:
        payload = b"".join(p.payload for p in batch)
        data_flush = any(p.data_flush for p in batch)
        self._bound += 2 * len(payload)
        npages = pages_for_payload(len(payload))
        if npages > self.sb.journal_pages:
            # Larger than the whole journal: apply, then make it durable as a checkpoint.
            if data_flush:
                await self.base.flush()
            for pending in batch:
                pending.on_durable()
            self.catalog.last_seq += 1
            await self.checkpoint()
            return
        if self.journal_pos + npages > self.sb.journal_pages:
            await self.checkpoint()
        if data_flush:
            await self.base.flush()
        seq = self.catalog.last_seq + 1
        pages, last_crc = encode_journal_pages(
            payload,
            nonce=self.sb.nonce,
            epoch=self.generation,
            first_index=self.journal_pos,
            seq=seq,
            prev_crc=self._prev_crc,
            session=self._session,
        )
        await self._write_both(
            self.sb.journal_page(0) + self.journal_pos,
            self.sb.journal_page(1) + self.journal_pos,
            pages,
        )
        await self.base.flush()
        self.journal_pos += npages
        self._prev_crc = last_crc
        self.catalog.last_seq = seq
        for pending in batch:
            pending.on_durable()

    async def _write_both(self, page_a: int, page_b: int, data: bytes) -> None:
        results = await asyncio.gather(
            self.base.write(page_a * self._bpp, data),
            self.base.write(page_b * self._bpp, data),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
            if self.on_failure is not None:
                self.on_failure(exc)

    # ------------------------------------------------------------------ checkpoint

    async def checkpoint(self) -> None:
        """Write the catalog as a new generation into both copies, one after the other.

        Only the committer calls this (or `format`, before the store is shared): a
        journal write racing a checkpoint could land in the old epoch and be lost.

        Raises:
            DeviceError: a write or flush failed (the store has failed then).
        """
        catalog = self.catalog
        generation = max(self.generation, self._highest_generation) + 1
        header = CheckpointHeader(
            nonce=self.sb.nonce,
            pool_uuid=self.sb.pool_uuid,
            generation=generation,
            last_seq=catalog.last_seq,
            data_clusters=catalog.data_clusters,
            next_lvol_id=catalog.next_lvol_id,
            lvol_count=len(catalog.lvols),
            body_len=0,
            body_crc=0,
        )
        blob, crc = encode_checkpoint(header, catalog.checkpoint_body())
        try:
            if len(blob) > self.slot_bytes:
                raise CorruptMetadata(
                    f"{self._where}: the catalog ({len(blob)} bytes) outgrew its checkpoint "
                    f"slot ({self.slot_bytes} bytes)"
                )
            for copy in (1 - self._source, self._source):
                await self.base.write(self.sb.copy_pages[copy] * self._bpp, blob)
                await self.base.flush()
        except BaseException as exc:
            self._fail(exc)
            raise
        self.generation = self._highest_generation = generation
        self.journal_pos = 0
        self._prev_crc = crc
        self._bound = len(blob)
        self.checkpoints_written += 1

    # ------------------------------------------------------------------ destroy

    async def wipe(self) -> None:
        """Make the disk hold no pool: superblocks first, then the checkpoint headers."""
        zero_page = bytes(PAGE_SIZE)
        await self.base.write(0, bytes(2 * PAGE_SIZE))
        await self.base.flush()
        for copy in (0, 1):
            await self.base.write(self.sb.copy_pages[copy] * self._bpp, zero_page)
        await self.base.flush()


def _nothing() -> None:
    pass


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a commit's failure as seen even when its caller was cancelled."""
    if not future.cancelled():
        future.exception()


def _replay(
    catalog: Catalog,
    header: CheckpointHeader,
    copy: int,
    journals: list[memoryview],
    sb: Superblock,
) -> _Replay:
    """Apply the journal transactions that follow `header` (see the module docstring)."""
    epoch = header.generation
    prev = header.crc
    expected = header.last_seq + 1
    pending: list[memoryview] = []
    index = 0
    tail, tail_prev = 0, prev
    disagree = pending_disagree = False
    while index < sb.journal_pages:
        start = index * PAGE_SIZE
        candidates = []
        for journal in journals:
            page = decode_journal_page(journal[start : start + PAGE_SIZE], sb.nonce)
            if (
                page is not None
                and page.epoch == epoch
                and page.index == index
                and page.prev_crc == prev
                and page.seq == expected
            ):
                candidates.append(page)
        if not candidates:
            break
        if len(candidates) != 2 or candidates[0].crc != candidates[1].crc:
            pending_disagree = True
        page = candidates[0]
        pending.append(page.payload)
        prev = page.crc
        index += 1
        if page.flags & PAGE_END:
            for record in decode_records(b"".join(pending)):
                catalog.apply(record)
            catalog.last_seq = expected
            expected += 1
            pending = []
            tail, tail_prev = index, prev
            disagree = disagree or pending_disagree
            pending_disagree = False
    for later in range(tail, sb.journal_pages):
        start = later * PAGE_SIZE
        for journal in journals:
            view = journal[start : start + PAGE_SIZE]
            if peek_journal_epoch(view, sb.nonce) != epoch:
                continue
            page = decode_journal_page(view, sb.nonce)
            if page is not None and page.epoch == epoch and page.seq > expected:
                raise CorruptMetadata(
                    f"journal page {tail} is damaged in both metadata copies while page "
                    f"{later} holds a later transaction ({page.seq}); acknowledged changes "
                    "would be lost"
                )
    return _Replay(catalog, epoch, copy, tail, tail_prev, disagree)
