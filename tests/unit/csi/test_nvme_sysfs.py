"""What the kernel says about NVMe subsystems, read from a copy of sysfs's layout."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from mayastor.csi._nvme import Sysfs, Target, is_stale
from mayastor.csi.errors import InvalidArgument

NQN = "nqn.2019-05.io.openebs:6e1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
NEXUS = uuid.UUID("11111111-2222-3333-4444-555555555555")
HOST = "nqn.2019-05.io.openebs:node-name:app-1"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def fake_sysfs(root: Path, *, multipath: bool = True, state: str = "live") -> Sysfs:
    """One subsystem, one TCP controller (nvme0), one namespace, as kernel 6.1 shows them."""
    subsys = root / "class" / "nvme-subsystem" / "nvme-subsys0"
    ctrl = root / "class" / "nvme" / "nvme0"
    write(subsys / "subsysnqn", NQN)
    (subsys / "nvme0").mkdir()
    write(ctrl / "state", state)
    write(ctrl / "transport", "tcp")
    write(ctrl / "address", "traddr=10.0.2.2,trsvcid=4421,src_addr=10.0.2.15")
    write(ctrl / "hostnqn", HOST)
    head = subsys / "nvme0n1" if multipath else ctrl / "nvme0n1"
    write(head / "nsid", "1")
    write(head / "dev", "259:1")
    write(head / "size", "131072")
    write(head / "wwid", f"uuid.{NEXUS}")
    if multipath:
        write(ctrl / "nvme0c0n1" / "nsid", "1")
        write(root / "block" / "nvme0c0n1" / "queue" / "io_timeout", "30000")
    write(root / "block" / "nvme0n1" / "size", "131072")
    (root / "dev" / "block").mkdir(parents=True)
    (root / "dev" / "block" / "259:1").symlink_to(head)
    write(root / "class" / "nvme-fabrics" / "ctl" / "dev", "10:125")
    (root / "module" / "nvme_tcp").mkdir(parents=True)
    return Sysfs(root)


@pytest.mark.parametrize("multipath", [True, False], ids=["multipath", "one path"])
def test_a_subsystem_has_its_controller_and_namespace(tmp_path: Path, multipath: bool) -> None:
    sysfs = fake_sysfs(tmp_path, multipath=multipath)
    subsystem = sysfs.subsystem(NQN)
    assert subsystem is not None
    (controller,) = subsystem.controllers
    assert (controller.name, controller.state, controller.traddr, controller.trsvcid) == (
        "nvme0",
        "live",
        "10.0.2.2",
        "4421",
    )
    assert controller.hostnqn == HOST
    (namespace,) = subsystem.namespaces
    assert namespace.name == "nvme0n1"
    assert namespace.devno == (259, 1)
    assert namespace.uuid == NEXUS
    assert namespace.size == 64 << 20
    assert namespace.paths == (("nvme0c0n1",) if multipath else ())


def test_a_subsystem_that_is_not_there_is_none(tmp_path: Path) -> None:
    assert fake_sysfs(tmp_path).subsystem("nqn.2019-05.io.openebs:other") is None
    assert Sysfs(tmp_path / "empty").subsystems() == []


def test_a_controller_that_is_not_live_makes_the_subsystem_unhealthy(tmp_path: Path) -> None:
    subsystem = fake_sysfs(tmp_path, state="connecting").subsystem(NQN)
    assert subsystem is not None
    assert not subsystem.healthy()
    assert subsystem.condition() == "nvme0 is connecting"


def test_the_io_timeout_goes_on_every_path_device(tmp_path: Path) -> None:
    sysfs = fake_sysfs(tmp_path)
    subsystem = sysfs.subsystem(NQN)
    assert subsystem is not None
    assert sysfs.set_io_timeout(subsystem.namespaces[0], 45) == ["nvme0c0n1"]
    assert (tmp_path / "block" / "nvme0c0n1" / "queue" / "io_timeout").read_text() == "45000"


def test_controller_actions_write_one_to_their_attribute(tmp_path: Path) -> None:
    sysfs = fake_sysfs(tmp_path)
    sysfs.controller_action("nvme0", "delete_controller")
    assert (tmp_path / "class" / "nvme" / "nvme0" / "delete_controller").read_text() == "1"
    with pytest.raises(FileNotFoundError):
        sysfs.controller_action("nvme9", "delete_controller")


def test_a_device_number_names_its_block_device(tmp_path: Path) -> None:
    sysfs = fake_sysfs(tmp_path)
    assert sysfs.block_name((259, 1)) == "nvme0n1"
    assert sysfs.block_name((259, 9)) is None
    assert sysfs.block_size("nvme0n1") == 64 << 20


def test_a_kernel_without_nvme_tcp_says_what_it_lacks(tmp_path: Path) -> None:
    assert fake_sysfs(tmp_path).fabrics_ready() == []
    missing = Sysfs(tmp_path / "bare").fabrics_ready()
    assert any("nvme_tcp" in m for m in missing)
    assert any("nvme_fabrics" in m for m in missing)


def test_a_target_uri_gives_address_nqn_and_namespace_uuid() -> None:
    target = Target.parse(f"nvmf://10.0.2.2:4421/{NQN}?uuid={NEXUS}")
    assert (target.host, target.port, target.nqn, target.namespace_uuid) == (
        "10.0.2.2",
        4421,
        NQN,
        NEXUS,
    )


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "nvmf://10.0.2.2/" + NQN,
        "http://10.0.2.2:4421/" + NQN,
        "nvmf://h:1/",
        f"nvmf://h:1/{NQN}?uuid=x",
    ],
)
def test_a_uri_that_is_no_target_is_invalid_argument(uri: str) -> None:
    with pytest.raises(InvalidArgument):
        Target.parse(uri)


def test_a_namespace_is_the_volumes_by_the_volume_uuid_or_the_nexus_uuid_the_uri_names() -> None:
    target = Target("10.0.2.2", 4421, NQN, NEXUS)
    assert target.accepts(NEXUS)
    assert target.accepts(uuid.UUID(NQN.rsplit(":", 1)[1]))
    assert target.accepts(None)
    assert not target.accepts(uuid.uuid4())


def test_a_connection_elsewhere_as_another_host_or_to_another_nexus_is_stale(
    tmp_path: Path,
) -> None:
    subsystem = fake_sysfs(tmp_path).subsystem(NQN)
    assert subsystem is not None
    here = Target("10.0.2.2", 4421, NQN, NEXUS)
    assert not is_stale(subsystem, here, HOST)
    assert is_stale(subsystem, Target("10.0.2.2", 4422, NQN, NEXUS), HOST)
    assert is_stale(subsystem, here, "nqn.2019-05.io.openebs:node-name:other")
    assert is_stale(subsystem, Target("10.0.2.2", 4421, NQN, uuid.uuid4()), HOST)
