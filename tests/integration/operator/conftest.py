"""Fixtures of the DiskPool operator's tests: a real cluster, an emulated Kubernetes API.

Each module gets a core agent and two io-engines (a 128 MiB pool each, for volumes);
each test gets the API server emulator (kmock) serving the chart's DiskPool CRD and a
``mayastor-operator-diskpool`` process between the two, passing every DiskPool every
second, and a REST client of its own.
"""

from __future__ import annotations

import contextlib
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mayastor.cluster.processes import ChildProcess, free_port
from tests.support.cluster import Rest, TestCluster
from tests.support.kube_api import KubeApi
from tests.support.polling import wait_for

ROOT = Path(__file__).resolve().parents[3]
CRD_PATH = ROOT / "deploy/helm/mayastor/crds/diskpools.openebs.io.yaml"
API_VERSION = "openebs.io/v1beta2"


class OperatorProcess(ChildProcess):
    """``mayastor-operator-diskpool`` against a REST API and a kubeconfig."""

    name = "diskpool operator"

    def __init__(self, workdir: Path, *, rest_url: str, kubeconfig: Path) -> None:
        super().__init__(workdir, "operator.log")
        self.rest_url = rest_url
        self.kubeconfig = kubeconfig
        self.health_port = free_port()

    def argv(self) -> list[str]:
        return [
            str(Path(sys.executable).parent / "mayastor-operator-diskpool"),
            "--rest-endpoint",
            self.rest_url,
            "--kubeconfig",
            str(self.kubeconfig),
            "--namespace",
            "mayastor",
            "--interval",
            "1",
            "--retry-delay",
            "1",
            "--rest-timeout",
            "5",
            "--health-endpoint",
            f"127.0.0.1:{self.health_port}",
        ]

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/healthz", timeout=1
            ) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def start(self, timeout: float = 30.0) -> None:
        self._spawn()
        self._wait_until(self.healthy, timeout, "answer its liveness probe")


def load_crd() -> dict[str, Any]:
    return dict(yaml.safe_load(CRD_PATH.read_text()))


@dataclass
class OperatorEnv:
    cluster: TestCluster
    api: KubeApi
    operator: OperatorProcess
    workdir: Path
    rest: Rest

    def disk(self, name: str, size: int = 64 << 20) -> Path:
        """A new sparse file to make a pool on, in the cluster's folder (which its
        io-engines may open: --disk-allow)."""
        path = self.cluster.workdir / f"{name}.img"
        with open(path, "wb") as fh:
            fh.truncate(size)
        return path

    def diskpool(
        self, name: str, node: str, disks: list[Any], labels: dict[str, str] | None = None
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {"node": node, "disks": disks}
        if labels is not None:
            spec["topology"] = {"labelled": labels}
        return {
            "apiVersion": API_VERSION,
            "kind": "DiskPool",
            "metadata": {"name": name, "namespace": "mayastor"},
            "spec": spec,
        }

    def create(self, obj: dict[str, Any]) -> None:
        reply = self.api.create(obj, "diskpools")
        assert reply.status_code in (200, 201), reply.text

    def get(self, name: str) -> dict[str, Any] | None:
        return self.api.get(API_VERSION, "diskpools", name)

    def status(self, name: str) -> dict[str, Any]:
        obj = self.get(name)
        return dict((obj or {}).get("status") or {})

    def delete(self, name: str) -> None:
        reply = self.api.delete(API_VERSION, "diskpools", name)
        assert reply.status_code in (200, 202), reply.text

    def wait_status(self, name: str, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
        wait_for(
            lambda: all(self.status(name).get(k) == v for k, v in fields.items()),
            f"DiskPool {name} status {fields} (last: {self.status(name)})",
            timeout,
        )
        return self.status(name)

    def wait_gone(self, name: str, timeout: float = 30.0) -> None:
        wait_for(lambda: self.get(name) is None, f"DiskPool {name} gone", timeout)

    def events(self, name: str, reason: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.api.events(name) if reason is None or e["reason"] == reason]

    def rest_pool(self, name: str) -> tuple[int, Any]:
        return self.rest.call("GET", f"/pools/{name}")

    def engine_pools(self, node: str) -> list[str]:
        """The pools the io-engine itself has (mayastor-client pool list)."""
        result = self.cluster.engines[node].client("-o", "json", "pool", "list", check=True)
        data = yaml.safe_load(result.stdout) or []
        pools = data.get("pools", data) if isinstance(data, dict) else data
        return sorted(p["name"] for p in pools)


@pytest.fixture(scope="module")
def operator_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestCluster]:
    cluster = TestCluster(
        Path(tmp_path_factory.mktemp("operator-cluster")), nodes=2, disk_size=128 << 20
    )
    try:
        yield cluster.start()
    finally:
        cluster.close()


@contextlib.contextmanager
def operator_env(cluster: TestCluster, workdir: Path) -> Iterator[OperatorEnv]:
    """An API server, an operator and a REST client for `cluster`, ended on exit."""
    api = KubeApi(workdir, [load_crd()])
    rest = Rest(cluster.core.rest_url)
    operator: OperatorProcess | None = None
    try:
        api.start()
        operator = OperatorProcess(
            workdir, rest_url=cluster.core.rest_url, kubeconfig=api.kubeconfig
        )
        operator.start()
        yield OperatorEnv(cluster, api, operator, workdir, rest)
    finally:
        if operator is not None:
            operator.stop()
        api.close()
        rest.close()


@pytest.fixture
def env(operator_cluster: TestCluster, tmp_path: Path) -> Iterator[OperatorEnv]:
    """The module's cluster with an API server and an operator of this test's own (what
    runs in the test process, the API server and the REST client, ends with the test)."""
    with operator_env(operator_cluster, tmp_path) as made:
        yield made


@pytest.fixture
def own_env(tmp_path: Path) -> Iterator[OperatorEnv]:
    """As `env`, on a cluster of the test's own: for tests that restart its processes."""
    with (
        TestCluster(tmp_path / "cluster", nodes=2, disk_size=128 << 20) as cluster,
        operator_env(cluster, tmp_path) as made,
    ):
        yield made
