"""How the demo shows its steps: each `mayastor-client` command and its output, as typed.

A step that does not do what it should raises `DemoFailed`; the demo stops there and
says which step it was.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from typing import Any

from mayastor.cluster.processes import EngineProcess


class DemoFailed(Exception):
    """A step of the demo did not do what it should."""


def say(text: str) -> None:
    print(f"\n# {text}", flush=True)


def run(engine: EngineProcess, *args: str, expect_ok: bool = True, show_bind: bool = False) -> str:
    """Run `mayastor-client ARGS` against `engine`, showing the command and its output.

    Args:
        engine: the io-engine to talk to.
        args: the client's arguments.
        expect_ok: whether the command should succeed (False: it must be refused).
        show_bind: show ``-b ENDPOINT`` (when several io-engines are in play).

    Returns:
        What the command printed on stdout.

    Raises:
        DemoFailed: it succeeded or failed against `expect_ok`.
    """
    shown = ("-b", engine.endpoint, *args) if show_bind else args
    print(f"$ mayastor-client {shlex.join(shown)}", flush=True)
    result = engine.client(*args)
    out = (result.stdout + result.stderr).rstrip()
    if out:
        print(out, flush=True)
    if expect_ok and result.returncode != 0:
        raise DemoFailed(f"`mayastor-client {shlex.join(args)}` failed: {out}")
    if not expect_ok and result.returncode == 0:
        raise DemoFailed(f"`mayastor-client {shlex.join(args)}` should have been refused")
    return result.stdout


def query(engine: EngineProcess, *args: str) -> Any:
    """``mayastor-client -o json ARGS`` on `engine`, parsed and not shown."""
    result = engine.client("-o", "json", *args)
    if result.returncode != 0:
        raise DemoFailed(f"`mayastor-client {shlex.join(args)}` failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll `condition`; `DemoFailed` naming `what` if it is not true within `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise DemoFailed(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.2)
