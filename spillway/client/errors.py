"""The client's exceptions: one base, one class per kind of agent answer.

Every error raised by :class:`~spillway.client.Client`, :class:`~spillway.client.AsyncClient`,
the submission helpers and the CLI derives from :class:`SpillwayError`; its message says
what happened and what to do, so a caller can print it as it is. Errors from the agent are
:class:`ApiError` subclasses chosen by HTTP status (``code`` is the agent's error code,
e.g. ``missing_assets``); errors on the way there are :class:`TransportError` subclasses.

    try:
        client.job("3f2a")
    except NotFound:
        ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "ApiError",
    "BadRequest",
    "ClientError",
    "Conflict",
    "ConnectionLost",
    "FileConflict",
    "Forbidden",
    "HashMismatch",
    "NotFound",
    "PayloadTooLarge",
    "ServerError",
    "SpillwayClientError",
    "SpillwayError",
    "SubmissionError",
    "Timeout",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
    "Unreachable",
    "error_for_status",
]


class SpillwayError(Exception):
    """Base for every error raised on the client side (client, submission, CLI)."""


SpillwayClientError = SpillwayError
"""The base's earlier name."""


class ClientError(SpillwayError):
    """A call to the site agent failed; ``code`` and ``status`` say how."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        status: int = 0,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status  # HTTP status; 0 when no response arrived
        self.details: dict[str, Any] = dict(details or {})


class ApiError(ClientError):
    """The agent answered with an error (``status`` >= 400, ``code`` its error code)."""


class BadRequest(ApiError):
    """400: a value in the request is invalid."""


class Unauthorized(ApiError):
    """401: a valid bearer token is required (``--token`` or ``$SPILLWAY_TOKEN``)."""


class Forbidden(ApiError):
    """403: the token may not do this."""


class NotFound(ApiError):
    """404: no such job, frame, server or blob (or the frame's stored copy is gone)."""


class Conflict(ApiError):
    """409: the request conflicts with the current state, e.g. resuming a finished job."""


class PayloadTooLarge(ApiError):
    """413: the request body or blob is over the agent's limit."""


class Unprocessable(ApiError):
    """422: well-formed but unusable, e.g. ``missing_assets`` or ``hash_mismatch``."""


class ServerError(ApiError):
    """5xx other than 503: the agent failed; its log says why."""


class Unavailable(ApiError):
    """503: the agent's database or storage is unavailable; try again later."""


class TransportError(ClientError):
    """No usable answer arrived (``status`` is 0)."""


class Unreachable(TransportError):
    """The agent could not be reached (refused, no route, bad host name)."""


class ConnectionLost(TransportError):
    """The connection broke during the call; trying again may work."""


class Timeout(TransportError):
    """The agent did not answer within the client's timeout."""


class HashMismatch(ClientError):
    """Downloaded bytes did not hash as recorded; nothing was written."""


class FileConflict(ClientError):
    """A download would replace a file that must be kept."""


class SubmissionError(SpillwayError):
    """A scene, asset or submit option cannot be used as given."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: Unprocessable,
    503: Unavailable,
}


def error_for_status(
    status: int, code: str, message: str, details: Mapping[str, Any] | None = None
) -> ApiError:
    """The exception for an agent's error answer, by HTTP status."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return cls(message, code=code, status=status, details=details)
