"""TLS with client certificates for the gRPC APIs (io-engine and core agent).

One `GrpcTls` is what a process proves and what it trusts: its certificate and key,
and the CA that signs its peers. A server given one serves only TLS and asks every
client for a certificate signed by that CA; a client given one presents its own and
checks the server's against the CA. The files are read once, when the process
starts, so a missing or unreadable file is an error at start, not at the first call.

Plain gRPC stays the default: with no files given, `GrpcTls.from_flags` answers None.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from mayastor.errors import InvalidArgument

FLAG_HELP = (
    "TLS for gRPC: this process's certificate and key (PEM) and the CA (PEM) that signs "
    "its peers' certificates; all three or none (plain gRPC)."
)


@dataclass(frozen=True)
class GrpcTls:
    """PEM bytes of a certificate, its key and the CA that signs the peers."""

    certificate: bytes
    key: bytes
    ca: bytes

    @classmethod
    def load(cls, certificate: str | Path, key: str | Path, ca: str | Path) -> GrpcTls:
        """Read the three PEM files.

        Raises:
            InvalidArgument: a file cannot be read or holds no PEM block.
        """
        blobs = []
        for what, path in (("certificate", certificate), ("key", key), ("CA", ca)):
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                reason = exc.strerror
                raise InvalidArgument(f"cannot read the TLS {what} {path}: {reason}") from None
            if b"-----BEGIN " not in data:
                raise InvalidArgument(f"the TLS {what} {path} is not a PEM file")
            blobs.append(data)
        return cls(*blobs)

    @classmethod
    def from_flags(cls, args: argparse.Namespace, prefix: str = "tls") -> GrpcTls | None:
        """The files named by the flags `add_flags` added (None when none was given).

        Raises:
            InvalidArgument: only some of the three were given, or a file is unusable.
        """
        paths = [getattr(args, f"{prefix}_{name}") for name in ("cert", "key", "ca")]
        if not any(paths):
            return None
        if not all(paths):
            flags = ", ".join(f"--{prefix.replace('_', '-')}-{n}" for n in ("cert", "key", "ca"))
            raise InvalidArgument(f"TLS needs all of {flags}")
        return cls.load(*paths)

    def server_credentials(self) -> grpc.ServerCredentials:
        """Credentials for a server that requires a client certificate signed by the CA."""
        return grpc.ssl_server_credentials(
            [(self.key, self.certificate)], root_certificates=self.ca, require_client_auth=True
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Credentials for a client: this certificate, the server checked against the CA."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.certificate
        )


def add_flags(parser: argparse.ArgumentParser, prefix: str = "tls", what: str = "") -> None:
    """Add ``--PREFIX-cert``, ``--PREFIX-key`` and ``--PREFIX-ca`` to `parser`."""
    flag = prefix.replace("_", "-")
    group = parser.add_argument_group(f"TLS{what}", FLAG_HELP)
    group.add_argument(f"--{flag}-cert", metavar="PEM", help="this process's certificate")
    group.add_argument(f"--{flag}-key", metavar="PEM", help="the certificate's private key")
    group.add_argument(f"--{flag}-ca", metavar="PEM", help="the CA that signs the peers")


def add_secure_port(server: grpc.aio.Server, endpoint: str, tls: GrpcTls | None) -> None:
    """Listen on `endpoint`, with TLS when `tls` is given."""
    if tls is None:
        server.add_insecure_port(endpoint)
    else:
        server.add_secure_port(endpoint, tls.server_credentials())


def aio_channel(
    endpoint: str, tls: GrpcTls | None, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """An asyncio channel to `endpoint`, with TLS when `tls` is given."""
    if tls is None:
        return grpc.aio.insecure_channel(endpoint, options=list(options))
    return grpc.aio.secure_channel(endpoint, tls.channel_credentials(), options=list(options))


def sync_channel(endpoint: str, tls: GrpcTls | None) -> grpc.Channel:
    """A blocking channel to `endpoint`, with TLS when `tls` is given."""
    if tls is None:
        return grpc.insecure_channel(endpoint)
    return grpc.secure_channel(endpoint, tls.channel_credentials())
