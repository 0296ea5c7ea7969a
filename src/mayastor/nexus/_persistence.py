"""Nexus info: which children hold every acknowledged write, kept in a store.

The record changes (`_info_version` goes up) whenever a child stops or starts being
known to hold current data; an I/O that caused such a change is acknowledged only once
the store holds the new record, so after a crash an out-of-date child is never read as
if it were current. A store that refuses the record as superseded (the control plane
gave the volume a newer nexus while this one was cut off) fences the nexus: an old
target that lost its remote children cannot go on with its local one alone. One writer
at a time stores the newest record; callers wait for a record at least as new as the
change they made. At creation, a stored record says which children to trust.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mayastor.errors import FailedPrecondition, InternalDeviceError, Superseded
from mayastor.nexus._child_state import ChildState, FaultReason
from mayastor.nexus._core import NexusCore, retrieve
from mayastor.nexus._info import NexusInfo, NexusInfoStore


class InfoPersistence(NexusCore):
    """The nexus info layer (see `_core` for the stack).

    Args:
        store: where nexus info is kept.
    """

    def __init__(self, *args: Any, store: NexusInfoStore, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._store = store
        self._info_version = 0
        self._info_stored = 0
        self._info_writer: asyncio.Task[None] | None = None

    async def _persist_info(self) -> None:
        """Return once the store holds the info as it was when this was called."""
        target = self._info_version
        while self._info_stored < target:
            writer = self._info_writer
            if writer is None:
                writer = self._info_writer = asyncio.get_running_loop().create_task(
                    self._write_info(), name=f"nexus {self.name} info"
                )
                writer.add_done_callback(retrieve)
            await asyncio.shield(writer)

    async def _write_info(self) -> None:
        version = self._info_version
        try:
            await self._store.put(self.uuid, self.info())
            self._info_stored = max(self._info_stored, version)
        except Superseded as exc:
            self._superseded(exc)
            raise
        finally:
            self._info_writer = None

    def _superseded(self, error: Superseded) -> None:
        """Hook: the store refused the info because the volume has a newer nexus (the
        fencing layer fences the nexus)."""

    async def _persist_for_io(self, error: Exception | None) -> None:
        try:
            await self._persist_info()
        except Superseded:
            if error is not None:
                return  # the I/O fails anyway, with the fenced nexus's error
            raise self._not_serving() from None
        except Exception as exc:
            if error is not None:
                return  # the I/O fails anyway, with its own error
            raise InternalDeviceError(
                f"nexus {self.name!r}: cannot record its children's health, so the I/O "
                f"cannot be acknowledged: {exc}",
                device=self.name,
            ) from exc

    def _trust_children(self, stored: NexusInfo | None) -> None:
        if stored is None:
            return
        trusted = [
            c
            for c in self._children
            if (entry := stored.child(c.uuid)) is not None and entry.healthy
        ]
        if not trusted:
            raise FailedPrecondition(
                f"nexus {self.name!r}: its stored info names none of "
                f"{[c.uri for c in self._children]} healthy; no child is known to hold "
                "current data (delete the nexus info to start over, or add a healthy child)"
            )
        if not stored.clean_shutdown and len(trusted) > 1:
            # Blocks of writes in flight at the crash may differ: keep one, rebuild the rest.
            trusted = [next((c for c in trusted if c.local), trusted[0])]
        for child in self._children:
            if child not in trusted:
                child.state = ChildState.FAULTED
                child.reason = FaultReason.OUT_OF_SYNC
                child.healthy = False
