"""Support for the kernel-initiator tests: a target process on the host, a guest run.

`TargetProcess` starts `tests.interop.target_runner` and follows its JSON lines (the
controllers it has, as they change). `run_guest_checks` boots the guest once with
`guest/check_target.sh` and returns what it printed, split into passed and failed
checks. The guest reaches the host's 127.0.0.1 as 10.0.2.2.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RUN_GUEST = HERE / "kernel_initiator" / "run-guest"
GUEST_SCRIPT = HERE / "guest" / "check_target.sh"


class TargetProcess:
    """`target_runner` in a child process; `events` holds every line it printed."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.interop.target_runner", *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.events: list[dict[str, Any]] = []
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()
        self.ready = self.wait_for("ready", timeout=30)

    def _follow(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            self.events.append(event)
            self._lines.put(event)
        self._lines.put(None)

    def wait_for(self, kind: str, timeout: float, **match: object) -> dict[str, Any]:
        """The next event of `kind` whose fields equal `match`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                event = self._lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                event = {}
            if event is None:
                raise AssertionError(f"target runner ended: {self.stderr()}")
            if event.get("event") == kind and all(event.get(k) == v for k, v in match.items()):
                return event
            if time.monotonic() > deadline:
                raise AssertionError(f"no {kind} event {match} in {timeout}s")

    def controllers_seen(self) -> list[dict[str, Any]]:
        """Every controller that appeared in any listing, by cntlid (last seen state)."""
        found: dict[int, dict[str, Any]] = {}
        for event in self.events:
            for ctrl in event.get("controllers", []):
                found[ctrl["cntlid"]] = ctrl
        return [found[k] for k in sorted(found)]

    def current_controllers(self) -> list[dict[str, Any]]:
        listings = [e for e in self.events if e.get("event") == "controllers"]
        return listings[-1]["controllers"] if listings else []

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()

    def stop(self) -> None:
        """Close stdin (the runner closes the target and the device), then reap it."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._thread.join(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


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
