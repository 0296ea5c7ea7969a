"""Target switch-over with the Linux kernel's native NVMe multipath, in the VM.

A core agent and four io-engines run on the host; the VM is application node
``app-1``: its kernel connects two three-replica volumes (both targets on node-1) as
``nqn.2019-05.io.openebs:node-name:app-1``, ``mayastor-ha-node`` watches its paths,
and two verifying workloads run: 4 KiB O_DIRECT writes on one volume's block device,
and file rewrites (fsync, rename, fsync) on an ext4 file system on the other. Then:

1. node-1's io-engine is SIGKILLed: the kernel queues the I/O, the ha-node agent
   reports the dead path, the core agent moves both targets to other nodes and answers
   with the new paths, the agent connects them, and the kernel resumes the I/O on
   them; the dead paths are deleted;
2. the node now serving the block volume is drained: its target moves again.

One guest boot for all; the fixture records what happened and each test checks one
behaviour: no I/O error in the guest, every acknowledged write and file is there,
``fsck -n`` is clean, one live path per volume at its new target, and the events.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.interop.csi_guest import GuestNode
from tests.interop.kernel_guest import HERE
from tests.support.cluster import FAST_CORE_FLAGS, TestCluster
from tests.support.polling import wait_for
from tests.support.volume_io import frontend_nqn

pytestmark = [pytest.mark.interop, pytest.mark.slow, pytest.mark.timeout(1200)]

APP = "app-1"
HOSTNQN = frontend_nqn(APP)
HOST_IN_GUEST = "10.0.2.2"
MIB = 1 << 20
WORKLOAD = HERE / "guest" / "verified_io.py"
STOP = "/tmp/stop-workloads"
KINDS = ("block", "files")
SIZE = 48 * MIB


@dataclass
class Phase:
    """One fault and what followed it."""

    targets_before: dict[str, str] = field(default_factory=dict)
    targets_after: dict[str, str] = field(default_factory=dict)
    acknowledged_before: dict[str, int] = field(default_factory=dict)
    acknowledged_after: dict[str, int] = field(default_factory=dict)


@dataclass
class Run:
    volumes: dict[str, str] = field(default_factory=dict)
    kill: Phase = field(default_factory=Phase)
    drain: Phase = field(default_factory=Phase)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    paths: dict[str, list[str]] = field(default_factory=dict)
    fsck: tuple[int, str] = (-1, "")
    kernel_errors: str = ""
    ha_log: str = ""
    events: dict[str, list[str]] = field(default_factory=dict)
    uris: dict[str, str] = field(default_factory=dict)
    replaced: dict[str, list[str]] = field(default_factory=dict)
    partial_victim: str = ""
    partial_uuid: str = ""
    rebuilds: list[dict[str, Any]] = field(default_factory=list)
    replicas: dict[str, set[bytes]] = field(default_factory=dict)


def nqn_of(volume: str) -> str:
    return f"nqn.2019-05.io.openebs:{volume}"


def address_of(uri: str) -> str:
    return uri.removeprefix("nvmf://").split("/", 1)[0]


class Scenario:
    def __init__(self, cluster: TestCluster, guest: GuestNode, run: Run) -> None:
        self.cluster = cluster
        self.guest = guest
        self.run = run

    def connect(self, volume: str, uri: str) -> str:
        port = address_of(uri).rsplit(":", 1)[1]
        self.guest.check(
            f"nvme connect -t tcp -a {HOST_IN_GUEST} -s {port} -n {nqn_of(volume)} -q {HOSTNQN}"
        )
        return self.device(volume)

    def device(self, volume: str) -> str:
        script = (
            "for s in /sys/class/nvme-subsystem/*; do "
            f'[ "$(cat $s/subsysnqn)" = {nqn_of(volume)} ] && ls $s; done'
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            names = self.guest.sh(script).out.split()
            heads = [n for n in names if n.startswith("nvme") and "n" in n[4:] and "c" not in n]
            if heads:
                return f"/dev/{heads[0]}"
            time.sleep(0.2)
        raise AssertionError(f"no block device for {volume} in the guest")

    def paths(self, volume: str) -> list[str]:
        """``STATE ADDRESS`` of every controller of the volume's subsystem in the guest."""
        script = (
            "for s in /sys/class/nvme-subsystem/*; do "
            f'[ "$(cat $s/subsysnqn)" = {nqn_of(volume)} ] || continue; '
            "for c in $s/nvme*; do [ -e $c/state ] && "
            'echo "$(cat $c/state) $(cat $c/address)"; done; done'
        )
        return sorted(line for line in self.guest.sh(script).out.splitlines() if line.strip())

    def acknowledged(self, kind: str) -> int:
        text = self.guest.sh(f"cat /tmp/{kind}.progress 2>/dev/null").out
        return int(json.loads(text)["acknowledged"]) if text.strip() else 0

    def targets(self) -> dict[str, str]:
        return {k: str(self.cluster.target_node(v)) for k, v in self.run.volumes.items()}

    def wait_progress(self, writes: int = 200, timeout: float = 120.0) -> dict[str, int]:
        start = {k: self.acknowledged(k) for k in KINDS}
        wait_for(
            lambda: all(self.acknowledged(k) >= start[k] + writes for k in KINDS),
            f"{writes} more acknowledged writes on each volume",
            timeout,
        )
        return {k: self.acknowledged(k) for k in KINDS}

    def live_at_target(self, kind: str) -> bool:
        volume = self.run.volumes[kind]
        uri = self.cluster.volume(volume)["state"]["target"].get("deviceUri", "")
        port = address_of(uri).rsplit(":", 1)[-1] if uri else "?"
        paths = self.paths(volume)
        return len(paths) == 1 and paths[0].startswith("live ") and f"trsvcid={port}" in paths[0]

    def fault(self, phase: Phase, act: Callable[[], object], moving: tuple[str, ...]) -> None:
        """Do `act` under the workloads; wait for the targets of `moving` to move, the I/O
        to go on on every volume, and one live path each."""
        phase.targets_before = self.targets()
        phase.acknowledged_before = {k: self.acknowledged(k) for k in KINDS}
        act()
        wait_for(
            lambda: all(self.targets()[k] != phase.targets_before[k] for k in moving),
            f"the targets of {', '.join(moving)} moved",
            120,
        )
        phase.targets_after = self.targets()
        phase.acknowledged_after = self.wait_progress(100)
        wait_for(lambda: all(self.live_at_target(k) for k in KINDS), "one live path each", 60)

    def replica_back_within_the_wait(self) -> None:
        """SIGKILL a replica node of the block volume that serves no target, start it
        again at once, and wait until the volume is Online again."""
        cluster, run = self.cluster, self.run
        volume = run.volumes["block"]
        targets = set(self.targets().values())
        victim = next(n for n in cluster.replica_nodes(volume) if n not in targets)
        before = {k: self.acknowledged(k) for k in KINDS}
        engine = cluster.engines[victim]
        engine.kill()
        wait_for(lambda: cluster.volume_status(volume) == "Degraded", "the volume Degraded", 60)
        engine.start()
        wait_for(lambda: cluster.volume_status(volume) == "Online", "the volume Online", 120)
        run.partial_victim = victim
        run.rebuilds = cluster.rest.get(f"/volumes/{volume}/rebuild-history")["records"]
        topology = cluster.volume(volume)["state"]["replica_topology"]
        run.partial_uuid = next(u for u, r in topology.items() if r["node"] == victim)
        after = self.wait_progress(100)
        assert all(after[k] > before[k] for k in KINDS)


def scenario(cluster: TestCluster, guest: GuestNode, run: Run) -> None:
    s = Scenario(cluster, guest, run)
    for kind in KINDS:
        volume, uri = cluster.new_volume(SIZE, replicas=3, target="node-1", frontend=APP)
        run.volumes[kind] = volume
        run.uris[kind] = uri
    block = s.connect(run.volumes["block"], run.uris["block"])
    files = s.connect(run.volumes["files"], run.uris["files"])
    guest.check(f"mkfs.ext4 -q -F {files} && mkdir -p /mnt/files && mount {files} /mnt/files")
    ha_node = guest.spawn(
        [
            str(Path(sys.prefix) / "bin" / "mayastor-ha-node"),
            "--node-name",
            APP,
            "--rest-endpoint",
            cluster.core.rest_url.replace("127.0.0.1", HOST_IN_GUEST),
            "--address-map",
            f"127.0.0.1={HOST_IN_GUEST}",
            "--failure-grace",
            "1",
            "--period",
            "0.2",
            "--log-level",
            "debug",
        ],
        "/tmp/ha-node.log",
    )
    wait_for(lambda: cluster.rest.get("/app-nodes")["entries"], "the app node registered", 60)
    workloads = {
        "block": [block, "--units", "8192", "--threads", "4"],
        "files": ["/mnt/files", "--files", "64", "--size-kib", "64"],
    }
    for kind, args in workloads.items():
        guest.spawn(
            [
                sys.executable,
                str(WORKLOAD),
                kind,
                *args,
                "--stop-file",
                STOP,
                "--result",
                f"/tmp/{kind}.json",
            ],
            f"/tmp/{kind}.log",
        )
    s.wait_progress(300, timeout=300)
    s.fault(run.kill, cluster.engines["node-1"].kill, KINDS)
    wait_for(
        lambda: all(
            "node-1" not in cluster.replica_nodes(v) and cluster.volume_status(v) == "Online"
            for v in run.volumes.values()
        ),
        "node-1's replicas replaced on other nodes and rebuilt",
        180,
    )
    run.replaced = {k: cluster.replica_nodes(v) for k, v in run.volumes.items()}
    cluster.engines["node-1"].start()
    drained = run.kill.targets_after["block"]
    moving = tuple(k for k in KINDS if run.kill.targets_after[k] == drained)
    s.fault(run.drain, lambda: cluster.rest.put(f"/nodes/{drained}/drain/ha-test"), moving)
    s.replica_back_within_the_wait()
    guest.check(f"touch {STOP}")
    wait_for(
        lambda: all(guest.sh(f"test -s /tmp/{k}.json").ok for k in KINDS),
        "the workloads verified and stopped",
        300,
    )
    for kind in KINDS:
        run.results[kind] = json.loads(guest.check(f"cat /tmp/{kind}.json"))
        run.paths[kind] = s.paths(run.volumes[kind])
    guest.check("umount /mnt/files")
    fsck = guest.sh(f"fsck.ext4 -n -f {files}")
    run.fsck = (fsck.rc, fsck.out + fsck.err)
    run.kernel_errors = guest.sh("dmesg | grep -iE 'I/O error|EXT4-fs error|Buffer I/O'").out
    guest.kill(ha_node)
    run.ha_log = guest.sh("cat /tmp/ha-node.log").out
    for kind, volume in run.volumes.items():
        guest.sh(f"nvme disconnect -n {nqn_of(volume)}")
        run.events[kind] = [e["action"] for e in cluster.rest.get("/events", target=volume)]


@pytest.fixture(scope="module")
def switch_over(tmp_path_factory: pytest.TempPathFactory) -> Run:
    workdir = Path(tmp_path_factory.mktemp("switch-over"))
    flags = (*FAST_CORE_FLAGS, "--switch-over-wait", "20s", "--faulted-child-wait", "15s")
    cluster = TestCluster(workdir, nodes=4, disk_size=512 << 20, core_flags=flags)
    run = Run()
    try:
        cluster.start()
        with GuestNode(workdir, relays=0) as guest:
            try:
                scenario(cluster, guest, run)
            finally:
                logs = guest.sh("tail -n 40 /tmp/*.log; dmesg | tail -n 60").out
                (workdir / "guest-logs.txt").write_text(logs)
        wait_for(
            lambda: all(cluster.volume_status(v) == "Online" for v in run.volumes.values()),
            "every volume Online at the end",
            120,
        )
        run.replicas = cluster.stop_and_read_replicas(dict.fromkeys(run.volumes.values(), SIZE))
    finally:
        (workdir / "ha-node.log").write_text(run.ha_log)
        (workdir / "results.json").write_text(json.dumps(run.results, indent=1))
        cluster.close()
    return run


# ============================================================================ the kill


def test_the_targets_of_a_killed_node_move_to_other_nodes(switch_over: Run) -> None:
    assert set(switch_over.kill.targets_before.values()) == {"node-1"}
    assert "node-1" not in switch_over.kill.targets_after.values()


def test_the_ha_node_agent_reported_the_dead_paths_and_connected_the_new_ones(
    switch_over: Run,
) -> None:
    for kind in KINDS:
        assert "PathFailed" in switch_over.events[kind]
    assert "new path" in switch_over.ha_log
    assert "deleted: another path is live" in switch_over.ha_log


def test_io_resumes_after_the_kill_without_an_error_in_the_guest(switch_over: Run) -> None:
    kill = switch_over.kill
    for kind in KINDS:
        assert switch_over.results[kind]["failed"] == 0, switch_over.results[kind]["errors"]
        assert kill.acknowledged_after[kind] > kill.acknowledged_before[kind]
    assert switch_over.kernel_errors == ""


def test_every_acknowledged_write_is_there(switch_over: Run) -> None:
    for kind in KINDS:
        result = switch_over.results[kind]
        assert result["acknowledged"] > 200
        assert result["wrong_count"] == 0, result["wrong"]


def test_the_file_system_is_clean(switch_over: Run) -> None:
    rc, output = switch_over.fsck
    assert rc == 0, output


def test_each_volume_ends_with_one_live_path_at_its_target(switch_over: Run) -> None:
    for kind in KINDS:
        (path,) = switch_over.paths[kind]
        assert path.startswith("live ")


# ============================================================================ the drain


def test_draining_the_new_target_node_moves_the_target_again(switch_over: Run) -> None:
    drained = switch_over.kill.targets_after["block"]
    assert switch_over.drain.targets_before["block"] == drained
    assert switch_over.drain.targets_after["block"] != drained


def test_the_workload_never_fails_during_the_drain(switch_over: Run) -> None:
    drain = switch_over.drain
    for kind in KINDS:
        assert drain.acknowledged_after[kind] > drain.acknowledged_before[kind]
        assert switch_over.results[kind]["failed"] == 0


# ============================================================================ healing


def test_the_dead_nodes_replicas_are_replaced_after_the_wait_and_rebuilt(
    switch_over: Run,
) -> None:
    for kind in KINDS:
        nodes = switch_over.replaced[kind]
        assert len(nodes) == 3
        assert len(set(nodes)) == 3
        assert "node-1" not in nodes


def test_a_replica_back_within_the_wait_gets_a_partial_rebuild(switch_over: Run) -> None:
    mine = [r for r in switch_over.rebuilds if switch_over.partial_uuid in r["childUri"]]
    assert mine, (switch_over.partial_victim, switch_over.rebuilds)
    assert mine[-1]["isPartial"] is True
    assert mine[-1]["rebuildJobState"] == "Completed"


def test_the_replicas_are_identical_at_the_end(switch_over: Run) -> None:
    for volume, contents in switch_over.replicas.items():
        assert len(contents) == 1, f"the replicas of {volume} differ"
