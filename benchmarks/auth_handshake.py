"""What DH-HMAC-CHAP costs: milliseconds of CPU per authenticated queue, per DH group.

One transaction is the controller's and the host's work together (in one process,
no sockets): negotiate, challenge (the controller's DH key pair), reply (the host's key
pair, both sides' shared secret, the responses), Success1 and, bidirectional,
Success2. The controller's own share is measured too, since it is what an io-engine
pays for each queue a host connects (the Linux host authenticates every I/O queue).

Usage: ``.venv/bin/python benchmarks/auth_handshake.py [--rounds N] [--output FILE]``.
Prints a table and writes the figures as JSON (default
``benchmarks/results/auth_handshake.json``); the best of three runs is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from mayastor.nvmf.auth import (
    ControllerAuthentication,
    ControllerKeys,
    DhchapSecret,
    DhGroupId,
    HashId,
    HostAuthentication,
    SequenceNumbers,
)

DEFAULT_OUTPUT = Path(__file__).parent / "results" / "auth_handshake.json"
HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000001"
SUBNQN = "nqn.2019-05.io.openebs:benchmark"
SECRET = DhchapSecret.generate(32, HashId.SHA256)
CTRL_SECRET = DhchapSecret.generate(32)
SEQNUMS = SequenceNumbers(os.urandom)


def one_transaction(group: DhGroupId, bidirectional: bool) -> tuple[float, float]:
    """(whole transaction, controller's part) in seconds of process CPU time."""
    ctrl = ControllerAuthentication(
        ControllerKeys(SECRET, CTRL_SECRET),
        hostnqn=HOSTNQN,
        subnqn=SUBNQN,
        seqnums=SEQNUMS,
        dhgroups=[group],
    )
    host = HostAuthentication(
        SECRET,
        CTRL_SECRET if bidirectional else None,
        hostnqn=HOSTNQN,
        subnqn=SUBNQN,
        tid=1,
        seqnums=SEQNUMS,
    )
    clock = time.process_time
    ctrl_time = 0.0
    start = clock()
    negotiate = host.negotiate()
    t = clock()
    ctrl.send(negotiate)
    challenge = ctrl.receive()
    ctrl_time += clock() - t
    reply = host.challenge(challenge)
    t = clock()
    ctrl.send(reply)
    success1 = ctrl.receive()
    ctrl_time += clock() - t
    success2 = host.success1(success1)
    if success2 is not None:
        t = clock()
        ctrl.send(success2)
        ctrl_time += clock() - t
    total = clock() - start
    assert ctrl.authenticated
    return total, ctrl_time


def measure(group: DhGroupId, bidirectional: bool, rounds: int) -> dict[str, float]:
    best_total = best_ctrl = float("inf")
    for _ in range(3):
        totals = [one_transaction(group, bidirectional) for _ in range(rounds)]
        best_total = min(best_total, sum(t for t, _ in totals) / rounds)
        best_ctrl = min(best_ctrl, sum(c for _, c in totals) / rounds)
    return {"transaction_ms": best_total * 1e3, "controller_ms": best_ctrl * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    print(f"{'DH group':<10} {'mode':<14} {'transaction ms':>15} {'controller ms':>14}")
    for group in DhGroupId:
        for bidirectional in (False, True):
            mode = "bidirectional" if bidirectional else "one-way"
            figures = measure(group, bidirectional, args.rounds)
            results[f"{group.name.lower()}/{mode}"] = figures
            print(
                f"{group.name.lower():<10} {mode:<14} {figures['transaction_ms']:>15.2f} "
                f"{figures['controller_ms']:>14.2f}"
            )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "python": sys.version.split()[0],
                "machine": platform.machine(),
                "rounds": args.rounds,
                "results": results,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
