"""Support for the kernel-initiator tests: watching an io-engine, running the guest.

`ControllerWatcher` polls a running `mayastor`'s NVMe controllers (HostRpc
ListNvmfControllers) while the guest runs. `run_guest_checks` boots the guest once with
`guest/check_target.sh` and returns what it printed, split into passed and failed
checks. The guest reaches the host's 127.0.0.1 as 10.0.2.2.
"""

from __future__ import annotations

import subprocess
import sys
import threading
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

    def passed_check(self, text: str) -> bool:
        return any(text in line for line in self.passed)


def run_guest_checks(env: dict[str, str], *, timeout: float = 240) -> GuestRun:
    """Boot the guest once with `check_target.sh` and `env` (TARGET_PORT, ...)."""
    argv = [
        sys.executable,
        str(RUN_GUEST),
        "--accel",
        "tcg",
        "--timeout",
        str(timeout),
        "--script",
        str(GUEST_SCRIPT),
    ]
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 60)
    run = GuestRun(proc.returncode, proc.stdout + proc.stderr)
    for line in proc.stdout.splitlines():
        if line.startswith("CHECK-PASS: "):
            run.passed.append(line.removeprefix("CHECK-PASS: "))
        elif line.startswith("CHECK-FAIL: "):
            run.failed.append(line.removeprefix("CHECK-FAIL: "))
        elif line.startswith("LEFT-CONNECTED cntlid="):
            run.left_connected = int(line.split("=", 1)[1])
    return run
