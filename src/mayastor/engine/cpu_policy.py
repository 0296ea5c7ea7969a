"""The io-engine's Linux scheduling policy (``mayastor --cpu-policy``).

Measured with three io-engines on one core (benchmarks/speed.py, section nexus): under
SCHED_OTHER the replica's io-engine, woken by the nexus's first command, preempts the
nexus in the middle of its batch and serves a command or two per wake-up; under
SCHED_BATCH each process runs its batch to the end first: +19 % replicated writes at
QD32 and 17 % less CPU per write. Where io-engines share cores with applications,
SCHED_BATCH would let their CPU use delay the I/O, hence not the default.
"""

from __future__ import annotations

import logging
import os

from mayastor.errors import FailedPrecondition

log = logging.getLogger(__name__)

CPU_POLICIES: dict[str, int] = {"normal": os.SCHED_OTHER, "batch": os.SCHED_BATCH}
"""Policy names as the flag takes them, and the Linux policy of each."""


def apply_cpu_policy(name: str) -> None:
    """Put every thread of this process (and, by inheritance, every thread it starts
    later) under the policy `name`.

    Raises:
        FailedPrecondition: an unknown name, or the kernel refused the policy.
    """
    if name not in CPU_POLICIES:
        raise FailedPrecondition(f"unknown CPU policy {name!r}: one of {', '.join(CPU_POLICIES)}")
    policy = CPU_POLICIES[name]
    for task in os.listdir("/proc/self/task"):
        try:
            os.sched_setscheduler(int(task), policy, os.sched_param(0))
        except ProcessLookupError:
            continue  # a thread that ended meanwhile
        except OSError as exc:
            raise FailedPrecondition(f"cannot set CPU policy {name!r}: {exc}") from exc
    if name != "normal":
        log.info("CPU policy %s: wake-ups of this io-engine do not preempt the running task", name)
