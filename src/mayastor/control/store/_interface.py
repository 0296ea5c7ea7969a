"""The cluster store: one small interface over etcd v3 and the embedded SQLite file.

The control plane keeps its desired state (specs) and the nexus info of every volume
here. Both implementations pass one conformance suite (`tests/conformance/store.py`)
and promise the same things:

* A value is bytes (JSON, by the callers' convention) under a string key; every change
  bumps a store-wide revision, and an entry carries the revision of its last change.
* `put` and `delete` may name the revision they expect: ``0`` means "must not exist",
  ``n`` means "must still be at revision n". A mismatch raises `RevisionMismatch` and
  changes nothing, so two writers cannot overwrite each other unseen.
* `commit` applies several puts and deletes atomically: all of them or none.
* `campaign` waits until this process holds a named lease (one core agent acts at a
  time). While `guard` is set to that `Leadership`, every write is refused with
  `NotLeader` unless the lease is still ours, checked atomically with the write, and
  at once when its `lost` is set.
* A store that cannot be reached raises `StoreUnavailable` (nothing changed, or the
  change is reported as not made); the implementations reconnect by themselves.
* A key is a non-empty string (etcd has no empty key); a request the store refuses
  as such (an empty key, a value larger than etcd takes) is `InvalidArgument`, never
  `StoreUnavailable`. `list("")` lists every key.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid as uuid_mod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mayastor.errors import Conflict, InvalidArgument, StoreUnavailable


class RevisionMismatch(Conflict):
    """A write named a revision the entry is no longer at (or an entry that exists)."""


class NotLeader(StoreUnavailable):
    """This process no longer holds the lease it writes under; another agent acts now."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One key as read from the store.

    Attributes:
        key: the full key.
        value: what was stored.
        revision: the store revision of its last change (etcd's mod_revision).
    """

    key: str
    value: bytes
    revision: int


@dataclass(frozen=True, slots=True)
class Put:
    """Store `value` under `key`; `revision` as for `ClusterStore.put`."""

    key: str
    value: bytes
    revision: int | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove `key`; `revision` as for `ClusterStore.delete`."""

    key: str
    revision: int | None = None


Operation = Put | Delete


def new_holder_id() -> str:
    """A lease holder identity: this host, this process, and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid_mod.uuid4().hex[:8]}"


@dataclass(eq=False)
class Leadership:
    """A lease held in the store under `name` by `holder`.

    `lost` is set once the store says the lease is no longer ours (it expired while we
    could not renew it, or another holder has it), and once no renewal succeeded for a
    whole TTL (the store was away: by now another holder may have it, whatever the
    store says when it comes back); a holder whose lease is lost must stop acting, and
    a lost lease never comes back (campaign again). `resign` gives it back at once.
    """

    name: str
    holder: str
    ttl: float
    token: int
    """What identifies this tenure in the store (etcd: the key's create revision)."""
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    keeper: asyncio.Task[None] | None = None

    @property
    def held(self) -> bool:
        return not self.lost.is_set()


class ClusterStore(Protocol):
    """See the module docstring for the contract."""

    description: str
    """Where the store is, for logs and error messages (``etcd://…``, a file path)."""
    guard: Leadership | None
    """When set, writes go through only while this lease is held."""

    async def get(self, key: str) -> Entry | None:
        """The entry under `key`, or None."""
        ...

    async def list(self, prefix: str) -> list[Entry]:
        """Every entry whose key starts with `prefix`, in key order."""
        ...

    async def put(self, key: str, value: bytes, *, revision: int | None = None) -> int:
        """Store `value` under `key`.

        Args:
            revision: None: write whatever is there; 0: the key must not exist; n: the
                entry must be at revision n.

        Returns:
            the entry's new revision.

        Raises:
            RevisionMismatch: `revision` did not hold; nothing changed.
            NotLeader: `guard` is set and the lease is not ours; nothing changed.
            StoreUnavailable: the store cannot be reached.
            InvalidArgument: an empty key, or a value larger than etcd takes (1.5 MiB by
                default); nothing changed.
        """
        ...

    async def delete(self, key: str, *, revision: int | None = None) -> bool:
        """Remove `key`; returns False if it was not there (with `revision` None).

        Raises:
            RevisionMismatch, NotLeader, StoreUnavailable: as for `put`.
        """
        ...

    async def commit(self, operations: Sequence[Operation]) -> int:
        """Apply every operation, or none of them.

        Returns:
            the store revision of the change: the new revision of every key put.

        Raises:
            RevisionMismatch: one of the expected revisions did not hold.
            ValueError: a key named twice.
            InvalidArgument: an empty key, or a commit etcd refuses (by default it takes
                at most 128 operations and 1.5 MiB in one request).
            NotLeader, StoreUnavailable: as for `put`.
        """
        ...

    async def campaign(self, name: str, holder: str, ttl: float) -> Leadership:
        """Wait until the lease `name` is ours, then keep it renewed in the background.

        Raises:
            StoreUnavailable: never; an unreachable store is waited out.
        """
        ...

    async def lease_holder(self, name: str) -> str | None:
        """Who holds the lease `name` now, or None when nobody does.

        Raises:
            StoreUnavailable: the store cannot be reached.
        """
        ...

    async def resign(self, leadership: Leadership) -> None:
        """Give the lease back (best effort: it expires anyway)."""
        ...

    async def close(self) -> None:
        """Stop renewing leases (their `lost` is set) and release the connection or file.

        Calls after `close` raise `StoreUnavailable`; closing again does nothing.
        """
        ...


def check_key(key: str) -> None:
    """Refuse a key no store can keep.

    Raises:
        InvalidArgument: an empty key, or one that is not valid Unicode text.
    """
    if not key:
        raise InvalidArgument("a store key must not be empty")
    try:
        key.encode()
    except UnicodeEncodeError as exc:
        raise InvalidArgument(f"store key {key!r} is not valid Unicode text: {exc}") from exc


def check_operations(operations: Sequence[Operation]) -> None:
    """Refuse a commit that names one key twice (its outcome would depend on order).

    Raises:
        ValueError: a key named twice.
        InvalidArgument: a key no store can keep (`check_key`).
    """
    for op in operations:
        check_key(op.key)
    keys = [op.key for op in operations]
    if len(keys) != len(set(keys)):
        raise ValueError(f"a commit names a key twice: {sorted(keys)}")
