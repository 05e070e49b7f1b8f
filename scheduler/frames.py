"""Frames of a job: the frame-spec syntax (read in :mod:`spillway.core.frames`) and chunking.

:func:`parse_frames` and :func:`format_frames` are the shared syntax, raising
this package's :class:`~scheduler.errors.FrameSpecError` so callers on the
server side handle every bad spec as a :class:`~scheduler.errors.SchedulerError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from scheduler.errors import FrameSpecError
from spillway.core import frames as syntax
from spillway.core.frames import MAX_FRAME

__all__ = ["MAX_FRAME", "chunk_frames", "format_frames", "frame_bounds", "parse_frames"]


def parse_frames(spec: str, *, max_frames: int = 1_000_000) -> tuple[int, ...]:
    """Parse a frame spec into its sorted unique frames (see :func:`spillway.core.frames.parse_frames`).

    Raises :class:`FrameSpecError` for an empty or malformed spec, a range that
    ends before it starts, a step below 1, a frame above :data:`MAX_FRAME`, or
    more than ``max_frames`` distinct frames.
    """
    try:
        return syntax.parse_frames(spec, max_frames=max_frames)
    except syntax.FrameSpecError as err:
        raise FrameSpecError(str(err)) from None


def format_frames(frames: Iterable[int]) -> str:
    """Format frames as a compact spec that :func:`parse_frames` reads back.

    Raises :class:`FrameSpecError` for a negative frame.
    """
    try:
        return syntax.format_frames(frames)
    except syntax.FrameSpecError as err:
        raise FrameSpecError(str(err)) from None


def chunk_frames(frames: Sequence[int], chunk_size: int) -> list[tuple[int, ...]]:
    """Split frames, in their given order, into consecutive chunks of at most ``chunk_size``."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise FrameSpecError(
            f"bad chunk size {chunk_size!r}: it must be a whole number of at least 1, e.g. 1 or 10"
        )
    return [tuple(frames[i : i + chunk_size]) for i in range(0, len(frames), chunk_size)]


def frame_bounds(spec: str) -> tuple[int, int]:
    """The first and last frame of a valid spec, without listing its frames.

    A stepped range ends on its last step (``1-240x10`` ends at 231).  Raises
    :class:`FrameSpecError` for a spec :func:`parse_frames` would refuse.
    """
    firsts, lasts = [], []
    try:
        for item in spec.split(","):
            body, _, step = item.strip().lower().partition("x")
            lo, dash, hi = body.partition("-")
            first = int(lo)
            last = int(hi) if dash else first
            every = int(step) if step else 1
            if last < first or every < 1:
                raise ValueError(item)
            firsts.append(first)
            lasts.append(first + (last - first) // every * every)
    except ValueError:
        parse_frames(spec)  # raises the precise error
        raise FrameSpecError(f"bad frame spec {spec!r}") from None
    return min(firsts), max(lasts)
