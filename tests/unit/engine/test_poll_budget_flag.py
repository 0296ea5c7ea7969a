"""The io-engine's ``--poll-budget-us``: the bounded poll's budget, 0 turning it off."""

from __future__ import annotations

import pytest

from mayastor.engine.config import build_parser, config_from_args
from mayastor.nvmf import poll


def test_the_default_budget_is_the_polls_default() -> None:
    assert config_from_args([]).poll_budget_us == poll.DEFAULT_BUDGET_US


def test_zero_turns_the_poll_off() -> None:
    assert config_from_args(["--poll-budget-us", "0"]).poll_budget_us == 0


@pytest.mark.parametrize("value", ["-1", "10001"])
def test_a_budget_out_of_range_is_refused_with_usage(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        config_from_args(["--poll-budget-us", value])
    assert "--poll-budget-us must be from 0 to 10000" in capsys.readouterr().err


def test_help_describes_the_budget_and_its_default() -> None:
    text = " ".join(build_parser().format_help().split())
    assert "--poll-budget-us US" in text
    assert f"0 turns it off (default: {poll.DEFAULT_BUDGET_US})" in text
