"""`mayastor-demo`, the README's first command, does every step it shows."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_the_demo_walks_through_pools_replicas_and_a_mirrored_volume_that_heals() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mayastor.demo"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "$ mayastor-client replica create tpool replica2 --size=1000 --thin" in out
    assert "No replicas have been created" in out
    assert "faulted (timed_out)" in out
    assert "the volume reads back as written" in out
    assert out.rstrip().endswith("# demo finished: every step did what it should")
