"""Pure scheduling logic for Spillway: no I/O, no clocks, no asyncio.

Frame specs and chunking (:mod:`scheduler.frames`), job profiles versus server
capabilities (:mod:`scheduler.profile`), dispatch planning
(:mod:`scheduler.dispatch`), retry policy (:mod:`scheduler.retry`),
local-versus-peer placement (:mod:`scheduler.placement`) and the ranking of
peers (:mod:`scheduler.ranking`).
"""

from scheduler.dispatch import Assignment, GuestLimit, JobView, TaskView, plan_dispatch
from scheduler.errors import FrameSpecError, PolicyError, ProfileError, SchedulerError
from scheduler.frames import MAX_FRAME, chunk_frames, format_frames, parse_frames
from scheduler.placement import (
    LOCAL_SITE_NAMES,
    PeerCapacity,
    Placement,
    decide_placement,
    estimate_local_wait_s,
)
from scheduler.profile import (
    ONLINE_STATUSES,
    JobProfile,
    Match,
    Mismatch,
    ServerStatus,
    ServerView,
    explain,
    explain_unmatched,
    matches,
)
from scheduler.ranking import Candidate, Ranking, Skipped, rank_peers
from scheduler.retry import RetryDecision, bad_servers, decide_retry, lease_expired
from scheduler.versions import lenient_version, satisfies

__all__ = [
    "LOCAL_SITE_NAMES",
    "MAX_FRAME",
    "ONLINE_STATUSES",
    "Assignment",
    "Candidate",
    "FrameSpecError",
    "GuestLimit",
    "JobProfile",
    "JobView",
    "Match",
    "Mismatch",
    "PeerCapacity",
    "Placement",
    "PolicyError",
    "ProfileError",
    "Ranking",
    "RetryDecision",
    "SchedulerError",
    "ServerStatus",
    "ServerView",
    "Skipped",
    "TaskView",
    "bad_servers",
    "chunk_frames",
    "decide_placement",
    "decide_retry",
    "estimate_local_wait_s",
    "explain",
    "explain_unmatched",
    "format_frames",
    "lease_expired",
    "lenient_version",
    "matches",
    "parse_frames",
    "plan_dispatch",
    "rank_peers",
    "satisfies",
]
