"""The credentials of a secure one-machine cluster, kept in its folder under ``tls/``.

`ClusterSecurity.create` makes (or finds) a private CA, a certificate for the core
agent, one for each io-engine and one for the operator's command-line tools, all
valid for 127.0.0.1 and localhost; and the REST tokens: ``tokens`` (the core agent's
table), ``admin.token`` and ``read-only.token`` (one token each, for ``--token-file``).
Made once and kept, so `up` again trusts what it issued before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mayastor.credentials.private_ca import IssuedCertificate, PrivateCa
from mayastor.credentials.rest_client import RestClientCredentials
from mayastor.credentials.rest_tokens import Role, new_token

ADDRESSES = ["127.0.0.1", "localhost"]


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


@dataclass(frozen=True)
class ClusterSecurity:
    """Paths of the cluster's CA, certificates and token files."""

    folder: Path
    ca: PrivateCa

    @classmethod
    def create(cls, folder: Path) -> ClusterSecurity:
        """The cluster's credentials in `folder`, made first where missing.

        Raises:
            Unavailable: openssl is missing or failed.
        """
        ca = PrivateCa.create(folder)
        security = cls(folder, ca)
        if not security.token_table.exists():
            tokens = {role: new_token() for role in Role}
            _write_secret(
                security.token_table,
                "".join(f"{role.value} {token}\n" for role, token in tokens.items()),
            )
            for role, token in tokens.items():
                _write_secret(security.token_file(role), token + "\n")
        return security

    @property
    def token_table(self) -> Path:
        """The core agent's ``--rest-token-file``."""
        return self.folder / "tokens"

    def token_file(self, role: Role = Role.ADMIN) -> Path:
        """A file holding one token of `role`, for a client's ``--token-file``."""
        return self.folder / f"{role.value}.token"

    def token(self, role: Role = Role.ADMIN) -> str:
        return self.token_file(role).read_text().strip()

    def certificate(self, name: str) -> IssuedCertificate:
        """The certificate of component `name` (``core``, a node's name, ``client``)."""
        return self.ca.issue(name, ADDRESSES)

    def rest_credentials(self, role: Role = Role.ADMIN) -> RestClientCredentials:
        """What a REST client of this cluster shows: a token of `role`, trusting our CA."""
        return RestClientCredentials(token=self.token(role), ca=self.ca.certificate)

    def kubectl_flags(self, role: Role = Role.ADMIN) -> list[str]:
        """The ``kubectl-mayastor`` flags of `rest_credentials`."""
        return ["--ca-cert", str(self.ca.certificate), "--token-file", str(self.token_file(role))]
