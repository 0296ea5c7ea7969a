"""The Linux kernel's DH-HMAC-CHAP against a replica shared with secrets, in one boot.

Debian's 6.1 kernel has no NVMe in-band authentication, so this guest boots the
bookworm-backports 6.12 kernel (`AUTH_KERNEL`; the harness fetches and caches it the
first time). A real io-engine shares a replica for one host NQN with a host and a
controller secret made by `nvme gen-dhchap-key`; the guest (`guest/dhchap.sh`)
connects with the right secret one-way and both ways and moves data, and is refused
with a wrong host secret, with none, and with a wrong controller secret. More
io-engines, each allowing only one hash and one DH group, show that the kernel and we
agree on SHA-384 and SHA-512, on larger FFDHE groups and on the NULL
group.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from mayastor.cluster.processes import EngineProcess
from tests.integration.conftest import make_sparse_file
from tests.interop.kernel_guest import (
    AUTH_KERNEL,
    AUTH_KERNEL_SUITE,
    ControllerWatcher,
    GuestRun,
    run_guest_checks,
)

pytestmark = [pytest.mark.interop, pytest.mark.slow]

REPLICA_UUID = uuid.UUID("8e4b2a10-7c3d-4f6e-9a1b-5d2c0e3f4a6b")
NQN = f"nqn.2019-05.io.openebs:{REPLICA_UUID}"
HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"
GUEST_SCRIPT = Path(__file__).resolve().parent / "guest" / "dhchap.sh"
MORE = [("sha384", "ffdhe3072"), ("sha512", "ffdhe4096"), ("sha256", "null")]
"""(hash, DH group) each further io-engine allows, as the kernel names them."""


def _gen_key(*args: str) -> str:
    """A secret from nvme-cli, so the kernel and we read the same DHHC-1 text."""
    return subprocess.run(
        ["nvme", "gen-dhchap-key", *args], capture_output=True, text=True, check=True
    ).stdout.strip()


class Session:
    def __init__(self, run: GuestRun, hostnqns: set[str]) -> None:
        self.run = run
        self.hostnqns = hostnqns


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    if shutil.which("nvme") is None:
        pytest.fail("nvme-cli is needed (./run.sh setup installs it)")
    # nvme-cli 2.3 prints a secret with a transformation hash already transformed
    # with --nqn, which the kernel then transforms again; we do the same, so any
    # form works as long as both sides read the same text.
    secret = _gen_key("--hmac=1", f"--nqn={HOSTNQN}")
    ctrl_secret = _gen_key("--hmac=0", "--key-length=48")
    wrong = _gen_key("--hmac=0")
    workdir = tmp_path_factory.mktemp("interop-auth")
    host_secret = f"{HOSTNQN}={secret},{ctrl_secret}"
    disks = [f"{workdir.resolve()}/*"]
    engine = EngineProcess("interop-auth", workdir, disk_allow=disks)
    others = [
        EngineProcess(
            f"interop-auth-{hash_name}-{group}",
            workdir,
            extra_args=["--dhchap-hashes", hash_name, "--dhchap-dhgroups", group],
            disk_allow=disks,
        )
        for hash_name, group in MORE
    ]
    more_targets = []
    try:
        for node, replica_uuid in [(engine, REPLICA_UUID)] + [(o, uuid.uuid4()) for o in others]:
            node.start()
            disk = make_sparse_file(workdir / f"{node.node_name}.img", 32 << 20)
            node.client("pool", "create", "pool1", str(disk), check=True)
            node.client(
                "replica", "create", "pool1", "vol1", "--size=8", "--uuid", str(replica_uuid),
                check=True,
            )  # fmt: skip
            node.client(
                "replica", "share", "pool1", "vol1", "--allowed-host", HOSTNQN,
                "--host-secret", host_secret, check=True,
            )  # fmt: skip
            if node is not engine:
                hash_name, group = MORE[others.index(node)]
                more_targets.append(
                    f"{node.replica_port}:nqn.2019-05.io.openebs:{replica_uuid}:{hash_name}:{group}"
                )
        with ControllerWatcher(engine.endpoint) as watcher:
            run = run_guest_checks(
                {
                    "TARGET_PORT": str(engine.replica_port),
                    "TARGET_NQN": NQN,
                    "HOSTNQN": HOSTNQN,
                    "SECRET": secret,
                    "CTRL_SECRET": ctrl_secret,
                    "WRONG_SECRET": wrong,
                    "MORE_TARGETS": " ".join(more_targets),
                },
                script=GUEST_SCRIPT,
                kernel_package=AUTH_KERNEL,
                kernel_suite=AUTH_KERNEL_SUITE,
                timeout=300,
            )
            hostnqns = {c["hostnqn"] for c in watcher.controllers_seen(NQN)}
    finally:
        for node in [engine, *others]:
            node.stop()
    return Session(run, hostnqns)


def test_guest_checks_all_pass_on_the_authentication_kernel(session: Session) -> None:
    run = session.run
    assert run.failed == [], run.output[-6000:]
    assert run.returncode == 0, run.output[-6000:]
    assert "6.12" in run.output


def test_the_right_secret_connects_one_way_and_moves_data(session: Session) -> None:
    for check in (
        "connect with the host secret",
        "namespace appears after one-way authentication",
        "data round trip over the authenticated connection",
        "kernel says qid 0 authenticated",
    ):
        assert session.run.passed_check(check), check


def test_bidirectional_authentication_connects_and_the_kernel_trusts_the_controller(
    session: Session,
) -> None:
    for check in (
        "connect with host and controller secrets",
        "data round trip over the bidirectional connection",
        "kernel says the controller authenticated",
    ):
        assert session.run.passed_check(check), check


def test_a_wrong_or_missing_secret_is_refused(session: Session) -> None:
    for check in (
        "a wrong host secret is refused",
        "no secret is refused",
        "a wrong controller secret is refused",
    ):
        assert session.run.passed_check(check), check


def test_only_the_authenticated_host_ever_had_a_controller(session: Session) -> None:
    assert session.hostnqns == {HOSTNQN}


@pytest.mark.parametrize(("hash_name", "group"), MORE)
def test_the_kernel_and_we_agree_on_each_hash_and_dh_group(
    session: Session, hash_name: str, group: str
) -> None:
    for check in ("connect with both secrets", "data round trip", f"kernel used hmac({hash_name})"):
        assert session.run.passed_check(f"{hash_name}/{group}: {check}"), check
