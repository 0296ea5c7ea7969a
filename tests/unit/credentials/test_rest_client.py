"""What REST clients show: flags first, then environment variables."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mayastor.credentials import rest_client
from mayastor.credentials.rest_client import RestClientCredentials
from mayastor.errors import InvalidArgument


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    rest_client.add_flags(parser)
    return parser.parse_args(argv)


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (rest_client.TOKEN_ENV, rest_client.CA_ENV, rest_client.CERT_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(rest_client.KEY_ENV, raising=False)


def test_nothing_given_sends_nothing() -> None:
    assert RestClientCredentials.from_flags(_args([])).httpx_options() == {}


def test_a_token_file_becomes_the_authorization_header(tmp_path: Path) -> None:
    token = tmp_path / "admin.token"
    token.write_text("s3cret-token-value\n")
    options = RestClientCredentials.from_flags(_args(["--token-file", str(token)])).httpx_options()
    assert options["headers"] == {"Authorization": "Bearer s3cret-token-value"}


def test_the_token_comes_from_the_environment_without_a_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(rest_client.TOKEN_ENV, "from-the-environment")
    assert RestClientCredentials.from_flags(_args([])).token == "from-the-environment"


def test_an_empty_token_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(InvalidArgument, match="is empty"):
        RestClientCredentials.from_flags(_args(["--token-file", str(empty)]))


def test_a_client_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(InvalidArgument, match="both --client-cert and --client-key"):
        RestClientCredentials.from_flags(_args(["--client-cert", str(cert)]))


def test_a_missing_ca_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="no such file"):
        RestClientCredentials.from_flags(_args(["--ca-cert", str(tmp_path / "nope.pem")]))
