"""`mayastor-demo`: the product on one machine, with nothing outside the project.

Part 1 starts an io-engine on a file-backed pool in a temporary folder and walks through
Mayastor's README session with `mayastor-client`, printing each command and its output;
halfway it restarts the io-engine to show that pools and replicas come back from disk.
Part 2 (`mirrored_volume`) adds two io-engines and mirrors a volume over all three,
loses one of them under writes and heals it. Exit status 0 when every step did what it
should.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from mayastor.cluster.processes import EngineProcess
from mayastor.demo import terminal
from mayastor.demo.mirrored_volume import MirroredVolume
from mayastor.demo.terminal import DemoFailed

DISK_SIZE = 100 << 20


class Session:
    """Runs client commands against one io-engine and shows them like a terminal."""

    def __init__(self, engine: EngineProcess, disk: Path) -> None:
        self.engine = engine
        self.disk = disk

    def say(self, text: str) -> None:
        terminal.say(text)

    def run(self, *args: str, expect_ok: bool = True) -> str:
        return terminal.run(self.engine, *args, expect_ok=expect_ok)

    def restart(self) -> None:
        self.say(f"restart the io-engine with --pool tpool={self.disk}: the pool comes back")
        self.engine.stop()
        self.engine.pools = [f"tpool={self.disk}"]
        self.engine.start()


def walk_through(session: Session) -> None:
    disk = str(session.disk)
    session.say(f"a {DISK_SIZE >> 20} MiB file stands in for a disk: {disk}")
    session.run("pool", "create", "tpool", disk)
    session.run("pool", "list")
    session.run("replica", "create", "tpool", "replica1", "--size=10")
    session.run("replica", "create", "tpool", "replica2", "--size=1000", "--thin")
    session.run("replica", "list")
    session.say("a name that is taken, and a replica larger than the pool, are refused")
    session.run("replica", "create", "tpool", "replica1", "--size=10", expect_ok=False)
    session.run("replica", "create", "tpool", "replica3", "--size=200", expect_ok=False)
    session.restart()
    listing = session.run("replica", "list")
    if "replica1" not in listing or "replica2" not in listing:
        raise DemoFailed("the replicas did not come back after the restart")
    session.run("-o", "json", "pool", "list")
    session.run("replica", "destroy", "tpool", "replica1")
    session.run("replica", "destroy", "tpool", "replica2")
    listing = session.run("replica", "list")
    if "No replicas have been created" not in listing:
        raise DemoFailed("replicas are still listed after being destroyed")
    session.run("pool", "destroy", "tpool")
    session.run("pool", "list")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mayastor-demo",
        description="Run io-engines on file-backed pools and walk through mayastor-client: "
        "pools and replicas, then a volume mirrored over three io-engines.",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="mayastor-demo-"))
    disk = workdir / "disk.img"
    with open(disk, "wb") as fh:
        fh.truncate(DISK_SIZE)
    engine = EngineProcess("demo-node", workdir)
    print(f"# starting io-engine demo-node (gRPC {engine.endpoint}); log: {engine.log_path}")
    try:
        engine.start()
        walk_through(Session(engine, disk))
        MirroredVolume(engine, workdir).run_all()
    except (DemoFailed, RuntimeError) as exc:
        print(f"\ndemo FAILED: {exc}\n--- io-engine log ---\n{engine.log_tail()}", file=sys.stderr)
        return 1
    finally:
        engine.stop()
        if not args.keep:
            shutil.rmtree(workdir)
    print("\n# demo finished: every step did what it should")
    return 0
