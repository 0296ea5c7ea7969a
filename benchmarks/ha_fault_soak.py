"""The random-fault test as a soak: hundreds of seeded rounds, with their figures.

Runs the rounds of tests/integration/control/test_random_faults.py (`FaultRounds`: a
cluster on etcd with four io-engines in network namespaces of their own, two volumes
under verifying write loads; each round SIGKILLs an io-engine, the core agent or etcd,
freezes an io-engine or cuts its link, then checks that every volume is Online again
with all its children, that every acknowledged write reads back from each child and
that specs and io-engines agree; at the end every replica is read from its pool file
and checked too). Needs root (network namespaces).

Reported: the rounds run, the seed, how long the volumes took to be Online again after
each kind of fault (median and worst), the writes acknowledged (none lost, or the run
stops with the failing round), and the wall time of a round.

Usage: ``.venv/bin/python benchmarks/ha_fault_soak.py [--rounds 500] [--seed N]
[--dir /var/tmp]``. Prints each round and writes the figures to
``benchmarks/results/ha_fault_soak.json`` (also when a round fails: then with the
failure and the seed to replay it with ``MAYASTOR_FAULT_SEED``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the rounds live with the tests

from tests.integration.control.test_random_faults import FaultRounds  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "ha_fault_soak.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--seed", type=int, default=None, help="default: a new one")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="for the cluster")
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else uuid.uuid4().int % 1_000_000
    print(f"soak: seed {seed}, {args.rounds} rounds", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="ha-soak.", dir=args.dir))
    load_before = list(os.getloadavg())
    campaign = FaultRounds(workdir, seed, log=lambda line: print(line, flush=True))
    started = time.monotonic()
    failure: str | None = None
    try:
        campaign.start()
        for _ in range(args.rounds):
            campaign.run_round()
        campaign.stop_and_check_replicas()
    except (AssertionError, RuntimeError, OSError, httpx.HTTPError) as exc:
        failure = f"{type(exc).__name__}: {exc}"
        print(f"soak: round {len(campaign.results) + 1} failed: {failure}", flush=True)
    finally:
        campaign.close()
        if failure is None:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"soak: logs kept in {workdir}", flush=True)
    document: dict[str, Any] = {
        "benchmark": "ha_fault_soak",
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "load_average_before": load_before,
        "load_average_after": list(os.getloadavg()),
        "rounds_asked": args.rounds,
        "wall_seconds": round(time.monotonic() - started, 1),
        "failure": failure,
        **campaign.summary(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=1) + "\n")
    summary = {k: v for k, v in document.items() if k != "round_results"}
    print(json.dumps(summary, indent=1))
    print(f"written to {args.output}")
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(run())
