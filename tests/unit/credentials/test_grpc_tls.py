"""TLS files for gRPC: all three or none, each a readable PEM file."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mayastor.credentials import grpc_tls
from mayastor.credentials.grpc_tls import GrpcTls
from mayastor.credentials.private_ca import PrivateCa
from mayastor.errors import InvalidArgument


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    grpc_tls.add_flags(parser, "grpc_tls")
    return parser.parse_args(argv)


def test_no_tls_flag_means_plain_grpc() -> None:
    assert GrpcTls.from_flags(_args([]), "grpc_tls") is None


def test_some_but_not_all_tls_flags_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="--grpc-tls-cert, --grpc-tls-key, --grpc-tls-ca"):
        GrpcTls.from_flags(_args(["--grpc-tls-cert", str(tmp_path / "c")]), "grpc_tls")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    argv = ["--grpc-tls-cert", str(missing), "--grpc-tls-key", "k", "--grpc-tls-ca", "c"]
    with pytest.raises(InvalidArgument, match=f"certificate {missing}"):
        GrpcTls.from_flags(_args(argv), "grpc_tls")


def test_a_file_that_is_not_pem_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(InvalidArgument, match="not a PEM file"):
        GrpcTls.load(junk, junk, junk)


def test_issued_files_load_and_name_their_flags(tmp_path: Path) -> None:
    issued = PrivateCa.create(tmp_path).issue("node-1", ["127.0.0.1", "localhost"])
    tls = GrpcTls.from_flags(_args(issued.flags("--grpc-tls")), "grpc_tls")
    assert tls is not None
    assert tls.certificate.startswith(b"-----BEGIN CERTIFICATE-----")
    assert tls.ca == issued.ca.read_bytes()
    assert oct(issued.key.stat().st_mode & 0o777) == "0o600"
