"""The dispatch benchmark's load generator spread over processes still counts every task."""

from __future__ import annotations

import asyncio

import pytest

from bench.dispatch import dispatch_run
from bench.loadgen import shares
from bench.simfarm import FarmStats

pytestmark = pytest.mark.e2e


def test_shares_split_servers_evenly_and_never_empty() -> None:
    assert shares(10, 3) == [4, 3, 3]
    assert shares(2, 5) == [1, 1]
    assert sum(shares(2001, 8)) == 2001


def test_latency_counts_from_when_the_task_could_have_been_dispatched() -> None:
    stats = FarmStats(total_tasks=3, dispatchable_at=10.0)
    # before the POST returned (clamped), after it, and after the server's last TaskDone
    stats.assigns.extend([(9.5, 0.0), (10.25, 0.0), (12.0, 11.5)])
    assert stats.latencies == [0.0, 0.25, 0.5]
    assert stats.reassign_latencies == [0.5]  # only the Assign after a server's own TaskDone


@pytest.mark.timeout(180)
def test_dispatch_over_two_load_generator_processes_sees_the_whole_job() -> None:
    row = asyncio.run(dispatch_run("sqlite", 6, 40, limit_s=120, loadgen_processes=2))
    assert row["errors"] == []
    assert row["job_state"] == "done"
    assert row["loadgen_processes"] == 2
    assert row["assigns_seen"] == 40  # one Assign per task, gathered from both processes
    assert row["assign_p99_ms"] >= row["assign_p50_ms"] >= 0
    assert row["steady_tasks_per_s"] > 0
