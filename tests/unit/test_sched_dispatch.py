"""Dispatch planning: priority, fair share, age, limits, avoidance, slot accounting."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler import Assignment, JobProfile, JobView, ServerView, TaskView, matches, plan_dispatch
from scheduler.dispatch import (
    FIRST_SLICE,
    MAX_SLICE,
    GuestLimit,
    round_slices,
)
from scheduler.stranded import stranded_jobs, unplaceable_jobs

BUILTIN = JobProfile(package="builtin")


def server(
    sid: str, *, free: int = 1, status: str = "idle", cores: int = 8, name: str = ""
) -> ServerView:
    return ServerView(
        id=sid,
        name=name or sid,
        cores=cores,
        memory_mb=16384,
        gpus=0,
        packages={"builtin": "1.0.0"},
        tags=frozenset(),
        slots=max(free, 1),
        free_slots=free,
        status=status,
    )


def job(
    jid: str,
    *,
    priority: int = 0,
    created_at: float = 0.0,
    running: int = 0,
    profile: JobProfile = BUILTIN,
    running_servers: frozenset[str] = frozenset(),
    avoid: frozenset[str] = frozenset(),
) -> JobView:
    return JobView(
        id=jid,
        priority=priority,
        created_at=created_at,
        profile=profile,
        running_tasks=running,
        running_servers=running_servers,
        avoid_servers=avoid,
    )


def tasks(
    jid: str, count: int, *, start: int = 0, failed_on: frozenset[str] = frozenset()
) -> list[TaskView]:
    return [
        TaskView(id=start + i, job_id=jid, attempt=0, frames=(i,), failed_on=failed_on)
        for i in range(count)
    ]


def per_job(plan: list[Assignment]) -> Counter[str]:
    return Counter(a.job_id for a in plan)


def test_assignment_carries_next_attempt() -> None:
    task = TaskView(id=5, job_id="a", attempt=2, frames=(1, 2))
    plan = plan_dispatch([job("a")], [task], [server("s1")])
    assert plan == [Assignment(task_id=5, job_id="a", server_id="s1", attempt=3)]


@pytest.mark.parametrize(
    ("servers", "expected"),
    [
        ([server("s1", free=2)], 2),
        ([server("s1", free=2), server("s2", free=3)], 5),
        ([server("s1", free=0)], 0),
        ([server("s1", free=2, status="busy")], 2),
        ([server("s1", free=2, status="offline")], 0),
        ([server("s1", free=2, status="disabled")], 0),
        ([server("s1", free=2, status="weird")], 0),
        ([server("s1", free=4, cores=2)], 0),  # profile needs more cores
    ],
)
def test_slot_accounting(servers: list[ServerView], expected: int) -> None:
    profile = JobProfile(package="builtin", min_cores=4)
    plan = plan_dispatch([job("a", profile=profile)], tasks("a", 10), servers)
    assert len(plan) == expected


def test_higher_priority_first() -> None:
    jobs = [job("low", priority=0), job("high", priority=5, created_at=9.0)]
    plan = plan_dispatch(
        jobs, tasks("low", 5) + tasks("high", 5, start=100), [server("s1", free=3)]
    )
    assert per_job(plan) == {"high": 3}


def test_fair_share_does_not_starve_small_job() -> None:
    jobs = [job("big", created_at=1.0), job("small", created_at=2.0)]
    work = tasks("big", 10_000) + tasks("small", 10, start=20_000)
    plan = plan_dispatch(jobs, work, [server(f"s{i}", free=2) for i in range(5)])
    assert per_job(plan) == {"big": 5, "small": 5}


def test_fair_share_counts_running_tasks() -> None:
    jobs = [job("a", running=4), job("b", running=0)]
    plan = plan_dispatch(jobs, tasks("a", 10) + tasks("b", 10, start=100), [server("s1", free=6)])
    assert per_job(plan) == {"a": 1, "b": 5}


@pytest.mark.parametrize(
    ("jobs", "winner"),
    [
        ([job("young", created_at=5.0), job("old", created_at=1.0)], "old"),
        ([job("b", created_at=1.0), job("a", created_at=1.0)], "a"),
    ],
)
def test_age_then_id_break_ties(jobs: list[JobView], winner: str) -> None:
    work = [t for j in jobs for t in tasks(j.id, 3, start=1000 * ord(j.id[0]))]
    plan = plan_dispatch(jobs, work, [server("s1", free=1)])
    assert [a.job_id for a in plan] == [winner]


def test_tasks_taken_in_given_order() -> None:
    work = [TaskView(id=i, job_id="a", attempt=0, frames=(i,)) for i in (9, 3, 7)]
    plan = plan_dispatch([job("a")], work, [server("s1", free=2)])
    assert [a.task_id for a in plan] == [9, 3]


def test_spreads_to_freest_server_then_name() -> None:
    servers = [
        server("s1", free=1, name="b"),
        server("s2", free=3, name="c"),
        server("s3", free=3, name="a"),
    ]
    plan = plan_dispatch([job("x")], tasks("x", 3), servers)
    assert [a.server_id for a in plan] == ["s3", "s2", "s3"]


@pytest.mark.parametrize(
    ("max_servers", "running_servers", "expected_servers"),
    [
        (0, frozenset(), {"s1", "s2", "s3"}),
        (2, frozenset(), {"s1", "s2"}),
        (1, frozenset({"s3"}), {"s3"}),
        (1, frozenset({"gone"}), set()),
    ],
)
def test_max_servers(
    max_servers: int, running_servers: frozenset[str], expected_servers: set[str]
) -> None:
    profile = JobProfile(package="builtin", max_servers=max_servers)
    servers = [server("s1", free=3), server("s2", free=3), server("s3", free=3)]
    plan = plan_dispatch(
        [job("a", profile=profile, running_servers=running_servers)], tasks("a", 9), servers
    )
    assert {a.server_id for a in plan} == expected_servers


def test_avoided_servers_never_used() -> None:
    plan = plan_dispatch(
        [job("a", avoid=frozenset({"s1"}))],
        tasks("a", 5),
        [server("s1", free=3), server("s2", free=1)],
    )
    assert [a.server_id for a in plan] == ["s2"]


def test_failed_on_servers_used_only_without_alternative() -> None:
    failed = frozenset({"s1"})
    servers = [server("s1", free=3), server("s2", free=0, status="busy")]
    # s2 is online and capable (just full): the task waits for it rather than retry on s1.
    assert plan_dispatch([job("a")], tasks("a", 1, failed_on=failed), servers) == []
    # With s2 offline, s1 is the only online capable server, so it is used again.
    servers[1] = server("s2", free=0, status="offline")
    plan = plan_dispatch([job("a")], tasks("a", 1, failed_on=failed), servers)
    assert [a.server_id for a in plan] == ["s1"]


def test_failed_on_prefers_other_server_and_blocked_task_does_not_block_job() -> None:
    work = tasks("a", 1, failed_on=frozenset({"s1"})) + tasks("a", 1, start=10)
    plan = plan_dispatch(
        [job("a")], work, [server("s1", free=1), server("s2", free=0, status="busy")]
    )
    assert [(a.task_id, a.server_id) for a in plan] == [(10, "s1")]


def test_duplicate_tasks_and_unknown_jobs_are_ignored() -> None:
    work = tasks("a", 2) + tasks("a", 2) + tasks("ghost", 2, start=50)
    plan = plan_dispatch([job("a")], work, [server("s1", free=10)])
    assert sorted(a.task_id for a in plan) == [0, 1]


def test_plans_large_farm_fairly() -> None:
    # Speed is measured in scripts/bench; this checks the large plan's shape.
    servers = [server(f"s{i:03d}", free=4) for i in range(500)]
    jobs = [
        job(f"j{j:02d}", created_at=float(j), avoid=frozenset({f"s{j:03d}"})) for j in range(50)
    ]
    work = [t for j in range(50) for t in tasks(f"j{j:02d}", 1000, start=j * 1000)]
    plan = plan_dispatch(jobs, work, servers)
    assert len(plan) == 2000
    assert set(per_job(plan).values()) == {40}


SERVER_IDS = [f"s{i}" for i in range(6)]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[JobView], list[TaskView], list[ServerView]]:
    servers = [
        ServerView(
            id=sid,
            name=draw(st.sampled_from(["a", "b", "c"])),
            cores=draw(st.sampled_from([2, 8])),
            memory_mb=8192,
            gpus=0,
            packages=draw(
                st.sampled_from([{"builtin": "1.0"}, {"builtin": "1.0", "povray": "3.7.0"}])
            ),
            tags=frozenset(),
            slots=4,
            free_slots=draw(st.integers(0, 4)),
            status=draw(st.sampled_from(["idle", "busy", "offline", "disabled"])),
        )
        for sid in SERVER_IDS
    ]
    profiles = [
        JobProfile(package="builtin"),
        JobProfile(package="builtin", min_cores=4),
        JobProfile(package="povray", version=">=3.7", max_servers=1),
        JobProfile(package="builtin", max_servers=2),
    ]
    subsets = st.frozensets(st.sampled_from(SERVER_IDS), max_size=3)
    jobs = [
        JobView(
            id=f"j{j}",
            priority=draw(st.integers(0, 2)),
            created_at=draw(st.floats(0, 10)),
            profile=draw(st.sampled_from(profiles)),
            running_tasks=draw(st.integers(0, 3)),
            running_servers=draw(subsets),
            avoid_servers=draw(subsets),
        )
        for j in range(draw(st.integers(1, 4)))
    ]
    work = [
        TaskView(
            id=i,
            job_id=draw(st.sampled_from([j.id for j in jobs])),
            attempt=0,
            frames=(i,),
            failed_on=draw(subsets),
        )
        for i in range(draw(st.integers(0, 25)))
    ]
    return jobs, work, servers


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_plan_invariants(scenario: tuple[list[JobView], list[TaskView], list[ServerView]]) -> None:
    jobs, work, servers = scenario
    plan = plan_dispatch(jobs, work, servers)
    by_server = {s.id: s for s in servers}
    by_job = {j.id: j for j in jobs}
    used = Counter(a.server_id for a in plan)
    for sid, count in used.items():
        assert by_server[sid].status in ("idle", "busy")
        assert count <= by_server[sid].free_slots
    assert len({a.task_id for a in plan}) == len(plan)
    first_task: dict[int, TaskView] = {}
    for t in work:
        first_task.setdefault(t.id, t)
    for a in plan:
        assert a.attempt == first_task[a.task_id].attempt + 1
        owner = by_job[a.job_id]
        assert matches(owner.profile, by_server[a.server_id])
        assert a.server_id not in owner.avoid_servers
        failed_on = first_task[a.task_id].failed_on
        if a.server_id in failed_on:
            alternatives = [
                s.id
                for s in servers
                if s.online and matches(owner.profile, s) and s.id not in owner.avoid_servers
            ]
            assert set(alternatives) <= failed_on
    for j in jobs:
        if j.profile.max_servers:
            new = {a.server_id for a in plan if a.job_id == j.id} - j.running_servers
            assert not new or len(j.running_servers | new) <= j.profile.max_servers


BLENDER = JobProfile(package="blender")


@pytest.mark.parametrize(
    ("view", "servers", "stranded"),
    [
        # every capable server avoided, nothing running: stranded
        (job("j", avoid=frozenset({"a", "b"})), [server("a"), server("b")], True),
        # one capable server still usable: not stranded
        (job("j", avoid=frozenset({"a"})), [server("a"), server("b")], False),
        # a usable capable server that is merely busy (no free slot) still counts
        (job("j", avoid=frozenset({"a"})), [server("a"), server("b", free=0)], False),
        # tasks still running: judged once they end
        (job("j", avoid=frozenset({"a", "b"}), running=1), [server("a"), server("b")], False),
        # no capable server online at all: one may yet connect
        (job("j", avoid=frozenset({"a"})), [server("a", status="offline")], False),
        (job("j", profile=BLENDER, avoid=frozenset({"x"})), [server("a")], False),
        # nothing avoided
        (job("j"), [server("a")], False),
        # an avoided server that went offline does not count either way
        (
            job("j", avoid=frozenset({"a", "b"})),
            [server("a"), server("b", status="disabled")],
            True,
        ),
    ],
)
def test_stranded_jobs(view: JobView, servers: list[ServerView], stranded: bool) -> None:
    found = stranded_jobs([view], servers)
    assert (view.id in found) is stranded
    if stranded:
        assert "avoided" in found[view.id] and "a" in found[view.id]


@pytest.mark.parametrize(
    ("view", "servers", "unplaceable"),
    [
        # no server has the package
        (job("j", profile=BLENDER), [server("a")], True),
        # the only capable server is offline, or disabled
        (job("j"), [server("a", status="offline")], True),
        (job("j"), [server("a", status="disabled")], True),
        # no server at all
        (job("j"), [], True),
        # a capable server online, even busy or avoided: not this rule's business
        (job("j"), [server("a", free=0)], False),
        (job("j", avoid=frozenset({"a"})), [server("a")], False),
        # tasks still running
        (job("j", profile=BLENDER, running=1), [server("a")], False),
    ],
)
def test_unplaceable_jobs(view: JobView, servers: list[ServerView], unplaceable: bool) -> None:
    found = unplaceable_jobs([view], servers)
    assert (view.id in found) is unplaceable
    if unplaceable:
        assert found[view.id]  # the reason, as spillway job words it


# --- jobs accepted from peers: own jobs first, max_slots ----------------------------


def guest(jid: str, site: str, **kwargs: object) -> JobView:
    return dataclasses.replace(job(jid, **kwargs), guest_of=site)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("guests", "first"),
    [
        ({}, "own"),  # a peer without a policy: own jobs first
        ({"studio": GuestLimit()}, "own"),
        ({"studio": GuestLimit(own_first=False)}, "visit"),  # then fair share and age decide
    ],
)
def test_own_jobs_go_first_at_equal_priority_unless_the_policy_says_otherwise(
    guests: dict[str, GuestLimit], first: str
) -> None:
    jobs = [guest("visit", "studio", created_at=1.0), job("own", created_at=2.0)]
    plan = plan_dispatch(
        jobs, tasks("visit", 1) + tasks("own", 1, start=10), [server("s1")], guests=guests
    )
    assert [a.job_id for a in plan] == [first]


def test_a_guest_job_of_higher_priority_still_goes_first() -> None:
    jobs = [guest("visit", "studio", priority=90), job("own", priority=10)]
    plan = plan_dispatch(jobs, tasks("visit", 1) + tasks("own", 1, start=10), [server("s1")])
    assert [a.job_id for a in plan] == ["visit"]


@pytest.mark.parametrize(("limit", "running", "expected"), [(3, 0, 3), (3, 2, 1), (3, 3, 0)])
def test_a_peers_jobs_together_hold_at_most_max_slots(
    limit: int, running: int, expected: int
) -> None:
    jobs = [guest("v1", "studio"), guest("v2", "studio"), guest("x", "other")]
    plan = plan_dispatch(
        jobs,
        tasks("v1", 4) + tasks("v2", 4, start=10) + tasks("x", 2, start=20),
        [server("s1", free=10)],
        guests={"studio": GuestLimit(max_slots=limit)},
        guest_running={"studio": running},
    )
    counts = per_job(plan)
    assert counts["v1"] + counts["v2"] == expected
    assert counts["x"] == 2  # another peer without max_slots is not held back


def test_round_slices_grow_from_a_small_first_slice() -> None:
    assert round_slices(0) == []
    assert round_slices(5) == [(0, 5)]
    assert round_slices(1000) == [
        (0, 32),
        (32, 96),
        (96, 224),
        (224, 480),
        (480, 736),
        (736, 992),
        (992, 1000),
    ]


@given(st.integers(min_value=0, max_value=5000))
def test_round_slices_cover_the_plan_once_in_order(count: int) -> None:
    bounds = round_slices(count)
    assert [i for start, stop in bounds for i in range(start, stop)] == list(range(count))
    sizes = [stop - start for start, stop in bounds]
    assert all(0 < size <= MAX_SLICE for size in sizes)
    assert not sizes or sizes[0] == min(count, FIRST_SLICE)
