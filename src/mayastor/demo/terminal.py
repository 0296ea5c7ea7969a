"""How the demo shows its steps, and how it fails.

A step that does not do what it should raises `DemoFailed`; the demo stops there and
says which step it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class DemoFailed(Exception):
    """A step of the demo did not do what it should."""


def say(text: str) -> None:
    print(f"\n# {text}", flush=True)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll `condition`; `DemoFailed` naming `what` if it is not true within `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise DemoFailed(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.2)
