"""The Linux kernel's nvme-tcp initiator against a replica shared by `mayastor`, in one boot.

A real io-engine process has a pool on a file and a 64 MiB replica shared over NVMe/TCP
for one host NQN; the guest (TCG) runs `guest/check_target.sh`: discovery, a refused
host, identify fields, ext4 with checksums and e2fsck, the same data over header and
data digests, fio with crc32c verify, disconnects, and a connection left open when the
guest powers off. Each test below asserts one of those behaviours on the recorded run.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from mayastor.cluster.processes import EngineProcess
from tests.integration.conftest import make_sparse_file
from tests.interop.kernel_guest import ControllerWatcher, GuestRun, run_guest_checks

pytestmark = [pytest.mark.interop, pytest.mark.slow]

REPLICA_UUID = uuid.UUID("3f2a9c1e-5d7b-4e8a-9b6c-2d1f0e4a7c55")
NQN = f"nqn.2019-05.io.openebs:{REPLICA_UUID}"
HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:6b1d2f3e-4c5a-4b6d-8e7f-0a1b2c3d4e5f"
DENIED_HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:d0d0d0d0-1111-4222-8333-444455556666"
SIZE_MB = 64
BLOCK_SIZE = 512


class Session:
    def __init__(
        self, run: GuestRun, engine: EngineProcess, seen: list[dict[str, Any]], freed: bool
    ) -> None:
        self.run = run
        self.engine = engine
        self.port = engine.replica_port
        self.controllers = seen
        self.freed_after_guest = freed


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    workdir = tmp_path_factory.mktemp("interop")
    disk = make_sparse_file(workdir / "pool.img", 128 << 20)
    engine = EngineProcess("interop-node", workdir, disk_allow=[f"{workdir.resolve()}/*"])
    engine.start()
    try:
        engine.client("pool", "create", "pool1", str(disk), check=True)
        engine.client(
            "replica",
            "create",
            "pool1",
            "vol1",
            f"--size={SIZE_MB}",
            "--uuid",
            str(REPLICA_UUID),
            check=True,
        )
        engine.client("replica", "share", "pool1", "vol1", "--allowed-host", HOSTNQN, check=True)
        with ControllerWatcher(engine.endpoint) as watcher:
            run = run_guest_checks(
                {
                    "TARGET_PORT": str(engine.replica_port),
                    "TARGET_NQN": NQN,
                    "EXPECT_BLOCKS": str((SIZE_MB << 20) // BLOCK_SIZE),
                    "EXPECT_BSIZE": str(BLOCK_SIZE),
                    "HOSTNQN": HOSTNQN,
                    "DENIED_HOSTNQN": DENIED_HOSTNQN,
                }
            )
            deadline = time.monotonic() + 20
            while watcher.current() and time.monotonic() < deadline:
                time.sleep(0.1)
            freed = not watcher.current()
            seen = watcher.controllers_seen(NQN)
    finally:
        engine.stop()
    return Session(run, engine, seen, freed)


def test_guest_checks_all_pass(session: Session) -> None:
    run = session.run
    assert run.failed == [], run.output[-6000:]
    assert run.returncode == 0, run.output[-6000:]


def test_kernel_discovery_lists_the_subsystem_with_its_port(session: Session) -> None:
    assert session.run.passed_check(f"discovery log lists {NQN}")
    assert session.run.passed_check(f"discovery entry has trsvcid {session.port}")
    assert session.run.passed_check("discovery entry is tcp/ipv4")


def test_host_not_on_the_allow_list_is_refused_and_sees_nothing(session: Session) -> None:
    assert session.run.passed_check(f"connect as {DENIED_HOSTNQN} is refused")
    assert session.run.passed_check(f"discovery hides {NQN} from {DENIED_HOSTNQN}")
    assert session.controllers
    assert all(c["hostnqn"] == HOSTNQN for c in session.controllers)


def test_identify_fields_are_what_the_kernel_reports(session: Session) -> None:
    for check in ("id-ctrl mn is 'Mayastor NVMe controller'", "id-ctrl nn is 1", "id-ctrl mdts"):
        assert session.run.passed_check(check), check
    assert session.run.passed_check(f"id-ns nsze is {(SIZE_MB << 20) // BLOCK_SIZE}")


def test_ext4_written_without_digests_verifies_after_remount_and_fsck(session: Session) -> None:
    for check in ("mkfs.ext4", "e2fsck -fn after writing", "checksums after remount"):
        assert session.run.passed_check(check), check


def test_files_read_back_and_written_over_header_and_data_digests(session: Session) -> None:
    for check in ("checksums over digests", "e2fsck -fn over digests", "new file over digests"):
        assert session.run.passed_check(check), check
    digest_controllers = [c for c in session.controllers if c["header_digest"] and c["data_digest"]]
    assert digest_controllers, "no controller negotiated header and data digests"


def test_fio_crc32c_verify_passes_through_the_kernel_block_device(session: Session) -> None:
    for check in (
        "fio 4k random write + crc32c verify",
        "fio 128k sequential write + crc32c verify",
        "fio 1M writes + crc32c verify",
        "fio 4k random write + crc32c verify over digests",
    ):
        assert session.run.passed_check(check), check


def test_kernel_saw_no_failed_io_including_discards(session: Session) -> None:
    assert session.run.passed_check("no failed I/O in the kernel log")


def test_guest_dropping_the_connection_frees_the_controller(session: Session) -> None:
    left = session.run.left_connected
    assert left is not None
    assert left in [c["cntlid"] for c in session.controllers]
    assert session.freed_after_guest
