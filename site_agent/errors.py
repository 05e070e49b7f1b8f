"""Domain errors of the site agent.

They say what happened and what to do, and carry structured fields in
``extra`` (e.g. the ``missing`` blobs); they know nothing of HTTP. The web
layer (:mod:`site_agent.http_errors`) maps each class to a status and a code.
"""

from __future__ import annotations

from typing import Any


class AgentError(Exception):
    """Base for errors the agent reports to its clients."""

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class BadRequestError(AgentError):
    """The request is malformed or a value is invalid."""


class UnauthorizedError(AgentError):
    """A valid bearer token is required."""


class ForbiddenError(AgentError):
    """The caller may not do this."""


class NotFoundError(AgentError):
    """No such job, frame, server or blob."""


class JobNotFoundError(NotFoundError):
    """No job with this id."""


class TaskNotFoundError(NotFoundError):
    """The job has no task with this index."""


class FrameNotFoundError(NotFoundError):
    """The job has no such frame."""


class AttemptNotFoundError(NotFoundError):
    """The task has no attempt with this number."""


class LogNotFoundError(NotFoundError):
    """The task has no log (yet): it has not run here."""


class ConflictError(AgentError):
    """The request conflicts with the current state (e.g. resuming a finished job)."""


class JobExistsError(ConflictError):
    """A job with this id exists already (a retried create)."""


class MissingAssetsError(AgentError):
    """The job references blobs that were not uploaded."""


class UnavailableError(AgentError):
    """A dependency (database, peer) is unavailable; try again later."""


class PeerLogUnavailableError(UnavailableError):
    """The site a job was sent to could not be asked for its task log; try again later."""
