"""Fixtures of the kubectl-mayastor tests: a real cluster, and the plugin run as a user would.

`kubectl` runs ``python -m mayastor.kubectl.main`` as a child process with
``$MAYASTOR_REST`` pointing at the cluster's core agent, and returns its exit status
and output; nothing of the plugin runs in the test's own process.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.control.conftest import cluster, make_cluster
from tests.support.cluster import TestCluster

__all__ = ["Kubectl", "Run", "cluster", "make_cluster"]


@dataclass(frozen=True)
class Run:
    """One run of the plugin: its argv, exit status, stdout and stderr."""

    argv: tuple[str, ...]
    status: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def yaml(self) -> Any:
        return yaml.safe_load(self.out)

    def lines(self) -> list[str]:
        return self.out.splitlines()

    def table(self) -> list[dict[str, str]]:
        """The rows of a table output, as header -> cell (columns split at 2+ blanks)."""
        lines = self.lines()
        header = lines[0]
        starts = [0] + [gap.end() for gap in re.finditer(r" {2,}", header)]
        names = [header[s:e].strip() for s, e in zip(starts, [*starts[1:], None], strict=True)]
        rows = []
        for line in lines[1:]:
            cells = [line[s:e].strip() for s, e in zip(starts, [*starts[1:], None], strict=True)]
            rows.append(dict(zip(names, cells, strict=True)))
        return rows

    def __str__(self) -> str:
        return f"kubectl-mayastor {' '.join(self.argv)} -> {self.status}\n{self.out}{self.err}"


class Kubectl:
    """Runs kubectl-mayastor against one REST URL, in a folder of the test's own."""

    def __init__(self, url: str, cwd: Path) -> None:
        self.url = url
        self.cwd = cwd

    def __call__(self, *argv: str, env: dict[str, str] | None = None) -> Run:
        environment = {**os.environ, "MAYASTOR_REST": self.url, **(env or {})}
        done = subprocess.run(
            [sys.executable, "-m", "mayastor.kubectl.main", *argv],
            capture_output=True,
            text=True,
            timeout=120,
            env=environment,
            cwd=self.cwd,
        )
        return Run(tuple(argv), done.returncode, done.stdout, done.stderr)

    def ok(self, *argv: str) -> Run:
        """Run; it must succeed (exit status 0)."""
        run = self(*argv)
        assert run.status == 0, str(run)
        return run

    def refused(self, *argv: str) -> Run:
        """Run; the API must refuse it (exit status 1, an error on stderr)."""
        run = self(*argv)
        assert run.status == 1, str(run)
        assert run.err.startswith("error: "), str(run)
        return run


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty folder for the plugin to run in."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    return folder


@pytest.fixture
def kubectl(cluster: TestCluster, workdir: Path) -> Kubectl:
    """The plugin against the three-node `cluster`."""
    return Kubectl(cluster.core.rest_url, workdir)


@pytest.fixture
def nowhere(workdir: Path) -> Kubectl:
    """The plugin against a URL where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return Kubectl(f"http://127.0.0.1:{port}", workdir)
