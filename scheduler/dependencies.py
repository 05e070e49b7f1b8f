"""Job dependencies as pure decisions: is a job free to run, doomed, or still waiting?

A dependency is an edge from a job to an upstream job it waits for. Its kind
says what the job waits for: ``done`` (the upstream finished done; a failed or
cancelled upstream dooms the job), ``end`` (the upstream finished, however:
``--after-any``) or ``frames`` (frame N waits for frame N of the upstream,
``--after-frames``; a failed or cancelled upstream dooms the job). The site agent reads the upstreams' states, asks these
functions, and changes states only through its lifecycle.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "DependencyKind",
    "Upstream",
    "blocking",
    "dispatchable",
    "doomed_by",
    "frames_ready",
    "find_cycle",
    "ready",
    "waiting_text",
]

FINISHED = frozenset({"done", "failed", "cancelled"})
"""Job states that end a job (the site agent's JobState values)."""


class DependencyKind(StrEnum):
    DONE = "done"
    """Wait until the upstream is done; its failure or cancel ends the job the same way."""
    END = "end"
    """Wait until the upstream ended in any state (``--after-any``)."""
    FRAMES = "frames"
    """Frame N waits for frame N of the upstream (``--after-frames``); the whole job waits
    for the upstream to be done only to be forwarded. Its failure or cancel ends the job."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Upstream:
    """One job another job waits for, as it is now."""

    job_id: str
    name: str
    kind: DependencyKind
    state: str
    """The upstream's job state (queued, running, paused, done, failed, cancelled)."""
    frames_done: int = 0
    frame_count: int = 0


def satisfied(upstream: Upstream) -> bool:
    """Whether this edge no longer holds any frame of its job back."""
    if upstream.kind is DependencyKind.END:
        return upstream.state in FINISHED
    return upstream.state == "done"


def dispatchable(upstreams: Iterable[Upstream]) -> bool:
    """Whether some task of a job with these upstreams may be dispatched now: every edge is
    satisfied, except frame edges, which :func:`frames_ready` checks per task."""
    return all(satisfied(u) or u.kind is DependencyKind.FRAMES for u in upstreams)


def frames_ready(
    frames: Iterable[int],
    upstreams: Iterable[Upstream],
    stored: Mapping[str, Collection[int]],
) -> bool:
    """Whether a task rendering ``frames`` may run: for each frame edge not yet satisfied,
    the upstream has stored every one of these frame numbers (``stored[upstream id]``)."""
    wanted = list(frames)
    for u in upstreams:
        if u.kind is DependencyKind.FRAMES and not satisfied(u):
            have = stored.get(u.job_id, ())
            if not all(n in have for n in wanted):
                return False
    return True


def blocking(upstreams: Iterable[Upstream]) -> list[Upstream]:
    """The upstreams that still hold the job back, in the given order."""
    return [u for u in upstreams if not satisfied(u)]


def ready(upstreams: Iterable[Upstream]) -> bool:
    """Whether a job with these upstreams may be dispatched or forwarded now."""
    return not blocking(upstreams)


def doomed_by(upstream: Upstream) -> str | None:
    """The end (``failed`` or ``cancelled``) this upstream forces on its job, or None."""
    if upstream.kind is not DependencyKind.END and upstream.state in ("failed", "cancelled"):
        return upstream.state
    return None


def waiting_text(upstreams: Sequence[Upstream]) -> str | None:
    """``waiting for job abc (render, running 12/24)``: what still holds a job back, or None."""
    left = blocking(upstreams)
    if not left:
        return None
    parts = [
        f"job {u.job_id} ({u.name}, {u.state} {u.frames_done}/{u.frame_count})" for u in left[:3]
    ]
    more = f" and {len(left) - 3} more" if len(left) > 3 else ""
    return "waiting for " + ", ".join(parts) + more


def find_cycle(
    job_id: str, new_upstreams: Iterable[str], edges: Mapping[str, Iterable[str]]
) -> list[str] | None:
    """A path ``job_id -> ... -> job_id`` that adding ``job_id -> new_upstreams`` would close.

    ``edges`` maps each job to the jobs it already waits for (only the part
    reachable from ``new_upstreams`` is needed). Returns the cycle as a list of
    job ids starting and ending at ``job_id``, or None.
    """
    stack: list[tuple[str, list[str]]] = [(u, [job_id, u]) for u in new_upstreams]
    seen: set[str] = set()
    while stack:
        current, path = stack.pop()
        if current == job_id:
            return path
        if current in seen:
            continue
        seen.add(current)
        stack.extend((nxt, [*path, nxt]) for nxt in edges.get(current, ()))
    return None
