"""Ranking the peers a job could be forwarded to, with a sentence for each.

Pure: the caller passes each peer's last capacity advertisement, its configured
``preference`` and ``cost``, and how many bytes of this job's assets it is known
to hold already. :func:`rank_peers` returns the capable candidates best first and
the peers it skipped with the reason, so ``spillway job`` can say why a job went
where it did and what the next choice would have been.

Order, most important first:

1. higher configured ``preference`` (an operator's standing choice wins);
2. free capable slots now before none (when the caller needs free slots, peers
   without any are skipped instead);
3. shorter estimated wait (advertised queue depth over capable slots);
4. more bytes of the job's assets already there (less to upload);
5. lower configured ``cost``;
6. more free capable slots, then the name (deterministic).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from scheduler.profile import JobProfile, ServerView, matches

__all__ = ["Candidate", "PeerCapacity", "Ranking", "Skipped", "rank_peers"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerCapacity:
    """A peer's last capacity advertisement and what this site knows about it."""

    name: str
    servers: tuple[ServerView, ...]
    queue_depth: int
    reachable: bool = True
    preference: int = 0
    """Configured: higher is tried first."""
    cost: float = 0.0
    """Configured: among otherwise equal peers, the cheaper is tried first."""
    held_bytes: int = 0
    """Bytes of the job being placed that the peer is known to hold already."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """A peer that can run the job, with the figures it was ranked by."""

    name: str
    capable_servers: int
    free_slots: int
    wait_s: float
    held_bytes: int
    preference: int
    cost: float

    def describe(self, job_bytes: int = 0) -> str:
        """``"facility: 2 capable servers, 2 free slots, wait 0 s, holds 3.1 MB of 3.1 MB"``."""
        parts = [_plural(self.capable_servers, "capable server")]
        parts.append(_plural(self.free_slots, "free slot"))
        parts.append(f"wait {_duration(self.wait_s)}")
        if job_bytes:
            parts.append(f"holds {_size(self.held_bytes)} of {_size(job_bytes)}")
        if self.preference:
            parts.append(f"preference {self.preference}")
        if self.cost:
            parts.append(f"cost {self.cost:g}")
        return f"{self.name} has {', '.join(parts)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Skipped:
    """A peer that was not a candidate, and why."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Ranking:
    candidates: tuple[Candidate, ...]
    """Best first."""
    skipped: tuple[Skipped, ...]

    def summary(self, job_bytes: int = 0) -> str:
        """The runners-up and the skipped peers in one clause (empty when there are none)."""
        parts = [f"next: {c.describe(job_bytes)}" for c in self.candidates[1:3]]
        parts += [f"{s.name} skipped ({s.reason})" for s in self.skipped]
        return "; ".join(parts)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _duration(seconds: float) -> str:
    if math.isinf(seconds):
        return "unbounded"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _size(count: int) -> str:
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / (1024 * 1024):.1f} MiB"


def _candidate(profile: JobProfile, peer: PeerCapacity, avg_frame_s: float) -> Candidate | None:
    capable = [server for server in peer.servers if matches(profile, server)]
    if not capable:
        return None
    online = [server for server in capable if server.online]
    free = sum(max(server.free_slots, 0) for server in online)
    slots = sum(max(server.slots, 0) for server in online)
    wait = math.inf if slots == 0 else max(peer.queue_depth, 0) * avg_frame_s / slots
    return Candidate(
        name=peer.name,
        capable_servers=len(capable),
        free_slots=free,
        wait_s=wait,
        held_bytes=max(peer.held_bytes, 0),
        preference=peer.preference,
        cost=peer.cost,
    )


def _rank_key(c: Candidate) -> tuple[int, int, float, int, float, int, str]:
    return (
        -c.preference,
        0 if c.free_slots else 1,
        c.wait_s,
        -c.held_bytes,
        c.cost,
        -c.free_slots,
        c.name,
    )


def rank_peers(
    profile: JobProfile,
    peers: Sequence[PeerCapacity],
    *,
    need_free: bool = False,
    exclude: Collection[str] = (),
    avg_frame_s: float = 1.0,
) -> Ranking:
    """The peers that can run ``profile``, best first (see the module docstring).

    A peer is skipped when it is in ``exclude`` (already tried, or on the job's
    forwarding path), unreachable, advertises no capable server, or, with
    ``need_free``, has no free capable slot.
    """
    candidates: list[Candidate] = []
    skipped: list[Skipped] = []
    for peer in peers:
        if peer.name in exclude:
            continue  # the caller explains exclusions itself (refusals, the path)
        candidate = _candidate(profile, peer, avg_frame_s)
        if candidate is None:
            skipped.append(
                Skipped(name=peer.name, reason=f"advertises no server for {profile.requirement}")
            )
        elif not peer.reachable:
            skipped.append(Skipped(name=peer.name, reason="unreachable"))
        elif need_free and candidate.free_slots == 0:
            skipped.append(Skipped(name=peer.name, reason="no free capable slot"))
        else:
            candidates.append(candidate)
    candidates.sort(key=_rank_key)
    return Ranking(candidates=tuple(candidates), skipped=tuple(skipped))
