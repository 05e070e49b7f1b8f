"""Placement: run a job at this site or forward it whole to a federated peer.

Local first. A job is forwarded when no online local server can run it but a
reachable peer can, when its estimated local wait exceeds ``overflow_after``
and a reachable peer has free capable slots, or when the submitter asks for a
site. Every decision carries a sentence saying why, for ``spillway job``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scheduler.errors import PolicyError, ProfileError
from scheduler.profile import JobProfile, ServerView, matches
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
class PeerCapacity:
    """A peer's last capacity advertisement."""

    name: str
    servers: tuple[ServerView, ...]
    queue_depth: int
    reachable: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    """Where a job runs: ``site`` is a peer name, or None for this site."""

    site: str | None
    reason: str


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


def _peer_offer(profile: JobProfile, peer: PeerCapacity) -> tuple[int, int]:
    """(capable servers, free slots on online capable servers) advertised by ``peer``."""
    capable = [server for server in peer.servers if matches(profile, server)]
    free = sum(max(server.free_slots, 0) for server in capable if server.online)
    return len(capable), free


def _best_peer(
    profile: JobProfile, peers: Sequence[PeerCapacity], *, need_free: bool
) -> tuple[PeerCapacity, int, int] | None:
    """Reachable peer with most free capable slots, then shortest queue, then name."""
    best: tuple[tuple[int, int, str], tuple[PeerCapacity, int, int]] | None = None
    for peer in peers:
        if not peer.reachable:
            continue
        capable, free = _peer_offer(profile, peer)
        if capable == 0 or (need_free and free == 0):
            continue
        rank = (-free, peer.queue_depth, peer.name)
        if best is None or rank < best[0]:
            best = (rank, (peer, capable, free))
    return None if best is None else best[1]


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


def _forward(profile: JobProfile, best: tuple[PeerCapacity, int, int], cause: str) -> Placement:
    peer, capable, free = best
    offer = f"{peer.name} has {_plural(capable, 'capable server')}"
    if free:
        offer += f" with {_plural(free, 'free slot')}"
    return Placement(site=peer.name, reason=f"forwarded to {peer.name}: {cause}; {offer}")


def decide_placement(
    profile: JobProfile,
    *,
    local_servers: Sequence[ServerView],
    peers: Sequence[PeerCapacity],
    estimated_wait_s: float,
    overflow_after_s: float | None,
    requested_site: str | None = None,
    allow_forward: bool = True,
) -> Placement:
    """Decide where a new job runs; see the module docstring for the rules.

    Raises :class:`ProfileError` when ``requested_site`` names no known peer.
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
    if not online:
        # Offline servers are no capacity: a job only they could run goes where it can run.
        cause = (
            _local_cause(profile, local_servers)
            if not capable
            else _offline_cause(profile, capable)
        )
        best = _best_peer(profile, peers, need_free=False)
        if best is not None:
            return _forward(profile, best, cause)
        unreachable = [
            peer.name
            for peer in peers
            if not peer.reachable and any(matches(profile, server) for server in peer.servers)
        ]
        if unreachable:
            tail = f"only unreachable peers ({', '.join(sorted(unreachable))}) advertise one"
        else:
            tail = "no peer advertises one either"
        return Placement(site=None, reason=f"queued locally: {cause}; {tail}")
    cause = (
        f"estimated local wait {_duration(estimated_wait_s)} exceeds "
        f"overflow_after {_duration(overflow_after_s or 0.0)}"
    )
    best = _best_peer(profile, peers, need_free=True)
    if best is not None:
        return _forward(profile, best, cause)
    return Placement(
        site=None,
        reason=f"queued locally: {cause}, but no reachable peer has free capable slots",
    )


def _offline_cause(profile: JobProfile, capable: Sequence[ServerView]) -> str:
    return (
        f"no online local server has {profile.requirement} "
        f"({_plural(len(capable), 'capable server')} offline)"
    )
