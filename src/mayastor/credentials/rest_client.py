"""What a REST client shows the core agent: a bearer token, a client certificate, the CA.

Command-line programs (kubectl-mayastor, the CSI plugins, the operator) take the same
flags, each with an environment variable, so a token need not appear on a command
line: ``--token-file`` / ``$MAYASTOR_REST_TOKEN``, ``--ca-cert`` / ``$MAYASTOR_REST_CA``
(the CA that signed an HTTPS server), ``--client-cert`` and ``--client-key`` /
``$MAYASTOR_REST_CERT`` and ``$MAYASTOR_REST_KEY``.
"""

from __future__ import annotations

import argparse
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mayastor.errors import InvalidArgument

TOKEN_ENV = "MAYASTOR_REST_TOKEN"
CA_ENV = "MAYASTOR_REST_CA"
CERT_ENV = "MAYASTOR_REST_CERT"
KEY_ENV = "MAYASTOR_REST_KEY"


@dataclass(frozen=True)
class RestClientCredentials:
    """A token, the CA that signs the server, and a client certificate with its key."""

    token: str | None = None
    ca: Path | None = None
    certificate: Path | None = None
    key: Path | None = None

    def httpx_options(self) -> dict[str, Any]:
        """``headers`` and ``verify`` (an SSL context) for an httpx client."""
        options: dict[str, Any] = {}
        if self.token:
            options["headers"] = {"Authorization": f"Bearer {self.token}"}
        if self.ca is not None or self.certificate is not None:
            options["verify"] = self.ssl_context()
        return options

    def ssl_context(self) -> ssl.SSLContext:
        """Trusting `ca` (else the system's CAs), showing the client certificate if any."""
        context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
        if self.certificate is not None and self.key is not None:
            context.load_cert_chain(str(self.certificate), str(self.key))
        return context

    @classmethod
    def from_flags(cls, args: argparse.Namespace) -> RestClientCredentials:
        """From the flags `add_flags` added, else their environment variables.

        Raises:
            InvalidArgument: a file cannot be read, the token file is empty, or a client
                certificate comes without its key (or the reverse).
        """
        token = os.environ.get(TOKEN_ENV) or None
        if args.token_file:
            try:
                token = Path(args.token_file).read_text().strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise InvalidArgument(
                    f"cannot read the token file {args.token_file}: {exc}"
                ) from None
            if not token:
                raise InvalidArgument(f"the token file {args.token_file} is empty")
        paths = {}
        for name, env in (("ca_cert", CA_ENV), ("client_cert", CERT_ENV), ("client_key", KEY_ENV)):
            value = getattr(args, name) or os.environ.get(env) or None
            if value is not None and not Path(value).is_file():
                raise InvalidArgument(f"cannot read {value}: no such file")
            paths[name] = Path(value) if value else None
        if (paths["client_cert"] is None) != (paths["client_key"] is None):
            raise InvalidArgument("a client certificate needs both --client-cert and --client-key")
        return cls(token, paths["ca_cert"], paths["client_cert"], paths["client_key"])


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, default: object = None
) -> None:
    """Add ``--token-file``, ``--ca-cert``, ``--client-cert`` and ``--client-key``.

    `default` is every flag's default (``argparse.SUPPRESS`` on a subcommand's parser
    that must not overwrite what the top parser took).
    """
    for flag, metavar, text in (
        ("--token-file", "FILE", f"send the bearer token in FILE (default: ${TOKEN_ENV})"),
        ("--ca-cert", "PEM", f"the CA of an HTTPS core agent (default: ${CA_ENV})"),
        ("--client-cert", "PEM", f"present this client certificate (default: ${CERT_ENV})"),
        ("--client-key", "PEM", f"the client certificate's key (default: ${KEY_ENV})"),
    ):
        parser.add_argument(flag, metavar=metavar, default=default, help=text)
