"""The one-machine cluster's private CA: certificates valid for the right names."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mayastor.credentials.private_ca import PrivateCa


def _text(certificate: Path) -> str:
    return subprocess.run(
        ["openssl", "x509", "-in", str(certificate), "-noout", "-text"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_an_issued_certificate_names_its_addresses_and_is_signed_by_the_ca(
    tmp_path: Path,
) -> None:
    ca = PrivateCa.create(tmp_path)
    issued = ca.issue("core", ["127.0.0.1", "localhost"])
    text = _text(issued.certificate)
    assert "IP Address:127.0.0.1" in text
    assert "DNS:localhost" in text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca.certificate), str(issued.certificate)],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stderr


def test_the_ca_and_issued_certificates_are_kept_when_made_again(tmp_path: Path) -> None:
    ca = PrivateCa.create(tmp_path)
    first = ca.issue("node-1", ["127.0.0.1"]).certificate.read_bytes()
    again = PrivateCa.create(tmp_path)
    assert again.certificate.read_bytes() == ca.certificate.read_bytes()
    assert again.issue("node-1", ["127.0.0.1"]).certificate.read_bytes() == first
