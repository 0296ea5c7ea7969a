"""The Linux kernel's nvme-tcp initiator on a published three-way nexus losing a replica.

Three real io-engine processes, pools on files: the nexus's own node holds the local
replica, two other nodes share one replica each over NVMe/TCP. The nexus mirrors over
all three and is published for one host NQN. The guest (TCG, one boot) runs
`guest/nexus_replica_loss.sh`: connect, mkfs.ext4, mount, write files of known
checksums; in the middle it prints a marker, on which the host SIGKILLs one remote
replica's io-engine and then tells the guest so through a 9p share; the guest writes
more, syncs, unmounts, `e2fsck -fn`, mounts again and verifies every checksum. Each
test below asserts one behaviour of that recorded run; afterwards the host also reads
both surviving replicas in full and compares them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from typing import Any

import pytest

from mayastor.cluster.processes import EngineProcess
from tests.integration.conftest import make_sparse_file
from tests.interop.kernel_guest import HERE, ControllerWatcher, GuestRun, run_guest_checks
from tests.support.verified_writes import read_all

pytestmark = [pytest.mark.interop, pytest.mark.slow]

NEXUS_UUID = uuid.UUID("9b0c6a7e-21f4-4d3c-8e5a-7f1b2c3d4e01")
NEXUS_NQN = f"nqn.2019-05.io.openebs:{NEXUS_UUID}"
REPLICA_UUIDS = [
    uuid.UUID("9b0c6a7e-21f4-4d3c-8e5a-7f1b2c3d4e10"),
    uuid.UUID("9b0c6a7e-21f4-4d3c-8e5a-7f1b2c3d4e11"),
    uuid.UUID("9b0c6a7e-21f4-4d3c-8e5a-7f1b2c3d4e12"),
]
HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:5a1e0c2d-7b3f-4e6a-9c8d-1f2e3d4c5b6a"
DENIED_HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:d0d0d0d0-1111-4222-8333-444455556666"
CHECKER_NQN = "nqn.2019-05.io.openebs:node-name:interop-checker"
SIZE_MB = 128
KILL_MARKER = "KILL-REPLICA-NOW"
GUEST_SHARE = "/mnt/host"
ACK_NAME = "replica-killed"
LOST_PATH_REASONS = ("CHILD_STATE_REASON_IO_FAILURE", "CHILD_STATE_REASON_TIMED_OUT")
GUEST_SCRIPT = HERE / "guest" / "nexus_replica_loss.sh"


class Session:
    """What the one recorded run left: the guest's output and the nexus afterwards."""

    def __init__(self) -> None:
        self.run: GuestRun | None = None
        self.victim_uri = ""
        self.victim_exit: int | None = None
        self.children: dict[str, dict[str, Any]] = {}
        self.nexus_state = ""
        self.controllers: list[dict[str, Any]] = []
        self.survivor_digests: dict[str, str] = {}
        self.survivor_nonzero: dict[str, bool] = {}

    @property
    def guest(self) -> GuestRun:
        assert self.run is not None
        return self.run


def _nexus(engine: EngineProcess) -> dict[str, Any]:
    out = engine.client("-o", "json", "nexus", "list", check=True).stdout
    (nexus,) = json.loads(out)
    return nexus  # type: ignore[no-any-return]


def _wait_for_fault(engine: EngineProcess, uri: str, timeout: float = 60.0) -> None:
    """The guest's last writes may still be failing over when it powers off: poll."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = {c["uri"]: c for c in _nexus(engine)["children"]}
        if kids[uri]["state"] != "CHILD_STATE_ONLINE":
            return
        time.sleep(0.2)


def _digest(uri: str) -> tuple[str, bool]:
    data = asyncio.run(read_all(uri, hostnqn=CHECKER_NQN))
    return hashlib.sha256(data).hexdigest(), data.count(0) != len(data)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    workdir = tmp_path_factory.mktemp("interop-nexus")
    share = workdir / "handshake"
    share.mkdir()
    nodes = [
        EngineProcess(name, workdir, disk_allow=[f"{workdir.resolve()}/*"])
        for name in ("nexus-node", "replica-node-1", "replica-node-2")
    ]
    result = Session()
    try:
        uris = []
        for i, engine in enumerate(nodes):
            engine.start()
            disk = make_sparse_file(workdir / f"pool{i}.img", (SIZE_MB + 64) << 20)
            engine.client("pool", "create", "pool", str(disk), check=True)
            engine.client(
                "replica",
                "create",
                "pool",
                f"r{i}",
                f"--size={SIZE_MB}",
                "--uuid",
                str(REPLICA_UUIDS[i]),
                check=True,
            )
            if i == 0:
                uris.append(f"bdev:///r0?uuid={REPLICA_UUIDS[0]}")
            else:
                share_out = engine.client("replica", "share", "pool", f"r{i}", check=True)
                uris.append(share_out.stdout.strip())
        local, _, victim = nodes
        result.victim_uri = uris[2]
        local.client("nexus", "create", str(NEXUS_UUID), str(SIZE_MB), *uris, check=True)
        local.client("nexus", "publish", str(NEXUS_UUID), "--allowed-host", HOSTNQN, check=True)

        def kill_victim() -> None:
            victim.kill()
            assert victim.proc is not None
            result.victim_exit = victim.proc.returncode
            (share / ACK_NAME).write_text("killed\n")

        with ControllerWatcher(local.endpoint) as watcher:
            result.run = run_guest_checks(
                {
                    "TARGET_PORT": str(local.nexus_port),
                    "TARGET_NQN": NEXUS_NQN,
                    "HOSTNQN": HOSTNQN,
                    "DENIED_HOSTNQN": DENIED_HOSTNQN,
                    "EXPECT_BLOCKS": str((SIZE_MB << 20) // 512),
                    "ACK_FILE": f"{GUEST_SHARE}/{ACK_NAME}",
                    "KILL_MARKER": KILL_MARKER,
                    "FILE_MB": "4",
                    "FILES_BEFORE": "4",
                    "FILES_AFTER": "6",
                },
                script=GUEST_SCRIPT,
                shares=[(share, GUEST_SHARE)],
                on_marker={KILL_MARKER: kill_victim},
            )
            result.controllers = watcher.controllers_seen(NEXUS_NQN)
        (workdir / "guest-console.log").write_text(result.guest.output)
        _wait_for_fault(local, result.victim_uri)
        nexus = _nexus(local)
        result.nexus_state = nexus["state"]
        result.children = {c["uri"]: c for c in nexus["children"]}

        local.client("nexus", "destroy", str(NEXUS_UUID), check=True)
        local_uri = local.client("replica", "share", "pool", "r0", check=True).stdout.strip()
        for name, uri in (("local", local_uri), ("remote", uris[1])):
            result.survivor_digests[name], result.survivor_nonzero[name] = _digest(uri)
    finally:
        for engine in nodes:
            engine.stop()
    return result


def test_guest_checks_all_pass(session: Session) -> None:
    run = session.guest
    assert run.failed == [], run.output[-6000:]
    assert run.returncode == 0, run.output[-6000:]


def test_only_the_allowed_host_may_connect_to_the_published_nexus(session: Session) -> None:
    assert session.guest.passed_check(f"connect to the nexus as {DENIED_HOSTNQN} is refused")
    assert session.guest.passed_check(f"connect to the nexus as {HOSTNQN}")
    assert session.controllers
    assert all(c["hostnqn"] == HOSTNQN for c in session.controllers)


def test_remote_replica_io_engine_was_killed_while_the_guest_was_writing(
    session: Session,
) -> None:
    assert session.guest.markers == [KILL_MARKER]
    assert session.victim_exit == -9
    assert session.guest.passed_check("files written before the kill")
    assert session.guest.passed_check("the host killed the replica while files were being written")
    assert session.guest.passed_check("files written while the replica was killed")


def test_file_workload_finishes_after_the_replica_is_lost(session: Session) -> None:
    for check in ("files written after the kill", "sync after the kill", "umount"):
        assert session.guest.passed_check(check), check


def test_ext4_is_clean_after_the_replica_loss(session: Session) -> None:
    assert session.guest.passed_check("e2fsck -fn after the kill")


def test_every_file_checksum_verifies_after_remount(session: Session) -> None:
    assert session.guest.passed_check("every file's checksum verifies after remount")
    assert session.guest.passed_check("the checksum list holds all")


def test_kernel_saw_no_failed_io_while_the_replica_died(session: Session) -> None:
    assert session.guest.passed_check("no failed I/O in the kernel log")


def test_killed_child_is_faulted_with_a_lost_path_reason(session: Session) -> None:
    child = session.children[session.victim_uri]
    assert child["state"] == "CHILD_STATE_FAULTED"
    assert child["healthy"] is False
    assert child["state_reason"] in (
        "CHILD_STATE_REASON_IO_FAILURE",
        "CHILD_STATE_REASON_TIMED_OUT",
    )


def test_surviving_children_stay_online_and_healthy(session: Session) -> None:
    others = [c for uri, c in session.children.items() if uri != session.victim_uri]
    assert len(others) == 2
    assert [(c["state"], c["healthy"]) for c in others] == [("CHILD_STATE_ONLINE", True)] * 2


def test_nexus_reports_itself_degraded(session: Session) -> None:
    assert session.nexus_state == "NEXUS_DEGRADED"


def test_surviving_replicas_hold_identical_data(session: Session) -> None:
    assert session.survivor_nonzero == {"local": True, "remote": True}
    assert session.survivor_digests["local"] == session.survivor_digests["remote"]
