"""A volume's life through kubectl-mayastor and REST, used by the Linux kernel in a VM.

A core agent and three io-engines run on the host; the volume is created with three
replicas (one on each node) and published for the guest's host NQN. The guest (one TCG
boot) runs `guest/volume_life.sh`: a host NQN the volume was not published to is
refused, the frontend connects, makes ext4 and writes files of known checksums. At
each step marker the host does the control-plane step and answers through the 9p
share: the target moves to another node (the files verify there), the volume grows
while mounted (resize2fs online), and is scaled 3 -> 2 -> 3 (the new replica rebuilt).
Afterwards the replicas are read from their pools' disks and compared, and destroying
the volume leaves nothing on any io-engine. Each test asserts one behaviour of that
recorded run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.interop.kernel_guest import HERE, GuestRun, run_guest_checks
from tests.support.cluster import TestCluster
from tests.support.offline_pool import replica_images
from tests.support.polling import wait_for
from tests.support.volume_io import frontend_nqn

pytestmark = [pytest.mark.interop, pytest.mark.slow]

VOLUME = str(uuid.UUID("6e1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"))
SIZE_MIB = 96
GROWN_MIB = 128
GUEST = "kernel-guest"
DENIED = "nqn.2014-08.org.nvmexpress:uuid:d0d0d0d0-1111-4222-8333-444455556666"
SHARE = "/mnt/host"
GUEST_SCRIPT = HERE / "guest" / "volume_life.sh"


@dataclass
class Session:
    """What the one recorded run left."""

    run: GuestRun | None = None
    created: dict[str, Any] = field(default_factory=dict)
    targets: list[str] = field(default_factory=list)
    replicas_after_scale_down: int = 0
    after_scale_up: dict[str, Any] = field(default_factory=dict)
    replica_digests: dict[str, bytes] = field(default_factory=dict)
    left_after_destroy: dict[str, tuple[str, str]] = field(default_factory=dict)
    grown: dict[str, Any] = field(default_factory=dict)

    @property
    def guest(self) -> GuestRun:
        assert self.run is not None
        return self.run


def kubectl(cluster: TestCluster, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "mayastor.kubectl.main", "-r", cluster.core.rest_url, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def _target(cluster: TestCluster) -> tuple[str, int]:
    volume = cluster.volume(VOLUME)
    uri = volume["state"]["target"]["deviceUri"]
    return volume["spec"]["target"]["node"], int(uri.split(":")[2].split("/")[0])


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    workdir = Path(tmp_path_factory.mktemp("interop-volume"))
    share = workdir / "handshake"
    share.mkdir()
    result = Session()
    cluster = TestCluster(workdir, disk_size=256 << 20)
    cluster.start()
    try:
        result.created = json.loads(
            kubectl(
                cluster,
                "-o",
                "json",
                "create",
                "volume",
                VOLUME,
                "--size",
                f"{SIZE_MIB}MiB",
                "--replicas",
                "3",
            )
        )
        kubectl(cluster, "publish", "volume", VOLUME, "--node", "node-1", "--frontend-node", GUEST)
        node, port = _target(cluster)
        result.targets.append(node)

        def move() -> None:
            kubectl(cluster, "unpublish", "volume", VOLUME)
            kubectl(
                cluster, "publish", "volume", VOLUME, "--node", "node-2", "--frontend-node", GUEST
            )
            node, port = _target(cluster)
            result.targets.append(node)
            (share / "MOVE.env").write_text(f"PORT={port}\n")

        def expand() -> None:
            result.grown = cluster.rest.put(f"/volumes/{VOLUME}/size", {"size": GROWN_MIB << 20})
            (share / "EXPAND.env").write_text(f"GROWN_BLOCKS={(GROWN_MIB << 20) // 512}\n")

        def scale() -> None:
            down = json.loads(kubectl(cluster, "-o", "json", "scale", "volume", VOLUME, "2"))
            result.replicas_after_scale_down = len(down["state"]["replica_topology"])
            kubectl(cluster, "scale", "volume", VOLUME, "3")
            wait_for(
                lambda: cluster.volume(VOLUME)["state"]["status"] == "Online",
                "the new replica rebuilt",
                120,
            )
            result.after_scale_up = cluster.volume(VOLUME)
            (share / "SCALE.env").write_text("SCALED=1\n")

        result.run = run_guest_checks(
            {
                "TARGET_PORT": str(port),
                "TARGET_NQN": f"nqn.2019-05.io.openebs:{VOLUME}",
                "HOSTNQN": frontend_nqn(GUEST),
                "DENIED_HOSTNQN": DENIED,
                "EXPECT_BLOCKS": str((SIZE_MIB << 20) // 512),
                "SHARE": SHARE,
            },
            script=GUEST_SCRIPT,
            shares=[(share, SHARE)],
            files=[(Path("/usr/sbin/resize2fs"), "/usr/sbin/resize2fs")],
            on_marker={"STEP-MOVE": move, "STEP-EXPAND": expand, "STEP-SCALE": scale},
            timeout=600,
        )
        (workdir / "guest-console.log").write_text(result.guest.output)
        kubectl(cluster, "unpublish", "volume", VOLUME)
        replica_ids = set(cluster.volume(VOLUME)["state"]["replica_topology"])
        for engine in cluster.engines.values():
            engine.stop()
        for name in cluster.engines:
            for replica, data in replica_images(cluster.disk(name)).items():
                if replica in replica_ids:
                    result.replica_digests[replica] = data[: GROWN_MIB << 20]
        for engine in cluster.engines.values():
            engine.start()
        cluster.wait_nodes_online(list(cluster.engines))
        wait_for(
            lambda: all(p["state"]["status"] == "Online" for p in cluster.rest.get("/pools")),
            "the pools imported again",
            60,
        )
        kubectl(cluster, "delete", "volume", VOLUME)
        for name, engine in cluster.engines.items():
            result.left_after_destroy[name] = (
                engine.client("replica", "list", check=True).stdout.strip(),
                engine.client("nexus", "list", check=True).stdout.strip(),
            )
    finally:
        cluster.close()
    return result


def test_guest_checks_all_pass(session: Session) -> None:
    assert session.guest.failed == [], session.guest.output[-6000:]
    assert session.guest.returncode == 0, session.guest.output[-6000:]


def test_the_volume_is_created_with_a_replica_on_each_node(session: Session) -> None:
    nodes = sorted(r["node"] for r in session.created["state"]["replica_topology"].values())
    assert nodes == ["node-1", "node-2", "node-3"]


def test_only_the_frontend_host_may_connect(session: Session) -> None:
    assert session.guest.passed_check("a host the volume was not published to is refused")
    assert session.guest.passed_check("the frontend connects to the volume")


def test_the_kernel_makes_a_filesystem_and_writes_files(session: Session) -> None:
    for check in ("mkfs.ext4", "mount", "files written on the first target"):
        assert session.guest.passed_check(check), check


def test_the_data_is_there_after_the_target_moves_to_another_node(session: Session) -> None:
    assert session.targets == ["node-1", "node-2"]
    assert session.guest.passed_check("the frontend connects to the moved target")
    assert session.guest.passed_check("every file verifies on the moved target")


def test_the_volume_grows_while_mounted(session: Session) -> None:
    assert session.grown["spec"]["size"] == GROWN_MIB << 20
    assert session.guest.passed_check(f"the disk grew to {(GROWN_MIB << 20) // 512} blocks")
    assert session.guest.passed_check("resize2fs online")
    assert session.guest.passed_check("files written after the expansion")


def test_scaling_down_and_up_rebuilds_a_third_replica_identical_to_the_others(
    session: Session,
) -> None:
    assert session.replicas_after_scale_down == 2
    assert len(session.after_scale_up["state"]["replica_topology"]) == 3
    assert len(session.replica_digests) == 3
    assert len(set(session.replica_digests.values())) == 1


def test_the_filesystem_is_clean_and_every_file_verifies(session: Session) -> None:
    for check in (
        "e2fsck -fn",
        "every file verifies at the end",
        "no failed I/O in the kernel log",
    ):
        assert session.guest.passed_check(check), check


def test_destroying_the_volume_leaves_nothing_on_any_io_engine(session: Session) -> None:
    assert set(session.left_after_destroy) == {"node-1", "node-2", "node-3"}
    for replicas, nexuses in session.left_after_destroy.values():
        assert "No replicas have been created" in replicas
        assert "No nexus" in nexuses or nexuses == ""
