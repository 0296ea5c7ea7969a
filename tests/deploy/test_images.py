"""The container images deploy/images/build.sh makes, run under podman on this machine.

The script builds localhost/mayastor and localhost/mayastor-node at the chart's
appVersion from Debian's packages (mmdebstrap) and the project's wheels, with no
container-registry pull; an image whose inputs did not change is kept, so only the first
run on a machine (or after a change of the code) pays for the build. Each command the
chart runs starts in its image, the node image carries the tools the CSI node plugin
calls, and an io-engine in its container serves its gRPC API to ``mayastor-client`` on
the host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mayastor.cluster.processes import free_port
from tests.deploy.chart import CHART, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.needs_root, pytest.mark.timeout(900)]

BUILD = ROOT / "deploy/images/build.sh"
VERSION = str(yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])
IMAGE = f"localhost/mayastor:{VERSION}"
NODE_IMAGE = f"localhost/mayastor-node:{VERSION}"
LIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]


def _podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    podman = shutil.which("podman")
    assert podman, "podman is missing: ./run.sh setup installs it (Debian package podman)"
    return subprocess.run(
        [podman, "--runtime", "runc", "--cgroup-manager", "cgroupfs", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _run(image: str, *command: str) -> subprocess.CompletedProcess[str]:
    return _podman("run", "--rm", *LIMITS, image, *command)


@pytest.fixture(scope="module")
def images() -> None:
    result = subprocess.run(
        [str(BUILD), "--quiet"],
        capture_output=True,
        text=True,
        timeout=840,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_build_makes_both_images_from_debian_and_the_projects_wheel(images: None) -> None:
    for image in (IMAGE, NODE_IMAGE):
        result = _podman("image", "inspect", image)
        assert result.returncode == 0, result.stderr
        [info] = json.loads(result.stdout)
        assert "io.openebs.mayastor.inputs" in info["Config"]["Labels"]
    release = _run(IMAGE, "cat", "/etc/debian_version")
    assert release.returncode == 0, release.stderr
    assert release.stdout.strip()[0].isdigit()


@pytest.mark.parametrize(
    ("image", "command"),
    [
        (IMAGE, "mayastor"),
        (IMAGE, "mayastor-agent-core"),
        (IMAGE, "mayastor-csi-controller"),
        (IMAGE, "mayastor-operator-diskpool"),
        (NODE_IMAGE, "mayastor-csi-node"),
        (NODE_IMAGE, "mayastor-ha-node"),
    ],
)
def test_each_command_the_chart_runs_starts_in_its_image(
    images: None, image: str, command: str
) -> None:
    result = _run(image, command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {command}")


def test_the_node_image_carries_what_the_csi_node_plugin_calls(images: None) -> None:
    tools = ["nvme", "mkfs.ext4", "mkfs.xfs", "mkfs.btrfs", "resize2fs", "xfs_growfs"]
    tools += ["blkid", "mount", "umount", "findmnt"]
    result = _run(NODE_IMAGE, "sh", "-c", f"for t in {' '.join(tools)}; do command -v $t; done")
    assert result.returncode == 0, result.stderr
    assert [Path(line).name for line in result.stdout.split()] == tools


@pytest.fixture
def engine_container(images: None, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """An io-engine in its container on the host's network (loopback), with a pool on a
    file of `tmp_path`; yields its container id and gRPC endpoint."""
    with open(tmp_path / "disk.img", "wb") as disk:
        disk.truncate(64 << 20)
    grpc = f"127.0.0.1:{free_port()}"
    started = _podman(
        "run", "--detach", "--rm", *LIMITS, "--network", "host",
        "--volume", f"{tmp_path}:/data",
        IMAGE,
        "mayastor", "--node-name", "in-a-container", "--grpc-endpoint", grpc,
        "--nvmf-address", "127.0.0.1",
        "--replica-port", str(free_port()), "--nexus-port", str(free_port()),
        "--state-dir", "/data/state", "--disk-allow", "/data/*",
        "--pool", "container-pool=/data/disk.img",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    container = started.stdout.strip()
    try:
        yield container, grpc
    finally:
        _podman("stop", "--time", "20", container, timeout=60)


def test_an_io_engine_in_its_container_serves_the_host(engine_container: tuple[str, str]) -> None:
    container, grpc = engine_container
    client = str(Path(sys.executable).parent / "mayastor-client")
    deadline = time.monotonic() + 60
    while True:
        result = subprocess.run(
            [client, "-b", grpc, "-o", "json", "pool", "list"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    logs = _podman("logs", container).stderr
    assert result.returncode == 0, result.stderr + logs
    data = json.loads(result.stdout)
    pools = data.get("pools", data) if isinstance(data, dict) else data
    [pool] = pools
    assert pool["name"] == "container-pool"
    assert pool["disks"] == ["/data/disk.img"]
    assert pool["state"] in ("online", "POOL_ONLINE", 1)
