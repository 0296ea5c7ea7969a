"""The asynchronous REST client: `ApiOperations` sent over an `httpx.AsyncClient`.

The same calls as `RestClient` (they are built by `ApiOperations`), each returning an
awaitable of the decoded JSON; for asyncio programs such as the CSI controller.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from typing import Any

import httpx

from mayastor.credentials.rest_client import RestClientCredentials
from mayastor.restclient.calls import API_PREFIX, ApiCall, api_base_url, decode_reply
from mayastor.restclient.client import DEFAULT_TIMEOUT, describe_transport_error
from mayastor.restclient.errors import RestUnreachable
from mayastor.restclient.operations import VOLUME_PAGE_SIZE, ApiOperations, next_volume_page


class AsyncRestClient(ApiOperations[Coroutine[Any, Any, Any]]):
    """Calls of the core agent's REST API ``/v0``; each is awaited for the decoded JSON.

    Args:
        url: the server, ``http://host:port`` (``/v0`` is added).
        timeout: seconds to connect and to wait for each reply.
        transport: an httpx transport to send through instead of the network (tests).
        credentials: a token, a client certificate and the server's CA to use.

    Raises:
        ValueError: `url` is not an http(s) URL with a host.

    Errors are those of `RestClient`. Close it with ``await client.aclose()`` (or use
    it as an async context manager).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        credentials: RestClientCredentials | None = None,
    ) -> None:
        self.base_url = api_base_url(url)
        self.server_url = self.base_url.removesuffix(API_PREFIX)
        options = credentials.httpx_options() if credentials is not None else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=transport, **options
        )

    async def _send(self, call: ApiCall) -> Any:
        try:
            reply = await self._http.request(
                call.method,
                call.path,
                params=call.query(),
                json=call.body,
            )
        except httpx.TransportError as exc:
            raise RestUnreachable(self.server_url, describe_transport_error(exc)) from exc
        return decode_reply(call, reply.status_code, reply.content)

    async def all_volumes(self, page_size: int = VOLUME_PAGE_SIZE) -> list[Any]:
        """Every volume, fetched a page at a time: ``[Volume]``."""
        return [volume async for volume in self.iter_volumes(page_size)]

    async def iter_volumes(self, page_size: int = VOLUME_PAGE_SIZE) -> AsyncIterator[Any]:
        """Every volume, one page fetched at a time as the iteration goes on."""
        token: int | None = None
        while True:
            page = await self.get_volumes(max_entries=page_size, starting_token=token)
            for volume in page.get("entries", []):
                yield volume
            token = next_volume_page(page)
            if token is None:
                return

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncRestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
