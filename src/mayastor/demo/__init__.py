"""`mayastor-demo`: the whole product on one machine, with nothing outside the project.

A cluster comes up (`mayastor-cluster up`: a core agent on its embedded store, three
io-engines with a pool each on sparse files), a three-replica volume is created and
published through the REST API, written and read over NVMe/TCP, one of its replica
nodes is killed and started again, and the volume is seen Degraded and then Online
again after a partial rebuild; each step is shown as typed, with its output. Exit
status 0 when every step did what it should.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from mayastor.demo.cluster_session import ClusterSession
from mayastor.demo.terminal import DemoFailed
from mayastor.restclient import RestClientError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mayastor-demo",
        description="Bring up a one-machine cluster, create and publish a three-replica "
        "volume through REST, write it over NVMe/TCP, lose a node and heal it.",
    )
    parser.add_argument("--keep", action="store_true", help="keep the cluster's folder and logs")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="mayastor-demo-"))
    session = ClusterSession(folder)
    try:
        session.run_all()
    except (DemoFailed, RestClientError, RuntimeError) as exc:
        print(f"\ndemo FAILED: {exc}\n(logs in {folder / 'logs'})", file=sys.stderr)
        args.keep = True
        return 1
    finally:
        session.close()
        if not args.keep:
            shutil.rmtree(folder)
    print("\n# demo finished: every step did what it should")
    return 0
