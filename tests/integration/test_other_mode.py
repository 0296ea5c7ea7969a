"""The data plane passes in the mode the suite does not run in: compiled or pure Python.

The suite runs in one mode (compiled modules when `./run.sh setup` built them and
they are current, pure Python with ``MAYASTOR_PURE_PYTHON=1``); this test runs a
data-plane subset in a pytest of its own in the other mode: the block devices' I/O
requests and the file drivers, the PDU codec, our initiator's queue and its
connection (faults, reconnects and authentication included), the target's queue pair,
connection and commands, the nexus's I/O path, and the target conformance with our
initiator over real sockets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mayastor.compiled import COMPILED, PURE_ENV, Manifest, compiled_modules, decide
from mayastor.compiled_build import missing_tools

ROOT = Path(__file__).resolve().parents[2]
SUBSET = (
    "tests/unit/bdev",
    "tests/integration/bdev",
    "tests/unit/nvmf",
    "tests/unit/nvmf_host",
    "tests/unit/target",
    "tests/unit/nexus",
    "tests/integration/target/test_with_initiator.py",
    "tests/integration/target/test_connection_lifetime.py",
    "tests/integration/target/test_data_path.py",
    "tests/integration/target/test_trickle.py",
    "tests/integration/target/test_fuzz.py",
    "tests/integration/nvmf_host",
)


def other_mode() -> tuple[str, str]:
    """The value of ``MAYASTOR_PURE_PYTHON`` for the other mode, and the summary line a
    process in it reports."""
    total = len(COMPILED)
    if compiled_modules().modules:
        return "1", f"compiled modules: 0 of {total} ({PURE_ENV}=1)"
    why_not = missing_tools()
    if why_not:
        pytest.skip(f"only pure Python on this machine: {why_not}")
    reason = decide(Manifest.read(), {})
    assert not reason, f"the compiled modules are not current ({reason}): run ./run.sh setup"
    return "0", f"compiled modules: {total} of {total}"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_data_plane_subset_passes_in_the_other_mode() -> None:
    pure, summary = other_mode()
    env = {**os.environ, PURE_ENV: pure}
    probe = "from mayastor.compiled import compiled_modules as c; print(c().summary)"
    reported = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert reported.stdout.strip() == summary
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUBSET],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=580,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.splitlines()[-1]
