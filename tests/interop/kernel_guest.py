"""Support for the kernel-initiator tests: watching an io-engine, running the guest.

`ControllerWatcher` polls a running `mayastor`'s NVMe controllers (HostRpc
ListNvmfControllers) while the guest runs. `run_guest_checks` boots the guest once with
`guest/check_target.sh` (or another guest script) and returns what it printed, split
into passed and failed checks; it reads the console as the guest runs and calls back
on marker lines, so the host can act in the middle of a guest script (kill an
io-engine, say). The guest reaches the host's 127.0.0.1 as 10.0.2.2.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.empty_pb2 import Empty

from mayastor.api.v1 import host_pb2_grpc
from mayastor.cli.output import message_to_dict

HERE = Path(__file__).resolve().parent
RUN_GUEST = HERE / "kernel_initiator" / "run-guest"
GUEST_SCRIPT = HERE / "guest" / "check_target.sh"
GUEST_LIB = HERE / "guest" / "lib.sh"
"""The helpers every guest script sources, as /harness/files/lib.sh."""
AUTH_KERNEL = os.environ.get("MAYASTOR_AUTH_KERNEL", "linux-image-6.12.95+deb12-amd64")
"""A kernel with NVMe in-band authentication (CONFIG_NVME_HOST_AUTH), for the tests that
need it; Debian's 6.1 has none. Set MAYASTOR_AUTH_KERNEL when backports moved on."""
AUTH_KERNEL_SUITE = "bookworm-backports"


class ControllerWatcher:
    """Polls an io-engine's NVMe controllers while the guest runs, and keeps all it saw.

    Controllers come and go within a guest run (connects, disconnects, digests on and
    off), so the tests look at every controller that ever appeared, by subsystem and
    controller ID, with the last state seen.
    """

    def __init__(self, endpoint: str, interval: float = 0.1) -> None:
        self.endpoint = endpoint
        self.interval = interval
        self.seen: dict[tuple[str, int], dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> ControllerWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def current(self) -> list[dict[str, Any]]:
        """The controllers the io-engine has now."""
        with grpc.insecure_channel(self.endpoint) as channel:
            reply = host_pb2_grpc.HostRpcStub(channel).ListNvmfControllers(Empty(), timeout=10)
        return [message_to_dict(c) for c in reply.controllers]

    def controllers_seen(self, subnqn: str) -> list[dict[str, Any]]:
        return [c for (nqn, _), c in sorted(self.seen.items()) if nqn == subnqn]

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                for ctrl in self.current():
                    self.seen[(ctrl["subnqn"], ctrl["cntlid"])] = ctrl
            except grpc.RpcError:
                pass
            self._stop.wait(self.interval)


@dataclass
class GuestRun:
    """What one guest boot printed."""

    returncode: int
    output: str
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    left_connected: int | None = None
    markers: list[str] = field(default_factory=list)

    def passed_check(self, text: str) -> bool:
        return any(text in line for line in self.passed)

    def value(self, key: str) -> str | None:
        """The value of the last ``KEY=value`` line the guest printed, if any."""
        prefix = f"{key}="
        found = None
        for line in self.output.splitlines():
            if line.startswith(prefix):
                found = line.removeprefix(prefix).strip()
        return found


def run_guest_checks(
    env: dict[str, str],
    *,
    timeout: float = 240,
    script: Path = GUEST_SCRIPT,
    shares: Sequence[tuple[Path, str]] = (),
    files: Sequence[tuple[Path, str]] = (),
    on_marker: Mapping[str, Callable[[], None]] | None = None,
    kernel_package: str | None = None,
    kernel_suite: str | None = None,
    readonly_shares: Sequence[tuple[Path, str]] = (),
    hostfwd: Sequence[tuple[int, int]] = (),
) -> GuestRun:
    """Boot the guest once with `script` (default `check_target.sh`) and `env`.

    The guest's console is read line by line while it runs, so the host can act in the
    middle of a guest script: when the guest prints a line equal to a key of
    `on_marker`, that callback runs (once) in this thread while the guest goes on.

    Args:
        env: ``--env`` values for the script (TARGET_PORT, ...).
        timeout: seconds before run-guest kills the guest (exit 124).
        script: the guest script.
        shares: (host directory, guest mount point) pairs shared read-write over 9p.
        files: (host file, guest path) pairs copied into the guest (extra tools).
        on_marker: marker line -> callback.
        kernel_package, kernel_suite: boot this Debian kernel package (from this apt
            suite) instead of the default 6.1; it gets a cache of its own.
        readonly_shares: (host directory, guest mount point) pairs shared read-only.
        hostfwd: (host port, guest port) pairs: the host's 127.0.0.1:PORT reaches the
            guest's port (TCP).

    Returns:
        What the guest printed: checks passed and failed, markers seen, exit status.

    Raises:
        Exception: the first exception a marker callback raised, once the guest is done.
    """
    argv = [
        sys.executable,
        str(RUN_GUEST),
        "--accel",
        "tcg",
        "--timeout",
        str(timeout),
        "--script",
        str(script),
        "--file",
        str(GUEST_LIB),
    ]
    if kernel_package:
        argv += ["--kernel-package", kernel_package]
    if kernel_suite:
        argv += ["--kernel-suite", kernel_suite]
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    for host_dir, guest_dir in shares:
        argv += ["--share", f"{host_dir}:{guest_dir}"]
    for host_dir, guest_dir in readonly_shares:
        argv += ["--share", f"{host_dir}:{guest_dir}:ro"]
    for host_file, guest_path in files:
        argv += ["--file", f"{host_file}:{guest_path}"]
    for host_port, guest_port in hostfwd:
        argv += ["--hostfwd", f"{host_port}:{guest_port}"]
    pending = dict(on_marker or {})
    seen: list[str] = []
    errors: list[BaseException] = []
    lines: list[str] = []
    with tempfile.TemporaryFile("w+") as stderr:
        with subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            encoding="utf-8",
            errors="replace",
        ) as proc:
            watchdog = threading.Timer(timeout + 60, proc.kill)
            watchdog.start()
            try:
                assert proc.stdout is not None
                for raw in proc.stdout:
                    line = raw.rstrip("\r\n")
                    lines.append(line)
                    callback = pending.pop(line.strip(), None)
                    if callback is not None:
                        seen.append(line.strip())
                        try:
                            callback()
                        except Exception as exc:  # raised once the guest is done
                            errors.append(exc)
                returncode = proc.wait()
            finally:
                watchdog.cancel()
                if proc.poll() is None:
                    proc.kill()
        stderr.seek(0)
        err = stderr.read()
    if errors:
        raise errors[0]
    run = GuestRun(returncode, "\n".join(lines) + "\n" + err, markers=seen)
    for line in lines:
        if line.startswith("CHECK-PASS: "):
            run.passed.append(line.removeprefix("CHECK-PASS: "))
        elif line.startswith("CHECK-FAIL: "):
            run.failed.append(line.removeprefix("CHECK-FAIL: "))
        elif line.startswith("LEFT-CONNECTED cntlid="):
            run.left_connected = int(line.split("=", 1)[1])
    return run
