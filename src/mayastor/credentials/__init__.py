"""Who may call the APIs: TLS for gRPC, bearer tokens for REST, a private CA.

Plain loopback stays the default (one machine, tests); these are what a process is
given when its APIs must refuse strangers.
"""

from mayastor.credentials.grpc_tls import GrpcTls
from mayastor.credentials.private_ca import IssuedCertificate, PrivateCa
from mayastor.credentials.rest_tokens import Role, TokenTable

__all__ = ["GrpcTls", "IssuedCertificate", "PrivateCa", "Role", "TokenTable"]
