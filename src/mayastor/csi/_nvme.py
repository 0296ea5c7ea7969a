"""The kernel's NVMe/TCP initiator, as the node plugin drives it: nvme-cli and sysfs.

`Sysfs` reads what the kernel has: subsystems (``/sys/class/nvme-subsystem``) by NQN,
their controllers (state, address, host NQN) and namespaces (block device, uuid,
size, the per-path devices). It is the only record of what is connected: the plugin
keeps none, so a plugin killed between any two steps finds the truth again here.
`NvmeInitiator` connects (``nvme connect`` with the node's host NQN and the volume's
timeouts), disconnects and rescans through nvme-cli.

With native multipath (the default) a namespace is the head device
``nvme<subsys>n<nsid>`` under the subsystem, and each controller has a hidden path
device ``nvme<subsys>c<ctrl>n<nsid>``, which carries the I/O timeout; without it, the
namespace device sits under its controller.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from mayastor.csi._commands import run
from mayastor.csi._dhchap import DhchapSecretSource
from mayastor.csi._parameters import NvmeSettings
from mayastor.csi.errors import FailedPrecondition, InvalidArgument, Unavailable

log = logging.getLogger(__name__)

_HEAD = re.compile(r"^nvme\d+n\d+$")
_PATH = re.compile(r"^nvme\d+c\d+n\d+$")
_CONTROLLER = re.compile(r"^nvme\d+$")
LIVE = "live"


@dataclass(frozen=True)
class Target:
    """Where a volume's target is: ``nvmf://HOST:PORT/NQN[?uuid=NAMESPACE-UUID]``.

    Attributes:
        host, port: the target's NVMe/TCP address.
        nqn: the subsystem NQN (``nqn.2019-05.io.openebs:<volume uuid>``).
        namespace_uuid: the uuid the volume's namespace reports, when the URI names one
            (the volume's: every nexus of the volume shows it).
    """

    host: str
    port: int
    nqn: str
    namespace_uuid: uuid.UUID | None = None

    @classmethod
    def parse(cls, uri: str) -> Target:
        """Read a target URI.

        Raises:
            InvalidArgument: not an ``nvmf://host:port/nqn`` URI.
        """
        parts = urlsplit(uri)
        try:
            port = parts.port
        except ValueError:
            port = None
        nqn = parts.path.lstrip("/")
        if parts.scheme not in ("nvmf", "nvmf+tcp") or not parts.hostname or not port or not nqn:
            raise InvalidArgument(f"publish_context uri {uri!r} is not nvmf://HOST:PORT/NQN")
        namespace_uuid = None
        found = parse_qs(parts.query).get("uuid")
        if found:
            try:
                namespace_uuid = uuid.UUID(found[0])
            except ValueError:
                raise InvalidArgument(f"publish_context uri {uri!r}: bad uuid") from None
        return cls(parts.hostname, port, nqn, namespace_uuid)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def accepts(self, namespace_uuid: uuid.UUID | None) -> bool:
        """Whether a namespace reporting `namespace_uuid` is this volume's: the volume's
        uuid (the one in the NQN: every nexus of the volume shows it), or the uuid the
        URI names; one reporting any other uuid is not this volume's."""
        if namespace_uuid is None:
            return True
        volume = self.nqn.rsplit(":", 1)[-1]
        return namespace_uuid == self.namespace_uuid or str(namespace_uuid) == volume


@dataclass(frozen=True)
class Controller:
    """One NVMe controller of a subsystem (``nvme3``): one path to the target."""

    name: str
    state: str
    transport: str
    traddr: str
    trsvcid: str
    hostnqn: str

    def reaches(self, target: Target) -> bool:
        return self.transport == "tcp" and (self.traddr, self.trsvcid) == (
            target.host,
            str(target.port),
        )


@dataclass(frozen=True)
class Namespace:
    """A namespace's block device.

    Attributes:
        name: the block device (``nvme3n1``), what is formatted and mounted.
        devno: its (major, minor).
        uuid: the uuid the namespace reports (its NGUID/UUID), if any.
        size: bytes.
        paths: the per-controller path devices (multipath), where I/O timeouts live.
    """

    name: str
    devno: tuple[int, int]
    uuid: uuid.UUID | None
    size: int
    paths: tuple[str, ...]

    @property
    def device(self) -> str:
        return f"/dev/{self.name}"


@dataclass(frozen=True)
class Subsystem:
    """An NVMe subsystem the kernel is connected to, with its controllers and namespaces."""

    name: str
    nqn: str
    controllers: tuple[Controller, ...]
    namespaces: tuple[Namespace, ...]

    def healthy(self) -> bool:
        return bool(self.controllers) and all(c.state == LIVE for c in self.controllers)

    def condition(self) -> str:
        """What is wrong with the paths, in words, or "" when every controller is live."""
        if not self.controllers:
            return f"subsystem {self.nqn} has no controller left"
        down = [f"{c.name} is {c.state}" for c in self.controllers if c.state != LIVE]
        return ", ".join(down)


def is_stale(subsystem: Subsystem, target: Target, hostnqn: str) -> bool:
    """Whether a connection of the volume's subsystem is not this node's to `target`: to
    another address (the target moved), as another host NQN, or to a namespace of
    another uuid (an older nexus)."""
    if any(not c.reaches(target) or c.hostnqn != hostnqn for c in subsystem.controllers):
        return True
    return any(not target.accepts(ns.uuid) for ns in subsystem.namespaces)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _address(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(",") if "=" in part)


def _devno(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(":")
    return int(major), int(minor)


class Sysfs:
    """What the kernel says about NVMe subsystems and block devices.

    Args:
        root: the sysfs mount (a copy of its layout in tests).
        dev: where the device nodes are.
    """

    def __init__(self, root: Path = Path("/sys"), dev: Path = Path("/dev")) -> None:
        self.root = Path(root)
        self.dev = Path(dev)

    def fabrics_ready(self) -> list[str]:
        """What the kernel lacks to connect over NVMe/TCP (empty when nothing)."""
        missing = []
        if not (self.root / "class" / "nvme-fabrics" / "ctl").exists():
            missing.append("kernel module nvme_fabrics (/sys/class/nvme-fabrics/ctl)")
        if not (self.root / "module" / "nvme_tcp").exists():
            missing.append("kernel module nvme_tcp")
        return missing

    def subsystems(self) -> list[Subsystem]:
        base = self.root / "class" / "nvme-subsystem"
        if not base.is_dir():
            return []
        found = []
        for entry in sorted(base.iterdir()):
            subsystem = self._subsystem(entry)
            if subsystem is not None:
                found.append(subsystem)
        return found

    def subsystem(self, nqn: str) -> Subsystem | None:
        """The subsystem with NQN `nqn`, if the kernel has it (only that one is read whole:
        many calls poll this at once while many volumes attach)."""
        base = self.root / "class" / "nvme-subsystem"
        if not base.is_dir():
            return None
        for entry in sorted(base.iterdir()):
            if _read(entry / "subsysnqn") == nqn:
                found = self._subsystem(entry)
                if found is not None and found.nqn == nqn:
                    return found
        return None

    def _subsystem(self, path: Path) -> Subsystem | None:
        nqn = _read(path / "subsysnqn")
        if not nqn:
            return None
        controllers = []
        namespaces = []
        try:
            entries = sorted(p.name for p in path.iterdir())
        except OSError:
            return None
        ctrl_dirs = [self.root / "class" / "nvme" / e for e in entries if _CONTROLLER.match(e)]
        for ctrl in ctrl_dirs:
            addr = _address(_read(ctrl / "address"))
            controllers.append(
                Controller(
                    name=ctrl.name,
                    state=_read(ctrl / "state") or "unknown",
                    transport=_read(ctrl / "transport"),
                    traddr=addr.get("traddr", ""),
                    trsvcid=addr.get("trsvcid", ""),
                    hostnqn=_read(ctrl / "hostnqn"),
                )
            )
        heads = [path / e for e in entries if _HEAD.match(e)]
        if not heads:
            for ctrl in ctrl_dirs:
                heads += [p for p in sorted(ctrl.glob("nvme*n*")) if _HEAD.match(p.name)]
        for head in heads:
            nsid = _read(head / "nsid")
            paths = tuple(
                p.name
                for ctrl in ctrl_dirs
                for p in sorted(ctrl.glob("nvme*c*n*"))
                if _PATH.match(p.name) and _read(p / "nsid") == nsid
            )
            namespaces.append(self._namespace(head, paths))
        return Subsystem(path.name, nqn, tuple(controllers), tuple(namespaces))

    def _namespace(self, path: Path, paths: tuple[str, ...]) -> Namespace:
        ns_uuid = None
        text = _read(path / "uuid")
        if not text:
            wwid = _read(path / "wwid")
            text = wwid.removeprefix("uuid.") if wwid.startswith("uuid.") else ""
        if text:
            try:
                ns_uuid = uuid.UUID(text)
            except ValueError:
                ns_uuid = None
        dev = _read(path / "dev")
        return Namespace(
            name=path.name,
            devno=_devno(dev) if dev else (0, 0),
            uuid=ns_uuid,
            size=int(_read(path / "size") or 0) * 512,
            paths=paths,
        )

    def block_name(self, devno: tuple[int, int]) -> str | None:
        """The block device (``nvme3n1``) of a device number, if there is one."""
        link = self.root / "dev" / "block" / f"{devno[0]}:{devno[1]}"
        try:
            return link.resolve(strict=True).name
        except OSError:
            return None

    def block_size(self, name: str) -> int:
        """Bytes of block device `name` (0 when it is gone)."""
        return int(_read(self.root / "block" / name / "size") or 0) * 512

    def controller_action(self, name: str, action: str) -> None:
        """Write ``1`` to a controller's `action` attribute (``delete_controller``,
        ``rescan_controller``).

        Raises:
            FileNotFoundError: the controller is gone.
            OSError: the kernel refused.
        """
        (self.root / "class" / "nvme" / name / action).write_text("1")

    def set_io_timeout(self, namespace: Namespace, seconds: int) -> list[str]:
        """Set the I/O timeout of every path of `namespace`; returns the devices set.

        Raises:
            OSError: the kernel refused the value.
        """
        done = []
        for name in (*namespace.paths, namespace.name):
            attr = self.root / "block" / name / "queue" / "io_timeout"
            if attr.exists():
                attr.write_text(str(seconds * 1000))
                done.append(name)
        return done


class NvmeInitiator:
    """nvme-cli for one node: connects with the node's host NQN.

    Args:
        hostnqn: the node's host NQN (``nqn.2019-05.io.openebs:node-name:<node>``);
            targets admit only the host NQNs their volume is published to.
        sysfs: where to read what the kernel has.
        device_timeout: seconds to wait for a namespace to appear after a connect.
        dhchap_secret: asked before each connect for the node's DH-HMAC-CHAP secret
            (`mayastor.csi._dhchap`); None, or an answer of None: connect without one.
    """

    def __init__(
        self,
        hostnqn: str,
        sysfs: Sysfs,
        *,
        device_timeout: float = 15.0,
        dhchap_secret: DhchapSecretSource | None = None,
    ) -> None:
        self.hostnqn = hostnqn
        self.sysfs = sysfs
        self.device_timeout = device_timeout
        self.dhchap_secret = dhchap_secret

    async def connect(
        self, target: Target, settings: NvmeSettings, *, volume: str
    ) -> tuple[Subsystem, Namespace]:
        """Connect to `target` unless a controller already reaches it (live or
        reconnecting), and return the namespace once its block device is there. The
        caller deals with stale connections first (`is_stale`).

        Raises:
            Unavailable: nvme connect failed (unreachable, or this host NQN or its
                secret refused), no namespace showed up, or the secret could not be had.
        """
        subsystem = self.sysfs.subsystem(target.nqn)
        if subsystem is None or not any(
            c.reaches(target) and c.hostnqn == self.hostnqn for c in subsystem.controllers
        ):
            argv = [
                "nvme",
                "connect",
                "--transport=tcp",
                f"--traddr={target.host}",
                f"--trsvcid={target.port}",
                f"--nqn={target.nqn}",
                f"--hostnqn={self.hostnqn}",
            ]
            if settings.nr_io_queues is not None:
                argv.append(f"--nr-io-queues={settings.nr_io_queues}")
            if settings.ctrl_loss_tmo is not None:
                argv.append(f"--ctrl-loss-tmo={settings.ctrl_loss_tmo}")
            if settings.keep_alive_tmo is not None:
                argv.append(f"--keep-alive-tmo={settings.keep_alive_tmo}")
            secret = await self.dhchap_secret() if self.dhchap_secret is not None else None
            if secret is not None:
                argv.append(f"--dhchap-secret={secret}")
            result = await run(argv, volume=volume, error=Unavailable, check=False)
            if result.returncode != 0 and "already connected" not in result.output:
                raise Unavailable(
                    f"nvme connect to {target.address} {target.nqn} as {self.hostnqn} "
                    f"exited with {result.returncode}: {result.output} (is the volume "
                    "published to this node, and its target reachable?)",
                    volume=volume,
                    step="nvme connect",
                )
            log.info(
                "volume %s: connected to %s at %s as %s",
                volume,
                target.nqn,
                target.address,
                self.hostnqn,
            )
        return await self.wait_namespace(target, volume=volume)

    async def wait_namespace(self, target: Target, *, volume: str) -> tuple[Subsystem, Namespace]:
        """The subsystem and namespace of `target` once its block device exists.

        Raises:
            Unavailable: it did not show up within the device timeout.
        """
        deadline = time.monotonic() + self.device_timeout
        pause = 0.02
        while True:
            subsystem = self.sysfs.subsystem(target.nqn)
            if subsystem is not None:
                for namespace in subsystem.namespaces:
                    if (
                        namespace.devno != (0, 0)
                        and target.accepts(namespace.uuid)
                        and (self.sysfs.dev / namespace.name).exists()
                    ):
                        return subsystem, namespace
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"no namespace of {target.nqn} reporting the volume's uuid"
                    + (f" or {target.namespace_uuid}" if target.namespace_uuid else "")
                    + f" appeared within {self.device_timeout:.0f} s of the connect",
                    volume=volume,
                    step="find the device",
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)

    async def disconnect(self, nqn: str, *, volume: str, timeout: float = 30.0) -> None:
        """Delete every controller of subsystem `nqn` (sysfs ``delete_controller``, as
        ``nvme disconnect`` does, without its scan of every subsystem, which can crash
        while other volumes attach and detach) and wait until the subsystem is gone.

        Raises:
            Unavailable: the kernel refused, or the subsystem is still there after `timeout`.
        """
        subsystem = self.sysfs.subsystem(nqn)
        if subsystem is None:
            return
        for controller in subsystem.controllers:
            try:
                await asyncio.to_thread(
                    self.sysfs.controller_action, controller.name, "delete_controller"
                )
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise Unavailable(
                    f"the kernel refused to delete controller {controller.name}: {exc}",
                    volume=volume,
                    step="nvme disconnect",
                ) from exc
        deadline = time.monotonic() + timeout
        while self.sysfs.subsystem(nqn) is not None:
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"subsystem {nqn} is still there {timeout:.0f} s after its controllers "
                    "were deleted",
                    volume=volume,
                    step="nvme disconnect",
                )
            await asyncio.sleep(0.1)
        log.info("volume %s: disconnected from %s", volume, nqn)

    async def rescan(self, subsystem: Subsystem, *, volume: str) -> None:
        """Ask every controller to read its namespaces again (a grown size): sysfs
        ``rescan_controller``, what ``nvme ns-rescan`` does.

        Raises:
            FailedPrecondition: the kernel refused.
        """
        for controller in subsystem.controllers:
            try:
                await asyncio.to_thread(
                    self.sysfs.controller_action, controller.name, "rescan_controller"
                )
            except OSError as exc:
                raise FailedPrecondition(
                    f"cannot rescan controller {controller.name}: {exc}",
                    volume=volume,
                    step="nvme ns-rescan",
                ) from exc
