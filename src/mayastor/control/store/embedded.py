"""The embedded cluster store: one SQLite file, for a cluster on one machine.

Every call runs in one worker thread, each write in its own ``BEGIN IMMEDIATE``
transaction with ``synchronous=FULL``, so a write that returned survives a crash of
the process or the machine. Several processes may open the same file (a standby core
agent does): SQLite's file locks serialise them, and the lease table decides which
one acts. Lease expiry uses the wall clock, which every process on the machine shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from mayastor.control.store._interface import (
    Delete,
    Entry,
    Leadership,
    NotLeader,
    Operation,
    Put,
    RevisionMismatch,
    check_key,
    check_operations,
)
from mayastor.errors import StoreUnavailable

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    mod_revision INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    token INTEGER NOT NULL,
    expires REAL NOT NULL
);
INSERT OR IGNORE INTO counters VALUES ('revision', 1);
"""


class EmbeddedStore:
    """The `ClusterStore` in a SQLite file (created on first use, with its folder).

    Args:
        path: the database file.
        clock: wall-clock seconds (tests may pass their own).
    """

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.description = str(self.path)
        self.guard: Leadership | None = None
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._db: sqlite3.Connection | None = None
        self._leases: set[Leadership] = set()
        self._closed = False

    # ------------------------------------------------------------------ plumbing

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.executescript(_SCHEMA)
            except sqlite3.Error:
                db.close()
                raise
            self._db = db
        return self._db

    async def _run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._closed:
            raise StoreUnavailable(f"store {self.description} is closed")

        def call() -> _T:
            return work(self._connect())

        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except (sqlite3.Error, OSError) as exc:  # OSError: its folder cannot be made
            raise StoreUnavailable(f"store {self.description}: {exc}") from exc

    def _write(
        self, work: Callable[[sqlite3.Connection], _T]
    ) -> Callable[[sqlite3.Connection], _T]:
        """Wrap `work` in a write transaction that checks the guard first."""
        guard = self.guard

        def transaction(db: sqlite3.Connection) -> _T:
            db.execute("BEGIN IMMEDIATE")
            try:
                if guard is not None:
                    self._check_guard(db, guard)
                result = work(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result

        return transaction

    def _check_guard(self, db: sqlite3.Connection, guard: Leadership) -> None:
        if not guard.held:
            raise NotLeader(f"the lease {guard.name!r} of {guard.holder} is lost")
        row = db.execute(
            "SELECT holder, token, expires FROM leases WHERE name = ?", (guard.name,)
        ).fetchone()
        if row is None or (row[0], row[1]) != (guard.holder, guard.token):
            raise NotLeader(f"the lease {guard.name!r} is no longer held by {guard.holder}")
        if row[2] < self._clock():
            raise NotLeader(f"the lease {guard.name!r} of {guard.holder} has expired")

    @staticmethod
    def _bump(db: sqlite3.Connection) -> int:
        db.execute("UPDATE counters SET value = value + 1 WHERE name = 'revision'")
        (revision,) = db.execute("SELECT value FROM counters WHERE name = 'revision'").fetchone()
        return int(revision)

    @staticmethod
    def _check_revision(db: sqlite3.Connection, key: str, revision: int | None) -> bool:
        """Whether `key` exists, after checking it is at `revision` (when given)."""
        row = db.execute("SELECT mod_revision FROM kv WHERE key = ?", (key,)).fetchone()
        if revision is None:
            return row is not None
        found = 0 if row is None else int(row[0])
        if found != revision:
            state = "does not exist" if row is None else f"is at revision {found}"
            raise RevisionMismatch(f"{key} {state}, not at revision {revision}")
        return row is not None

    # ------------------------------------------------------------------ key-value

    async def get(self, key: str) -> Entry | None:
        check_key(key)

        def work(db: sqlite3.Connection) -> Entry | None:
            row = db.execute("SELECT value, mod_revision FROM kv WHERE key = ?", (key,)).fetchone()
            return None if row is None else Entry(key, bytes(row[0]), int(row[1]))

        return await self._run(work)

    async def list(self, prefix: str) -> list[Entry]:
        def work(db: sqlite3.Connection) -> list[Entry]:
            # Keys compare as their UTF-8 bytes (memcmp, NUL included), so the keys under
            # `prefix` are the run that starts at `prefix` in the primary key's order.
            found = []
            rows = db.execute(
                "SELECT key, value, mod_revision FROM kv WHERE key >= ? ORDER BY key", (prefix,)
            )
            for key, value, revision in rows:
                if not key.startswith(prefix):
                    break
                found.append(Entry(key, bytes(value), int(revision)))
            return found

        return await self._run(work)

    async def put(self, key: str, value: bytes, *, revision: int | None = None) -> int:
        check_key(key)

        def work(db: sqlite3.Connection) -> int:
            self._check_revision(db, key, revision)
            new = self._bump(db)
            db.execute(
                "INSERT INTO kv VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE "
                "SET value = excluded.value, mod_revision = excluded.mod_revision",
                (key, bytes(value), new),
            )
            return new

        return await self._run(self._write(work))

    async def delete(self, key: str, *, revision: int | None = None) -> bool:
        check_key(key)

        def work(db: sqlite3.Connection) -> bool:
            if not self._check_revision(db, key, revision):
                return False
            self._bump(db)
            db.execute("DELETE FROM kv WHERE key = ?", (key,))
            return True

        return await self._run(self._write(work))

    async def commit(self, operations: Sequence[Operation]) -> int:
        check_operations(operations)

        def work(db: sqlite3.Connection) -> int:
            for op in operations:
                self._check_revision(db, op.key, op.revision)
            new = self._bump(db)
            for op in operations:
                if isinstance(op, Put):
                    db.execute(
                        "INSERT INTO kv VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE "
                        "SET value = excluded.value, mod_revision = excluded.mod_revision",
                        (op.key, bytes(op.value), new),
                    )
                elif isinstance(op, Delete):
                    db.execute("DELETE FROM kv WHERE key = ?", (op.key,))
            return new

        return await self._run(self._write(work))

    # ------------------------------------------------------------------ leases

    async def campaign(self, name: str, holder: str, ttl: float) -> Leadership:
        poll = max(0.05, ttl / 4)
        waiting_logged = False
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            try:
                token = await self._run(self._try_acquire(name, holder, ttl))
            except StoreUnavailable as exc:
                log.warning("lease %s: store unavailable, trying again: %s", name, exc)
                token = None
            if token is not None:
                lease = Leadership(name=name, holder=holder, ttl=ttl, token=token)
                lease.keeper = loop.create_task(self._keep(lease, asked), name=f"lease {name}")
                self._leases.add(lease)
                return lease
            if not waiting_logged:
                log.info("lease %s is held by another holder; waiting for it", name)
                waiting_logged = True
            await asyncio.sleep(poll)

    def _try_acquire(
        self, name: str, holder: str, ttl: float
    ) -> Callable[[sqlite3.Connection], int | None]:
        def work(db: sqlite3.Connection) -> int | None:
            db.execute("BEGIN IMMEDIATE")
            try:
                now = self._clock()
                row = db.execute(
                    "SELECT holder, expires FROM leases WHERE name = ?", (name,)
                ).fetchone()
                if row is not None and row[0] != holder and row[1] >= now:
                    db.execute("ROLLBACK")
                    return None
                token = self._bump(db)
                db.execute(
                    "INSERT INTO leases VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                    "holder = excluded.holder, token = excluded.token, expires = excluded.expires",
                    (name, holder, token, now + ttl),
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return token

        return work

    async def lease_holder(self, name: str) -> str | None:
        def work(db: sqlite3.Connection) -> str | None:
            row = db.execute(
                "SELECT holder FROM leases WHERE name = ? AND expires >= ?", (name, self._clock())
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._run(work)

    async def _keep(self, lease: Leadership, confirmed: float) -> None:
        """Renew `lease` every third of its TTL until it is lost or given back.

        `confirmed` is when the last renewal that found the lease alive was asked for;
        once a whole TTL has passed since without one (the file stayed locked, say),
        the lease is lost to us: another process may have taken it.
        """
        loop = asyncio.get_running_loop()

        def renew(db: sqlite3.Connection) -> bool:
            now = self._clock()
            cursor = db.execute(
                "UPDATE leases SET expires = ? WHERE name = ? AND holder = ? AND token = ? "
                "AND expires >= ?",
                (now + lease.ttl, lease.name, lease.holder, lease.token, now),
            )
            return cursor.rowcount == 1

        while lease.held:
            await asyncio.sleep(lease.ttl / 3)
            sent = loop.time()
            try:
                still = await self._run(renew)
            except StoreUnavailable as exc:
                if loop.time() < confirmed + lease.ttl:
                    log.warning("lease %s: cannot renew: %s", lease.name, exc)
                    continue
                log.error("lease %s of %s is lost: not renewed in time", lease.name, lease.holder)
                lease.lost.set()
                return
            if not still:
                log.error("lease %s of %s is lost", lease.name, lease.holder)
                lease.lost.set()
                return
            confirmed = sent

    async def resign(self, leadership: Leadership) -> None:
        leadership.lost.set()
        if leadership.keeper is not None:
            leadership.keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await leadership.keeper
        self._leases.discard(leadership)

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "DELETE FROM leases WHERE name = ? AND holder = ? AND token = ?",
                (leadership.name, leadership.holder, leadership.token),
            )

        with contextlib.suppress(StoreUnavailable):
            await self._run(work)

    async def close(self) -> None:
        if self._closed:
            return
        for lease in list(self._leases):
            lease.lost.set()  # nobody renews it any more
            if lease.keeper is not None:
                lease.keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lease.keeper
        self._leases.clear()

        def shut() -> None:  # without connecting first, unlike _run
            if self._db is not None:
                self._db.close()
                self._db = None

        self._closed = True
        with contextlib.suppress(sqlite3.Error):
            await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        self._executor.shutdown(wait=True)
