"""`ChildProcess.pause`: every thread is stopped when it returns."""

from __future__ import annotations

import sys
from pathlib import Path

from mayastor.cluster.processes import ChildProcess

BUSY_THREADS = """
import threading
def spin():
    while True:
        pass
for _ in range(4):
    threading.Thread(target=spin, daemon=True).start()
print("spinning", flush=True)
threading.Event().wait()
"""


class BusyThreads(ChildProcess):
    name = "busy threads"

    def argv(self) -> list[str]:
        return [sys.executable, "-c", BUSY_THREADS]


def thread_states(pid: int) -> list[str]:
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        states.append(stat[stat.rindex(")") + 2])
    return states


def test_pause_returns_once_every_thread_of_a_busy_process_is_stopped(tmp_path: Path) -> None:
    child = BusyThreads(tmp_path, "busy.log")
    proc = child._spawn()
    try:
        child._wait_until(lambda: "spinning" in child.log_tail(), 30, "threads spinning")
        child.pause()
        assert set(thread_states(proc.pid)) == {"T"}, thread_states(proc.pid)
        child.resume()
    finally:
        child.kill()
