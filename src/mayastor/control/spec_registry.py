"""Specs in memory, written through to the cluster store.

The acting core agent loads every spec when it takes the lease and from then on is
the only writer, so its copy is the truth: reads are served from memory (they keep
working while the store is down) and every change is written to the store first,
with the revision it was read at, and only then to memory. A write whose outcome is
unknown (the store went away in the middle) marks the key stale: it is read again
before the next write to it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TypeVar

from mayastor.control.specs import (
    SPEC_KINDS,
    AppNodeSpec,
    NexusSpec,
    NodeSecretSpec,
    NodeSpec,
    PoolSpec,
    ReplicaSpec,
    SpecModel,
    SpecStatus,
    VolumeSpec,
)
from mayastor.control.store import ClusterStore, Delete, Operation, Put, StoreKeys
from mayastor.errors import CorruptMetadata, StoreUnavailable

log = logging.getLogger(__name__)

_S = TypeVar("_S", bound=SpecModel)


def spec_id(spec: SpecModel) -> str:
    """The id a spec is stored under: a node's, pool's or app node's id, else its uuid."""
    if isinstance(spec, NodeSpec | PoolSpec | AppNodeSpec | NodeSecretSpec):
        return spec.id
    if isinstance(spec, ReplicaSpec | NexusSpec | VolumeSpec):
        return str(spec.uuid)
    raise TypeError(f"not a spec: {type(spec).__name__}")


class SpecRegistry:
    """Every spec of one cluster, by kind and id.

    Args:
        store: the cluster store.
        keys: the cluster's key layout.
    """

    def __init__(self, store: ClusterStore, keys: StoreKeys) -> None:
        self.store = store
        self.keys = keys
        self._specs: dict[str, dict[str, SpecModel]] = {k.kind: {} for k in SPEC_KINDS}
        self._revisions: dict[str, int] = {}
        self._stale: set[str] = set()
        self._owned: dict[str, dict[str, set[str]]] = {}
        """Kind -> owning volume -> ids: a volume's replicas and nexuses without a scan."""

    async def load(self) -> None:
        """Read every spec from the store (at start, and after taking the lease).

        Raises:
            StoreUnavailable: the store cannot be read; memory is as it was.
            CorruptMetadata: a stored value is no valid spec; memory is as it was.
        """
        specs: dict[str, dict[str, SpecModel]] = {}
        revisions: dict[str, int] = {}
        for kind in SPEC_KINDS:
            found: dict[str, SpecModel] = {}
            prefix = self.keys.prefix(kind.kind)
            for entry in await self.store.list(prefix):
                object_id = entry.key.removeprefix(prefix)  # an id may hold a '/'
                try:
                    found[object_id] = kind.from_store(entry.value)
                except ValueError as exc:
                    raise CorruptMetadata(f"{entry.key} holds no valid {kind.kind}: {exc}") from exc
                revisions[entry.key] = entry.revision
            specs[kind.kind] = found
        # all at once, and only what is stored now: a key gone from the store must not
        # keep the revision it had when this registry last wrote it
        self._specs, self._revisions = specs, revisions
        self._stale.clear()
        self._owned = {}
        for kind_specs in specs.values():
            for object_id, spec in kind_specs.items():
                self._index(spec, object_id)
        log.info(
            "specs loaded from %s: %s",
            self.store.description,
            ", ".join(f"{len(v)} {k}" for k, v in self._specs.items()),
        )

    # ------------------------------------------------------------------ reads

    def get(self, kind: type[_S], object_id: str) -> _S | None:
        spec = self._specs[kind.kind].get(object_id)
        return spec.model_copy(deep=True) if spec is not None else None  # type: ignore[return-value]

    def all(self, kind: type[_S]) -> list[_S]:
        return [
            s.model_copy(deep=True)  # type: ignore[misc]
            for _, s in sorted(self._specs[kind.kind].items())
        ]

    def view(self, kind: type[_S]) -> list[_S]:
        """Every spec of `kind` as held in memory, not copied: for readers that change
        nothing (listings, counts), which would otherwise copy thousands of specs."""
        return [s for _, s in sorted(self._specs[kind.kind].items())]  # type: ignore[misc]

    def _owned_by(self, kind: type[_S], volume: VolumeSpec | str) -> list[_S]:
        wanted = str(volume.uuid) if isinstance(volume, VolumeSpec) else volume
        ids = sorted(self._owned.get(kind.kind, {}).get(wanted, ()))
        stored = self._specs[kind.kind]
        return [stored[i].model_copy(deep=True) for i in ids if i in stored]  # type: ignore[misc]

    @staticmethod
    def _owner(spec: SpecModel) -> str | None:
        if isinstance(spec, ReplicaSpec) and spec.owners.volume is not None:
            return str(spec.owners.volume)
        if isinstance(spec, NexusSpec) and spec.owner is not None:
            return str(spec.owner)
        return None

    def _index(self, spec: SpecModel, object_id: str) -> None:
        owner = self._owner(spec)
        if owner is not None:
            self._owned.setdefault(type(spec).kind, {}).setdefault(owner, set()).add(object_id)

    def _unindex(self, spec: SpecModel, object_id: str) -> None:
        owner = self._owner(spec)
        if owner is not None:
            self._owned.get(type(spec).kind, {}).get(owner, set()).discard(object_id)

    def volumes(self) -> list[VolumeSpec]:
        return self.all(VolumeSpec)

    def replicas_of(self, volume: VolumeSpec | str) -> list[ReplicaSpec]:
        """The replicas a volume owns, but those being deleted (their node was away)."""
        owned = self._owned_by(ReplicaSpec, volume)
        return [r for r in owned if r.status is not SpecStatus.DELETING]

    def nexuses_of(self, volume: VolumeSpec | str) -> list[NexusSpec]:
        return self._owned_by(NexusSpec, volume)

    # ------------------------------------------------------------------ writes

    def _key(self, spec: SpecModel) -> str:
        return self.keys.key(type(spec).kind, spec_id(spec))

    async def _fresh_revision(self, key: str) -> int:
        if key in self._stale:
            entry = await self.store.get(key)
            self._revisions[key] = entry.revision if entry is not None else 0
            self._stale.discard(key)
        return self._revisions.get(key, 0)

    async def save(self, spec: SpecModel) -> None:
        """Write one spec (new or changed) to the store, then to memory.

        Raises:
            StoreUnavailable: nothing is changed in memory; the key is read again
                before it is next written.
            RevisionMismatch: another writer changed it (only after a lost lease).
        """
        await self.commit(saves=[spec])

    async def remove(self, spec: SpecModel) -> None:
        """Delete one spec from the store, then from memory."""
        await self.commit(removes=[spec])

    async def commit(
        self, saves: Iterable[SpecModel] = (), removes: Iterable[SpecModel] = ()
    ) -> None:
        """Write and delete several specs atomically."""
        saves, removes = list(saves), list(removes)
        operations: list[Operation] = []
        for spec in saves:
            key = self._key(spec)
            operations.append(Put(key, spec.to_store(), await self._fresh_revision(key)))
        for spec in removes:
            key = self._key(spec)
            revision = await self._fresh_revision(key)
            if revision:
                operations.append(Delete(key, revision))
        revision = 0
        if operations:  # none: only removes of specs the store does not hold (any more)
            try:
                revision = await self.store.commit(operations)
            except StoreUnavailable:
                self._stale.update(op.key for op in operations)
                raise
        for spec in saves:
            self._revisions[self._key(spec)] = revision
            object_id = spec_id(spec)
            old = self._specs[type(spec).kind].get(object_id)
            if old is not None:
                self._unindex(old, object_id)
            self._specs[type(spec).kind][object_id] = spec.model_copy(deep=True)
            self._index(spec, object_id)
        for spec in removes:
            gone = self._specs[type(spec).kind].pop(spec_id(spec), None)
            if gone is not None:
                self._unindex(gone, spec_id(spec))
            self._revisions.pop(self._key(spec), None)
