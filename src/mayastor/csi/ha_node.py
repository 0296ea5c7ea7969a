"""The ha-node agent: watches this node's NVMe paths to volume targets and replaces the
ones that fail, so the kernel's native NVMe multipath resumes the I/O it holds.

When a volume's target dies, the kernel keeps the volume's block device and queues its
I/O while its controller tries to reconnect. The agent sees that controller leave the
``live`` state; once no path of the subsystem has been live for `failure_grace`
seconds, it reports the path to the core agent (``POST
/v0/app-nodes/{node}/failed-paths``), which moves the target to another node (unless it
has already) and answers with the new path. The agent connects it with the same host
NQN and timeouts: the new target serves the same subsystem NQN and namespace with other
controller IDs, so the kernel adds it as a second path of the same device and sends the
queued I/O down it. The dead path is then deleted.

`PathWatch` decides (what failed, when to report, which paths to drop) from snapshots
of sysfs and the time, knowing no I/O; `HaNodeAgent` is the loop around it that reads
sysfs, calls the REST API and runs nvme-cli.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mayastor.csi._dhchap import RestDhchapSecret
from mayastor.csi._nvme import LIVE, Controller, NvmeInitiator, Subsystem, Sysfs, Target
from mayastor.csi._parameters import NvmeSettings
from mayastor.csi.errors import CsiError
from mayastor.restclient import AsyncRestClient, RestClientError, RestError

log = logging.getLogger(__name__)

VOLUME_NQN_PREFIX = "nqn.2019-05.io.openebs:"
"""Subsystems of volume targets; the agent leaves every other subsystem alone."""

_GOING = frozenset({"deleting", "deleting (no IO)"})
"""States of a controller on its way out: neither a path nor a failure."""


@dataclass(frozen=True)
class Report:
    """Tell the core agent that `controller`, the last path of subsystem `nqn`, failed."""

    nqn: str
    controller: Controller


@dataclass(frozen=True)
class Prune:
    """Delete `controller`: it failed and another path of its subsystem is live."""

    nqn: str
    controller: Controller


@dataclass
class PathWatch:
    """What to do about this node's paths, from one sysfs snapshot after another.

    Args:
        failure_grace: seconds a subsystem may have no live path (the kernel may
            reconnect by itself) before it is reported; also how long a failed path
            beside a live one is kept before it is pruned.
        retry: seconds between reports of a subsystem that stays without a live path
            (the core agent was unreachable, or could not move the target yet).
    """

    failure_grace: float = 2.0
    retry: float = 5.0
    _failing_since: dict[tuple[str, str], float] = field(default_factory=dict)
    _reported_at: dict[str, float] = field(default_factory=dict)

    def step(self, subsystems: Sequence[Subsystem], now: float) -> list[Report | Prune]:
        """The reports and prunes due at `now` for these subsystems."""
        actions: list[Report | Prune] = []
        seen: set[tuple[str, str]] = set()
        for subsystem in subsystems:
            if not subsystem.nqn.startswith(VOLUME_NQN_PREFIX):
                continue
            paths = [c for c in subsystem.controllers if c.state not in _GOING]
            failed = [c for c in paths if c.state != LIVE]
            for ctrl in failed:
                seen.add((subsystem.nqn, ctrl.name))
                self._failing_since.setdefault((subsystem.nqn, ctrl.name), now)
            if not failed:
                self._reported_at.pop(subsystem.nqn, None)
                continue
            overdue = [
                c
                for c in failed
                if now - self._failing_since[(subsystem.nqn, c.name)] >= self.failure_grace
            ]
            if len(failed) < len(paths):
                actions += [Prune(subsystem.nqn, c) for c in overdue]
                self._reported_at.pop(subsystem.nqn, None)
                continue
            last = self._reported_at.get(subsystem.nqn)
            if overdue and (last is None or now - last >= self.retry):
                newest = max(overdue, key=lambda c: self._failing_since[(subsystem.nqn, c.name)])
                actions.append(Report(subsystem.nqn, newest))
                self._reported_at[subsystem.nqn] = now
        for key in set(self._failing_since) - seen:
            del self._failing_since[key]
        return actions


@dataclass(frozen=True)
class AddressMap:
    """How this node reaches the addresses the control plane hands out, and back.

    A node behind NAT (a VM on qemu's user network, say) dials another address than
    the one an io-engine advertises: ``127.0.0.1=10.0.2.2`` maps one to the other.
    """

    entries: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, specs: Sequence[str]) -> AddressMap:
        """Read ``ADVERTISED=DIALLED`` entries.

        Raises:
            ValueError: an entry without '=' or with an empty side.
        """
        entries = {}
        for spec in specs:
            advertised, sep, dialled = spec.partition("=")
            if not sep or not advertised or not dialled:
                raise ValueError(f"address map entry {spec!r} is not ADVERTISED=DIALLED")
            entries[advertised] = dialled
        return cls(entries)

    def dialled(self, host: str) -> str:
        return self.entries.get(host, host)

    def advertised(self, host: str) -> str:
        for advertised, dialled in self.entries.items():
            if dialled == host:
                return advertised
        return host


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _seconds_attribute(path: Path) -> int | None:
    """A controller's timeout in seconds as sysfs shows it ("off" is -1: never)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "off":
        return -1
    try:
        return int(text)
    except ValueError:
        return None


class HaNodeAgent:
    """The ha-node agent of one application node.

    Args:
        node_name: the app node's name (the CSI node plugin's ``--node-name``).
        rest: the core agent's REST API.
        sysfs: where the kernel's NVMe state is read.
        endpoint: what the node registers as its endpoint (informational).
        address_map: how advertised target addresses are dialled from here.
        watch: the decision rules (grace and retry periods).
        period: seconds between looks at sysfs.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        node_name: str,
        rest: AsyncRestClient,
        sysfs: Sysfs,
        *,
        endpoint: str,
        address_map: AddressMap | None = None,
        watch: PathWatch | None = None,
        period: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node_name = node_name
        self.rest = rest
        self.dhchap_secret = RestDhchapSecret(rest, node_name)
        """The node's secret for the paths it connects anew (a core with --dhchap)."""
        self.sysfs = sysfs
        self.endpoint = endpoint
        self.address_map = address_map or AddressMap()
        self.watch = watch or PathWatch()
        self.period = period
        self._clock = clock
        self.replaced = 0
        """Paths connected in place of failed ones since start."""

    async def register(self, stop: asyncio.Event) -> bool:
        """Register with the core agent, trying again until it answers or `stop` is set;
        True once registered."""
        pause = 0.5
        while not stop.is_set():
            try:
                await self.rest.register_app_node(self.node_name, self.endpoint)
            except RestClientError as exc:
                log.warning("cannot register app node %s yet: %s", self.node_name, exc)
            else:
                log.info("app node %s registered (endpoint %s)", self.node_name, self.endpoint)
                return True
            try:
                await asyncio.wait_for(stop.wait(), pause)
            except TimeoutError:
                pause = min(pause * 2, 10.0)
        return False

    async def run(self, stop: asyncio.Event) -> None:
        """Register, then watch and repair paths until `stop` is set."""
        if not await self.register(stop):
            return
        while not stop.is_set():
            await self.check()
            try:
                await asyncio.wait_for(stop.wait(), self.period)
            except TimeoutError:
                pass

    async def check(self) -> None:
        """One look at the paths, and what it calls for."""
        for action in self.watch.step(self.sysfs.subsystems(), self._clock()):
            if isinstance(action, Report):
                await self._replace(action)
            else:
                self._prune(action)

    # ------------------------------------------------------------------ actions

    async def _replace(self, report: Report) -> None:
        ctrl = report.controller
        address = f"{_bracketed(self.address_map.advertised(ctrl.traddr))}:{ctrl.trsvcid}"
        log.warning(
            "path %s to %s at %s has not been live for %g s (%s): reporting it",
            ctrl.name,
            report.nqn,
            address,
            self.watch.failure_grace,
            ctrl.state,
        )
        try:
            answer = await self.rest.report_failed_path(self.node_name, report.nqn, address)
        except RestError as exc:
            if exc.status == 404 and "app node" in str(exc):
                await self.rest.register_app_node(self.node_name, self.endpoint)
            log.warning("the core agent did not replace the path to %s: %s", report.nqn, exc)
            return
        except RestClientError as exc:
            log.warning("the core agent cannot be reached to replace %s: %s", report.nqn, exc)
            return
        try:
            advertised = Target.parse(str(answer["uri"]))
        except (CsiError, KeyError, TypeError) as exc:
            log.error(
                "the core agent answered no usable path for %s: %r (%s)", report.nqn, answer, exc
            )
            return
        target = Target(
            self.address_map.dialled(advertised.host),
            advertised.port,
            advertised.nqn,
            advertised.namespace_uuid,
        )
        if ctrl.reaches(target):
            log.info(
                "%s: the target is still at %s; the kernel keeps reconnecting", report.nqn, address
            )
            return
        initiator = NvmeInitiator(ctrl.hostnqn, self.sysfs, dhchap_secret=self.dhchap_secret)
        attributes = self.sysfs.root / "class" / "nvme" / ctrl.name
        settings = NvmeSettings(
            ctrl_loss_tmo=_seconds_attribute(attributes / "ctrl_loss_tmo"),
            keep_alive_tmo=_seconds_attribute(attributes / "kato") or None,
        )
        try:
            await initiator.connect(target, settings, volume=report.nqn)
        except CsiError as exc:
            log.warning(
                "cannot connect the new path of %s at %s: %s", report.nqn, target.address, exc
            )
            return
        self.replaced += 1
        log.info("%s: new path %s connected in place of %s", report.nqn, target.address, ctrl.name)

    def _prune(self, prune: Prune) -> None:
        attr = self.sysfs.root / "class" / "nvme" / prune.controller.name / "delete_controller"
        try:
            attr.write_text("1")
        except OSError as exc:
            log.warning(
                "cannot delete failed path %s of %s: %s", prune.controller.name, prune.nqn, exc
            )
            return
        log.info(
            "failed path %s (%s:%s) of %s deleted: another path is live",
            prune.controller.name,
            prune.controller.traddr,
            prune.controller.trsvcid,
            prune.nqn,
        )
