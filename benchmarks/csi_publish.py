"""How long Kubernetes waits for a volume: CreateVolume -> NodePublishVolume through CSI.

A core agent and three io-engines run on this machine with ``mayastor-csi-controller``;
``mayastor-csi-node`` runs in the kernel VM (tests/interop's harness: the kernel's
nvme-tcp is only there, emulated by TCG, so guest-side times are inflated alike for
both columns). For one volume at a time (``--samples`` runs) and then ``--volumes`` in
parallel, each volume goes CreateVolume -> ControllerPublishVolume -> NodeStageVolume
(nvme connect, mkfs, mount) -> NodePublishVolume (bind mount), and is taken down again
afterwards. The baseline, measured in the same run, does the same by hand: the REST
calls (create, publish) and, in the guest, one shell line of nvme connect, mkfs.ext4,
mount and a bind mount. The ratio is what the CSI driver adds.

Usage: ``.venv/bin/python benchmarks/csi_publish.py [--volumes 20] [--samples 3]``.
Prints the figures and writes them to ``benchmarks/results/csi_publish.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the VM harness and the plugin processes live with the tests

from tests.integration.csi.plugins import ControllerPlugin, short_socket_dir  # noqa: E402
from tests.interop.csi_guest import GuestNode, for_guest  # noqa: E402
from tests.support.cluster import TestCluster  # noqa: E402

from mayastor.api.csi.v1 import csi_pb2  # noqa: E402
from mayastor.restclient import RestClient  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "csi_publish.json"
MIB = 1 << 20
NODE = "csi-bench"
NQN = "nqn.2019-05.io.openebs"
Cap = csi_pb2.VolumeCapability
CAPABILITY = Cap(
    mount=Cap.MountVolume(fs_type="ext4"),
    access_mode=Cap.AccessMode(mode=Cap.AccessMode.SINGLE_NODE_WRITER),
)
STEPS = ("create", "controller_publish", "stage", "node_publish")


class Bench:
    def __init__(
        self,
        cluster: TestCluster,
        controller: ControllerPlugin,
        guest: GuestNode,
        size: int,
        repl: int,
    ) -> None:
        self.cluster = cluster
        self.controller = controller
        self.guest = guest
        self.size = size
        self.repl = repl

    # ------------------------------------------------------------------ through CSI

    def csi_publish(self) -> tuple[dict[str, float], dict[str, Any]]:
        """One volume through the CSI calls; returns the seconds of each step."""
        times: dict[str, float] = {}
        name = f"pvc-{uuid.uuid4()}"
        with self.controller.client(settle=False) as co, self.guest.csi() as node:
            start = time.monotonic()
            created = co.controller.CreateVolume(
                csi_pb2.CreateVolumeRequest(
                    name=name,
                    capacity_range=csi_pb2.CapacityRange(required_bytes=self.size),
                    volume_capabilities=[CAPABILITY],
                    parameters={"repl": str(self.repl), "thin": "true"},
                ),
                timeout=300,
            ).volume
            times["create"] = time.monotonic() - start
            mark = time.monotonic()
            context = co.controller.ControllerPublishVolume(
                csi_pb2.ControllerPublishVolumeRequest(
                    volume_id=created.volume_id,
                    node_id=NODE,
                    volume_capability=CAPABILITY,
                    volume_context=created.volume_context,
                ),
                timeout=300,
            ).publish_context
            times["controller_publish"] = time.monotonic() - mark
            staging = f"/var/lib/kubelet/plugins/bench/{created.volume_id}/globalmount"
            target = f"/var/lib/kubelet/pods/bench/{created.volume_id}/mount"
            mark = time.monotonic()
            node.node.NodeStageVolume(
                csi_pb2.NodeStageVolumeRequest(
                    volume_id=created.volume_id,
                    publish_context=for_guest(context),
                    staging_target_path=staging,
                    volume_capability=CAPABILITY,
                    volume_context=created.volume_context,
                ),
                timeout=600,
            )
            times["stage"] = time.monotonic() - mark
            mark = time.monotonic()
            node.node.NodePublishVolume(
                csi_pb2.NodePublishVolumeRequest(
                    volume_id=created.volume_id,
                    publish_context=for_guest(context),
                    staging_target_path=staging,
                    target_path=target,
                    volume_capability=CAPABILITY,
                    volume_context=created.volume_context,
                ),
                timeout=600,
            )
            times["node_publish"] = time.monotonic() - mark
            times["total"] = time.monotonic() - start
        return times, {"volume_id": created.volume_id, "staging": staging, "target": target}

    def csi_teardown(self, made: dict[str, Any]) -> None:
        volume_id = made["volume_id"]
        with self.controller.client(settle=False) as co, self.guest.csi() as node:
            node.node.NodeUnpublishVolume(
                csi_pb2.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=made["target"]),
                timeout=600,
            )
            node.node.NodeUnstageVolume(
                csi_pb2.NodeUnstageVolumeRequest(
                    volume_id=volume_id, staging_target_path=made["staging"]
                ),
                timeout=600,
            )
            co.controller.ControllerUnpublishVolume(
                csi_pb2.ControllerUnpublishVolumeRequest(volume_id=volume_id, node_id=NODE),
                timeout=300,
            )
            co.controller.DeleteVolume(
                csi_pb2.DeleteVolumeRequest(volume_id=volume_id), timeout=300
            )

    # ------------------------------------------------------------------ by hand

    def hand_publish(self) -> tuple[dict[str, float], dict[str, Any]]:
        """The same by hand: REST create and publish, then one shell line in the guest."""
        times: dict[str, float] = {}
        volume_id = str(uuid.uuid4())
        with RestClient(self.cluster.core.rest_url, timeout=300) as rest:
            start = time.monotonic()
            rest.create_volume(volume_id, size=self.size, replicas=self.repl, thin=True)
            times["create"] = time.monotonic() - start
            mark = time.monotonic()
            volume = rest.publish_volume(volume_id, frontend_node=NODE)
            times["controller_publish"] = time.monotonic() - mark
        uri = for_guest({"uri": volume["state"]["target"]["deviceUri"]})["uri"]
        address, _, nqn = uri.removeprefix("nvmf://").partition("/")
        host, _, port = address.partition(":")
        staging = f"/var/lib/kubelet/plugins/hand/{volume_id}"
        target = f"/var/lib/kubelet/pods/hand/{volume_id}"
        mark = time.monotonic()
        self.guest.check(
            f"nvme connect -t tcp -a {host} -s {port} -n {nqn} "
            f"--hostnqn {NQN}:node-name:{NODE} >/dev/null && "
            f"for i in $(seq 100); do d=$(for s in /sys/class/nvme-subsystem/*; do "
            f'[ "$(cat $s/subsysnqn)" = "{nqn}" ] && ls $s | grep -E "^nvme[0-9]+n[0-9]+$"; '
            'done); [ -n "$d" ] && [ -e /dev/$d ] && break; sleep 0.1; done; '
            f"mkdir -p {staging} {target} && mkfs.ext4 -q -E nodiscard /dev/$d && "
            f"mount -t ext4 /dev/$d {staging} && mount -o bind {staging} {target}",
            timeout=600,
        )
        times["node"] = time.monotonic() - mark
        times["total"] = time.monotonic() - start
        return times, {"volume_id": volume_id, "nqn": nqn, "staging": staging, "target": target}

    def hand_teardown(self, made: dict[str, Any]) -> None:
        self.guest.check(
            f"umount {made['target']} && umount {made['staging']} && "
            "for s in /sys/class/nvme-subsystem/*; do "
            f'[ "$(cat $s/subsysnqn)" = "{made["nqn"]}" ] && '
            "for c in $s/nvme*; do [ -e $c/delete_controller ] && echo 1 > $c/delete_controller; "
            "done; done; true",
            timeout=600,
        )
        with RestClient(self.cluster.core.rest_url, timeout=300) as rest:
            rest.unpublish_volume(made["volume_id"])
            rest.delete_volume(made["volume_id"])


def run_many(
    publish: Callable[[], tuple[dict[str, float], dict[str, Any]]],
    teardown: Callable[[dict[str, Any]], None],
    count: int,
) -> tuple[list[dict[str, float]], float]:
    """`count` volumes at once; returns each one's times and the wall time for all."""
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(lambda _: publish(), range(count)))
    wall = time.monotonic() - start
    with ThreadPoolExecutor(max_workers=count) as pool:
        list(pool.map(teardown, [made for _, made in results]))
    return [times for times, _ in results], wall


def summary(samples: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in samples[0]:
        values = sorted(s[key] for s in samples)
        out[f"{key}_p50_s"] = round(statistics.median(values), 3)
        out[f"{key}_max_s"] = round(values[-1], 3)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--volumes", type=int, default=20, help="volumes in parallel")
    parser.add_argument("--samples", type=int, default=3, help="runs of one volume alone")
    parser.add_argument("--size-mib", type=int, default=32, help="size of each volume")
    parser.add_argument("--repl", type=int, default=3, help="replicas of each volume")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="csi-bench-"))
    sockets = short_socket_dir()
    cluster = TestCluster(workdir, disk_size=4 << 30)
    controller = ControllerPlugin(workdir, cluster.core.rest_url, sockets / "controller.sock")
    figures: dict[str, Any] = {
        "volumes_in_parallel": args.volumes,
        "size_mib": args.size_mib,
        "replicas": args.repl,
        "guest": "qemu TCG (emulated CPU): guest-side steps are slow for both columns",
    }
    try:
        cluster.start()
        controller.start()
        with GuestNode(workdir, relays=1) as guest:
            guest.start_plugin(NODE)
            bench = Bench(cluster, controller, guest, args.size_mib * MIB, args.repl)
            one_csi, one_hand = [], []
            for _ in range(args.samples):
                times, made = bench.csi_publish()
                bench.csi_teardown(made)
                one_csi.append(times)
                times, made = bench.hand_publish()
                bench.hand_teardown(made)
                one_hand.append(times)
            figures["one_volume_csi"] = summary(one_csi)
            figures["one_volume_by_hand"] = summary(one_hand)
            many_csi, wall_csi = run_many(bench.csi_publish, bench.csi_teardown, args.volumes)
            many_hand, wall_hand = run_many(bench.hand_publish, bench.hand_teardown, args.volumes)
            figures["parallel_csi"] = {**summary(many_csi), "wall_s": round(wall_csi, 3)}
            figures["parallel_by_hand"] = {**summary(many_hand), "wall_s": round(wall_hand, 3)}
    finally:
        controller.stop()
        cluster.close()
        shutil.rmtree(sockets, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
    one = figures["one_volume_csi"]["total_p50_s"] / figures["one_volume_by_hand"]["total_p50_s"]
    many = figures["parallel_csi"]["wall_s"] / figures["parallel_by_hand"]["wall_s"]
    figures["ratio_one_volume"] = round(one, 2)
    figures["ratio_parallel_wall"] = round(many, 2)
    print(json.dumps(figures, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
