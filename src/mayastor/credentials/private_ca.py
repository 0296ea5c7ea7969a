"""A private certificate authority for one machine's cluster, made with ``openssl``.

`PrivateCa.create` makes a CA key and self-signed certificate in a folder (kept when
they exist, so a cluster brought up again keeps trusting what it issued); `issue`
signs a certificate for a named component with the addresses it serves on as
subject alternative names, usable as both server and client (gRPC peers are both).
Keys are written mode 0600. Nothing here is meant for a production CA: it gives the
one-machine cluster encrypted, mutually authenticated gRPC and HTTPS out of the box.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mayastor.credentials.grpc_tls import GrpcTls
from mayastor.errors import Unavailable

VALID_DAYS = 825


@dataclass(frozen=True)
class IssuedCertificate:
    """Paths of an issued certificate, its key and the CA that signed it."""

    certificate: Path
    key: Path
    ca: Path

    def grpc_tls(self) -> GrpcTls:
        return GrpcTls.load(self.certificate, self.key, self.ca)

    def flags(self, prefix: str) -> list[str]:
        """``PREFIX-cert CERT PREFIX-key KEY PREFIX-ca CA`` for a command line."""
        return [
            f"{prefix}-cert", str(self.certificate),
            f"{prefix}-key", str(self.key),
            f"{prefix}-ca", str(self.ca),
        ]  # fmt: skip


def _openssl(*args: str) -> None:
    try:
        subprocess.run(["openssl", *args], check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise Unavailable("openssl is not installed (Debian package openssl)") from None
    except subprocess.CalledProcessError as exc:
        raise Unavailable(f"openssl {args[0]} failed: {exc.stderr.strip()}") from None


def _subject_alt_names(names: list[str]) -> str:
    entries = []
    for name in names:
        try:
            ipaddress.ip_address(name)
        except ValueError:
            entries.append(f"DNS:{name}")
        else:
            entries.append(f"IP:{name}")
    return ",".join(entries)


@dataclass(frozen=True)
class PrivateCa:
    """A CA key and certificate in `folder` (``ca.key``, ``ca.crt``)."""

    folder: Path

    @property
    def certificate(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def key(self) -> Path:
        return self.folder / "ca.key"

    @classmethod
    def create(cls, folder: Path, name: str = "mayastor-cluster") -> PrivateCa:
        """The CA in `folder`, made first if it is not there.

        Raises:
            Unavailable: openssl is missing or failed.
        """
        folder.mkdir(parents=True, exist_ok=True)
        ca = cls(folder)
        if not (ca.certificate.exists() and ca.key.exists()):
            _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(ca.key))
            os.chmod(ca.key, 0o600)
            _openssl(
                "req", "-x509", "-new", "-key", str(ca.key), "-sha256",
                "-days", str(VALID_DAYS), "-subj", f"/CN={name} CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                "-out", str(ca.certificate),
            )  # fmt: skip
        return ca

    def issue(self, name: str, addresses: list[str]) -> IssuedCertificate:
        """A certificate for `name` valid for `addresses` (IPs or DNS names).

        An existing certificate of that name is kept.

        Raises:
            Unavailable: openssl is missing or failed.
        """
        key = self.folder / f"{name}.key"
        certificate = self.folder / f"{name}.crt"
        if certificate.exists() and key.exists():
            return IssuedCertificate(certificate, key, self.certificate)
        request = self.folder / f"{name}.csr"
        extensions = self.folder / f"{name}.ext"
        extensions.write_text(
            "basicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth,clientAuth\n"
            f"subjectAltName={_subject_alt_names(addresses)}\n"
        )
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
        os.chmod(key, 0o600)
        _openssl("req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(request))
        _openssl(
            "x509", "-req", "-in", str(request), "-CA", str(self.certificate),
            "-CAkey", str(self.key), "-CAcreateserial", "-sha256",
            "-days", str(VALID_DAYS), "-extfile", str(extensions), "-out", str(certificate),
        )  # fmt: skip
        request.unlink()
        extensions.unlink()
        return IssuedCertificate(certificate, key, self.certificate)
