"""Retry policy, leases and bad-server detection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler import PolicyError, RetryDecision, bad_servers, decide_retry, lease_expired


@pytest.mark.parametrize(
    ("failures", "max_attempts", "server_failures", "retry", "avoid", "reason_start"),
    [
        (1, 3, 1, True, False, "attempt 1 of 3 failed; retrying on another server"),
        (2, 3, 2, True, False, "attempt 2 of 3 failed; retrying on another server"),
        (3, 3, 1, False, False, "failed 3 of 3 attempts; giving up"),
        (1, 1, 1, False, False, "failed 1 of 1 attempts; giving up"),
        (
            1,
            3,
            3,
            True,
            True,
            "attempt 1 of 3 failed; retrying on another server; the server failed 3",
        ),
        (3, 3, 5, False, True, "failed 3 of 3 attempts; giving up; the server failed 5"),
    ],
)
def test_decide_retry(
    failures: int,
    max_attempts: int,
    server_failures: int,
    retry: bool,
    avoid: bool,
    reason_start: str,
) -> None:
    decision = decide_retry(
        failures=failures, max_attempts=max_attempts, server_failures_in_job=server_failures
    )
    assert (decision.retry, decision.avoid_server) == (retry, avoid)
    assert decision.reason.startswith(reason_start)


def test_decide_retry_threshold_is_configurable() -> None:
    decision = decide_retry(
        failures=1, max_attempts=3, server_failures_in_job=1, bad_server_threshold=1
    )
    assert decision == RetryDecision(
        retry=True,
        avoid_server=True,
        reason=(
            "attempt 1 of 3 failed; retrying on another server; "
            "the server failed 1 tasks of this job and is avoided for it from now on"
        ),
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failures": 0, "max_attempts": 3, "server_failures_in_job": 0},
        {"failures": 1, "max_attempts": 0, "server_failures_in_job": 0},
        {"failures": 1, "max_attempts": 3, "server_failures_in_job": -1},
        {"failures": 1, "max_attempts": 3, "server_failures_in_job": 1, "bad_server_threshold": 0},
    ],
)
def test_decide_retry_rejects_nonsense(kwargs: dict[str, int]) -> None:
    with pytest.raises(PolicyError, match="must be at least"):
        decide_retry(**kwargs)


@given(st.integers(1, 20), st.integers(1, 20), st.integers(0, 20), st.integers(1, 10))
def test_decide_retry_properties(
    failures: int, max_attempts: int, server_failures: int, threshold: int
) -> None:
    decision = decide_retry(
        failures=failures,
        max_attempts=max_attempts,
        server_failures_in_job=server_failures,
        bad_server_threshold=threshold,
    )
    assert decision.retry == (failures < max_attempts)
    assert decision.avoid_server == (server_failures >= threshold)
    assert f"{max_attempts}" in decision.reason


@pytest.mark.parametrize(
    ("expires_at", "now", "expected"),
    [(None, 1e12, False), (100.0, 99.9, False), (100.0, 100.0, True), (100.0, 250.0, True)],
)
def test_lease_expired(expires_at: float | None, now: float, expected: bool) -> None:
    assert lease_expired(lease_expires_at=expires_at, now=now) is expected


@pytest.mark.parametrize(
    ("failures", "threshold", "expected"),
    [
        ({}, 3, frozenset()),
        ({"a": 2, "b": 3, "c": 7}, 3, frozenset({"b", "c"})),
        ({"a": 1}, 1, frozenset({"a"})),
    ],
)
def test_bad_servers(failures: dict[str, int], threshold: int, expected: frozenset[str]) -> None:
    assert bad_servers(failures, threshold) == expected
