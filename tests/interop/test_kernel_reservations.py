"""NVMe reservations with the Linux kernel's nvme-tcp and nvme-cli against a replica
shared by `mayastor`, in one boot of the guest (`guest/reservations.sh`).

Two host identities (host NQN and host identifier given to ``nvme connect``) share the
replica; nvme-cli's resv-register, resv-acquire, resv-report --eds and resv-release
work, the second host's I/O gets Reservation Conflict, and its preempt fences the
first. Each test asserts one of those behaviours on the recorded run; afterwards our
own initiator reads the replica's state (cleared by the guest) over the same target.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from mayastor.bdev.nvmf import NvmfDevice
from mayastor.cluster.processes import EngineProcess
from mayastor.nvmf.host import ControllerOptions
from mayastor.nvmf.spec import ReservationStatus
from tests.integration.conftest import make_sparse_file
from tests.interop.kernel_guest import HERE, ControllerWatcher, GuestRun, run_guest_checks

pytestmark = [pytest.mark.interop, pytest.mark.slow]

REPLICA_UUID = uuid.UUID("4e5a9c1e-5d7b-4e8a-9b6c-2d1f0e4a7c66")
NQN = f"nqn.2019-05.io.openebs:{REPLICA_UUID}"
HOST_A = "nqn.2014-08.org.nvmexpress:uuid:a0a0a0a0-1111-4222-8333-444455556666"
HOST_B = "nqn.2014-08.org.nvmexpress:uuid:b0b0b0b0-1111-4222-8333-444455556666"
ID_A = "a0a0a0a0-1111-4222-8333-444455556666"
ID_B = "b0b0b0b0-1111-4222-8333-444455556666"
SCRIPT = HERE / "guest" / "reservations.sh"


class Session:
    def __init__(self, run: GuestRun, hosts: set[str], after: ReservationStatus) -> None:
        self.run = run
        self.hosts = hosts
        self.after = after


async def report(engine: EngineProcess) -> ReservationStatus:
    uri = f"nvmf://127.0.0.1:{engine.replica_port}/{NQN}"
    device = await NvmfDevice.open(uri, options=ControllerOptions(hostnqn=HOST_A))
    try:
        return await device.reservation_report()
    finally:
        await device.close()


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    workdir = tmp_path_factory.mktemp("interop-resv")
    disk = make_sparse_file(workdir / "pool.img", 128 << 20)
    engine = EngineProcess("resv-node", workdir, disk_allow=[f"{workdir.resolve()}/*"])
    engine.start()
    try:
        engine.client("pool", "create", "pool1", str(disk), check=True)
        engine.client(
            "replica", "create", "pool1", "vol1", "--size=16", "--uuid", str(REPLICA_UUID),
            check=True,
        )  # fmt: skip
        engine.client(
            "replica", "share", "pool1", "vol1", "--allowed-host", HOST_A, "--allowed-host",
            HOST_B, check=True,
        )  # fmt: skip
        with ControllerWatcher(engine.endpoint) as watcher:
            run = run_guest_checks(
                {
                    "TARGET_PORT": str(engine.replica_port),
                    "TARGET_NQN": NQN,
                    "HOSTNQN_A": HOST_A,
                    "HOSTID_A": ID_A,
                    "HOSTNQN_B": HOST_B,
                    "HOSTID_B": ID_B,
                },
                script=SCRIPT,
            )
            hosts = {str(c["hostnqn"]) for c in watcher.controllers_seen(NQN)}
        after = asyncio.run(report(engine))
    finally:
        engine.stop()
    return Session(run, hosts, after)


def test_guest_checks_all_pass(session: Session) -> None:
    run = session.run
    assert run.failed == [], run.output[-8000:]
    assert run.returncode == 0, run.output[-8000:]


def test_the_two_connects_are_two_hosts_to_the_target(session: Session) -> None:
    assert session.run.passed_check("two controllers, one per host")
    assert {HOST_A, HOST_B} <= session.hosts


def test_the_kernel_sees_reservation_support_and_persistence(session: Session) -> None:
    assert session.run.passed_check("id-ctrl oncs has reservations")
    assert session.run.passed_check("id-ns rescap is 0xff")


def test_register_acquire_and_extended_report_work_from_nvme_cli(session: Session) -> None:
    for check in (
        "resv-register as A",
        "resv-acquire as A",
        "report: rtype 2",
        "report: key a",
        "report: host A's 128-bit host identifier",
    ):
        assert session.run.passed_check(check), check


def test_a_report_in_the_standard_format_is_refused(session: Session) -> None:
    assert session.run.passed_check("resv-report without --eds is refused")


def test_the_other_host_gets_reservation_conflicts_and_the_holder_does_not(
    session: Session,
) -> None:
    for check in (
        "host B's read conflicts",
        "host B's write conflicts",
        "host A reads",
        "host A writes",
        "host B's acquire conflicts",
    ):
        assert session.run.passed_check(check), check


def test_a_preempt_fences_the_old_holder(session: Session) -> None:
    for check in (
        "host B preempts key 0xa",
        "host A's read conflicts once preempted",
        "host A's write conflicts once preempted",
        "host B writes",
        "report: only host B is left",
    ):
        assert session.run.passed_check(check), check


def test_release_and_clear_leave_the_replica_unreserved(session: Session) -> None:
    for check in (
        "resv-release as B",
        "host A reads again after the release",
        "report: nobody registered",
    ):
        assert session.run.passed_check(check), check
    assert (session.after.rtype, session.after.regctl) == (0, 0)
