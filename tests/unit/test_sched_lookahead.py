"""Look-ahead planning: short jobs fill render servers' queue places after the free slots,
never ahead of a job that waits for a slot, within max_servers and guest limits."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from scheduler import Assignment, JobProfile, JobView, ServerView, TaskView, plan_dispatch
from scheduler.dispatch import GuestLimit
from scheduler.eta import mean_task_s, short_tasks

BUILTIN = JobProfile(package="builtin")
POVRAY = JobProfile(package="povray")


def server(
    sid: str, *, slots: int = 2, free: int = 0, ahead: int = 2, packages: str = "builtin"
) -> ServerView:
    return ServerView(
        id=sid,
        name=sid,
        cores=8,
        memory_mb=16384,
        gpus=0,
        packages={p: "3.7.0" for p in packages.split(",")},
        tags=frozenset(),
        slots=slots,
        free_slots=free,
        ahead_slots=ahead,
        status="busy",
    )


def job(jid: str, *, priority: int = 0, running: int = 0, **kw: object) -> JobView:
    fields: dict[str, object] = {"profile": BUILTIN, "running_servers": frozenset(), **kw}
    return JobView(
        id=jid,
        priority=priority,
        created_at=0.0,
        running_tasks=running,
        **fields,  # type: ignore[arg-type]
    )


def tasks(jid: str, count: int, *, start: int = 0) -> list[TaskView]:
    return [TaskView(id=start + i, job_id=jid, attempt=0, frames=(i,)) for i in range(count)]


def per_job(plan: list[Assignment]) -> Counter[str]:
    return Counter(a.job_id for a in plan)


def per_server(plan: list[Assignment]) -> Counter[str]:
    return Counter(a.server_id for a in plan)


def test_a_short_job_fills_the_queue_places_of_full_servers() -> None:
    plan = plan_dispatch(
        [job("short")], tasks("short", 10), [server("a")], lookahead=frozenset({"short"})
    )
    assert per_server(plan) == {"a": 2}


def test_without_lookahead_a_full_server_gets_nothing() -> None:
    assert plan_dispatch([job("short")], tasks("short", 10), [server("a")]) == []


def test_free_slots_are_planned_before_queue_places() -> None:
    servers = [server("a", free=1, ahead=1)]
    plan = plan_dispatch(
        [job("long", priority=5), job("short")],
        tasks("long", 1) + tasks("short", 5, start=100),
        servers,
        lookahead=frozenset({"short"}),
    )
    # The slot goes to the long job; with nothing of it left waiting, the short job queues.
    assert [a.job_id for a in plan] == ["long", "short"]


def test_nothing_is_queued_ahead_of_a_higher_priority_job_waiting_for_a_slot() -> None:
    plan = plan_dispatch(
        [job("long", priority=5), job("short")],
        tasks("long", 3) + tasks("short", 5, start=100),
        [server("a")],
        lookahead=frozenset({"short"}),
    )
    assert plan == []


def test_a_waiting_job_blocks_only_the_queues_of_servers_it_could_run_on() -> None:
    povray_job = replace(job("pov", priority=5), profile=POVRAY)
    plan = plan_dispatch(
        [povray_job, job("short")],
        tasks("pov", 3) + tasks("short", 5, start=100),
        [server("a", packages="builtin,povray"), server("b")],
        lookahead=frozenset({"short"}),
    )
    assert per_server(plan) == {"b": 2}


def test_equal_priority_jobs_share_the_queue_places_fairly() -> None:
    plan = plan_dispatch(
        [job("x"), job("y")],
        tasks("x", 5) + tasks("y", 5, start=100),
        [server("a", ahead=2), server("b", ahead=2)],
        lookahead=frozenset({"x", "y"}),
    )
    assert per_job(plan) == {"x": 2, "y": 2}


def test_a_job_with_fewer_running_tasks_goes_first_even_if_it_does_not_look_ahead() -> None:
    # Fair share puts "long" (1 running) before "short" (4 running): "short" queues nothing.
    plan = plan_dispatch(
        [job("long", running=1), job("short", running=4)],
        tasks("long", 2) + tasks("short", 5, start=100),
        [server("a")],
        lookahead=frozenset({"short"}),
    )
    assert plan == []


def test_queue_places_respect_max_servers() -> None:
    limited = replace(
        job("short", running=2, running_servers=frozenset({"a"})),
        profile=JobProfile(package="builtin", max_servers=1),
    )
    plan = plan_dispatch(
        [limited], tasks("short", 10), [server("a"), server("b")], lookahead=frozenset({"short"})
    )
    assert per_server(plan) == {"a": 2}


def test_queue_places_respect_a_peer_sites_slot_limit() -> None:
    guest = job("guest", guest_of="peer")
    plan = plan_dispatch(
        [guest],
        tasks("guest", 10),
        [server("a", ahead=4)],
        guests={"peer": GuestLimit(max_slots=3)},
        guest_running={"peer": 2},
        lookahead=frozenset({"guest"}),
    )
    assert len(plan) == 1


def test_a_task_is_assigned_once_across_slots_and_queue_places() -> None:
    plan = plan_dispatch(
        [job("short")],
        tasks("short", 3),
        [server("a", free=2, ahead=2)],
        lookahead=frozenset({"short"}),
    )
    assert sorted(a.task_id for a in plan) == [0, 1, 2]


@pytest.mark.parametrize(
    ("done", "busy", "below", "short"),
    [(0, 0.0, 2.0, False), (4, 2.0, 2.0, True), (2, 5.0, 2.0, False), (1, 2.0, 2.0, False)],
)
def test_short_tasks_by_their_mean_time(done: int, busy: float, below: float, short: bool) -> None:
    assert short_tasks(done_timed=done, busy_s=busy, below_s=below) is short
    assert mean_task_s(done_timed=done, busy_s=busy) == (busy / done if done else None)
