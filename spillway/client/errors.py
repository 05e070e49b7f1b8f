"""The submission error, shared by the submission modules (and re-exported by them)."""

from __future__ import annotations

from spillway.client.http import SpillwayClientError

__all__ = ["SubmissionError"]


class SubmissionError(SpillwayClientError):
    """A scene, asset or submit option cannot be used as given."""
