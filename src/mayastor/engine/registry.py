"""The objects of one io-engine: bdevs, pools and their replicas.

One `Registry` per io-engine (never a module global, so two io-engines can run in one
test process). It opens disks through the engine's `DeviceOpener`, keeps which object
claims which bdev, and serialises changes: every create/destroy/import/export/resize
runs under one control lock, so two requests can never race on one name. I/O does not
take that lock.

Every change is logged at INFO with the object and what happened to it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid as uuid_mod
from dataclasses import dataclass

from mayastor.bdev import BdevUri, BlockDevice, DeviceOpener, LoopbackUri, parse_bdev_uri
from mayastor.bdev.loopback import LoopbackDevice
from mayastor.engine.host_secrets import HostKeys, ShareSecrets
from mayastor.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    MayastorError,
    NotFound,
)
from mayastor.lvs import DEFAULT_CLUSTER_SIZE, LvolProperties, Pool, ShareProtocol
from mayastor.lvs import Lvol as Replica
from mayastor.target import NvmfTarget, openebs_nqn

log = logging.getLogger(__name__)


@dataclass
class BdevEntry:
    """A block device the io-engine holds, the URI it came from and who uses it."""

    device: BlockDevice
    uri: str
    claimed_by: str | None = None


IO_ENGINE_HOSTS = ("nqn.2019-05.io.openebs:node-name:*",)
"""Who may connect to a replica shared without an allow-list: any io-engine."""


def replica_bdev_uri(replica: Replica) -> str:
    """How a nexus on this io-engine reaches the replica in-process."""
    return f"bdev:///{replica.name}?uuid={replica.uuid}"


class Registry:
    """Bdevs, pools and replicas of one io-engine, and the operations on them."""

    def __init__(
        self,
        opener: DeviceOpener,
        target: NvmfTarget,
        replica_port: int,
        secrets: ShareSecrets | None = None,
    ) -> None:
        self.opener = opener
        self.target = target
        self.replica_port = replica_port
        self.secrets = secrets or ShareSecrets()
        """DH-HMAC-CHAP secrets of shared replicas (and published nexuses), by NQN."""
        self.bdevs: dict[str, BdevEntry] = {}
        self.pools: dict[str, Pool] = {}
        self.replica_users: dict[uuid_mod.UUID, str] = {}
        """Replicas held open by a nexus of this io-engine (replica uuid -> nexus)."""
        self.lock = asyncio.Lock()
        opener.register("bdev", self._open_loopback)

    # ------------------------------------------------------------------ lookups

    def find_pool(self, name_or_uuid: str) -> Pool:
        """The pool of that name, else of that uuid.

        Raises:
            NotFound: no such pool.
        """
        pool = self.pools.get(name_or_uuid)
        if pool is not None:
            return pool
        for pool in self.pools.values():
            if str(pool.uuid) == name_or_uuid:
                return pool
        raise NotFound(f"pool {name_or_uuid!r} not found")

    def replicas(self) -> list[Replica]:
        return [lvol for pool in self.pools.values() for lvol in pool.lvols()]

    def find_replica(
        self, *, uuid: str | None = None, name: str | None = None, pool: str | None = None
    ) -> Replica:
        """A replica by uuid, or by name (within `pool` when given).

        Raises:
            NotFound: no replica matches.
            InvalidArgument: a name matches replicas in several pools and no pool was given.
        """
        pools = [self.find_pool(pool)] if pool else list(self.pools.values())
        found = [
            lvol
            for p in pools
            for lvol in p.lvols()
            if (uuid and str(lvol.uuid) == uuid) or (not uuid and name and lvol.name == name)
        ]
        what = f"uuid {uuid}" if uuid else f"name {name!r}"
        where = f" in pool {pool!r}" if pool else ""
        if not found:
            raise NotFound(f"replica with {what} not found{where}")
        if len(found) > 1:
            raise InvalidArgument(f"replica {what} exists in several pools: name the pool")
        return found[0]

    def find_bdev(self, name_or_uri: str) -> BdevEntry:
        entry = self.bdevs.get(name_or_uri)
        if entry is not None:
            return entry
        for entry in self.bdevs.values():
            if entry.uri == name_or_uri:
                return entry
        raise NotFound(f"bdev {name_or_uri!r} not found")

    # ------------------------------------------------------------------ bdevs

    async def create_bdev(self, uri: str) -> BdevEntry:
        """Open a block device from a URI and keep it.

        Raises:
            AlreadyExists: a bdev of that name (or from that URI) is already open.
        """
        async with self.lock:
            return await self._open_bdev(uri, claimed_by=None)

    async def destroy_bdev(self, name_or_uri: str) -> None:
        async with self.lock:
            entry = self.find_bdev(name_or_uri)
            if entry.claimed_by:
                raise FailedPrecondition(
                    f"bdev {entry.device.name!r} is in use by {entry.claimed_by}; "
                    "destroy or export that first"
                )
            await entry.device.close()
            del self.bdevs[entry.device.name]
            log.info("bdev %s destroyed", entry.device.name)

    async def _open_bdev(self, uri: str, claimed_by: str | None) -> BdevEntry:
        parsed = parse_bdev_uri(uri)
        for entry in self.bdevs.values():
            if entry.uri == uri or entry.device.name == parsed.name:
                raise AlreadyExists(
                    f"bdev {entry.device.name!r} is already open"
                    + (f" (used by {entry.claimed_by})" if entry.claimed_by else "")
                )
        device = await self.opener.open(uri)
        entry = BdevEntry(device, uri, claimed_by)
        self.bdevs[device.name] = entry
        log.info(
            "bdev %s opened from %s: %d blocks of %d bytes",
            device.name,
            uri,
            device.num_blocks,
            device.block_size,
        )
        return entry

    async def _release_bdev(self, device: BlockDevice) -> None:
        entry = self.bdevs.pop(device.name, None)
        if entry is not None and not device.closed:
            await device.close()

    # ------------------------------------------------------------------ pools

    def _one_disk(self, disks: list[str]) -> str:
        if len(disks) != 1:
            raise InvalidArgument(f"a pool takes exactly one disk, got {len(disks)}: {disks}")
        return disks[0]

    async def create_pool(
        self,
        name: str,
        disks: list[str],
        *,
        uuid: str | None = None,
        cluster_size: int | None = None,
        max_expansion: str | None = None,
        force: bool = False,
    ) -> Pool:
        """Create a pool on a disk, or import it when the disk already holds this pool.

        The disk is read before anything is written: one that holds a known signature
        (a file system, a partition table, another pool, ...) is refused unless `force`.

        Raises:
            InvalidArgument: not exactly one disk; a bad cluster size or uuid.
            PermissionDenied: the disk is outside the io-engine's --disk-allow patterns.
            AlreadyExists: a pool of that name exists on another disk.
            DiskNotBlank: the disk holds something (named) and not `force`.
        """
        disk = self._one_disk(disks)
        pool_uuid = _parse_uuid(uuid, "pool uuid")
        async with self.lock:
            existing = self.pools.get(name)
            if existing is not None:
                if existing.disk == disk and (pool_uuid is None or pool_uuid == existing.uuid):
                    return existing
                raise AlreadyExists(f"pool {name!r} already exists on {existing.disk}")
            entry = await self._open_bdev(disk, claimed_by=f"pool {name}")
            try:
                pool = await Pool.create_or_import(
                    entry.device,
                    name,
                    disk=disk,
                    uuid=pool_uuid,
                    cluster_size=cluster_size or DEFAULT_CLUSTER_SIZE,
                    max_expansion=max_expansion,
                    force=force,
                )
            except BaseException:
                await self._release_bdev(entry.device)
                raise
            self.pools[name] = pool
            self._serve_shared_replicas(pool)
            if pool.overwritten:
                log.warning(
                    "pool %s created with force on %s over what it held: %s",
                    name,
                    disk,
                    "; ".join(pool.overwritten),
                )
            warning = pool.space_warning()
            if warning:
                log.warning("pool %s: %s", name, warning)
            log.info(
                "pool %s (%s) online on %s: capacity %d bytes, %d replicas",
                name,
                pool.uuid,
                disk,
                pool.capacity,
                len(pool.lvols()),
            )
            return pool

    async def import_pool(self, name: str, disks: list[str], *, uuid: str | None = None) -> Pool:
        """Open a pool that is already on a disk.

        Raises:
            NotFound: the disk holds no pool.
            FailedPrecondition: the disk holds another pool.
            AlreadyExists: a pool of that name is already open.
            CorruptMetadata: the pool's metadata cannot be trusted.
        """
        disk = self._one_disk(disks)
        pool_uuid = _parse_uuid(uuid, "pool uuid")
        async with self.lock:
            if name in self.pools:
                raise AlreadyExists(f"pool {name!r} is already imported")
            entry = await self._open_bdev(disk, claimed_by=f"pool {name}")
            try:
                pool = await Pool.import_(entry.device, disk=disk, name=name, uuid=pool_uuid)
            except BaseException:
                await self._release_bdev(entry.device)
                raise
            self.pools[name] = pool
            self._serve_shared_replicas(pool)
            log.info("pool %s (%s) imported from %s", name, pool.uuid, disk)
            warning = pool.space_warning()
            if warning:
                log.warning("pool %s: %s", name, warning)
            return pool

    async def export_pool(self, name_or_uuid: str) -> None:
        async with self.lock:
            pool = self.find_pool(name_or_uuid)
            self._refuse_if_replicas_in_use(pool, "export")
            await self._stop_serving(pool.lvols())
            await pool.export()
            del self.pools[pool.name]
            await self._release_bdev(pool.base)
            log.info("pool %s exported (left intact on %s)", pool.name, pool.disk)

    async def destroy_pool(self, name_or_uuid: str) -> None:
        """Destroy a pool with all its replicas and wipe its metadata.

        Raises:
            FailedPrecondition: a replica of the pool is shared or in use.
        """
        async with self.lock:
            pool = self.find_pool(name_or_uuid)
            self._refuse_if_replicas_in_use(pool, "destroy")
            await self._stop_serving(pool.lvols())
            for lvol in list(pool.lvols()):
                await pool.destroy_lvol(lvol)
                log.info("replica %s (%s) destroyed with pool %s", lvol.name, lvol.uuid, pool.name)
            await pool.destroy()
            del self.pools[pool.name]
            await self._release_bdev(pool.base)
            log.info("pool %s destroyed; its disk %s no longer holds a pool", pool.name, pool.disk)

    async def grow_pool(self, name_or_uuid: str) -> tuple[int, Pool]:
        """Grow a pool into new space of its disk; returns the old capacity and the pool."""
        async with self.lock:
            pool = self.find_pool(name_or_uuid)
            before = pool.capacity
            grew = await pool.grow()
            if grew:
                log.info("pool %s grew from %d to %d bytes", pool.name, before, pool.capacity)
            return before, pool

    def _refuse_if_replicas_in_use(self, pool: Pool, action: str) -> None:
        busy = [lvol.name for lvol in pool.lvols() if self.is_claimed(lvol)]
        if busy:
            raise FailedPrecondition(
                f"cannot {action} pool {pool.name!r}: replicas {busy} are in use by a nexus; "
                "remove them from it (or destroy it) first"
            )

    def is_claimed(self, device: BlockDevice) -> bool:
        if isinstance(device, Replica) and device.uuid in self.replica_users:
            return True
        entry = self.bdevs.get(device.name)
        return entry is not None and entry.claimed_by is not None and entry.device is device

    def user_of(self, device: BlockDevice) -> str:
        if isinstance(device, Replica) and device.uuid in self.replica_users:
            return self.replica_users[device.uuid]
        entry = self.bdevs.get(device.name)
        return (entry.claimed_by if entry else None) or "nobody"

    async def _open_loopback(self, parsed: BdevUri, name: str) -> BlockDevice:
        """Open ``bdev:///NAME[?uuid=U&hostid=H]``: a replica (or bdev) of this io-engine,
        in-process, as host H for NVMe reservations (the replica's own state).

        The replica is claimed until the handle is closed, so it cannot be destroyed (or
        its pool exported) under the nexus that uses it.

        Raises:
            NotFound: no replica or bdev of that name (and uuid).
            FailedPrecondition: the replica is already used by a nexus.
        """
        uuid = str(parsed.uuid) if parsed.uuid else None
        try:
            device: BlockDevice = self.find_replica(uuid=uuid, name=None if uuid else parsed.name)
        except NotFound:
            entry = self.bdevs.get(parsed.name)
            if entry is None or entry.claimed_by is not None:
                raise NotFound(
                    f"{parsed.uri}: no replica or free bdev of that name on this io-engine"
                ) from None
            device = entry.device
        if device.name != parsed.name:
            raise NotFound(f"{parsed.uri}: replica {uuid} is called {device.name!r}")
        if self.is_claimed(device):
            raise FailedPrecondition(
                f"{parsed.uri}: {device.name!r} is already in use by {self.user_of(device)}"
            )
        key = device.uuid
        self.replica_users[key] = f"nexus child {parsed.uri}"

        async def release() -> None:
            self.replica_users.pop(key, None)

        assert isinstance(parsed, LoopbackUri)
        return LoopbackDevice(device, on_close=release, hostid=parsed.hostid)

    # ------------------------------------------------------------------ replicas

    async def create_replica(
        self,
        pool_name: str,
        name: str,
        size: int,
        *,
        uuid: str | None = None,
        thin: bool = False,
        properties: LvolProperties | None = None,
    ) -> Replica:
        """Create a replica; its uuid must be unique on this io-engine.

        Raises:
            InvalidArgument, AlreadyExists, ResourceExhausted, NotFound (no such pool).
        """
        replica_uuid = _parse_uuid(uuid, "replica uuid")
        async with self.lock:
            pool = self.find_pool(pool_name)
            if replica_uuid is not None:
                for other in self.replicas():
                    if other.uuid == replica_uuid:
                        raise AlreadyExists(
                            f"replica uuid {replica_uuid} is taken by {other.name!r} "
                            f"in pool {other.pool.name!r}"
                        )
            lvol = await pool.create_lvol(
                name,
                size,
                uuid=replica_uuid,
                thin=thin,
                properties=properties or LvolProperties(),
            )
            log.info(
                "replica %s (%s) created in pool %s: %d bytes, %s",
                lvol.name,
                lvol.uuid,
                pool.name,
                lvol.size,
                "thin" if lvol.thin else "thick",
            )
            return lvol

    async def destroy_replica(self, replica: Replica) -> None:
        async with self.lock:
            if self.is_claimed(replica):
                raise FailedPrecondition(
                    f"replica {replica.name!r} is in use by {self.user_of(replica)}; "
                    "remove it from its nexus first"
                )
            await self._stop_serving([replica])
            await replica.pool.destroy_lvol(replica)
            self.secrets.forget(openebs_nqn(replica.uuid))
            log.info("replica %s (%s) destroyed", replica.name, replica.uuid)

    async def resize_replica(self, replica: Replica, size: int) -> Replica:
        async with self.lock:
            before = replica.size
            await replica.pool.resize_lvol(replica, size)
            if self.is_served(replica):
                self.target.namespace_changed(openebs_nqn(replica.uuid))
            log.info("replica %s resized from %d to %d bytes", replica.name, before, replica.size)
            return replica

    async def set_replica_properties(self, replica: Replica, properties: LvolProperties) -> None:
        async with self.lock:
            await replica.pool.set_lvol_properties(replica, properties)
            log.info("replica %s properties now %s", replica.name, properties)

    # ------------------------------------------------------------------ sharing

    def is_served(self, replica: Replica) -> bool:
        return any(sub.nqn == openebs_nqn(replica.uuid) for sub in self.target.subsystems())

    def replica_uri(self, replica: Replica) -> str:
        """``nvmf://…?uuid=`` while the replica is shared, else ``bdev:///…?uuid=``."""
        if self.is_served(replica):
            return f"{self.target.share_uri(openebs_nqn(replica.uuid))}?uuid={replica.uuid}"
        return replica_bdev_uri(replica)

    async def share_replica(
        self,
        replica: Replica,
        allowed_hosts: list[str],
        host_keys: HostKeys | None = None,
    ) -> Replica:
        """Export a replica over NVMe/TCP and record that (and its allow-list) in its pool.

        With no allowed hosts, only io-engines (host NQN
        ``nqn.2019-05.io.openebs:node-name:*``) may connect. With `host_keys`, only the
        hosts they name are admitted, each after proving its DH-HMAC-CHAP secret (the
        secrets are kept in the io-engine's own file, not in the pool). Sharing a
        shared replica again replaces its allow-list and its secrets (for new
        connections).
        """
        async with self.lock:
            hosts = tuple(allowed_hosts)
            keys = dict(host_keys or {})
            nqn = openebs_nqn(replica.uuid)
            if self.is_served(replica):
                self.target.set_allowed_hosts(nqn, hosts or IO_ENGINE_HOSTS)
                self.target.set_host_keys(nqn, keys)
            else:
                self.target.add_subsystem(
                    nqn,
                    replica,
                    port=self.replica_port,
                    allowed_hosts=hosts or IO_ENGINE_HOSTS,
                    host_keys=keys,
                )
            self.secrets.set(nqn, keys)
            properties = dataclasses.replace(
                replica.properties, share=ShareProtocol.NVMF, allowed_hosts=hosts
            )
            try:
                await replica.pool.set_lvol_properties(replica, properties)
            except BaseException:
                await self.target.remove_subsystem(nqn)
                raise
            log.info(
                "replica %s shared as %s for %s",
                replica.name,
                self.target.share_uri(nqn),
                ", ".join(hosts) if hosts else "io-engines only",
            )
            if keys:
                log.info("replica %s admits only hosts with DH-HMAC-CHAP secrets", replica.name)
            return replica

    async def unshare_replica(self, replica: Replica) -> Replica:
        """Stop exporting a replica: its hosts are disconnected, its pool records it."""
        async with self.lock:
            await self._stop_serving([replica])
            self.secrets.forget(openebs_nqn(replica.uuid))
            properties = dataclasses.replace(replica.properties, share=ShareProtocol.NONE)
            await replica.pool.set_lvol_properties(replica, properties)
            log.info("replica %s unshared", replica.name)
            return replica

    def _serve_shared_replicas(self, pool: Pool) -> None:
        for lvol in pool.lvols():
            if lvol.properties.share is ShareProtocol.NVMF and not self.is_served(lvol):
                hosts = lvol.properties.allowed_hosts or IO_ENGINE_HOSTS
                nqn = openebs_nqn(lvol.uuid)
                self.target.add_subsystem(
                    nqn,
                    lvol,
                    port=self.replica_port,
                    allowed_hosts=hosts,
                    host_keys=self.secrets.keys(nqn),
                )
                log.info("replica %s shared again as %s", lvol.name, self.target.share_uri(nqn))

    async def _stop_serving(self, replicas: list[Replica]) -> None:
        for replica in replicas:
            if self.is_served(replica):
                await self.target.remove_subsystem(openebs_nqn(replica.uuid))

    # ------------------------------------------------------------------ shutdown

    async def close(self) -> None:
        """Export every pool cleanly and close every bdev (on SIGTERM)."""
        async with self.lock:
            for pool in list(self.pools.values()):
                try:
                    await self._stop_serving(pool.lvols())
                    await pool.export()
                    log.info("pool %s exported", pool.name)
                except MayastorError as exc:
                    log.error("pool %s could not be exported cleanly: %s", pool.name, exc)
                del self.pools[pool.name]
            for name, entry in list(self.bdevs.items()):
                if not entry.device.closed:
                    await entry.device.close()
                del self.bdevs[name]


def _parse_uuid(text: str | None, what: str) -> uuid_mod.UUID | None:
    if not text:
        return None
    try:
        return uuid_mod.UUID(text)
    except ValueError:
        raise InvalidArgument(f"{what} {text!r} is not a UUID") from None
