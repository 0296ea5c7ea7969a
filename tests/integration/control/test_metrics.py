"""Prometheus metrics of the io-engines and of the core agent, parsed as Prometheus would."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cluster import TestCluster
from tests.support.volume_io import frontend_nqn, write_at

pytestmark = pytest.mark.slow

MIB = 1 << 20


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample, by metric name and sorted labels."""
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def test_io_engines_and_the_core_agent_serve_mayastors_metrics(
    make_cluster: Callable[..., TestCluster],
) -> None:
    cluster = make_cluster(metrics=True)
    volume = str(uuid.uuid4())
    cluster.rest.put(
        f"/volumes/{volume}",
        {"size": 16 * MIB, "replicas": 3, "thin": False, "policy": {"self_heal": True}},
    )
    published = cluster.rest.put(
        f"/volumes/{volume}/target",
        {"protocol": "nvmf", "publish_context": {}, "node": "node-1", "frontend_node": "app-1"},
    )
    write_at(published["state"]["target"]["deviceUri"], frontend_nqn("app-1"), 0, os.urandom(MIB))
    node1 = scrape(f"http://127.0.0.1:{cluster.metrics_ports['node-1']}/metrics")
    pool = (("name", "pool-node-1"), ("node", "node-1"))
    assert node1["diskpool_status"][pool] == 1
    assert node1["diskpool_total_size_bytes"][pool] > node1["diskpool_used_size_bytes"][pool] > 0
    assert node1["diskpool_committed_size_bytes"][pool] == 16 * MIB
    assert node1["diskpool_bytes_written_total"][pool] >= MIB
    volume_key = (("name", volume), ("node", "node-1"))
    assert node1["volume_bytes_written_total"][volume_key] == MIB
    assert node1["volume_num_write_ops_total"][volume_key] >= 1
    assert node1["volume_write_latency_us_total"][volume_key] > 0
    assert any(v >= MIB for v in node1["replica_bytes_written_total"].values())
    core = scrape(f"{cluster.core.rest_url}/metrics")
    assert core["volume_status"][(("volume", volume),)] == 1
    assert core["volume_replicas_in_sync"][(("volume", volume),)] == 3
    assert core["node_status"][(("node", "node-2"),)] == 1
    assert len(core["replica_state"]) == 3
    assert core["rebuilds_running"][()] == 0


def test_an_unknown_metrics_path_is_404(make_cluster: Callable[..., TestCluster]) -> None:
    cluster = make_cluster(nodes=1, metrics=True)
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{cluster.metrics_ports['node-1']}/other")
    missing.value.close()
    assert missing.value.code == 404
