"""What a REST call can fail with: refused by the API, or the API not reached at all.

`RestError` is an answer: the core agent (or something in its place) replied with an
error status. It keeps the HTTP status and the body's ``kind`` and ``message`` (the
API's one error body, ``RestJsonError``), so a caller can tell "not found" from "not
enough pools" without parsing text. Subclasses register by status, so a reply maps
to its class with one lookup (`error_from_reply`).

`RestUnreachable` is the absence of an answer: connection refused, name not
resolved, timed out, connection cut. Whether the request took effect is unknown.

This module knows nothing of httpx; it works on status codes and bytes.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar


class RestClientError(Exception):
    """Base of every error a REST client raises on purpose."""


class RestError(RestClientError):
    """The API answered a call with an error status.

    Attributes:
        status: the HTTP status code (400, 404, 409, 412, 503, ...).
        kind: the error body's ``kind`` (``NotFound``, ``FailedPrecondition``, ...), or
            ``Deserialize`` when the body was not the API's error body.
        message: the body's ``message``, for an operator.
        details: the body's ``details`` (often the message again).
        method: the call's HTTP method.
        path: the call's path under ``/v0``.
    """

    status_code: ClassVar[int | None] = None
    """The HTTP status this class stands for; None for the base class."""

    _by_status: ClassVar[dict[int, type[RestError]]] = {}

    def __init_subclass__(cls, *, status: int | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status_code = status
            RestError._by_status[status] = cls

    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        *,
        details: str = "",
        method: str = "",
        path: str = "",
    ) -> None:
        super().__init__(f"{kind}: {message}")
        self.status = status
        self.kind = kind
        self.message = message
        self.details = details or message
        self.method = method
        self.path = path

    @classmethod
    def for_status(cls, status: int) -> type[RestError]:
        """The class registered for `status`, else `RestError` itself."""
        return cls._by_status.get(status, RestError)


class BadRequest(RestError, status=400):
    """The request broke the API's schema or rules; nothing was changed."""


class NotFound(RestError, status=404):
    """The object named in the call does not exist (or the path is unknown)."""


class Conflict(RestError, status=409):
    """The call conflicts with what exists (already exists, in use, a label is set)."""


class PreconditionFailed(RestError, status=412):
    """The cluster cannot do it now: not enough suitable nodes or pools."""


class ServiceUnavailable(RestError, status=503):
    """The API answered, but its store or a node it needs cannot be reached."""


class InsufficientStorage(RestError, status=507):
    """A pool has no room for what was asked."""


class RestUnreachable(RestClientError):
    """No answer from the API: refused, unresolved, timed out or cut.

    Attributes:
        url: the URL the call went to.
        reason: what the transport said.
    """

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the REST API at {url}: {reason}")
        self.url = url
        self.reason = reason


def error_from_reply(status: int, content: bytes, *, method: str = "", path: str = "") -> RestError:
    """The error an error reply stands for.

    Args:
        status: the reply's HTTP status (not 2xx).
        content: the reply's body; the API's error body is JSON with ``kind`` and
            ``message``, but a proxy in between may send anything.
        method: the call's method, kept on the error.
        path: the call's path, kept on the error.

    Returns:
        An instance of the class registered for `status` (`RestError` when none is).
    """
    kind, message, details = "Deserialize", "", ""
    try:
        body = json.loads(content) if content else None
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("kind"), str):
        kind = body["kind"]
        message = str(body.get("message", ""))
        details = str(body.get("details", ""))
    else:
        text = content.decode("utf-8", "replace").strip()
        shown = text[:200] + ("..." if len(text) > 200 else "")
        message = f"HTTP {status} with no API error body" + (f": {shown}" if shown else "")
    klass = RestError.for_status(status)
    return klass(status, kind, message, details=details, method=method, path=path)
