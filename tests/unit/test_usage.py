"""Accounting: one attempt's ledger row, the usage query string, and the ``spillway usage`` table."""

from __future__ import annotations

import pytest

from site_agent.errors import BadRequestError
from site_agent.store.records import TaskRecord, TaskState
from site_agent.store.usage import FOREVER, UsageGroup, attempt_entry
from site_agent.usage import parse_query, parse_time
from spillway.client.usage import format_usage

TASK = TaskRecord(
    id=7,
    job_id="j1",
    index=0,
    frames=(1, 2, 3),
    state=TaskState.RUNNING,
    attempt=2,
    server_id="s1",
    dispatched_at=100.0,
    started_at=103.0,
)


def test_an_attempt_holds_its_slot_from_dispatch_to_its_end() -> None:
    done = attempt_entry(TASK, peer="studio", cores_per_slot=4.0, at=130.0, failed=False)
    assert (done.wall_s, done.core_seconds, done.frames, done.failed_attempts) == (30, 120, 3, 0)
    assert (done.task_id, done.attempt, done.server_id, done.peer) == (7, 2, "s1", "studio")
    failed = attempt_entry(TASK, peer="", cores_per_slot=1.5, at=110.0, failed=True)
    assert (failed.core_seconds, failed.frames, failed.failed_attempts) == (15, 0, 1)


def test_an_attempt_without_a_dispatch_time_counts_from_its_start_or_not_at_all() -> None:
    started = TaskRecord(id=1, job_id="j", index=0, frames=(1,), started_at=10.0)
    assert attempt_entry(started, peer="", cores_per_slot=2, at=15, failed=False).wall_s == 5
    never = TaskRecord(id=1, job_id="j", index=0, frames=(1,))
    assert attempt_entry(never, peer="", cores_per_slot=2, at=15, failed=False).wall_s == 0


def test_times_as_dates_iso_or_epoch_seconds() -> None:
    assert parse_time("2026-11-30", "since") == 1_795_996_800
    assert parse_time("2026-11-30T01:00:00+01:00", "since") == 1_795_996_800
    assert parse_time("1795996800.5", "since") == 1_795_996_800.5


def test_the_query_string() -> None:
    query = parse_query({"group": "job", "peer": "studio", "since": "2026-11-30"})
    assert (query.group, query.peer, query.since, query.until) == (
        UsageGroup.JOB,
        "studio",
        1_795_996_800,
        FOREVER,
    )
    assert parse_query({}).group is UsageGroup.PEER


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"group": "site"}, "group='site': use group=peer or group=job"),
        ({"since": "yesterday"}, "since='yesterday' is not a time"),
        ({"since": "2026-12-01", "until": "2026-11-01"}, "until must be later than since"),
        ({"peers": "x"}, "unknown parameter 'peers'"),
    ],
)
def test_bad_queries_say_what_to_fix(params: dict[str, str], message: str) -> None:
    with pytest.raises(BadRequestError, match=message):
        parse_query(params)


def test_the_usage_table() -> None:
    row = {
        "jobs": 2,
        "core_seconds": 7200.0,
        "frames": 48,
        "failed_attempts": 1,
        "bytes_in": 1536,
        "bytes_out": 6 * 1024 * 1024,
    }
    text = format_usage(
        {"group": "peer", "rows": [{"peer": "", **row}, {"peer": "studio", **row}], "total": row}
    )
    lines = text.splitlines()
    assert lines[0].split() == [
        "PEER",
        "JOBS",
        "CORE-H",
        "FRAMES",
        "FAILED",
        "BYTES",
        "IN",
        "BYTES",
        "OUT",
    ]
    assert lines[1].split() == ["(here)", "2", "2.000", "48", "1", "1.5", "KiB", "6.0", "MiB"]
    assert lines[2].split()[0] == "studio" and lines[3].split()[0] == "TOTAL"
    by_job = format_usage(
        {
            "group": "job",
            "rows": [{"job_id": "ab12", "name": "shot", "peer": "x", **row}],
            "total": row,
        }
    )
    assert by_job.splitlines()[1].split()[:3] == ["ab12", "shot", "x"]
    assert format_usage({"rows": []}) == "no usage recorded in this period"
