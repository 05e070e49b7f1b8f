"""Domain errors of the site agent and their mapping to HTTP.

Handlers raise these; one middleware turns them (and store, file and scheduler
errors) into ``{"error": {"code", "message"}}`` with the right status, so a user
never sees a stack trace and bad input never becomes a 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from scheduler.errors import SchedulerError

from .files import FileError, HashMismatchError, TooLargeError, UnsafePathError
from .store.base import StoreError, StoreUnavailableError

log = logging.getLogger(__name__)


class AgentError(Exception):
    """Base for errors the agent reports to its clients."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class BadRequestError(AgentError):
    """The request is malformed or a value is invalid."""


class UnauthorizedError(AgentError):
    """A valid bearer token is required."""

    status = 401
    code = "unauthorized"


class ForbiddenError(AgentError):
    """The caller may not do this."""

    status = 403
    code = "forbidden"


class NotFoundError(AgentError):
    """No such job, frame, server or blob."""

    status = 404
    code = "not_found"


class ConflictError(AgentError):
    """The request conflicts with the current state (e.g. resuming a finished job)."""

    status = 409
    code = "conflict"


class MissingAssetsError(AgentError):
    """The job references blobs that were not uploaded."""

    status = 422
    code = "missing_assets"


class UnavailableError(AgentError):
    """A dependency (database, peer) is unavailable; try again later."""

    status = 503
    code = "unavailable"


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    body = {"error": {"code": code, "message": message, **extra}}
    return web.json_response(body, status=status, dumps=json.dumps)


_MAPPED: list[tuple[type[Exception], int, str]] = [
    (HashMismatchError, 422, "hash_mismatch"),
    (TooLargeError, 413, "too_large"),
    (UnsafePathError, 400, "unsafe_path"),
    (FileError, 400, "bad_file"),
    (SchedulerError, 400, "bad_request"),
    (StoreUnavailableError, 503, "unavailable"),
]


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except AgentError as exc:
        return error_response(exc.status, exc.code, exc.message, **exc.extra)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, _http_code(exc.status), exc.reason or exc.text or "")
    except tuple(cls for cls, _, _ in _MAPPED) as exc:
        for cls, status, code in _MAPPED:
            if isinstance(exc, cls):
                return error_response(status, code, str(exc))
        raise  # pragma: no cover
    except StoreError as exc:
        log.error("store error on %s %s: %s", request.method, request.path, exc)
        return error_response(503, "store_error", f"the resource database failed: {exc}")


def _http_code(status: int) -> str:
    return {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(status, "http_error")
