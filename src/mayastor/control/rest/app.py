"""The REST API `/v0` (after Mayastor's OpenAPI v0) as a FastAPI application.

Every error leaves as one JSON body, `RestJsonError` (kind, message, details), with the
status code of the table below: 400 for input that breaks the schema or the rules, 404
for what is not there, 409 for a conflict with what is there, 412 when the cluster
cannot do it (not enough nodes or pools), 503 when the store or a node cannot be
reached. A bug is a 500 with the traceback in the log, never bad input.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from mayastor import __version__
from mayastor.control.cluster import Cluster
from mayastor.control.engine_client import EngineError
from mayastor.control.metrics import cluster_metrics
from mayastor.control.models import ErrorKind, RestJsonError
from mayastor.credentials.rest_tokens import TokenTable
from mayastor.errors import (
    AlreadyExists,
    Conflict,
    CorruptMetadata,
    FailedPrecondition,
    InUse,
    InvalidArgument,
    MayastorError,
    NotFound,
    ResourceExhausted,
    StoreUnavailable,
    Unavailable,
    UsageError,
)

log = logging.getLogger(__name__)

ERROR_STATUS: tuple[tuple[type[MayastorError], int, ErrorKind], ...] = (
    (InvalidArgument, 400, ErrorKind.INVALID_ARGUMENT),
    (NotFound, 404, ErrorKind.NOT_FOUND),
    (AlreadyExists, 409, ErrorKind.ALREADY_EXISTS),
    (InUse, 409, ErrorKind.IN_USE),
    (Conflict, 409, ErrorKind.CONFLICT),
    (FailedPrecondition, 412, ErrorKind.FAILED_PRECONDITION),
    (ResourceExhausted, 412, ErrorKind.RESOURCE_EXHAUSTED),
    (StoreUnavailable, 503, ErrorKind.UNAVAILABLE),
    (Unavailable, 503, ErrorKind.UNAVAILABLE),
    (UsageError, 400, ErrorKind.INVALID_ARGUMENT),
    (CorruptMetadata, 500, ErrorKind.INTERNAL),
    (EngineError, 500, ErrorKind.INTERNAL),
)
"""Error class -> status code and kind; the first class the error is an instance of wins."""

_HTTP_KINDS = {
    400: ErrorKind.INVALID_ARGUMENT,
    404: ErrorKind.NOT_FOUND,
    405: ErrorKind.NOT_ACCEPTABLE,
    409: ErrorKind.CONFLICT,
    415: ErrorKind.NOT_ACCEPTABLE,
}


def error_response(
    status: int,
    kind: ErrorKind,
    message: str,
    details: str = "",
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = RestJsonError(kind=kind, message=message, details=details or message)
    return JSONResponse(status_code=status, content=body.model_dump(mode="json"), headers=headers)


def status_of(exc: MayastorError) -> tuple[int, ErrorKind]:
    for klass, status, kind in ERROR_STATUS:
        if isinstance(exc, klass):
            return status, kind
    return 500, ErrorKind.INTERNAL


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request does not match the API"


class LabelKeyConvertor(Convertor[str]):
    """A label key in a path: it may hold '/' (``openebs.io/zone``), never '='."""

    regex = "[^=]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("labelkey", LabelKeyConvertor())


def create_app(cluster: Cluster, tokens: TokenTable | None = None) -> FastAPI:
    """The REST application over `cluster`; its OpenAPI document is at /v0/api/spec.

    With `tokens`, every request must carry one whose role allows it.
    """
    from mayastor.control.rest import (
        authentication,
        routes_app_nodes,
        routes_nodes,
        routes_objects,
        routes_pools,
        routes_volumes,
    )

    app = FastAPI(
        title="Mayastor (Python) control plane REST API",
        version="v0",
        description=f"Shaped after OpenEBS Mayastor's REST API v0. Server {__version__}.",
        openapi_url="/v0/api/spec",
        docs_url="/v0/swagger-ui",
        redoc_url=None,
    )
    app.state.cluster = cluster

    @app.exception_handler(MayastorError)
    async def mayastor_error(request: Request, exc: MayastorError) -> JSONResponse:
        status, kind = status_of(exc)
        if status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
        else:
            log.info("%s %s refused (%d): %s", request.method, request.url.path, status, exc)
        return error_response(status, kind, str(exc))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        text = _describe_validation(exc)
        return error_response(400, ErrorKind.INVALID_ARGUMENT, f"invalid request: {text}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = _HTTP_KINDS.get(exc.status_code, ErrorKind.INVALID_ARGUMENT)
        message = f"{request.method} {request.url.path}: {exc.detail}"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return error_response(exc.status_code, kind, message, headers=headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s: internal error", request.method, request.url.path)
        return error_response(
            500, ErrorKind.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"
        )

    for module in (routes_nodes, routes_pools, routes_volumes, routes_objects, routes_app_nodes):
        app.include_router(module.router, prefix="/v0")

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus metrics (volumes, replicas, rebuilds, nodes): not part of /v0."""
        return Response(cluster_metrics(cluster), media_type=CONTENT_TYPE_LATEST)

    if tokens is not None:
        authentication.require_tokens(app, tokens)
    _drop_validation_responses(app)
    return app


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": RestJsonError, "description": "Client side error"},
    "5XX": {"model": RestJsonError, "description": "Server side error"},
}
"""The error body every operation may answer with, as Mayastor's document declares it."""


def _drop_validation_responses(app: FastAPI) -> None:
    """FastAPI documents a 422 for bad input; ours is a 400 with the one error body."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        for methods in schema.get("paths", {}).values():
            for operation in methods.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
