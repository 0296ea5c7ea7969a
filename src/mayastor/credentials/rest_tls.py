"""HTTPS for the REST API, with client certificates when a client CA is given."""

from __future__ import annotations

import argparse
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mayastor.errors import InvalidArgument


@dataclass(frozen=True)
class RestServerTls:
    """The REST server's certificate and key, and the CA its clients' certificates need.

    Without `client_ca` any client may connect (a token may still be required); with
    it, the TLS handshake refuses a client that shows no certificate signed by it.
    """

    certificate: Path
    key: Path
    client_ca: Path | None = None

    @classmethod
    def from_flags(cls, args: argparse.Namespace) -> RestServerTls | None:
        """From ``--rest-tls-cert``, ``--rest-tls-key``, ``--rest-tls-client-ca``.

        Raises:
            InvalidArgument: a certificate without its key (or the reverse), a client CA
                without a certificate, or a file that cannot be read.
        """
        cert, key, client_ca = args.rest_tls_cert, args.rest_tls_key, args.rest_tls_client_ca
        if not (cert or key or client_ca):
            return None
        if not (cert and key):
            raise InvalidArgument("HTTPS needs both --rest-tls-cert and --rest-tls-key")
        for path in (cert, key, client_ca):
            if path and not Path(path).is_file():
                raise InvalidArgument(f"cannot read {path}: no such file")
        return cls(Path(cert), Path(key), Path(client_ca) if client_ca else None)

    def uvicorn_options(self) -> dict[str, Any]:
        """The ``ssl_*`` settings of `uvicorn.Config`."""
        options: dict[str, Any] = {
            "ssl_certfile": str(self.certificate),
            "ssl_keyfile": str(self.key),
        }
        if self.client_ca is not None:
            options["ssl_ca_certs"] = str(self.client_ca)
            options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        return options


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add the REST server's HTTPS and token flags to `parser`."""
    group = parser.add_argument_group(
        "REST authentication",
        "Plain HTTP without tokens unless these are given.",
    )
    group.add_argument("--rest-tls-cert", metavar="PEM", help="serve HTTPS with this certificate")
    group.add_argument("--rest-tls-key", metavar="PEM", help="the certificate's private key")
    group.add_argument(
        "--rest-tls-client-ca",
        metavar="PEM",
        help="require a client certificate signed by this CA (with --rest-tls-cert)",
    )
    group.add_argument(
        "--rest-token-file",
        metavar="FILE",
        help="require a bearer token: lines 'admin TOKEN' or 'read-only TOKEN'",
    )
