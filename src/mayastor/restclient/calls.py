"""REST calls as values: what to send, and how to read what comes back.

An `ApiCall` says everything about one call (method, path under ``/v0``, query,
JSON body) and nothing about how it is sent, so the synchronous and the
asynchronous client send the same values and read the replies with the same
function, `decode_reply`. Path segments given by callers (node names, pool ids,
label keys) are percent-encoded here, once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from mayastor.restclient.errors import RestError, error_from_reply

API_PREFIX = "/v0"


def segment(value: object) -> str:
    """One path segment: `value` as text with every reserved character escaped."""
    return quote(str(value), safe="")


def api_path(*parts: object) -> str:
    """``/a/b/c`` from parts, each escaped as one segment."""
    return "".join(f"/{segment(p)}" for p in parts)


@dataclass(frozen=True)
class ApiCall:
    """One call of the REST API.

    Attributes:
        method: ``GET``, ``PUT``, ``POST`` or ``DELETE``.
        path: the path under ``/v0``, already escaped (``/nodes/node-1``).
        params: query parameters; None values are left out.
        body: the JSON body, or None for none.
    """

    method: str
    path: str
    params: Mapping[str, str | int | bool | None] = field(default_factory=dict)
    body: Any = None

    def query(self) -> dict[str, str]:
        """The query as sent: None dropped, booleans as ``true``/``false``."""
        out: dict[str, str] = {}
        for key, value in self.params.items():
            if value is None:
                continue
            out[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return out


def decode_reply(call: ApiCall, status: int, content: bytes) -> Any:
    """The decoded JSON of a successful reply, or the error an unsuccessful one means.

    Args:
        call: the call the reply answers (named in errors).
        status: the HTTP status.
        content: the body.

    Returns:
        The decoded JSON; None for a reply with no body (204).

    Raises:
        RestError: (a subclass by status) when the status is not 2xx, or when a 2xx
            body is not JSON (kind ``Deserialize``).
    """
    if not 200 <= status < 300:
        raise error_from_reply(status, content, method=call.method, path=call.path)
    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError as exc:
        raise RestError(
            status,
            "Deserialize",
            f"the reply to {call.method} {API_PREFIX}{call.path} is not JSON: {exc}",
            method=call.method,
            path=call.path,
        ) from exc


def api_base_url(url: str) -> str:
    """The API's root (``http://host:port/v0``) from a server URL.

    Accepts ``http://host:port``, with or without a trailing slash or ``/v0``.

    Raises:
        ValueError: not an http(s) URL with a host.
    """
    parsed = urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL with a host (e.g. http://127.0.0.1:8081)")
    try:
        parsed.port  # noqa: B018 - a bad port raises here
    except ValueError as exc:
        raise ValueError(f"{url!r} has a bad port: {exc}") from exc
    if parsed.query or parsed.fragment:
        raise ValueError(f"{url!r}: a server URL has no query or fragment")
    path = parsed.path.rstrip("/")
    if path.endswith(API_PREFIX):
        path = path[: -len(API_PREFIX)]
    return f"{parsed.scheme}://{parsed.netloc}{path}{API_PREFIX}"
