"""Bearer tokens on the REST API: who is asking, and whether their role allows it.

With a `TokenTable` every request needs ``Authorization: Bearer TOKEN``: none or an
unknown token is a 401 (``Unauthenticated``), a read-only token asking to change
anything a 403 (``Unauthorized``). Refusals are logged with the method and path, never
the token. Client certificates are checked earlier, by the TLS handshake (uvicorn's
ssl settings), so a request that gets here came over a verified connection when they
are required.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from mayastor.control.models import ErrorKind
from mayastor.control.rest.app import error_response
from mayastor.credentials.rest_tokens import TokenTable, bearer_token

log = logging.getLogger(__name__)


def require_tokens(app: FastAPI, tokens: TokenTable) -> None:
    """Refuse every request of `app` that does not carry a token allowed to make it."""

    @app.middleware("http")
    async def authenticate(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        what = f"{request.method} {request.url.path}"
        token = bearer_token(request.headers.get("authorization"))
        role = None if token is None else tokens.role_of(token)
        if role is None:
            reason = "no bearer token" if token is None else "an unknown token"
            log.warning("%s refused: %s", what, reason)
            return error_response(
                401,
                ErrorKind.UNAUTHENTICATED,
                f"{what}: {reason}; send 'Authorization: Bearer TOKEN' with a token of the "
                "core agent's --rest-token-file",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not role.allows(request.method):
            log.warning("%s refused: a %s token", what, role.value)
            return error_response(
                403, ErrorKind.UNAUTHORIZED, f"{what}: a {role.value} token may only read"
            )
        return await call_next(request)
