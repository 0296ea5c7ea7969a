"""Fixtures of the control-plane tests: clusters of real processes on loopback."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from mayastor.cluster.processes import EtcdProcess
from tests.support.cluster import TestCluster

CLUSTERS = pytest.StashKey[list[TestCluster]]()
"""The clusters a test made, for its failure report."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A test that failed while its clusters ran gets their diagnosis in its report
    (what the core agent saw, the end of its log, the io-engines' warnings): a failure
    on a CI machine must be explainable from its output alone."""
    report = yield
    if report.when == "call" and report.failed:
        for cluster in item.stash.get(CLUSTERS, []):
            report.sections.append((f"cluster {cluster.workdir.name}", cluster.diagnosis()))
    return report


@pytest.fixture
def make_cluster(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., TestCluster]]:
    """Factory of started clusters (core agent + io-engines + pools); closed at the end."""
    made: list[TestCluster] = []
    request.node.stash[CLUSTERS] = made

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
