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
from mayastor.engine.host_secrets import HostKeys
from mayastor.engine.registry import Registry
from mayastor.errors import AlreadyExists, InvalidArgument, MayastorError, NotFound
from mayastor.nexus import ChildStatus, Nexus, NexusInfoStore, ReservationPolicy
from mayastor.nvmf.spec import AnaState
from mayastor.target import NvmfTarget, openebs_nqn

log = logging.getLogger(__name__)


class Nexuses:
    """Nexuses by uuid, created over children given as URIs."""

    def __init__(
        self,
        registry: Registry,
        opener: DeviceOpener,
        store: NexusInfoStore,
        target: NvmfTarget,
        nexus_port: int,
    ) -> None:
        self.registry = registry
        self.opener = opener
        self.store = store
        self.target = target
        self.nexus_port = nexus_port
        self.items: dict[str, Nexus] = {}
        self.cntlid_ranges: dict[str, tuple[int, int]] = {}

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

    def by_name(self) -> list[Nexus]:
        return sorted(self.items.values(), key=lambda n: n.name)

    async def create(
        self,
        name: str,
        nexus_uuid: str,
        size: int,
        children: Sequence[str],
        cntlid_range: tuple[int, int] | None = None,
        reservation: ReservationPolicy | None = None,
    ) -> Nexus:
        """Create a nexus; with stored info for its uuid, only healthy children are trusted.

        With a reservation policy the nexus holds an NVMe reservation on every child
        (fencing); once fenced, its published subsystem turns ANA Inaccessible.

        Raises:
            InvalidArgument: a bad uuid, size or child list.
            AlreadyExists: a nexus with that uuid or name exists with other settings.
            ReservationConflict: a child is reserved by another host the policy does
                not preempt.
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
                name,
                parsed,
                size,
                list(children),
                opener=self.opener,
                store=self.store,
                reservation=reservation,
            )
            nexus.on_fenced = lambda: self._fenced(nexus)
            self.items[key] = nexus
            if cntlid_range is not None:
                self.cntlid_ranges[key] = cntlid_range
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
            await self._unpublish(nexus)
            await nexus.destroy()
            del self.items[str(nexus.uuid)]
            self.cntlid_ranges.pop(str(nexus.uuid), None)
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

    async def resize(self, nexus_uuid: str, size: int) -> Nexus:
        """Grow a nexus whose children were grown; hosts connected to it are told."""
        async with self.registry.lock:
            nexus = self.find(nexus_uuid)
            before = nexus.size
            await nexus.resize(size)
            if self.published_uri(nexus) and before != nexus.size:
                self.target.namespace_changed(self.nqn(nexus))
            log.info("nexus %s resized from %d to %d bytes", nexus.name, before, nexus.size)
            return nexus

    def _fenced(self, nexus: Nexus) -> None:
        """A nexus was superseded: hosts of its subsystem are told to use another path."""
        if self.published_uri(nexus):
            self.target.set_ana_state(self.nqn(nexus), AnaState.INACCESSIBLE)
        log.error(
            "nexus %s (%s) fenced: %s; its subsystem is ANA inaccessible",
            nexus.name,
            nexus.uuid,
            nexus.fenced,
        )

    def ana_state(self, nexus: Nexus) -> AnaState | None:
        """The ANA state hosts of the nexus's subsystem are told, None when not published."""
        nqn = self.nqn(nexus)
        for sub in self.target.subsystems():
            if sub.nqn == nqn:
                return sub.ana_state
        return None

    # ------------------------------------------------------------------ publishing

    def nqn(self, nexus: Nexus) -> str:
        """The subsystem NQN of a nexus: after its name, as Mayastor's (the control plane
        names a nexus after its volume, so the NQN stays when the target moves)."""
        return openebs_nqn(nexus.name)

    def published_uri(self, nexus: Nexus) -> str:
        """The nexus's ``nvmf://`` URI while it is published, else ""."""
        nqn = self.nqn(nexus)
        if any(sub.nqn == nqn for sub in self.target.subsystems()):
            return self.target.share_uri(nqn)
        return ""

    def authenticates(self, nexus: Nexus) -> bool:
        """True while the nexus is published with DH-HMAC-CHAP secrets."""
        nqn = self.nqn(nexus)
        return any(
            sub.nqn == nqn and sub.requires_authentication for sub in self.target.subsystems()
        )

    def allowed_hosts(self, nexus: Nexus) -> list[str]:
        nqn = self.nqn(nexus)
        for sub in self.target.subsystems():
            if sub.nqn == nqn:
                return sorted(sub.allowed_hosts or ())
        return []

    async def publish(
        self,
        nexus_uuid: str,
        allowed_hosts: Sequence[str],
        host_keys: HostKeys | None = None,
    ) -> Nexus:
        """Export the nexus over NVMe/TCP on the nexus port, I/O paused meanwhile.

        With no allowed hosts any host may connect (the application node's NQN is the
        control plane's to give). With `host_keys`, only the hosts they name are
        admitted, each after proving its DH-HMAC-CHAP secret. Publishing a published
        nexus again replaces its allow-list and its secrets.
        """
        async with self.registry.lock:
            nexus = self.find(nexus_uuid)
            nqn = self.nqn(nexus)
            hosts = tuple(allowed_hosts) or None
            keys = dict(host_keys or {})
            self.registry.secrets.set(nqn, keys)
            if self.published_uri(nexus):
                self.target.set_allowed_hosts(nqn, hosts)
                self.target.set_host_keys(nqn, keys)
                return nexus
            cntlids = self.cntlid_ranges.get(str(nexus.uuid), (1, 0xFFEF))
            await nexus.pause()
            try:
                self.target.add_subsystem(
                    nqn,
                    nexus,
                    port=self.nexus_port,
                    allowed_hosts=hosts,
                    cntlid_range=cntlids,
                    ana_state=AnaState.INACCESSIBLE if nexus.fenced else AnaState.OPTIMIZED,
                    host_keys=keys,
                    namespace_uuid=namespace_uuid(nexus),
                )
            finally:
                nexus.resume()
            log.info(
                "nexus %s published as %s for %s",
                nexus.name,
                self.target.share_uri(nqn),
                ", ".join(hosts) if hosts else "any host",
            )
            return nexus

    async def unpublish(self, nexus_uuid: str) -> Nexus:
        async with self.registry.lock:
            nexus = self.find(nexus_uuid)
            await self._unpublish(nexus)
            return nexus

    async def _unpublish(self, nexus: Nexus) -> None:
        if self.published_uri(nexus):
            await nexus.pause()
            try:
                await self.target.remove_subsystem(self.nqn(nexus))
            finally:
                nexus.resume()
            self.registry.secrets.forget(self.nqn(nexus))
            log.info("nexus %s unpublished", nexus.name)

    async def close(self) -> None:
        """Shut every nexus down cleanly and close its children (on SIGTERM); keep its info."""
        async with self.registry.lock:
            for key, nexus in list(self.items.items()):
                try:
                    await self._unpublish(nexus)
                    await nexus.shutdown()
                    await nexus.close()
                    log.info("nexus %s shut down", nexus.name)
                except MayastorError as exc:
                    log.error("nexus %s did not shut down cleanly: %s", nexus.name, exc)
                del self.items[key]


def namespace_uuid(nexus: Nexus) -> uuid_mod.UUID:
    """The uuid a published nexus's namespace reports: its name when that is a uuid (the
    control plane names a nexus after its volume), else the nexus's own.

    Every nexus of a volume then shows hosts one namespace, so the kernel's native
    multipath takes the target on a new node as another path to the same device.
    """
    try:
        return uuid_mod.UUID(nexus.name)
    except ValueError:
        return nexus.uuid


def _describe(child: ChildStatus) -> str:
    if child.reason is not None:
        return f"{child.state.value} ({child.reason.value})"
    return child.state.value
