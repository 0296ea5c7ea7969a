"""`mayastor-demo`, the README's first command, does every step it shows."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_the_demo_brings_up_a_cluster_and_heals_a_volume_that_lost_a_node() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mayastor.demo"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "$ mayastor-cluster --dir" in out
    assert "replicas on node-1, node-2, node-3" in out
    degraded, online = out.index("Degraded"), out.rindex("Online")
    assert degraded < online
    assert "TimedOut" in out
    assert "every one as written" in out
    assert "No volumes found." in out
    assert out.rstrip().endswith("# demo finished: every step did what it should")
