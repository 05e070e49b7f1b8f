"""Errors raised by the pure scheduler package.

Every message says what was wrong and how to fix it, so the site agent can show
it to a user verbatim (mapped to a 400 response by the API layer).
"""

from __future__ import annotations

from spillway.core import frames

__all__ = ["FrameSpecError", "PolicyError", "ProfileError", "SchedulerError"]


class SchedulerError(Exception):
    """Base class for every error raised by :mod:`scheduler`."""


class FrameSpecError(SchedulerError, frames.FrameSpecError):
    """A frame spec or chunk size cannot be used as given."""


class ProfileError(SchedulerError, ValueError):
    """A job profile, requirement string or placement request is invalid."""


class PolicyError(SchedulerError, ValueError):
    """A retry or placement policy argument is out of range."""
