"""The io-engine's ``--cpu-policy``: normal by default, batch on request, nothing else."""

from __future__ import annotations

import os
import threading

import pytest

from mayastor.engine.config import build_parser, config_from_args
from mayastor.engine.cpu_policy import apply_cpu_policy
from mayastor.errors import FailedPrecondition


def test_the_default_policy_is_normal() -> None:
    assert config_from_args([]).cpu_policy == "normal"


def test_batch_is_taken() -> None:
    assert config_from_args(["--cpu-policy", "batch"]).cpu_policy == "batch"


def test_an_unknown_policy_is_refused_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        config_from_args(["--cpu-policy", "fifo"])
    assert "invalid choice: 'fifo'" in capsys.readouterr().err


def test_help_says_when_batch_pays_and_when_not() -> None:
    text = " ".join(build_parser().format_help().split())
    assert "--cpu-policy {normal,batch}" in text
    assert "share cores with each other" in text
    assert "(default: normal)" in text


def test_an_unknown_policy_name_is_a_failed_precondition() -> None:
    with pytest.raises(FailedPrecondition, match="unknown CPU policy 'idle'"):
        apply_cpu_policy("idle")


def _policies_in_thread(name: str) -> tuple[int, int]:
    """Apply `name` from one thread while another runs: the policies both then have."""
    seen: list[int] = []
    ready, applied, release = threading.Event(), threading.Event(), threading.Event()

    def bystander() -> None:
        ready.set()
        applied.wait()
        seen.append(os.sched_getscheduler(0))
        release.set()

    def worker() -> None:
        other = threading.Thread(target=bystander)
        other.start()
        ready.wait()
        apply_cpu_policy(name)
        seen.insert(0, os.sched_getscheduler(0))
        applied.set()
        release.wait()
        other.join()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    return seen[0], seen[1]


def test_batch_puts_every_thread_of_the_process_under_sched_batch() -> None:
    before = os.sched_getscheduler(0)
    try:
        assert _policies_in_thread("batch") == (os.SCHED_BATCH, os.SCHED_BATCH)
    finally:
        apply_cpu_policy("normal")
    assert os.sched_getscheduler(0) == before == os.SCHED_OTHER
