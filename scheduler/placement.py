"""Placement: run a job at this site or forward it whole to a federated peer.

Local first. A job is forwarded when no online local server can run it but a
reachable peer can, when its estimated local wait exceeds ``overflow_after``
and a reachable peer has free capable slots, or when the submitter asks for a
site. Every decision carries a sentence saying why, for ``spillway job``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from scheduler.errors import PolicyError, ProfileError
from scheduler.profile import JobProfile, ServerView, matches
from scheduler.ranking import PeerCapacity, Ranking, rank_peers
from scheduler.versions import satisfies

__all__ = [
    "LOCAL_SITE_NAMES",
    "PeerCapacity",
    "Placement",
    "decide_placement",
    "estimate_local_wait_s",
]

LOCAL_SITE_NAMES = frozenset({"", "local"})
"""Values of ``requested_site`` that mean "this site"."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    """Where a job runs: ``site`` is a peer name, or None for this site."""

    site: str | None
    reason: str
    candidates: tuple[str, ...] = ()
    """When forwarded: every capable peer, best first (``site`` is the first)."""


def estimate_local_wait_s(
    *, queued_frames_ahead: int, capable_slots: int, avg_frame_s: float
) -> float:
    """Rough wait before a new job starts: frames ahead spread over capable slots.

    Infinite when no capable slot exists.
    """
    if queued_frames_ahead < 0 or capable_slots < 0 or avg_frame_s < 0:
        raise PolicyError(
            "queued_frames_ahead, capable_slots and avg_frame_s must not be negative, got "
            f"{queued_frames_ahead}, {capable_slots}, {avg_frame_s}"
        )
    if capable_slots == 0:
        return math.inf
    return queued_frames_ahead * avg_frame_s / capable_slots


def _duration(seconds: float) -> str:
    if math.isinf(seconds):
        return "unbounded (no capable local slot)"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _local_cause(profile: JobProfile, local_servers: Sequence[ServerView]) -> str:
    if not local_servers:
        return "no local render servers are registered"
    has_package = any(
        profile.package in server.packages
        and satisfies(server.packages[profile.package], profile.version)
        for server in local_servers
    )
    if not has_package:
        return f"no local server has {profile.requirement}"
    return f"no local server can run {profile.requirement} with this profile"


def _requested(requested_site: str, peers: Sequence[PeerCapacity]) -> Placement:
    if requested_site.strip().lower() in LOCAL_SITE_NAMES:
        return Placement(site=None, reason="placed locally as requested")
    for peer in peers:
        if peer.name == requested_site:
            note = (
                ""
                if peer.reachable
                else f"; {peer.name} is unreachable now, so the offer will be retried"
            )
            return Placement(site=peer.name, reason=f"placed at {peer.name} as requested{note}")
    known = ", ".join(["local", *sorted(peer.name for peer in peers)])
    raise ProfileError(f"unknown site {requested_site!r}: known sites are {known}")


def _forward(ranking: Ranking, cause: str, job_bytes: int) -> Placement:
    best = ranking.candidates[0]
    reason = f"forwarded to {best.name}: {cause}; {best.describe(job_bytes)}"
    others = ranking.summary(job_bytes)
    return Placement(
        site=best.name,
        reason=f"{reason} ({others})" if others else reason,
        candidates=tuple(c.name for c in ranking.candidates),
    )


def decide_placement(
    profile: JobProfile,
    *,
    local_servers: Sequence[ServerView],
    peers: Sequence[PeerCapacity],
    estimated_wait_s: float,
    overflow_after_s: float | None,
    requested_site: str | None = None,
    allow_forward: bool = True,
    exclude: Collection[str] = (),
    job_bytes: int = 0,
    avg_frame_s: float = 1.0,
) -> Placement:
    """Decide where a new job runs; see the module docstring for the rules.

    Peers in ``exclude`` (already tried for this job, or on its forwarding path)
    are never chosen. Among the others, :func:`scheduler.ranking.rank_peers`
    orders the candidates. Raises :class:`ProfileError` when ``requested_site``
    names no known peer.
    """
    if not allow_forward:
        return Placement(site=None, reason="forwarding disabled for this job")
    if requested_site is not None:
        return _requested(requested_site, peers)
    capable = [server for server in local_servers if matches(profile, server)]
    online = [server for server in capable if server.online]
    overflowing = overflow_after_s is not None and estimated_wait_s > overflow_after_s
    if online and not overflowing:
        return Placement(
            site=None,
            reason=f"local: {_plural(len(online), 'online local server')} can run {profile.requirement}",
        )
    ranking = rank_peers(
        profile, peers, need_free=bool(online), exclude=exclude, avg_frame_s=avg_frame_s
    )
    if not online:
        # Offline servers are no capacity: a job only they could run goes where it can run.
        cause = (
            _local_cause(profile, local_servers)
            if not capable
            else _offline_cause(profile, capable)
        )
        if ranking.candidates:
            return _forward(ranking, cause, job_bytes)
        tail = _no_peer(ranking, excluded=bool(exclude))
        return Placement(site=None, reason=f"queued locally: {cause}; {tail}")
    cause = (
        f"estimated local wait {_duration(estimated_wait_s)} exceeds "
        f"overflow_after {_duration(overflow_after_s or 0.0)}"
    )
    if ranking.candidates:
        return _forward(ranking, cause, job_bytes)
    return Placement(
        site=None,
        reason=f"queued locally: {cause}, but no reachable peer has free capable slots",
    )


def _no_peer(ranking: Ranking, *, excluded: bool) -> str:
    unreachable = sorted(s.name for s in ranking.skipped if s.reason == "unreachable")
    if unreachable:
        return f"only unreachable peers ({', '.join(unreachable)}) advertise one"
    return f"no {'other ' if excluded else ''}peer advertises one either"


def _offline_cause(profile: JobProfile, capable: Sequence[ServerView]) -> str:
    return (
        f"no online local server has {profile.requirement} "
        f"({_plural(len(capable), 'capable server')} offline)"
    )
