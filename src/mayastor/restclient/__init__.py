"""A client of the core agent's REST API (v0), for kubectl-mayastor, the cluster launcher and CSI.

Reaches the control plane through REST only and returns the decoded JSON (dicts and
lists in Mayastor's OpenAPI v0 shapes). `RestClient` is synchronous, `AsyncRestClient`
its asyncio twin; both build their calls in `ApiOperations`. Errors: `RestError` (the
API refused; subclasses by status) and `RestUnreachable` (no answer).
"""

from mayastor.restclient.async_client import AsyncRestClient
from mayastor.restclient.calls import ApiCall
from mayastor.restclient.client import DEFAULT_TIMEOUT, RestClient
from mayastor.restclient.errors import (
    BadRequest,
    Conflict,
    InsufficientStorage,
    NotFound,
    PreconditionFailed,
    RestClientError,
    RestError,
    RestUnreachable,
    ServiceUnavailable,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "ApiCall",
    "AsyncRestClient",
    "BadRequest",
    "Conflict",
    "InsufficientStorage",
    "NotFound",
    "PreconditionFailed",
    "RestClient",
    "RestClientError",
    "RestError",
    "RestUnreachable",
    "ServiceUnavailable",
]
