"""The nexuses of one io-engine and the operations on them.

A nexus opens its children through the io-engine's `DeviceOpener`: `bdev:///` reaches a
replica of this io-engine in-process (claimed while the nexus holds it), `nvmf://` a
remote replica through our initiator, `aio://` and `malloc://` a local device. Which
children are in sync is kept in the io-engine's `NexusInfoStore`, so a nexus created
again after a crash trusts only its healthy children.

Changes run under the registry's control lock; I/O never takes it.
"""

from __future__ import annotations

import logging
import uuid as uuid_mod
from collections.abc import Sequence

from mayastor.bdev import DeviceOpener
from mayastor.engine.registry import Registry
from mayastor.errors import AlreadyExists, InvalidArgument, MayastorError, NotFound
from mayastor.nexus import ChildStatus, Nexus, NexusInfoStore

log = logging.getLogger(__name__)


class Nexuses:
    """Nexuses by uuid, created over children given as URIs."""

    def __init__(self, registry: Registry, opener: DeviceOpener, store: NexusInfoStore) -> None:
        self.registry = registry
        self.opener = opener
        self.store = store
        self.items: dict[str, Nexus] = {}

    def find(self, nexus_uuid: str) -> Nexus:
        """The nexus with that uuid (or that name).

        Raises:
            NotFound: no such nexus.
        """
        nexus = self.items.get(nexus_uuid)
        if nexus is not None:
            return nexus
        for nexus in self.items.values():
            if nexus.name == nexus_uuid:
                return nexus
        raise NotFound(f"nexus {nexus_uuid!r} not found")

    def list(self) -> list[Nexus]:
        return sorted(self.items.values(), key=lambda n: n.name)

    async def create(self, name: str, nexus_uuid: str, size: int, children: Sequence[str]) -> Nexus:
        """Create a nexus; with stored info for its uuid, only healthy children are trusted.

        Raises:
            InvalidArgument: a bad uuid, size or child list.
            AlreadyExists: a nexus with that uuid or name exists with other settings.
            MayastorError: a child cannot be opened or is too small (nothing is left open).
        """
        try:
            parsed = uuid_mod.UUID(nexus_uuid)
        except ValueError:
            raise InvalidArgument(f"nexus uuid {nexus_uuid!r} is not a UUID") from None
        key = str(parsed)
        async with self.registry.lock:
            existing = self.items.get(key)
            if existing is not None:
                same = existing.size == size and sorted(c.uri for c in existing.children) == sorted(
                    children
                )
                if same and existing.name == name:
                    return existing
                raise AlreadyExists(f"nexus {key} already exists with other settings")
            for other in self.items.values():
                if other.name == name:
                    raise AlreadyExists(f"a nexus called {name!r} already exists ({other.uuid})")
            nexus = await Nexus.create(
                name, parsed, size, list(children), opener=self.opener, store=self.store
            )
            self.items[key] = nexus
            log.info(
                "nexus %s (%s) created: %d bytes, %s, children %s",
                name,
                key,
                size,
                nexus.state.value,
                ", ".join(f"{c.uri} {_describe(c)}" for c in nexus.children),
            )
            return nexus

    async def destroy(self, nexus_uuid: str) -> None:
        """Close the nexus's children and forget it, with its stored info."""
        async with self.registry.lock:
            nexus = self.find(nexus_uuid)
            await nexus.destroy()
            del self.items[str(nexus.uuid)]
            log.info("nexus %s (%s) destroyed", nexus.name, nexus.uuid)

    async def shutdown(self, nexus_uuid: str) -> Nexus:
        async with self.registry.lock:
            nexus = self.find(nexus_uuid)
            await nexus.shutdown()
            log.info("nexus %s shut down cleanly", nexus.name)
            return nexus

    async def add_child(self, nexus_uuid: str, uri: str, norebuild: bool) -> Nexus:
        async with self.registry.lock:
            nexus = self.find(nexus_uuid)
            status = await nexus.add_child(uri, norebuild=norebuild)
            log.info("nexus %s: child %s added, %s", nexus.name, uri, _describe(status))
            return nexus

    async def remove_child(self, nexus_uuid: str, uri: str) -> Nexus:
        async with self.registry.lock:
            nexus = self.find(nexus_uuid)
            await nexus.remove_child(uri)
            log.info("nexus %s: child %s removed", nexus.name, uri)
            return nexus

    async def fault_child(self, nexus_uuid: str, uri: str) -> Nexus:
        async with self.registry.lock:
            nexus = self.find(nexus_uuid)
            await nexus.fault_child(uri)
            log.info("nexus %s: child %s faulted by client", nexus.name, uri)
            return nexus

    async def offline_child(self, nexus_uuid: str, uri: str) -> Nexus:
        async with self.registry.lock:
            nexus = self.find(nexus_uuid)
            await nexus.offline_child(uri)
            log.info("nexus %s: child %s taken offline", nexus.name, uri)
            return nexus

    async def online_child(self, nexus_uuid: str, uri: str) -> Nexus:
        async with self.registry.lock:
            nexus = self.find(nexus_uuid)
            status = await nexus.online_child(uri)
            log.info("nexus %s: child %s brought online, %s", nexus.name, uri, _describe(status))
            return nexus

    async def close(self) -> None:
        """Shut every nexus down cleanly and close its children (on SIGTERM); keep its info."""
        async with self.registry.lock:
            for key, nexus in list(self.items.items()):
                try:
                    await nexus.shutdown()
                    await nexus.close()
                    log.info("nexus %s shut down", nexus.name)
                except MayastorError as exc:
                    log.error("nexus %s did not shut down cleanly: %s", nexus.name, exc)
                del self.items[key]


def _describe(child: ChildStatus) -> str:
    if child.reason is not None:
        return f"{child.state.value} ({child.reason.value})"
    return child.state.value
