"""A private network for tests: each io-engine in a network namespace of its own.

`TestNetwork` makes a Linux bridge with a private /24 (``10.231.X.0/24``, X the first
range no interface of this machine uses; the bridge is ``.1``) and, per node, a
network namespace joined to the bridge by a veth pair (the node is ``.2``, ``.3``, ...
and its end of the pair is ``eth0``). The core agent's gRPC and etcd bind to the
bridge's address, so io-engines in the namespaces reach them; an io-engine binds its
gRPC API and NVMe/TCP targets to its namespace's address; the tests reach everything
through the bridge from the root namespace. Nothing listens anywhere else.

`cut(node)` sets the node's veth down on the bridge side: both directions go silent at
once (no reset, no ICMP), as when a cable is pulled; `restore(node)` brings it back and
TCP connections that did not time out in between carry on.

Names carry the test process's pid (``msy<pid>b<n>`` bridges, ``msy<pid>x<n>`` veths,
``msy<pid>-<node>`` namespaces). `close` removes everything, also when a test failed;
an `atexit` hook does it when the process ends without it; and the next `TestNetwork`
removes what a process that was killed left (names whose pid is no longer running),
with any process still inside such a namespace. Needs root (`pytest.mark.needs_root`).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import ipaddress
import itertools
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PREFIX = "msy"
SUPERNET = ipaddress.IPv4Network("10.231.0.0/16")
LOCK = Path("/run/lock/mayastor-test-network.lock")
NETNS_DIR = Path("/run/netns")

_LINK = re.compile(rf"^{PREFIX}(\d+)[bx]\d+$")
_NETNS = re.compile(rf"^{PREFIX}(\d+)-")
_serial = itertools.count(1)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS``; a failure raises with its message when `check`."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    try:
        probe = ip("-V", check=False)
    except FileNotFoundError:
        return "the ip command (iproute2) is missing"
    return None if probe.returncode == 0 else f"ip -V failed: {probe.stderr.strip()}"


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _our_links() -> list[str]:
    out = ip("-o", "link", "show").stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]
    return [n for n in names if _LINK.match(n)]


def _our_netns() -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if _NETNS.match(p.name))


def _kill_inside(netns: str) -> None:
    """SIGKILL what still runs in one of our namespaces (io-engines of a killed test)."""
    found = ip("netns", "pids", netns, check=False).stdout.split()
    for pid in found:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def clean_stale() -> list[str]:
    """Remove bridges, veths and namespaces that processes no longer running left
    behind (and kill what runs in such a namespace); returns what was removed."""
    removed = []
    for netns in _our_netns():
        match = _NETNS.match(netns)
        assert match is not None
        if not _alive(int(match.group(1))):
            _kill_inside(netns)
            ip("netns", "delete", netns, check=False)
            removed.append(netns)
    for link in _our_links():
        match = _LINK.match(link)
        assert match is not None
        if not _alive(int(match.group(1))):
            ip("link", "delete", link, check=False)
            removed.append(link)
    return removed


def _used_ranges() -> set[int]:
    """The third octet of every 10.231.X.0/24 an interface of this machine is in."""
    used = set()
    for line in ip("-o", "-4", "addr", "show").stdout.splitlines():
        for word in line.split():
            if "/" not in word:
                continue
            with contextlib.suppress(ValueError):
                address = ipaddress.IPv4Interface(word)
                if address.ip in SUPERNET:
                    used.add(int(address.ip.packed[2]))
    return used


@dataclass
class NetnsNode:
    """One node's namespace, its address and the bridge side of its veth pair."""

    name: str
    netns: str
    address: str
    veth: str
    up: bool = True


class TestNetwork:
    """A bridge with a private /24 and a network namespace per node (see the module).

    Use as a context manager, or `start` then `close`.
    """

    __test__ = False

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.bridge = f"{PREFIX}{self.pid}b{next(_serial)}"
        self.subnet: ipaddress.IPv4Network | None = None
        self.nodes: dict[str, NetnsNode] = {}
        self._hosts: Iterator[ipaddress.IPv4Address] | None = None
        self._closed = False

    @property
    def gateway(self) -> str:
        """The bridge's address: where servers of the root namespace bind for the nodes."""
        assert self.subnet is not None, "the network is not started"
        return str(self.subnet.network_address + 1)

    def start(self) -> TestNetwork:
        """Make the bridge in a free 10.231.X.0/24 (after removing stale leftovers).

        Raises:
            RuntimeError: not root, no iproute2, or no free range.
        """
        reason = unavailable()
        if reason is not None:
            raise RuntimeError(reason)
        LOCK.parent.mkdir(parents=True, exist_ok=True)
        with open(LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            clean_stale()
            free = [x for x in range(1, 255) if x not in _used_ranges()]
            if not free:
                raise RuntimeError("no free /24 left in 10.231.0.0/16 for a test network")
            self.subnet = ipaddress.IPv4Network(f"10.231.{free[0]}.0/24")
            atexit.register(self.close)
            ip("link", "add", self.bridge, "type", "bridge", "stp_state", "0")
            ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
        self._hosts = itertools.islice(self.subnet.hosts(), 1, None)
        return self

    def add_node(self, name: str) -> NetnsNode:
        """A namespace for node `name` on the bridge, with loopback up; its address is
        the next free one of the range."""
        assert self._hosts is not None, "the network is not started"
        if name in self.nodes:
            return self.nodes[name]
        address = str(next(self._hosts))
        node = NetnsNode(
            name=name,
            netns=f"{PREFIX}{self.pid}-{name}",
            address=address,
            veth=f"{PREFIX}{self.pid}x{next(_serial)}",
        )
        self.nodes[name] = node
        ip("netns", "add", node.netns)
        ip("link", "add", node.veth, "type", "veth", "peer", "name", "eth0", "netns", node.netns)
        ip("link", "set", node.veth, "master", self.bridge)
        ip("link", "set", node.veth, "up")
        ip("-n", node.netns, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", node.netns, "link", "set", "eth0", "up")
        ip("-n", node.netns, "link", "set", "lo", "up")
        return node

    def address(self, name: str) -> str:
        return self.nodes[name].address

    def netns(self, name: str) -> str:
        return self.nodes[name].netns

    def cut(self, name: str) -> None:
        """Pull node `name`'s cable: its veth goes down on the bridge side, so nothing
        reaches it and nothing it sends arrives."""
        node = self.nodes[name]
        ip("link", "set", node.veth, "down")
        node.up = False

    def restore(self, name: str) -> None:
        """Plug it back in."""
        node = self.nodes[name]
        ip("link", "set", node.veth, "up")
        node.up = True

    def is_cut(self, name: str) -> bool:
        return not self.nodes[name].up

    def close(self) -> None:
        """Remove the namespaces, veths and the bridge (idempotent). Whatever still
        runs in a namespace is killed: close the processes first."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(ValueError):
            atexit.unregister(self.close)
        for node in self.nodes.values():
            _kill_inside(node.netns)
            ip("netns", "delete", node.netns, check=False)
            ip("link", "delete", node.veth, check=False)
        ip("link", "delete", self.bridge, check=False)

    def __enter__(self) -> TestNetwork:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
