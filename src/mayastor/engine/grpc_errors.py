"""Errors to gRPC status codes: the one table, applied at the API edge.

Every servicer of the io-engine derives from `ErrorMappingServicer`, which wraps its
RPC methods so that a `MayastorError` becomes the status code of this table with the
error's message (written for operators), and anything else becomes INTERNAL with the
traceback in the log. No other module maps errors to gRPC.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from mayastor import errors

log = logging.getLogger(__name__)

GRPC_STATUS: dict[type[BaseException], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Conflict: grpc.StatusCode.ABORTED,
    errors.UsageError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.CorruptMetadata: grpc.StatusCode.DATA_LOSS,
    errors.NoSpace: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.PathError: grpc.StatusCode.UNAVAILABLE,
    errors.ConnectRefused: grpc.StatusCode.PERMISSION_DENIED,
    errors.ReservationConflict: grpc.StatusCode.PERMISSION_DENIED,
    errors.ConnectInvalidParameters: grpc.StatusCode.NOT_FOUND,
    errors.DeviceError: grpc.StatusCode.INTERNAL,
    errors.MayastorError: grpc.StatusCode.INTERNAL,
}


def grpc_status_of(exc: BaseException) -> grpc.StatusCode:
    """The status code for `exc`: the entry of its nearest class in `GRPC_STATUS`."""
    for klass in type(exc).__mro__:
        code = GRPC_STATUS.get(klass)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


_Method = TypeVar("_Method", bound=Callable[..., Awaitable[Any]])


def _mapped(method: _Method) -> _Method:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except errors.MayastorError as exc:
            code = grpc_status_of(exc)
            log.info("%s refused: %s (%s)", method.__name__, exc, code.name)
            await context.abort(code, str(exc))
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            log.exception("%s failed unexpectedly", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {exc!r}")

    return wrapper  # type: ignore[return-value]


class ErrorMappingServicer:
    """Mixin for servicers: wraps each public async RPC method with the error table."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if not name.startswith("_") and inspect.iscoroutinefunction(value):
                setattr(cls, name, _mapped(value))
