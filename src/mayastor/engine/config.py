"""The io-engine's configuration: its command-line flags and their defaults.

Every port and path is a flag, so several io-engines run side by side on one machine
(different ports, different node names).
"""

from __future__ import annotations

import argparse
import enum
import logging
import socket
from dataclasses import dataclass, field
from typing import TypeVar

from mayastor.api.store_keys import parse_etcd_url
from mayastor.credentials import grpc_tls
from mayastor.credentials.grpc_tls import GrpcTls
from mayastor.engine.cpu_policy import CPU_POLICIES
from mayastor.engine.disk_allow import default_patterns
from mayastor.engine.target_flags import add_target_flags, target_config_from_args
from mayastor.errors import InvalidArgument
from mayastor.nvmf import poll
from mayastor.nvmf.auth import (
    DEFAULT_DHGROUPS,
    DEFAULT_HASHES,
    DhchapSecret,
    DhGroupId,
    HashId,
    SecretError,
)
from mayastor.target import TargetConfig

DEFAULT_GRPC_ENDPOINT = "127.0.0.1:10124"
DEFAULT_REPLICA_PORT = 8420
DEFAULT_NEXUS_PORT = 4421
NQN_PREFIX = "nqn.2019-05.io.openebs"


@dataclass(frozen=True)
class PoolArg:
    """A pool to create or import at start: ``--pool NAME=DISK``."""

    name: str
    disk: str


@dataclass(frozen=True)
class EngineConfig:
    node_name: str = field(default_factory=socket.gethostname)
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 10124
    nvmf_address: str = "127.0.0.1"
    replica_port: int = DEFAULT_REPLICA_PORT
    nexus_port: int = DEFAULT_NEXUS_PORT
    pools: tuple[PoolArg, ...] = ()
    log_level: str = "info"
    state_dir: str = ""
    child_io_timeout: float = 5.0
    registration_endpoint: str = ""
    registration_interval: float = 5.0
    ps_endpoint: str = ""
    metrics_endpoint: str = ""
    dhchap_secret_file: str = ""
    dhchap_hashes: tuple[HashId, ...] = DEFAULT_HASHES
    dhchap_dhgroups: tuple[DhGroupId, ...] = DEFAULT_DHGROUPS
    nvmf_limits: TargetConfig = field(default_factory=TargetConfig)
    disk_allow: tuple[str, ...] = ()
    """--disk-allow patterns as given; empty: the default (see `disk_patterns`)."""
    poll_budget_us: float = poll.DEFAULT_BUDGET_US
    """Microseconds the event loop busy-polls for an expected answer (0: never)."""
    cpu_policy: str = "normal"
    """The Linux scheduling policy of the io-engine's threads: normal or batch."""

    @property
    def disk_patterns(self) -> tuple[str, ...]:
        """The paths this io-engine may open as disks: --disk-allow, else block
        devices and files under the state directory."""
        return self.disk_allow or default_patterns(self.state_path)

    tls: GrpcTls | None = None
    """TLS of its gRPC server and of its calls to the core agent (None: plain)."""

    @property
    def state_path(self) -> str:
        """Where this io-engine keeps its own state (the embedded nexus-info store)."""
        return self.state_dir or f"/var/lib/mayastor/{self.node_name}"

    @property
    def grpc_endpoint(self) -> str:
        return f"{self.grpc_host}:{self.grpc_port}"

    @property
    def hostnqn(self) -> str:
        """The NQN this io-engine uses when it connects to other io-engines."""
        return f"{NQN_PREFIX}:node-name:{self.node_name}"


def parse_endpoint(text: str, default_port: int) -> tuple[str, int]:
    """Split ``HOST:PORT`` (or ``HOST``, or ``[v6]:PORT``) into host and port.

    Raises:
        InvalidArgument: when the port is not a number in 1..65535.
    """
    host, port = text, str(default_port)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host:
        raise InvalidArgument(f"endpoint {text!r} has no host")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"endpoint {text!r}: port must be a number from 1 to 65535")
    return host, int(port)


def parse_pool_arg(text: str) -> PoolArg:
    name, sep, disk = text.partition("=")
    if not sep or not name or not disk:
        raise argparse.ArgumentTypeError(f"expected NAME=DISK, got {text!r}")
    return PoolArg(name, disk)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mayastor",
        description=(
            "The Mayastor io-engine: turns local disks into pools, carves replicas out of "
            "them and serves them over NVMe/TCP; managed through its gRPC API "
            "(see mayastor-client)."
        ),
        epilog="Example: mayastor --node-name node-1 --pool tpool=/dev/loop8",
    )
    parser.add_argument(
        "-N",
        "--node-name",
        default=socket.gethostname(),
        help="name of this storage node (default: the host name)",
    )
    parser.add_argument(
        "-g",
        "--grpc-endpoint",
        default=DEFAULT_GRPC_ENDPOINT,
        metavar="HOST:PORT",
        help="where the gRPC API listens (default: %(default)s)",
    )
    parser.add_argument(
        "--nvmf-address",
        default="127.0.0.1",
        metavar="IP",
        help="address the NVMe/TCP targets listen on (default: %(default)s)",
    )
    parser.add_argument(
        "--replica-port",
        type=int,
        default=DEFAULT_REPLICA_PORT,
        help="NVMe/TCP port for shared replicas (default: %(default)s)",
    )
    parser.add_argument(
        "--nexus-port",
        type=int,
        default=DEFAULT_NEXUS_PORT,
        help="NVMe/TCP port for published nexuses (default: %(default)s)",
    )
    parser.add_argument(
        "-P",
        "--pool",
        action="append",
        type=parse_pool_arg,
        default=[],
        metavar="NAME=DISK",
        help="create (or import, when the disk already holds it) a pool at start; repeatable",
    )
    parser.add_argument(
        "--state-dir",
        default="",
        metavar="DIR",
        help="where nexus info is kept until the control plane's store takes over "
        "(default: /var/lib/mayastor/NODE-NAME)",
    )
    parser.add_argument(
        "--disk-allow",
        action="append",
        default=[],
        metavar="PATTERN",
        help="a file or block device this io-engine may open as a disk (pool, bdev, nexus "
        "child): an absolute glob, e.g. '/dev/disk/by-id/nvme-*' or '/srv/pools/*' ('*' "
        "spans folders); repeatable; any other path is refused (default: /dev/* and files "
        "under --state-dir)",
    )
    parser.add_argument(
        "--child-io-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="an I/O to a remote nexus child that takes longer fails, and the child is "
        "retired (default: %(default)s)",
    )
    parser.add_argument(
        "-R",
        "--registration-endpoint",
        default="",
        metavar="HOST:PORT",
        help="the core agent's gRPC endpoint: register with it every 5 s and keep nexus "
        "info in the cluster store through it (default: run on its own)",
    )
    parser.add_argument(
        "--registration-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between two registrations (default: %(default)s; keep it well under "
        "the core agent's --node-deadline)",
    )
    parser.add_argument(
        "-p",
        "--ps-endpoint",
        default="",
        metavar="etcd://HOST:PORT[,...]",
        help="the cluster's etcd: keep nexus info there directly, so children can be "
        "retired while no core agent runs (needs --registration-endpoint; default: "
        "through the core agent)",
    )
    parser.add_argument(
        "--metrics-endpoint",
        default="",
        metavar="HOST:PORT",
        help="serve Prometheus metrics (pools, replicas, volumes) at http://HOST:PORT/metrics "
        "(default: off; Mayastor's exporter uses port 9502)",
    )
    parser.add_argument(
        "--dhchap-secret-file",
        default="",
        metavar="PATH",
        help="a file holding this io-engine's DH-HMAC-CHAP secret (DHHC-1:...), proven "
        "to other io-engines whose replicas ask for in-band authentication (default: none)",
    )
    parser.add_argument(
        "--dhchap-hashes",
        type=_hashes,
        default=DEFAULT_HASHES,
        metavar="LIST",
        help="hash functions DH-HMAC-CHAP may use on shares with secrets, most preferred "
        "first (default: sha256,sha384,sha512)",
    )
    parser.add_argument(
        "--dhchap-dhgroups",
        type=_dhgroups,
        default=DEFAULT_DHGROUPS,
        metavar="LIST",
        help="DH groups it may use, most preferred first; larger groups cost more CPU per "
        "queue (default: ffdhe2048,ffdhe3072,ffdhe4096,ffdhe6144,ffdhe8192,null)",
    )
    parser.add_argument(
        "-l",
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level (default: %(default)s)",
    )
    parser.add_argument(
        "--poll-budget-us",
        type=float,
        default=poll.DEFAULT_BUDGET_US,
        metavar="US",
        help="after sending on an NVMe/TCP connection (a command to a remote child, an "
        "answer to a host), keep the event loop polling instead of sleeping for up to US "
        "microseconds: answers that come quickly are read without the wake-up latency "
        "(lower QD1 latency for some CPU); stops as soon as bytes arrive, and stops "
        "spinning while answers keep coming later than that; 0 turns it off "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--cpu-policy",
        default="normal",
        choices=list(CPU_POLICIES),
        help="Linux scheduling policy of the io-engine: 'batch' (SCHED_BATCH) keeps the "
        "wake-ups of its threads from preempting the task running on their core, so a "
        "process runs its batch of work to the end before another takes the core; "
        "for io-engines that share cores with each other (several on one machine: "
        "a nexus's write then reaches its replicas as whole batches); leave 'normal' "
        "where io-engines share cores with applications, whose CPU use would then "
        "delay the I/O; 'normal' leaves the policy it was started with (SCHED_OTHER "
        "unless started under chrt or a service manager's CPU scheduling policy) "
        "(default: %(default)s)",
    )
    add_target_flags(parser)
    grpc_tls.add_flags(parser, "grpc_tls", " of the gRPC API and of the calls to the core agent")
    return parser


def config_from_args(argv: list[str] | None = None) -> EngineConfig:
    """Parse the command line into an EngineConfig; exits with usage on bad flags."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        host, port = parse_endpoint(args.grpc_endpoint, 10124)
    except InvalidArgument as exc:
        parser.error(str(exc))
    if args.child_io_timeout <= 0:
        parser.error("--child-io-timeout must be positive")
    for flag in ("replica_port", "nexus_port"):
        if not 0 < getattr(args, flag) < 65536:
            parser.error(f"--{flag.replace('_', '-')} must be from 1 to 65535")
    if args.registration_endpoint:
        try:
            parse_endpoint(args.registration_endpoint, 50051)
        except InvalidArgument as exc:
            parser.error(f"--registration-endpoint: {exc}")
    if args.metrics_endpoint:
        try:
            parse_endpoint(args.metrics_endpoint, 9502)
        except InvalidArgument as exc:
            parser.error(f"--metrics-endpoint: {exc}")
    if not 0 <= args.poll_budget_us <= 10_000:
        parser.error("--poll-budget-us must be from 0 to 10000 microseconds")
    if not 0 < args.registration_interval <= 60:
        parser.error("--registration-interval must be more than 0 and at most 60 seconds")
    if args.ps_endpoint:
        if not args.registration_endpoint:
            parser.error("--ps-endpoint needs --registration-endpoint (the cluster's keys)")
        try:
            parse_etcd_url(args.ps_endpoint)
        except ValueError as exc:
            parser.error(f"--ps-endpoint: {exc}")
    if args.dhchap_secret_file:
        try:
            read_dhchap_secret(args.dhchap_secret_file)
        except (OSError, SecretError) as exc:
            parser.error(f"--dhchap-secret-file: {exc}")
    try:
        nvmf_limits = target_config_from_args(args)
    except InvalidArgument as exc:
        parser.error(str(exc))
    for pattern in args.disk_allow:
        if not pattern.startswith("/"):
            parser.error(f"--disk-allow {pattern!r}: a pattern is an absolute path (/dev/sd*)")
    names = [p.name for p in args.pool]
    if len(names) != len(set(names)):
        parser.error("each --pool name may be given once")
    try:
        tls = GrpcTls.from_flags(args, "grpc_tls")
    except InvalidArgument as exc:
        parser.error(str(exc))
    return EngineConfig(
        node_name=args.node_name,
        grpc_host=host,
        grpc_port=port,
        nvmf_address=args.nvmf_address,
        replica_port=args.replica_port,
        nexus_port=args.nexus_port,
        pools=tuple(args.pool),
        log_level=args.log_level,
        state_dir=args.state_dir,
        child_io_timeout=args.child_io_timeout,
        registration_endpoint=args.registration_endpoint,
        registration_interval=args.registration_interval,
        ps_endpoint=args.ps_endpoint,
        metrics_endpoint=args.metrics_endpoint,
        dhchap_secret_file=args.dhchap_secret_file,
        dhchap_hashes=args.dhchap_hashes,
        dhchap_dhgroups=args.dhchap_dhgroups,
        nvmf_limits=nvmf_limits,
        disk_allow=tuple(args.disk_allow),
        poll_budget_us=args.poll_budget_us,
        cpu_policy=args.cpu_policy,
        tls=tls,
    )


_E = TypeVar("_E", bound=enum.Enum)


def _named_list(text: str, kind: type[_E], what: str) -> tuple[_E, ...]:
    names = [name.strip().upper() for name in text.split(",") if name.strip()]
    known = {m.name: m for m in kind}
    unknown = [n.lower() for n in names if n not in known]
    if unknown or not names:
        choices = ",".join(m.name.lower() for m in kind)
        raise argparse.ArgumentTypeError(f"{what} {','.join(unknown)!r} not among {choices}")
    return tuple(dict.fromkeys(known[n] for n in names))


def _hashes(text: str) -> tuple[HashId, ...]:
    return _named_list(text, HashId, "hash")


def _dhgroups(text: str) -> tuple[DhGroupId, ...]:
    return _named_list(text, DhGroupId, "DH group")


def read_dhchap_secret(path: str) -> DhchapSecret:
    """The secret in the file `path` (its first line).

    Raises:
        OSError: the file cannot be read.
        SecretError: it holds no valid DHHC-1 secret.
    """
    with open(path, encoding="ascii", errors="replace") as fh:
        return DhchapSecret.parse(fh.readline().strip())


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
