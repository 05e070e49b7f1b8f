"""Retry policy for failed tasks and detection of servers that keep failing a job."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scheduler.errors import PolicyError

__all__ = ["RetryDecision", "bad_servers", "decide_retry", "lease_expired"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryDecision:
    """What to do after a task attempt failed."""

    retry: bool
    avoid_server: bool
    reason: str


def _require(name: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise PolicyError(f"{name} must be at least {minimum}, got {value}")


def decide_retry(
    *,
    failures: int,
    max_attempts: int,
    server_failures_in_job: int,
    bad_server_threshold: int = 3,
) -> RetryDecision:
    """Decide whether a failed task is retried and whether its server is avoided for the job.

    ``failures`` and ``server_failures_in_job`` both include the failure being
    decided. The task is retried while ``failures < max_attempts``; the server
    is avoided for the job once it has failed ``bad_server_threshold`` tasks of it.
    """
    _require("failures", failures, 1)
    _require("max_attempts", max_attempts, 1)
    _require("server_failures_in_job", server_failures_in_job, 0)
    _require("bad_server_threshold", bad_server_threshold, 1)
    retry = failures < max_attempts
    avoid = server_failures_in_job >= bad_server_threshold
    if retry:
        reason = f"attempt {failures} of {max_attempts} failed; retrying on another server"
    else:
        reason = f"failed {failures} of {max_attempts} attempts; giving up"
    if avoid:
        reason += (
            f"; the server failed {server_failures_in_job} tasks of this job "
            "and is avoided for it from now on"
        )
    return RetryDecision(retry=retry, avoid_server=avoid, reason=reason)


def lease_expired(*, lease_expires_at: float | None, now: float) -> bool:
    """Whether a task lease has run out; a task without a lease never expires."""
    return lease_expires_at is not None and now >= lease_expires_at


def bad_servers(failures_by_server: Mapping[str, int], threshold: int = 3) -> frozenset[str]:
    """Servers whose failure count for a job reached ``threshold``."""
    _require("threshold", threshold, 1)
    return frozenset(server for server, count in failures_by_server.items() if count >= threshold)
