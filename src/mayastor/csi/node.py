"""The CSI Node service: a published volume attached, formatted and mounted on this node.

NodeStageVolume connects the kernel's NVMe/TCP initiator to the volume's target (the
URI in the publish context) as this node's host NQN, finds the namespace's block
device in sysfs by the volume's NQN and uuid (or the serving nexus's), sets its I/O
timeout, makes a file system only when the device is blank and mounts it at the
staging path.
NodePublishVolume bind-mounts the staging path (or, for a raw block volume, the
device node) at the target path; the Unpublish and Unstage calls undo that, and
Unstage disconnects once nothing uses the subsystem any more.

The plugin keeps no state of its own: sysfs says what is connected and the mount table
what is mounted, read afresh on every call, so every call is idempotent and a plugin
killed between any two steps converges when the CO calls again. Calls for one volume
run one at a time (a second one in flight is ABORTED).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import grpc

from mayastor.api.csi.v1 import csi_pb2, csi_pb2_grpc
from mayastor.csi import _capabilities as caps
from mayastor.csi import _filesystems as filesystems
from mayastor.csi._commands import find_tool
from mayastor.csi._dhchap import DhchapSecretSource
from mayastor.csi._locks import VolumeLocks
from mayastor.csi._mounts import (
    Mount,
    MountTable,
    bind,
    mount,
    prepare_file_target,
    remove_target,
    unmount,
)
from mayastor.csi._nvme import Namespace, NvmeInitiator, Subsystem, Sysfs, Target, is_stale
from mayastor.csi._parameters import FS_TYPE, NvmeSettings, check_fs_type
from mayastor.csi._volumes import (
    PUBLISH_URI,
    TOPOLOGY_KEY,
    node_nqn,
    parse_volume_id,
    volume_nqn,
)
from mayastor.csi.errors import (
    AlreadyExists,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
)
from mayastor.csi.server import CsiServicer

log = logging.getLogger(__name__)

TOOLS = ("nvme", "blkid", "mount", "umount", "mkfs.ext4")
"""Tools without which nothing can be staged (the other file systems' are checked when used)."""


@dataclass(frozen=True)
class NodeConfig:
    """One node plugin.

    Attributes:
        node_name: this node's name: the CSI node id, and its host NQN's suffix.
        max_volumes: what NodeGetInfo reports (0: no limit).
        sysfs: where to read the kernel's NVMe subsystems and block devices.
        mount_table: this process's mount table.
        dhchap_secret: where the node's DH-HMAC-CHAP secret comes from (None: the
            kernel connects without one).
    """

    node_name: str
    max_volumes: int = 0
    sysfs: Sysfs = field(default_factory=Sysfs)
    mount_table: MountTable = field(default_factory=MountTable)
    dhchap_secret: DhchapSecretSource | None = None

    @property
    def hostnqn(self) -> str:
        return node_nqn(self.node_name)


def _require_id(volume_id: str) -> None:
    """Every node call needs the volume id; a missing argument is reported before an
    unknown volume (INVALID_ARGUMENT before NOT_FOUND), so calls check their required
    fields first and `_volume` last."""
    if not volume_id:
        raise InvalidArgument("the volume id is required")


def _volume(volume_id: str) -> str:
    """The volume uuid of `volume_id`, as text.

    Raises:
        InvalidArgument: none given.
        NotFound: it cannot name a Mayastor volume.
    """
    parsed = parse_volume_id(volume_id)
    if parsed is None:
        raise NotFound(f"volume id {volume_id!r} is not a Mayastor volume (a uuid)")
    return str(parsed)


def _required_path(value: str, what: str) -> str:
    if not value:
        raise InvalidArgument(f"{what} is required")
    if not os.path.isabs(value):
        raise InvalidArgument(f"{what} {value!r} is not an absolute path")
    return os.path.normpath(value)


def _capability(capability: csi_pb2.VolumeCapability, given: bool) -> None:
    """A node call's capability: present and complete (else INVALID_ARGUMENT), and one
    the volume offers (else FAILED_PRECONDITION, the spec's "exceeds capabilities")."""
    if not given:
        raise InvalidArgument("volume_capability is required")
    caps.check_present(capability)
    reason = caps.unsupported(capability)
    if reason is not None:
        raise FailedPrecondition(reason)


def _target(publish_context: Mapping[str, str], volume: str) -> Target:
    uri = publish_context.get(PUBLISH_URI, "")
    if not uri:
        raise InvalidArgument(
            f"publish_context has no {PUBLISH_URI!r}: was ControllerPublishVolume called?",
            volume=volume,
        )
    target = Target.parse(uri)
    if target.nqn != volume_nqn(volume):
        raise InvalidArgument(
            f"publish_context uri {uri!r} is not this volume's target ({volume_nqn(volume)})",
            volume=volume,
        )
    return target


def _settings(request: csi_pb2.NodeStageVolumeRequest, volume: str) -> NvmeSettings:
    """The NVMe settings: the volume context's, overridden by the publish context's."""
    merged = {**dict(request.volume_context), **dict(request.publish_context)}
    try:
        return NvmeSettings.from_context(merged)
    except InvalidArgument as exc:
        raise InvalidArgument(exc.message, volume=volume) from None


class NodeService(csi_pb2_grpc.NodeServicer, CsiServicer):
    """The Node service of one node (see the module docstring)."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.sysfs = config.sysfs
        self.mounts = config.mount_table
        self.initiator = NvmeInitiator(
            config.hostnqn, config.sysfs, dhchap_secret=config.dhchap_secret
        )
        self.locks = VolumeLocks()

    def missing(self) -> list[str]:
        """What this node lacks to stage volumes (Probe reports it)."""
        missing = self.sysfs.fabrics_ready()
        missing += [f"tool {tool}" for tool in TOOLS if find_tool(tool) is None]
        return missing

    # ------------------------------------------------------------------ info

    async def NodeGetInfo(
        self, request: csi_pb2.NodeGetInfoRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.NodeGetInfoResponse:
        return csi_pb2.NodeGetInfoResponse(
            node_id=self.config.node_name,
            max_volumes_per_node=self.config.max_volumes,
            accessible_topology=csi_pb2.Topology(segments={TOPOLOGY_KEY: self.config.node_name}),
        )

    async def NodeGetCapabilities(
        self, request: csi_pb2.NodeGetCapabilitiesRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.NodeGetCapabilitiesResponse:
        rpc = csi_pb2.NodeServiceCapability.RPC
        return csi_pb2.NodeGetCapabilitiesResponse(
            capabilities=[
                csi_pb2.NodeServiceCapability(rpc=rpc(type=kind))
                for kind in (
                    rpc.STAGE_UNSTAGE_VOLUME,
                    rpc.GET_VOLUME_STATS,
                    rpc.EXPAND_VOLUME,
                    rpc.VOLUME_CONDITION,
                    rpc.SINGLE_NODE_MULTI_WRITER,
                )
            ]
        )

    # ------------------------------------------------------------------ stage

    async def NodeStageVolume(
        self, request: csi_pb2.NodeStageVolumeRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.NodeStageVolumeResponse:
        _require_id(request.volume_id)
        staging = _required_path(request.staging_target_path, "staging_target_path")
        capability = request.volume_capability
        _capability(capability, request.HasField("volume_capability"))
        if not request.publish_context.get(PUBLISH_URI):
            raise InvalidArgument(
                f"publish_context has no {PUBLISH_URI!r}: was ControllerPublishVolume called?"
            )
        volume = _volume(request.volume_id)
        target = _target(request.publish_context, volume)
        settings = _settings(request, volume)
        block = caps.is_block(capability)
        fs_type = "" if block else self._fs_type(capability, request.volume_context, volume)
        with self.locks.hold(volume, "NodeStageVolume"):
            staged = self.mounts.at(staging)
            _, namespace = await self._attach(volume, target, settings)
            device = namespace.device
            if block:
                if staged is not None:
                    raise AlreadyExists(
                        f"staging path {staging} holds a mount ({staged.source}); a block "
                        "volume stages nothing there",
                        volume=volume,
                    )
                log.info("volume %s: staged as block device %s", volume, device)
                return csi_pb2.NodeStageVolumeResponse()
            if staged is not None:
                self._check_staged(staged, namespace, fs_type, capability, volume)
                log.info("volume %s: already staged at %s (%s)", volume, staging, device)
                return csi_pb2.NodeStageVolumeResponse()
            await self._format(namespace, fs_type, volume)
            os.makedirs(staging, exist_ok=True)
            flags = list(capability.mount.mount_flags)
            await mount(
                device, staging, fstype=fs_type, options=flags, volume=volume, device=device
            )
            log.info(
                "volume %s: %s on %s mounted at %s%s",
                volume,
                fs_type,
                device,
                staging,
                f" ({','.join(flags)})" if flags else "",
            )
        return csi_pb2.NodeStageVolumeResponse()

    def _fs_type(
        self, capability: csi_pb2.VolumeCapability, context: Mapping[str, str], volume: str
    ) -> str:
        wanted = capability.mount.fs_type or context.get(FS_TYPE, "")
        try:
            return check_fs_type(wanted)
        except InvalidArgument as exc:
            raise InvalidArgument(exc.message, volume=volume) from None

    async def _attach(
        self, volume: str, target: Target, settings: NvmeSettings
    ) -> tuple[Subsystem, Namespace]:
        """Connect (unless connected), find the device and set its I/O timeout."""
        subsystem = self.sysfs.subsystem(target.nqn)
        if subsystem is not None and is_stale(subsystem, target, self.config.hostnqn):
            users = self._users(subsystem)
            if users:
                raise FailedPrecondition(
                    f"a connection to {target.nqn} that is not to {target.address} "
                    f"(or to another nexus) is still in use by {', '.join(users)}",
                    volume=volume,
                    step="nvme connect",
                )
            await self.initiator.disconnect(target.nqn, volume=volume)
        subsystem, namespace = await self.initiator.connect(target, settings, volume=volume)
        if settings.io_timeout is not None:
            try:
                done = self.sysfs.set_io_timeout(namespace, settings.io_timeout)
            except OSError as exc:
                raise Internal(
                    f"cannot set the I/O timeout to {settings.io_timeout} s: {exc}",
                    volume=volume,
                    step="set io_timeout",
                    device=namespace.device,
                ) from exc
            log.info(
                "volume %s: I/O timeout %d s on %s",
                volume,
                settings.io_timeout,
                ", ".join(done) or "no path device",
            )
        return subsystem, namespace

    def _check_staged(
        self,
        staged: Mount,
        namespace: Namespace,
        fs_type: str,
        capability: csi_pb2.VolumeCapability,
        volume: str,
    ) -> None:
        if not staged.on_device(namespace.devno, namespace.name):
            raise AlreadyExists(
                f"staging path {staged.mount_point} holds {staged.source}, not {namespace.device}",
                volume=volume,
            )
        if staged.fstype != fs_type:
            raise AlreadyExists(
                f"staged at {staged.mount_point} as {staged.fstype}, not {fs_type}", volume=volume
            )
        flags = set(capability.mount.mount_flags)
        if ("ro" in flags) != staged.readonly:
            raise AlreadyExists(
                f"staged at {staged.mount_point} {'read-only' if staged.readonly else 'read-write'}"
                ", which the mount flags asked otherwise",
                volume=volume,
            )

    async def _format(self, namespace: Namespace, fs_type: str, volume: str) -> None:
        device = namespace.device
        found = await filesystems.probe(device, volume=volume)
        if found is None:
            log.info("volume %s: %s is blank; making %s", volume, device, fs_type)
            await filesystems.make(fs_type, device, volume=volume)
            return
        if found.filesystem == fs_type:
            log.info("volume %s: %s already holds %s; not formatting", volume, device, fs_type)
            return
        raise FailedPrecondition(
            f"the device holds {found.type} ({found.usage}), not {fs_type}; it is never "
            "formatted over",
            volume=volume,
            step="check the device is blank",
            device=device,
        )

    def _users(self, subsystem: Subsystem) -> list[str]:
        users = []
        for namespace in subsystem.namespaces:
            users += [m.mount_point for m in self.mounts.users(namespace.devno, namespace.name)]
        return users

    async def NodeUnstageVolume(
        self, request: csi_pb2.NodeUnstageVolumeRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.NodeUnstageVolumeResponse:
        _require_id(request.volume_id)
        staging = _required_path(request.staging_target_path, "staging_target_path")
        volume = _volume(request.volume_id)
        with self.locks.hold(volume, "NodeUnstageVolume"):
            nqn = volume_nqn(volume)
            subsystem = self.sysfs.subsystem(nqn)
            users = [u for u in self._users(subsystem) if u != staging] if subsystem else []
            if users:
                raise FailedPrecondition(
                    f"still published at {', '.join(users)}; unpublish it there first",
                    volume=volume,
                )
            if await unmount(self.mounts, staging, volume=volume):
                log.info("volume %s: unmounted %s", volume, staging)
            if subsystem is None:
                log.info("volume %s: unstaged (no connection left)", volume)
                return csi_pb2.NodeUnstageVolumeResponse()
            await self.initiator.disconnect(nqn, volume=volume)
            log.info("volume %s: unstaged", volume)
        return csi_pb2.NodeUnstageVolumeResponse()

    # ------------------------------------------------------------------ publish

    async def NodePublishVolume(
        self, request: csi_pb2.NodePublishVolumeRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.NodePublishVolumeResponse:
        _require_id(request.volume_id)
        target_path = _required_path(request.target_path, "target_path")
        capability = request.volume_capability
        _capability(capability, request.HasField("volume_capability"))
        if not request.staging_target_path:
            raise FailedPrecondition("staging_target_path is required: stage the volume first")
        staging = _required_path(request.staging_target_path, "staging_target_path")
        volume = _volume(request.volume_id)
        readonly = request.readonly
        with self.locks.hold(volume, "NodePublishVolume"):
            subsystem = self.sysfs.subsystem(volume_nqn(volume))
            namespace = subsystem.namespaces[0] if subsystem and subsystem.namespaces else None
            if namespace is None:
                raise FailedPrecondition(
                    f"not staged on this node (no connection to {volume_nqn(volume)})",
                    volume=volume,
                )
            if caps.is_block(capability):
                await self._publish_block(volume, namespace, target_path, readonly, capability)
            else:
                await self._publish_mount(
                    volume, namespace, staging, target_path, readonly, capability
                )
        return csi_pb2.NodePublishVolumeResponse()

    def _check_single_writer(
        self, volume: str, capability: csi_pb2.VolumeCapability, others: list[str]
    ) -> None:
        if others and capability.access_mode.mode != caps.MULTI_WRITER:
            raise FailedPrecondition(
                f"already published at {', '.join(others)}; access mode "
                f"{caps.mode_name(capability.access_mode.mode)} allows one target path",
                volume=volume,
            )

    async def _publish_mount(
        self,
        volume: str,
        namespace: Namespace,
        staging: str,
        target_path: str,
        readonly: bool,
        capability: csi_pb2.VolumeCapability,
    ) -> None:
        staged = self.mounts.at(staging)
        if staged is None or not staged.on_device(namespace.devno, namespace.name):
            raise FailedPrecondition(
                f"not staged at {staging}: stage the volume first", volume=volume
            )
        existing = self.mounts.at(target_path)
        if existing is not None:
            if existing.devno != staged.devno or existing.root != staged.root:
                raise AlreadyExists(
                    f"target path {target_path} holds another mount ({existing.source})",
                    volume=volume,
                )
            if existing.readonly != readonly:
                raise AlreadyExists(
                    f"published at {target_path} "
                    f"{'read-only' if existing.readonly else 'read-write'} already",
                    volume=volume,
                )
            log.info("volume %s: already published at %s", volume, target_path)
            return
        others = [
            m.mount_point
            for m in self.mounts.users(namespace.devno, namespace.name)
            if m.mount_point not in (staging, target_path)
        ]
        self._check_single_writer(volume, capability, others)
        os.makedirs(target_path, exist_ok=True)
        await bind(staging, target_path, readonly=readonly, volume=volume, device=namespace.device)
        log.info(
            "volume %s: published at %s%s", volume, target_path, " read-only" if readonly else ""
        )

    async def _publish_block(
        self,
        volume: str,
        namespace: Namespace,
        target_path: str,
        readonly: bool,
        capability: csi_pb2.VolumeCapability,
    ) -> None:
        existing = self.mounts.at(target_path)
        if existing is not None:
            if not existing.binds_device(namespace.name):
                raise AlreadyExists(
                    f"target path {target_path} holds another mount ({existing.source})",
                    volume=volume,
                )
            if existing.readonly != readonly:
                raise AlreadyExists(
                    f"published at {target_path} "
                    f"{'read-only' if existing.readonly else 'read-write'} already",
                    volume=volume,
                )
            log.info("volume %s: already published at %s", volume, target_path)
            return
        others = [
            m.mount_point
            for m in self.mounts.all()
            if m.binds_device(namespace.name) and m.mount_point != target_path
        ]
        self._check_single_writer(volume, capability, others)
        prepare_file_target(target_path, volume=volume)
        await bind(
            namespace.device, target_path, readonly=readonly, volume=volume, device=namespace.device
        )
        log.info(
            "volume %s: block device %s published at %s%s",
            volume,
            namespace.device,
            target_path,
            " read-only" if readonly else "",
        )

    async def NodeUnpublishVolume(
        self, request: csi_pb2.NodeUnpublishVolumeRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.NodeUnpublishVolumeResponse:
        _require_id(request.volume_id)
        target_path = _required_path(request.target_path, "target_path")
        volume = _volume(request.volume_id)
        with self.locks.hold(volume, "NodeUnpublishVolume"):
            if await unmount(self.mounts, target_path, volume=volume):
                log.info("volume %s: unpublished from %s", volume, target_path)
            remove_target(target_path)
        return csi_pb2.NodeUnpublishVolumeResponse()

    # ------------------------------------------------------------------ stats and growth

    def _mounted(self, volume: str, path_value: str, what: str) -> tuple[str, Mount]:
        """The mount at `path_value`, where the volume should be.

        Raises:
            NotFound: the path is not there (or not absolute), or nothing is mounted there.
        """
        if not os.path.isabs(path_value) or not os.path.exists(path_value):
            raise NotFound(f"{what} {path_value} does not exist", volume=volume)
        path = os.path.normpath(path_value)
        found = self.mounts.at(path)
        if found is None:
            raise NotFound(f"the volume is not mounted at {path}", volume=volume)
        return path, found

    def _namespace_of(self, volume: str, found: Mount) -> tuple[Subsystem | None, str | None]:
        """The volume's subsystem, and the block device behind mount `found`."""
        subsystem = self.sysfs.subsystem(volume_nqn(volume))
        if found.fstype == "devtmpfs":
            return subsystem, found.device_name
        return subsystem, self.sysfs.block_name(found.devno) or found.device_name

    async def NodeGetVolumeStats(
        self, request: csi_pb2.NodeGetVolumeStatsRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.NodeGetVolumeStatsResponse:
        _require_id(request.volume_id)
        if not request.volume_path:
            raise InvalidArgument("volume_path is required")
        volume = _volume(request.volume_id)
        path, found = self._mounted(volume, request.volume_path, "volume_path")
        subsystem, name = self._namespace_of(volume, found)
        if subsystem is None:
            problem = f"no NVMe connection to {volume_nqn(volume)}"
        elif name is None or name not in {ns.name for ns in subsystem.namespaces}:
            problem = f"{path} is not on the volume's device (it is on {found.source})"
        else:
            problem = subsystem.condition()
        usage: list[csi_pb2.VolumeUsage] = []
        if found.fstype == "devtmpfs":
            size = self.sysfs.block_size(name) if name else 0
            usage.append(csi_pb2.VolumeUsage(total=size, unit=csi_pb2.VolumeUsage.BYTES))
        elif not problem:
            try:
                st = os.statvfs(path)
            except OSError as exc:
                problem = f"statvfs({path}) failed: {exc}"
            else:
                usage += [
                    csi_pb2.VolumeUsage(
                        total=st.f_blocks * st.f_frsize,
                        used=(st.f_blocks - st.f_bfree) * st.f_frsize,
                        available=st.f_bavail * st.f_frsize,
                        unit=csi_pb2.VolumeUsage.BYTES,
                    ),
                    csi_pb2.VolumeUsage(
                        total=st.f_files,
                        used=st.f_files - st.f_ffree,
                        available=st.f_favail,
                        unit=csi_pb2.VolumeUsage.INODES,
                    ),
                ]
        if problem:
            log.warning("volume %s: abnormal at %s: %s", volume, path, problem)
        return csi_pb2.NodeGetVolumeStatsResponse(
            usage=usage,
            volume_condition=csi_pb2.VolumeCondition(
                abnormal=bool(problem), message=problem or "the volume's paths are live"
            ),
        )

    async def NodeExpandVolume(
        self, request: csi_pb2.NodeExpandVolumeRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.NodeExpandVolumeResponse:
        _require_id(request.volume_id)
        if not request.volume_path:
            raise InvalidArgument("volume_path is required")
        if request.HasField("volume_capability"):
            caps.check_present(request.volume_capability)
            reason = caps.unsupported(request.volume_capability)
            if reason is not None:
                raise InvalidArgument(reason)
        volume = _volume(request.volume_id)
        with self.locks.hold(volume, "NodeExpandVolume"):
            path, found = self._mounted(volume, request.volume_path, "volume_path")
            subsystem, name = self._namespace_of(volume, found)
            if subsystem is None or name is None:
                raise NotFound(
                    f"{path} is not on an NVMe device of {volume_nqn(volume)}", volume=volume
                )
            device = f"/dev/{name}"
            required = request.capacity_range.required_bytes
            limit = request.capacity_range.limit_bytes
            size = await self._grown_size(volume, subsystem, name, required)
            if required and size < required:
                raise OutOfRange(
                    f"the device is {size} bytes, less than the {required} asked: "
                    "was the volume expanded by ControllerExpandVolume?",
                    volume=volume,
                    device=device,
                )
            if limit and size > limit:
                raise OutOfRange(
                    f"the device is {size} bytes, more than limit_bytes {limit}",
                    volume=volume,
                    device=device,
                )
            if found.fstype != "devtmpfs":
                await filesystems.grow(found.fstype, device, path, volume=volume)
                log.info(
                    "volume %s: %s on %s grown to %d bytes", volume, found.fstype, device, size
                )
        return csi_pb2.NodeExpandVolumeResponse(capacity_bytes=size)

    async def _grown_size(
        self, volume: str, subsystem: Subsystem, name: str, required: int, timeout: float = 10.0
    ) -> int:
        """The device's size once the kernel has read the new one: a rescan, then (when a
        size is required) a wait for it to show."""
        size = self.sysfs.block_size(name)
        if required and size >= required:
            return size
        await self.initiator.rescan(subsystem, volume=volume)
        deadline = time.monotonic() + timeout
        while True:
            size = self.sysfs.block_size(name)
            if not required or size >= required or time.monotonic() > deadline:
                return size
            await asyncio.sleep(0.2)
