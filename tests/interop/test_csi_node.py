"""The CSI driver end to end: the controller on the host, the node plugin in the kernel VM.

A core agent and three io-engines (a 1 GiB pool each) and ``mayastor-csi-controller``
run on the host; ``mayastor-csi-node`` runs inside the VM, where the kernel's nvme-tcp
initiator is, as node ``csi-guest``. The test is the CO: it calls the controller's
socket, and the node plugin's socket through the guest agent's relay, in the order
Kubernetes does, with one guest boot for everything. Each volume is made with
``repl: 3`` and lives through CreateVolume -> ControllerPublish -> NodeStage ->
NodePublish -> write -> ControllerExpand + NodeExpand (online) -> unpublish ->
unstage -> stage and publish again (the data verifies) -> the same undone ->
DeleteVolume: ext4 (with SIGKILLs of the plugin between and inside calls, an
unreachable target, and a host NQN it was not published to), xfs (and a stage that
asks for ext4 over it), btrfs, and a raw block volume. The fixture records what
happened; each test asserts one behaviour of that run.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from mayastor.api.csi.v1 import csi_pb2
from mayastor.csi._mounts import Mount, parse_mountinfo
from tests.integration.csi.plugins import MIB, ControllerPlugin, CsiClient, short_socket_dir
from tests.interop.csi_guest import GuestNode, for_guest
from tests.support.cluster import TestCluster

pytestmark = [pytest.mark.interop, pytest.mark.slow]

NODE = "csi-guest"
OTHER = "csi-other"
KUBELET = "/var/lib/kubelet"
STAGING = "/var/lib/kubelet/plugins/kubernetes.io/csi/io.openebs.csi-mayastor"
PODS = "/var/lib/kubelet/pods"
NQN_PREFIX = "nqn.2019-05.io.openebs"
IO_TIMEOUT_S = 45
KEEP_ALIVE_S = 3
Cap = csi_pb2.VolumeCapability
WRITER = Cap.AccessMode(mode=Cap.AccessMode.SINGLE_NODE_WRITER)
SIZES = {"ext4": 64 * MIB, "xfs": 320 * MIB, "btrfs": 256 * MIB, "block": 32 * MIB}
GROWTH = 32 * MIB


MOUNT_FLAGS = {"ext4": ["noatime"]}


def capability(
    kind: str, mode: csi_pb2.VolumeCapability.AccessMode.Mode.ValueType = WRITER.mode
) -> csi_pb2.VolumeCapability:
    access = Cap.AccessMode(mode=mode)
    if kind == "block":
        return Cap(block=Cap.BlockVolume(), access_mode=access)
    return Cap(
        mount=Cap.MountVolume(fs_type=kind, mount_flags=MOUNT_FLAGS.get(kind, [])),
        access_mode=access,
    )


@dataclass
class Life:
    """One volume's recorded life."""

    kind: str
    volume_id: str = ""
    created: Any = None
    created_again: Any = None
    replica_nodes: list[str] = field(default_factory=list)
    publish_context: dict[str, str] = field(default_factory=dict)
    published_again: dict[str, str] = field(default_factory=dict)
    staged: Mount | None = None
    staged_twice: int = 0
    published: Mount | None = None
    published_twice: int = 0
    device: str = ""
    io_timeouts: dict[str, str] = field(default_factory=dict)
    controller_attrs: dict[str, str] = field(default_factory=dict)
    stats: Any = None
    expanded: Any = None
    node_expanded: Any = None
    size_before: int = 0
    size_after: int = 0
    written: dict[str, str] = field(default_factory=dict)
    verified_after_restage: dict[str, str] = field(default_factory=dict)
    fs_uuid_first: str = ""
    fs_uuid_again: str = ""
    after_unstage_mounts: list[str] = field(default_factory=list)
    after_unstage_subsystems: list[str] = field(default_factory=list)
    deleted_codes: list[str] = field(default_factory=list)


@dataclass
class Session:
    node_info: Any = None
    node_caps: Any = None
    probe: Any = None
    lives: dict[str, Life] = field(default_factory=dict)
    foreign_stage: tuple[str, str] = ("", "")
    foreign_subsystems: list[str] = field(default_factory=list)
    foreign_direct_connect: int = 0
    concurrent_codes: list[str] = field(default_factory=list)
    restage_other_fs: tuple[str, str] = ("", "")
    unstage_while_published: tuple[str, str] = ("", "")
    staged_after_refused_unstage: bool = False
    publish_readonly_same_path: tuple[str, str] = ("", "")
    publish_second_path_single_writer: tuple[str, str] = ("", "")
    readonly_publish: Mount | None = None
    readonly_write: int = 0
    readonly_read: str = ""
    kill_rounds: list[tuple[str, list[str], list[str]]] = field(default_factory=list)
    midcall: dict[str, Any] = field(default_factory=dict)
    abnormal: Any = None
    normal_again: Any = None
    wrong_fs: tuple[str, str] = ("", "")
    wrong_fs_device: str = ""
    wrong_fs_type_after: str = ""
    wrong_fs_log: str = ""
    left_on_engines: dict[str, tuple[str, str]] = field(default_factory=dict)
    left_subsystems: list[str] = field(default_factory=list)
    left_mounts: list[str] = field(default_factory=list)
    guest_failed: list[str] = field(default_factory=list)
    guest_rc: int | None = None
    guest_output: str = ""


class Co:
    """The test as Kubernetes: controller calls on the host, node calls in the guest."""

    def __init__(
        self, cluster: TestCluster, controller: CsiClient, guest: GuestNode, session: Session
    ) -> None:
        self.cluster = cluster
        self.controller = controller
        self.guest = guest
        self.session = session

    def node(self, method: str, request: Any, index: int = 0) -> Any:
        with self.guest.csi(index) as client:
            return client.call("node", method, request)

    def node_code(self, method: str, request: Any, index: int = 0) -> tuple[str, str]:
        try:
            self.node(method, request, index)
        except grpc.RpcError as exc:
            return exc.code().name, exc.details() or ""
        return "OK", ""

    def mounts(self) -> list[Mount]:
        return parse_mountinfo(self.guest.check("cat /proc/self/mountinfo"))

    def mount_at(self, path: str) -> Mount | None:
        found = [m for m in self.mounts() if m.mount_point == path]
        return found[-1] if found else None

    def kubelet_mounts(self) -> list[str]:
        return [m.mount_point for m in self.mounts() if m.mount_point.startswith(KUBELET)]

    # ------------------------------------------------------------------ CSI requests

    def paths(self, life: Life) -> tuple[str, str]:
        staging = f"{STAGING}/{life.volume_id}/globalmount"
        if life.kind == "block":
            target = f"{PODS}/pod-{life.kind}/volumeDevices/kubernetes.io~csi/{life.volume_id}"
        else:
            target = f"{PODS}/pod-{life.kind}/volumes/kubernetes.io~csi/{life.volume_id}/mount"
        return staging, target

    def stage_request(self, life: Life, kind: str | None = None) -> Any:
        staging, _ = self.paths(life)
        return csi_pb2.NodeStageVolumeRequest(
            volume_id=life.volume_id,
            publish_context=for_guest(life.publish_context),
            staging_target_path=staging,
            volume_capability=capability(kind or life.kind),
            volume_context=life.created.volume.volume_context,
        )

    def publish_request(self, life: Life) -> Any:
        staging, target = self.paths(life)
        return csi_pb2.NodePublishVolumeRequest(
            volume_id=life.volume_id,
            publish_context=for_guest(life.publish_context),
            staging_target_path=staging,
            target_path=target,
            volume_capability=capability(life.kind),
            volume_context=life.created.volume.volume_context,
        )

    def unpublish_request(self, life: Life) -> Any:
        return csi_pb2.NodeUnpublishVolumeRequest(
            volume_id=life.volume_id, target_path=self.paths(life)[1]
        )

    def unstage_request(self, life: Life) -> Any:
        return csi_pb2.NodeUnstageVolumeRequest(
            volume_id=life.volume_id, staging_target_path=self.paths(life)[0]
        )

    # ------------------------------------------------------------------ steps

    def create(self, kind: str) -> Life:
        life = Life(kind)
        name = f"pvc-{uuid.uuid4()}"
        parameters = {
            "repl": "3",
            "nvmeIoTimeout": str(IO_TIMEOUT_S),
            "nvmeKeepAliveTmo": str(KEEP_ALIVE_S),
            "nvmeCtrlLossTmo": "600",
        }
        if kind != "block":
            parameters["fsType"] = kind
        request = csi_pb2.CreateVolumeRequest(
            name=name,
            capacity_range=csi_pb2.CapacityRange(required_bytes=SIZES[kind]),
            volume_capabilities=[capability(kind)],
            parameters=parameters,
        )
        life.created = self.controller.controller.CreateVolume(request)
        life.created_again = self.controller.controller.CreateVolume(request)
        life.volume_id = life.created.volume.volume_id
        volume = self.cluster.volume(life.volume_id)
        life.replica_nodes = sorted(r["node"] for r in volume["state"]["replica_topology"].values())
        self.session.lives[kind] = life
        return life

    def controller_publish(self, life: Life) -> None:
        request = csi_pb2.ControllerPublishVolumeRequest(
            volume_id=life.volume_id,
            node_id=NODE,
            volume_capability=capability(life.kind),
            volume_context=life.created.volume.volume_context,
        )
        life.publish_context = dict(
            self.controller.controller.ControllerPublishVolume(request).publish_context
        )
        life.published_again = dict(
            self.controller.controller.ControllerPublishVolume(request).publish_context
        )

    def stage(self, life: Life, *, twice: bool = False) -> None:
        staging, _ = self.paths(life)
        self.guest.check(f"mkdir -p {staging}")
        self.node("NodeStageVolume", self.stage_request(life))
        if twice:
            self.node("NodeStageVolume", self.stage_request(life))
            life.staged_twice = sum(1 for m in self.mounts() if m.mount_point == staging)
        if life.kind == "block":
            life.device = self.device_of_volume(life)
        else:
            life.staged = self.mount_at(staging)
            assert life.staged is not None
            life.device = life.staged.source

    def device_of_volume(self, life: Life) -> str:
        nqn = f"{NQN_PREFIX}:{life.volume_id}"
        out = self.guest.check(
            "for s in /sys/class/nvme-subsystem/*; do "
            f'[ "$(cat $s/subsysnqn)" = "{nqn}" ] && ls $s | grep -E "^nvme[0-9]+n[0-9]+$"; '
            "done"
        )
        return f"/dev/{out.split()[0]}"

    def publish(self, life: Life, *, twice: bool = False) -> None:
        _, target = self.paths(life)
        self.guest.check(f"mkdir -p {Path(target).parent}")
        self.node("NodePublishVolume", self.publish_request(life))
        if twice:
            self.node("NodePublishVolume", self.publish_request(life))
            life.published_twice = sum(1 for m in self.mounts() if m.mount_point == target)
        life.published = self.mount_at(target)

    def unpublish(self, life: Life) -> None:
        self.node("NodeUnpublishVolume", self.unpublish_request(life))

    def unstage(self, life: Life) -> None:
        self.node("NodeUnstageVolume", self.unstage_request(life))

    def write(self, life: Life, tag: str) -> None:
        _, target = self.paths(life)
        self.guest.check(f"dd if=/dev/urandom of=/tmp/{tag} bs=1M count=4 2>/dev/null")
        if life.kind == "block":
            self.guest.check(
                f"dd if=/tmp/{tag} of={target} bs=1M seek={len(life.written) * 4 + 1} "
                "conv=notrunc,fsync 2>/dev/null"
            )
        else:
            self.guest.check(f"cp /tmp/{tag} {target}/{tag} && sync")
        life.written[tag] = self.guest.check(f"sha256sum /tmp/{tag}").split()[0]

    def read_sums(self, life: Life) -> dict[str, str]:
        _, target = self.paths(life)
        sums = {}
        for index, tag in enumerate(life.written):
            if life.kind == "block":
                cmd = f"dd if={target} bs=1M skip={index * 4 + 1} count=4 2>/dev/null | sha256sum"
            else:
                cmd = f"echo 3 > /proc/sys/vm/drop_caches; sha256sum {target}/{tag}"
            result = self.guest.sh(cmd)
            sums[tag] = result.out.split()[0] if result.ok and result.out else result.err
        return sums

    def fs_uuid(self, life: Life) -> str:
        return self.guest.check(f"blkid -p -o value -s UUID {life.device}").strip()

    def stats(self, life: Life) -> Any:
        staging, target = self.paths(life)
        return self.node(
            "NodeGetVolumeStats",
            csi_pb2.NodeGetVolumeStatsRequest(
                volume_id=life.volume_id, volume_path=target, staging_target_path=staging
            ),
        )

    def expand(self, life: Life) -> None:
        _, target = self.paths(life)
        new_size = SIZES[life.kind] + GROWTH
        life.size_before = self.size_seen(life)
        life.expanded = self.controller.controller.ControllerExpandVolume(
            csi_pb2.ControllerExpandVolumeRequest(
                volume_id=life.volume_id,
                capacity_range=csi_pb2.CapacityRange(required_bytes=new_size),
                volume_capability=capability(life.kind),
            )
        )
        life.node_expanded = self.node(
            "NodeExpandVolume",
            csi_pb2.NodeExpandVolumeRequest(
                volume_id=life.volume_id,
                volume_path=target,
                staging_target_path=self.paths(life)[0],
                capacity_range=csi_pb2.CapacityRange(required_bytes=new_size),
                volume_capability=capability(life.kind),
            ),
        )
        life.size_after = self.size_seen(life)

    def size_seen(self, life: Life) -> int:
        """What the workload sees: the file system's size, or the device's."""
        if life.kind == "block":
            name = life.device.removeprefix("/dev/")
            return int(self.guest.check(f"cat /sys/block/{name}/size")) * 512
        stats = self.stats(life)
        return int(next(u.total for u in stats.usage if u.unit == csi_pb2.VolumeUsage.BYTES))

    def teardown(self, life: Life) -> None:
        self.unpublish(life)
        self.unstage(life)
        life.after_unstage_mounts = self.kubelet_mounts()
        life.after_unstage_subsystems = self.guest.subsystems()
        unpublish = csi_pb2.ControllerUnpublishVolumeRequest(volume_id=life.volume_id, node_id=NODE)
        self.controller.controller.ControllerUnpublishVolume(unpublish)
        self.controller.controller.ControllerUnpublishVolume(unpublish)
        delete = csi_pb2.DeleteVolumeRequest(volume_id=life.volume_id)
        life.deleted_codes = [
            self.controller.code_of("controller", "DeleteVolume", delete).name,
            self.controller.code_of("controller", "DeleteVolume", delete).name,
        ]

    def restage_and_verify(self, life: Life) -> None:
        self.unpublish(life)
        self.unstage(life)
        life.after_unstage_mounts = self.kubelet_mounts()
        life.after_unstage_subsystems = self.guest.subsystems()
        self.stage(life)
        self.publish(life)
        if life.kind != "block":
            life.fs_uuid_again = self.fs_uuid(life)
        life.verified_after_restage = self.read_sums(life)

    def io_timeouts(self, life: Life) -> None:
        nqn = f"{NQN_PREFIX}:{life.volume_id}"
        out = self.guest.check(
            "for c in /sys/class/nvme/*; do "
            f'[ "$(cat $c/subsysnqn)" = "{nqn}" ] || continue; '
            'echo "hostnqn=$(cat $c/hostnqn)"; echo "kato=$(cat $c/kato)"; '
            'echo "ctrl_loss_tmo=$(cat $c/ctrl_loss_tmo)"; '
            'for p in $c/nvme*c*n*; do echo "${p##*/}=$(cat $p/queue/io_timeout)"; done; '
            "done"
        )
        for line in out.splitlines():
            key, _, value = line.partition("=")
            if key.startswith("nvme"):
                life.io_timeouts[key] = value
            else:
                life.controller_attrs[key] = value


# ============================================================================ the run


def ext4_life(co: Co) -> None:
    s = co.session
    life = co.create("ext4")
    co.controller_publish(life)
    # a node the volume was not published to: refused, nothing left connected
    s.foreign_stage = co.node_code("NodeStageVolume", co.stage_request(life), index=1)
    s.foreign_subsystems = co.guest.subsystems()
    uri = for_guest(life.publish_context)["uri"]
    host_port = uri.split("//")[1].split("/")[0]
    s.foreign_direct_connect = co.guest.sh(
        f"nvme connect -t tcp -a {host_port.split(':')[0]} -s {host_port.split(':')[1]} "
        f"-n {NQN_PREFIX}:{life.volume_id} --hostnqn {NQN_PREFIX}:node-name:{OTHER}"
    ).rc
    # two stages at once: the second is ABORTED while the first is in flight (held in
    # nvme connect: the target's io-engine is stopped until the second has its answer)
    first: list[tuple[str, str]] = []
    staging, _ = co.paths(life)
    co.guest.check(f"mkdir -p {staging}")
    engine = co.cluster.engines[co.cluster.volume(life.volume_id)["spec"]["target"]["node"]]
    thread = threading.Thread(
        target=lambda: first.append(co.node_code("NodeStageVolume", co.stage_request(life)))
    )
    engine.pause()
    try:
        thread.start()
        time.sleep(2.0)
        second = co.node_code("NodeStageVolume", co.stage_request(life))
    finally:
        engine.resume()
    thread.join()
    s.concurrent_codes = [first[0][0], second[0]]
    co.stage(life, twice=True)
    s.restage_other_fs = co.node_code("NodeStageVolume", co.stage_request(life, kind="xfs"))
    co.io_timeouts(life)
    co.publish(life, twice=True)
    s.unstage_while_published = co.node_code("NodeUnstageVolume", co.unstage_request(life))
    s.staged_after_refused_unstage = co.mount_at(staging) is not None
    life.fs_uuid_first = co.fs_uuid(life)
    co.write(life, "a")
    life.stats = co.stats(life)
    co.expand(life)
    co.write(life, "b")
    path_down(co, life)
    kill_rounds(co, life)
    midcall_kill(co, life)
    life.verified_after_restage = co.read_sums(life)
    life.fs_uuid_again = co.fs_uuid(life)
    co.teardown(life)


def path_down(co: Co, life: Life) -> None:
    """The target's io-engine stopped (SIGSTOP): the kernel loses the path, stats say so;
    resumed, the path comes back."""
    node = co.cluster.volume(life.volume_id)["spec"]["target"]["node"]
    engine = co.cluster.engines[node]
    engine.pause()
    try:
        co.session.abnormal = poll(lambda: co.stats(life), lambda r: r.volume_condition.abnormal)
    finally:
        engine.resume()
    co.session.normal_again = poll(
        lambda: co.stats(life), lambda r: not r.volume_condition.abnormal, timeout=120
    )


def poll(get: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(1.0)


def restart(co: Co) -> None:
    co.guest.kill_plugin(NODE)
    co.guest.start_plugin(NODE)


def kill_rounds(co: Co, life: Life) -> None:
    """SIGKILL between any two steps, then the same call again: the state converges."""
    steps: list[tuple[str, Callable[[], None]]] = [
        ("NodeUnpublishVolume", lambda: co.unpublish(life)),
        ("NodeUnstageVolume", lambda: co.unstage(life)),
        ("NodeStageVolume", lambda: co.stage(life)),
        ("NodePublishVolume", lambda: co.publish(life)),
    ]
    for name, step in steps:
        step()
        restart(co)
        step()
        co.session.kill_rounds.append((name, co.kubelet_mounts(), co.guest.subsystems()))


def midcall_kill(co: Co, life: Life) -> None:
    """SIGKILL in the middle of NodeStageVolume (once the connection is up), then the
    same call again."""
    co.unpublish(life)
    co.unstage(life)
    nqn = f"{NQN_PREFIX}:{life.volume_id}"
    pid = co.guest.plugins[NODE]
    co.guest.check(
        "( i=0; while [ $i -lt 600 ]; do "
        f'grep -qsx "{nqn}" /sys/class/nvme-subsystem/*/subsysnqn && kill -9 {pid} && break; '
        "sleep 0.05; i=$((i+1)); done ) > /dev/null 2>&1 &"
    )
    co.session.midcall["first"] = co.node_code("NodeStageVolume", co.stage_request(life))
    co.guest.plugins.pop(NODE)
    co.guest.sh("sleep 1")
    co.guest.start_plugin(NODE)
    co.session.midcall["subsystems_between"] = co.guest.subsystems()
    co.session.midcall["again"] = co.node_code("NodeStageVolume", co.stage_request(life))
    co.publish(life)
    co.session.midcall["mounts"] = co.kubelet_mounts()
    co.session.midcall["subsystems"] = co.guest.subsystems()


def xfs_life(co: Co) -> None:
    s = co.session
    life = co.create("xfs")
    co.controller_publish(life)
    co.stage(life, twice=True)
    co.publish(life, twice=True)
    life.fs_uuid_first = co.fs_uuid(life)
    co.write(life, "a")
    readonly_publishes(co, life)
    life.stats = co.stats(life)
    co.expand(life)
    co.write(life, "b")
    co.unpublish(life)
    co.unstage(life)
    # the device holds xfs; a stage asking for ext4 is refused and writes nothing
    s.wrong_fs = co.node_code("NodeStageVolume", co.stage_request(life, kind="ext4"))
    s.wrong_fs_device = co.device_of_volume(life)
    s.wrong_fs_type_after = co.guest.check(f"blkid -p -o value -s TYPE {s.wrong_fs_device}").strip()
    s.wrong_fs_log = co.guest.plugin_log(NODE)
    co.stage(life)
    co.publish(life)
    life.fs_uuid_again = co.fs_uuid(life)
    life.verified_after_restage = co.read_sums(life)
    co.teardown(life)


def readonly_publishes(co: Co, life: Life) -> None:
    """A second publish: read-only at the same path is ALREADY_EXISTS; at another path it
    is FAILED_PRECONDITION for a single writer, and read-only for a multi-writer mode."""
    s = co.session
    same = co.publish_request(life)
    same.readonly = True
    s.publish_readonly_same_path = co.node_code("NodePublishVolume", same)
    other_path = f"{PODS}/pod-{life.kind}-reader/volumes/kubernetes.io~csi/{life.volume_id}/mount"
    co.guest.check(f"mkdir -p {Path(other_path).parent}")
    other = co.publish_request(life)
    other.target_path = other_path
    s.publish_second_path_single_writer = co.node_code("NodePublishVolume", other)
    other.volume_capability.CopyFrom(capability(life.kind, Cap.AccessMode.SINGLE_NODE_MULTI_WRITER))
    other.readonly = True
    co.node("NodePublishVolume", other)
    s.readonly_publish = co.mount_at(other_path)
    s.readonly_write = co.guest.sh(f"touch {other_path}/new-file").rc
    s.readonly_read = co.guest.check(f"sha256sum {other_path}/a").split()[0]
    co.node(
        "NodeUnpublishVolume",
        csi_pb2.NodeUnpublishVolumeRequest(volume_id=life.volume_id, target_path=other_path),
    )


def simple_life(co: Co, kind: str) -> None:
    life = co.create(kind)
    co.controller_publish(life)
    co.stage(life, twice=True)
    co.publish(life, twice=True)
    if kind != "block":
        life.fs_uuid_first = co.fs_uuid(life)
    co.write(life, "a")
    life.stats = co.stats(life)
    co.expand(life)
    co.write(life, "b")
    co.restage_and_verify(life)
    co.teardown(life)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    workdir = Path(tmp_path_factory.mktemp("csi-node"))
    sockets = short_socket_dir()
    cluster = TestCluster(workdir, disk_size=1 << 30)
    controller = ControllerPlugin(workdir, cluster.core.rest_url, sockets / "controller.sock")
    result = Session()
    try:
        cluster.start()
        controller.start()
        with controller.client() as co_client, GuestNode(workdir) as guest:
            co = Co(cluster, co_client, guest, result)
            guest.start_plugin(NODE)
            guest.start_plugin(OTHER, index=1)
            with guest.csi() as node:
                result.probe = node.identity.Probe(csi_pb2.ProbeRequest())
                result.node_info = node.node.NodeGetInfo(csi_pb2.NodeGetInfoRequest())
                result.node_caps = node.node.NodeGetCapabilities(
                    csi_pb2.NodeGetCapabilitiesRequest()
                )
            try:
                ext4_life(co)
                xfs_life(co)
                simple_life(co, "btrfs")
                simple_life(co, "block")
            finally:
                (workdir / "csi-node.log").write_text(guest.plugin_log(NODE))
            result.left_subsystems = guest.subsystems()
            result.left_mounts = co.kubelet_mounts()
        run = guest.run
        assert run is not None
        result.guest_failed = run.failed
        result.guest_rc = run.returncode
        result.guest_output = run.output
        for name, engine in cluster.engines.items():
            result.left_on_engines[name] = (
                engine.client("replica", "list", check=True).stdout.strip(),
                engine.client("nexus", "list", check=True).stdout.strip(),
            )
    finally:
        controller.stop()
        cluster.close()
        shutil.rmtree(sockets, ignore_errors=True)
    return result


def lives(session: Session) -> list[Life]:
    return [session.lives[k] for k in ("ext4", "xfs", "btrfs", "block")]


# ============================================================================ the node


def test_the_node_plugin_is_ready_where_the_kernel_has_nvme_tcp(session: Session) -> None:
    assert session.probe.ready.value is True


def test_the_node_plugin_reports_its_node_id_and_topology(session: Session) -> None:
    assert session.node_info.node_id == NODE
    assert dict(session.node_info.accessible_topology.segments) == {"openebs.io/nodename": NODE}


def test_the_node_plugin_offers_stage_stats_expansion_and_volume_condition(
    session: Session,
) -> None:
    rpc = csi_pb2.NodeServiceCapability.RPC
    offered = {c.rpc.type for c in session.node_caps.capabilities}
    assert {rpc.STAGE_UNSTAGE_VOLUME, rpc.GET_VOLUME_STATS, rpc.EXPAND_VOLUME} <= offered
    assert rpc.VOLUME_CONDITION in offered


# ============================================================================ a volume's life


def test_create_volume_with_repl_3_places_a_replica_on_each_node(session: Session) -> None:
    for life in lives(session):
        assert life.replica_nodes == ["node-1", "node-2", "node-3"], life.kind


def test_create_volume_again_returns_the_same_volume(session: Session) -> None:
    for life in lives(session):
        assert life.created_again.volume == life.created.volume, life.kind


def test_controller_publish_gives_the_target_uri_and_the_nvme_timeouts(session: Session) -> None:
    for life in lives(session):
        context = life.publish_context
        assert context["uri"].startswith("nvmf://127.0.0.1:"), context
        assert f"/{NQN_PREFIX}:{life.volume_id}?uuid=" in context["uri"]
        assert context["nvmeIoTimeout"] == str(IO_TIMEOUT_S)
        assert context["nvmeKeepAliveTmo"] == str(KEEP_ALIVE_S)
        assert life.published_again == context


def test_each_file_system_is_made_and_mounted_at_the_staging_path(session: Session) -> None:
    for kind in ("ext4", "xfs", "btrfs"):
        staged = session.lives[kind].staged
        assert staged is not None, kind
        assert staged.fstype == kind, (kind, staged)
        assert staged.source.startswith("/dev/nvme")


def test_stage_and_publish_again_change_nothing(session: Session) -> None:
    for life in lives(session):
        if life.kind != "block":
            assert life.staged_twice == 1, life.kind
        assert life.published_twice == 1, life.kind


def test_the_file_system_is_mounted_with_the_capabilitys_flags(session: Session) -> None:
    staged = session.lives["ext4"].staged
    assert staged is not None
    assert "noatime" in staged.options


def test_stage_again_asking_another_file_system_is_already_exists(session: Session) -> None:
    code, message = session.restage_other_fs
    assert code == "ALREADY_EXISTS"
    assert "as ext4, not xfs" in message


def test_unstage_while_published_is_refused_and_changes_nothing(session: Session) -> None:
    code, message = session.unstage_while_published
    assert code == "FAILED_PRECONDITION"
    assert "unpublish it there first" in message
    assert session.staged_after_refused_unstage


def test_publish_again_at_the_same_path_read_only_is_already_exists(session: Session) -> None:
    assert session.publish_readonly_same_path[0] == "ALREADY_EXISTS"


def test_publish_at_a_second_path_is_refused_for_a_single_writer(session: Session) -> None:
    assert session.publish_second_path_single_writer[0] == "FAILED_PRECONDITION"


def test_a_read_only_publish_cannot_be_written_and_reads_the_data(session: Session) -> None:
    assert session.readonly_publish is not None
    assert session.readonly_publish.readonly
    assert session.readonly_write != 0
    assert session.readonly_read == session.lives["xfs"].written["a"]


def test_publish_binds_the_staged_file_system_at_the_target_path(session: Session) -> None:
    for kind in ("ext4", "xfs", "btrfs"):
        life = session.lives[kind]
        assert life.published is not None
        assert life.staged is not None
        assert life.published.devno == life.staged.devno
        assert life.published.readonly is False


def test_a_raw_block_volume_is_published_as_its_device_node(session: Session) -> None:
    life = session.lives["block"]
    assert life.published is not None
    assert life.published.fstype == "devtmpfs"
    assert life.published.root == "/" + life.device.removeprefix("/dev/")


def test_the_node_connects_as_its_host_nqn_with_the_storage_class_timeouts(
    session: Session,
) -> None:
    life = session.lives["ext4"]
    assert life.controller_attrs["hostnqn"] == f"{NQN_PREFIX}:node-name:{NODE}"
    assert life.controller_attrs["kato"] == str(KEEP_ALIVE_S)
    assert life.controller_attrs["ctrl_loss_tmo"] == "600"


def test_the_io_timeout_is_set_on_every_path_of_the_device(session: Session) -> None:
    timeouts = session.lives["ext4"].io_timeouts
    assert timeouts, "no path device seen"
    assert set(timeouts.values()) == {str(IO_TIMEOUT_S * 1000)}


def test_data_written_at_the_target_path_reads_back_after_unstage_and_stage_again(
    session: Session,
) -> None:
    for life in lives(session):
        assert set(life.written) == {"a", "b"}, life.kind
        assert life.verified_after_restage == life.written, life.kind


def test_volume_stats_give_bytes_and_inodes_of_a_file_system(session: Session) -> None:
    stats = session.lives["ext4"].stats
    units = {u.unit: u for u in stats.usage}
    total = units[csi_pb2.VolumeUsage.BYTES].total
    assert 0.8 * SIZES["ext4"] < total <= SIZES["ext4"]
    assert units[csi_pb2.VolumeUsage.BYTES].used > 4 * MIB
    assert units[csi_pb2.VolumeUsage.INODES].total > 0
    assert not stats.volume_condition.abnormal


def test_volume_stats_give_the_size_of_a_block_volume(session: Session) -> None:
    stats = session.lives["block"].stats
    assert [(u.unit, u.total) for u in stats.usage] == [(csi_pb2.VolumeUsage.BYTES, SIZES["block"])]


def test_volume_stats_are_abnormal_while_the_path_is_down(session: Session) -> None:
    assert session.abnormal.volume_condition.abnormal, session.abnormal
    assert "connecting" in session.abnormal.volume_condition.message or (
        "resetting" in session.abnormal.volume_condition.message
    )
    assert not session.normal_again.volume_condition.abnormal, session.normal_again


def test_node_expand_grows_each_file_system_online_after_controller_expand(
    session: Session,
) -> None:
    for life in lives(session):
        grown = SIZES[life.kind] + GROWTH
        assert life.expanded.capacity_bytes == grown, life.kind
        assert life.expanded.node_expansion_required == (life.kind != "block")
        assert life.node_expanded.capacity_bytes == grown, life.kind
        assert life.size_after - life.size_before >= GROWTH * 0.8, (
            life.kind,
            life.size_before,
            life.size_after,
        )


# ============================================================================ never reformatted


def test_a_device_that_holds_a_file_system_is_not_formatted_again(session: Session) -> None:
    for kind in ("ext4", "xfs", "btrfs"):
        life = session.lives[kind]
        assert life.fs_uuid_first, kind
        assert life.fs_uuid_first == life.fs_uuid_again, kind


def test_a_stage_asking_for_another_file_system_is_refused_and_writes_nothing(
    session: Session,
) -> None:
    code, message = session.wrong_fs
    assert code == "FAILED_PRECONDITION"
    assert "holds xfs" in message
    assert "never formatted over" in message
    assert session.wrong_fs_type_after == "xfs"


def test_a_failed_step_names_the_volume_the_step_and_the_device(session: Session) -> None:
    volume = session.lives["xfs"].volume_id
    device = session.wrong_fs_device
    _, message = session.wrong_fs
    expected = f"volume {volume}: check the device is blank on {device} failed"
    assert message.startswith(expected), message
    assert expected in session.wrong_fs_log


# ============================================================================ faults


def test_a_second_call_for_a_volume_in_flight_is_aborted(session: Session) -> None:
    assert session.concurrent_codes == ["OK", "ABORTED"]


def test_sigkill_between_any_two_steps_then_the_same_call_converges(session: Session) -> None:
    life = session.lives["ext4"]
    staging = f"{STAGING}/{life.volume_id}/globalmount"
    nqn = f"{NQN_PREFIX}:{life.volume_id}"
    expected = {
        "NodeUnpublishVolume": (1, [nqn]),
        "NodeUnstageVolume": (0, []),
        "NodeStageVolume": (1, [nqn]),
        "NodePublishVolume": (2, [nqn]),
    }
    assert [r[0] for r in session.kill_rounds] == list(expected)
    for name, mounts, subsystems in session.kill_rounds:
        assert (len(mounts), subsystems) == expected[name], (name, mounts, subsystems)
        if expected[name][0]:
            assert staging in mounts


def test_sigkill_in_the_middle_of_a_stage_then_the_same_call_converges(session: Session) -> None:
    midcall = session.midcall
    nqn = f"{NQN_PREFIX}:{session.lives['ext4'].volume_id}"
    assert midcall["first"][0] in ("UNAVAILABLE", "CANCELLED", "INTERNAL"), midcall["first"]
    assert midcall["again"] == ("OK", "")
    assert midcall["subsystems"] == [nqn]
    assert len(midcall["mounts"]) == 2


def test_a_host_nqn_the_volume_was_not_published_to_cannot_connect(session: Session) -> None:
    code, message = session.foreign_stage
    assert code == "UNAVAILABLE"
    assert f"node-name:{OTHER}" in message
    assert session.foreign_subsystems == []
    assert session.foreign_direct_connect != 0


# ============================================================================ nothing left


def test_unstage_unmounts_and_disconnects(session: Session) -> None:
    for life in lives(session):
        assert life.after_unstage_mounts == [], life.kind
        assert life.after_unstage_subsystems == [], life.kind


def test_delete_volume_is_ok_and_ok_again(session: Session) -> None:
    for life in lives(session):
        assert life.deleted_codes == ["OK", "OK"], life.kind


def test_nothing_is_left_on_any_io_engine_or_in_the_guest(session: Session) -> None:
    assert set(session.left_on_engines) == {"node-1", "node-2", "node-3"}
    for replicas, nexuses in session.left_on_engines.values():
        assert "No replicas have been created" in replicas
        assert "No nexus" in nexuses or nexuses == ""
    assert session.left_subsystems == []
    assert session.left_mounts == []


def test_the_guest_ends_clean(session: Session) -> None:
    assert session.guest_failed == [], session.guest_output[-4000:]
    assert session.guest_rc == 0, session.guest_output[-4000:]
    assert "LEFT-MOUNTS=0" in session.guest_output
    assert "LEFT-SUBSYSTEMS=0" in session.guest_output
