"""Fixtures of the control-plane tests: clusters of real processes on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mayastor.cluster.processes import EtcdProcess
from tests.support.cluster import TestCluster


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., TestCluster]]:
    """Factory of started clusters (core agent + io-engines + pools); closed at the end."""
    made: list[TestCluster] = []

    def make(**options: object) -> TestCluster:
        cluster = TestCluster(tmp_path / f"cluster{len(made)}", **options)  # type: ignore[arg-type]
        made.append(cluster)
        return cluster.start()

    yield make
    for cluster in made:
        cluster.close()


@pytest.fixture
def cluster(make_cluster: Callable[..., TestCluster]) -> TestCluster:
    """Three io-engines with a pool each, on the embedded store."""
    return make_cluster()


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdProcess]:
    """Debian's etcd on loopback ports of its own, for the test.

    A test asks for it before `make_cluster`, so that etcd stops after the cluster:
    a stopping io-engine records its nexuses' clean shutdown in the store and, with
    no store to answer, would try for its full deadline (15 s) first."""
    process = EtcdProcess(tmp_path / "etcd")
    process.start()
    yield process
    process.stop()
