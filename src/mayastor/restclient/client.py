"""The synchronous REST client: `ApiOperations` sent over an `httpx.Client`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from mayastor.credentials.rest_client import RestClientCredentials
from mayastor.restclient.calls import API_PREFIX, ApiCall, api_base_url, decode_reply
from mayastor.restclient.errors import RestUnreachable
from mayastor.restclient.operations import VOLUME_PAGE_SIZE, ApiOperations, next_volume_page

DEFAULT_TIMEOUT = 30.0
"""Seconds to wait for a reply; a volume create or publish takes a few on a busy host."""


class RestClient(ApiOperations[Any]):
    """Calls of the core agent's REST API ``/v0``; each returns the decoded JSON.

    Args:
        url: the server, ``http://host:port`` (``/v0`` is added).
        timeout: seconds to connect and to wait for each reply.
        transport: an httpx transport to send through instead of the network (tests).
        credentials: a token, a client certificate and the server's CA to use.

    Raises:
        ValueError: `url` is not an http(s) URL with a host.

    Every call raises `RestError` (a subclass by status) when the API refuses it,
    and `RestUnreachable` when no answer came. Close the client (or use it as a
    context manager) to release its connections.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        credentials: RestClientCredentials | None = None,
    ) -> None:
        self.base_url = api_base_url(url)
        self.server_url = self.base_url.removesuffix(API_PREFIX)
        options = credentials.httpx_options() if credentials is not None else {}
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport, **options
        )

    def _send(self, call: ApiCall) -> Any:
        try:
            reply = self._http.request(
                call.method,
                call.path,
                params=call.query(),
                json=call.body,
            )
        except httpx.TransportError as exc:
            raise RestUnreachable(self.server_url, describe_transport_error(exc)) from exc
        return decode_reply(call, reply.status_code, reply.content)

    def all_volumes(self, page_size: int = VOLUME_PAGE_SIZE) -> list[Any]:
        """Every volume, fetched a page at a time: ``[Volume]``."""
        return list(self.iter_volumes(page_size))

    def iter_volumes(self, page_size: int = VOLUME_PAGE_SIZE) -> Iterator[Any]:
        """Every volume, one page fetched at a time as the iteration goes on."""
        token: int | None = None
        while True:
            page = self.get_volumes(max_entries=page_size, starting_token=token)
            yield from page.get("entries", [])
            token = next_volume_page(page)
            if token is None:
                return

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe_transport_error(exc: httpx.TransportError) -> str:
    """What went wrong, in words, even when httpx's message is empty."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({text})"
    return text
