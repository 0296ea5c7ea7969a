"""The Linux kernel's nvme-tcp initiator against our target, in one guest boot.

A host-side process serves a 64 MiB file-backed AioDevice; the guest (TCG) runs
`guest/check_target.sh`: discovery, a refused host, identify fields, ext4 with
checksums and e2fsck, the same data over header and data digests, fio with crc32c
verify, disconnects, and a connection left open when the guest powers off. Each
test below asserts one of those behaviours on the recorded run.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.interop.kernel_guest import GuestRun, TargetProcess, run_guest_checks

pytestmark = [pytest.mark.interop, pytest.mark.slow]

NQN = "nqn.2019-05.io.openebs:3f2a9c1e-5d7b-4e8a-9b6c-2d1f0e4a7c55"
HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:6b1d2f3e-4c5a-4b6d-8e7f-0a1b2c3d4e5f"
DENIED_HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:d0d0d0d0-1111-4222-8333-444455556666"
SIZE_MB = 64


class Session:
    def __init__(self, run: GuestRun, target: TargetProcess, freed: bool) -> None:
        self.run = run
        self.target = target
        self.freed_after_guest = freed


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    disk: Path = tmp_path_factory.mktemp("interop") / "replica.img"
    target = TargetProcess(
        "--file", str(disk), "--size-mb", str(SIZE_MB), "--nqn", NQN, "--allow-host", HOSTNQN
    )
    try:
        run = run_guest_checks(
            {
                "TARGET_PORT": str(target.ready["port"]),
                "TARGET_NQN": NQN,
                "EXPECT_BLOCKS": str(target.ready["blocks"]),
                "EXPECT_BSIZE": str(target.ready["block_size"]),
                "HOSTNQN": HOSTNQN,
                "DENIED_HOSTNQN": DENIED_HOSTNQN,
            }
        )
        deadline = time.monotonic() + 20
        while target.current_controllers() and time.monotonic() < deadline:
            time.sleep(0.1)
        freed = not target.current_controllers()
    finally:
        target.stop()
    return Session(run, target, freed)


def test_guest_checks_all_pass(session: Session) -> None:
    run = session.run
    assert run.failed == [], run.output[-6000:]
    assert run.returncode == 0, run.output[-6000:]


def test_kernel_discovery_lists_the_subsystem_with_its_port(session: Session) -> None:
    assert session.run.passed_check(f"discovery log lists {NQN}")
    assert session.run.passed_check(f"discovery entry has trsvcid {session.target.ready['port']}")
    assert session.run.passed_check("discovery entry is tcp/ipv4")


def test_host_not_on_the_allow_list_is_refused_and_sees_nothing(session: Session) -> None:
    assert session.run.passed_check(f"connect as {DENIED_HOSTNQN} is refused")
    assert session.run.passed_check(f"discovery hides {NQN} from {DENIED_HOSTNQN}")
    assert all(c["hostnqn"] == HOSTNQN for c in session.target.controllers_seen())


def test_identify_fields_are_what_the_kernel_reports(session: Session) -> None:
    for check in ("id-ctrl mn is 'Mayastor NVMe controller'", "id-ctrl nn is 1", "id-ctrl mdts"):
        assert session.run.passed_check(check), check
    assert session.run.passed_check(f"id-ns nsze is {session.target.ready['blocks']}")


def test_ext4_written_without_digests_verifies_after_remount_and_fsck(session: Session) -> None:
    for check in ("mkfs.ext4", "e2fsck -fn after writing", "checksums after remount"):
        assert session.run.passed_check(check), check


def test_files_read_back_and_written_over_header_and_data_digests(session: Session) -> None:
    for check in ("checksums over digests", "e2fsck -fn over digests", "new file over digests"):
        assert session.run.passed_check(check), check
    digest_controllers = [
        c for c in session.target.controllers_seen() if c["header_digest"] and c["data_digest"]
    ]
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
    assert left in [c["cntlid"] for c in session.target.controllers_seen()]
    assert session.freed_after_guest
