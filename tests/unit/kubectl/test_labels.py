"""Labels as kubectl takes them: ``key=value`` sets, ``key-`` removes, bad forms refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mayastor.kubectl.labels import (
    LabelChange,
    parse_label,
    parse_label_change,
    parse_label_rule,
)

NAME = st.from_regex(r"\A[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?\Z")
PREFIX = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z0-9]{1,10}){0,3}\Z")
KEY = st.one_of(NAME, st.builds(lambda p, n: f"{p}/{n}", PREFIX, NAME))


def test_key_equals_value_sets_a_label() -> None:
    assert parse_label_change("zone=us-east-1") == LabelChange("zone", "us-east-1")


def test_key_dash_removes_a_label() -> None:
    change = parse_label_change("zone-")
    assert change == LabelChange("zone", None)
    assert change.removes


def test_a_key_with_a_dns_prefix_is_a_key() -> None:
    assert parse_label("openebs.io/zone=a") == ("openebs.io/zone", "a")


def test_a_key_ending_in_a_dash_is_removed_by_another_dash() -> None:
    with pytest.raises(ValueError):
        parse_label_change("zone--")
    assert parse_label_change("my-zone-") == LabelChange("my-zone", None)


@pytest.mark.parametrize(
    "text",
    [
        "zone",  # neither form
        "-",  # no key
        "=a",  # no key
        "zone=",  # empty value (the REST path cannot carry it)
        "zone=a=b",  # '=' in the value
        "zo ne=a",  # space in the key
        "zone=a b",  # space in the value
        "-zone=a",  # key starts with a dash
        "zone_=a",  # key ends with an underscore
        "Bad_Prefix.io/zone=a",  # prefix not a DNS subdomain
        "/zone=a",  # empty prefix
        "a" * 64 + "=v",  # name too long
        "zone=" + "v" * 64,  # value too long
    ],
)
def test_a_bad_label_change_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_label_change(text)


def test_a_label_without_a_value_is_refused_where_a_value_is_needed() -> None:
    with pytest.raises(ValueError, match="key=value"):
        parse_label("zone")


def test_a_placement_rule_without_a_value_means_any_value() -> None:
    assert parse_label_rule("zone") == ("zone", "")
    assert parse_label_rule("zone=a") == ("zone", "a")


@given(KEY, NAME)
def test_a_valid_label_reads_back_from_its_text(key: str, value: str) -> None:
    change = parse_label_change(f"{key}={value}")
    assert change == LabelChange(key, value)
    assert parse_label_change(str(change)) == change


@given(KEY)
def test_a_valid_removal_reads_back_from_its_text(key: str) -> None:
    change = parse_label_change(f"{key}-")
    assert change == LabelChange(key, None)
    assert str(change) == f"{key}-"


@given(st.text(max_size=80))
def test_any_text_is_a_label_change_or_value_error(text: str) -> None:
    try:
        change = parse_label_change(text)
    except ValueError:
        return
    assert change.key
    assert change.value is None or change.value
