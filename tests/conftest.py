"""Suite-wide fixtures: every test must leave no child process and no socket behind."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


def _children() -> set[int]:
    me = str(os.getpid())
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            found.add(int(entry))
    return found


def _sockets() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(f"{fd}->{target}")
    return found


@pytest.fixture(autouse=True)
def _leaves_nothing_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    children, sockets = _children(), _sockets()
    yield
    left_children = _children() - children
    left_sockets = _sockets() - sockets
    assert not left_children, f"{request.node.nodeid} left child processes {left_children}"
    assert not left_sockets, f"{request.node.nodeid} left sockets open: {left_sockets}"
