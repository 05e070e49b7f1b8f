"""The web layer's view of errors: one table from error class to (status, code).

Handlers raise domain errors (:mod:`site_agent.errors`), store, file and
scheduler errors; the middleware turns them into ``{"error": {"code",
"message"}}`` with the right status, so a user never sees a stack trace and bad
input never becomes a 500. A class not in the table is looked up through its
bases, so a subclass gets its parent's mapping unless it has its own row.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from scheduler.errors import SchedulerError

from .errors import (
    AgentError,
    AttemptNotFoundError,
    BadRequestError,
    ConflictError,
    ForbiddenError,
    FrameNotFoundError,
    JobNotFoundError,
    LogNotFoundError,
    MissingAssetsError,
    NotFoundError,
    PeerLogUnavailableError,
    TaskNotFoundError,
    UnauthorizedError,
    UnavailableError,
)
from .files import (
    FileError,
    HashMismatchError,
    StorageFullError,
    StorageWriteError,
    TooLargeError,
    UnsafePathError,
)
from .storage import FrameCorruptError, FrameMissingError
from .store.base import StoreError, StoreUnavailableError

log = logging.getLogger(__name__)

HTTP_ERRORS: Mapping[type[Exception], tuple[int, str]] = {
    AgentError: (400, "bad_request"),
    BadRequestError: (400, "bad_request"),
    UnauthorizedError: (401, "unauthorized"),
    ForbiddenError: (403, "forbidden"),
    NotFoundError: (404, "not_found"),
    JobNotFoundError: (404, "job_not_found"),
    TaskNotFoundError: (404, "task_not_found"),
    FrameNotFoundError: (404, "frame_not_found"),
    AttemptNotFoundError: (404, "attempt_not_found"),
    LogNotFoundError: (404, "log_not_found"),
    ConflictError: (409, "conflict"),
    MissingAssetsError: (422, "missing_assets"),
    UnavailableError: (503, "unavailable"),
    PeerLogUnavailableError: (503, "peer_unavailable"),
    HashMismatchError: (422, "hash_mismatch"),
    TooLargeError: (413, "too_large"),
    UnsafePathError: (400, "unsafe_path"),
    StorageFullError: (507, "storage_full"),
    StorageWriteError: (503, "storage_unavailable"),
    FileError: (400, "bad_file"),
    SchedulerError: (400, "bad_request"),
    StoreUnavailableError: (503, "unavailable"),
    FrameMissingError: (404, "frame_missing"),
    FrameCorruptError: (409, "frame_corrupt"),
}
"""Status and code per error class; more specific classes win (see :func:`http_error`)."""


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    body = {"error": {"code": code, "message": message, **extra}}
    return web.json_response(body, status=status, dumps=json.dumps)


def http_error(
    exc: BaseException, table: Mapping[type[Exception], tuple[int, str]] = HTTP_ERRORS
) -> tuple[int, str] | None:
    """The (status, code) of the nearest class of ``exc`` in ``table``; None if unmapped."""
    for cls in type(exc).__mro__:
        mapped = table.get(cls)
        if mapped is not None:
            return mapped
    return None


def make_error_middleware(
    extra: Mapping[type[Exception], tuple[int, str]] | None = None,
) -> Middleware:
    """The error middleware over :data:`HTTP_ERRORS` plus ``extra`` rows (another app's errors)."""
    table = {**HTTP_ERRORS, **(extra or {})}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error_response(exc.status, _http_code(exc.status), exc.reason or exc.text or "")
        except Exception as exc:
            response = exception_response(exc, f"{request.method} {request.path}", table)
            if response is None:
                raise
            return response

    return middleware


def exception_response(
    exc: Exception, where: str, table: Mapping[type[Exception], tuple[int, str]] = HTTP_ERRORS
) -> web.Response | None:
    """The JSON answer to a handler's ``exc``: its row in ``table``, or 503 for a store
    error (the database failed; the client may retry); None for anything else (a bug)."""
    mapped = http_error(exc, table)
    if mapped is not None:
        extra_fields = exc.extra if isinstance(exc, AgentError) else {}
        message = exc.message if isinstance(exc, AgentError) else str(exc)
        return error_response(*mapped, message, **extra_fields)
    if isinstance(exc, StoreError):
        log.error("store error on %s: %s", where, exc)
        return error_response(503, "store_error", f"the resource database failed: {exc}")
    return None


error_middleware = make_error_middleware()
"""The client API's middleware (no rows beyond :data:`HTTP_ERRORS`)."""


def _http_code(status: int) -> str:
    return {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(status, "http_error")
