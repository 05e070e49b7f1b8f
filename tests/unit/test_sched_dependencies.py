"""Job dependencies as pure decisions: readiness, doom, the waiting text, cycles."""

from __future__ import annotations

import pytest

from scheduler.dependencies import (
    DependencyKind,
    Upstream,
    blocking,
    dispatchable,
    doomed_by,
    find_cycle,
    frames_ready,
    ready,
    waiting_text,
)
from scheduler.dispatch import JobView, TaskView, plan_dispatch
from scheduler.profile import JobProfile, ServerView
from scheduler.stranded import unplaceable_jobs

DONE, END = DependencyKind.DONE, DependencyKind.END


def up(state: str, kind: DependencyKind = DONE, job_id: str = "u1") -> Upstream:
    return Upstream(
        job_id=job_id, name="render", kind=kind, state=state, frames_done=12, frame_count=24
    )


@pytest.mark.parametrize(
    ("state", "kind", "is_ready", "doom"),
    [
        ("queued", DONE, False, None),
        ("running", DONE, False, None),
        ("paused", DONE, False, None),
        ("done", DONE, True, None),
        ("failed", DONE, False, "failed"),
        ("cancelled", DONE, False, "cancelled"),
        ("running", END, False, None),
        ("done", END, True, None),
        ("failed", END, True, None),
        ("cancelled", END, True, None),
    ],
)
def test_readiness_and_doom_per_kind(
    state: str, kind: DependencyKind, is_ready: bool, doom: str | None
) -> None:
    assert ready([up(state, kind)]) is is_ready
    assert doomed_by(up(state, kind)) == doom


def test_a_job_is_ready_only_when_every_upstream_is() -> None:
    ups = [up("done", job_id="a"), up("running", job_id="b"), up("failed", END, job_id="c")]
    assert [u.job_id for u in blocking(ups)] == ["b"]
    assert not ready(ups) and ready([]) and ready(ups[::2])


def test_waiting_text_names_what_holds_the_job_back() -> None:
    assert (
        waiting_text([up("running", job_id="abc")]) == "waiting for job abc (render, running 12/24)"
    )
    assert waiting_text([up("done")]) is None
    many = [up("queued", job_id=f"j{i}") for i in range(5)]
    text = waiting_text(many)
    assert text is not None and text.endswith(" and 2 more") and "j3" not in text


def test_find_cycle() -> None:
    edges = {"b": ["c"], "c": ["a"], "d": []}
    assert find_cycle("a", ["b"], edges) == ["a", "b", "c", "a"]
    assert find_cycle("a", ["d"], edges) is None
    assert find_cycle("x", ["b", "d"], edges) is None
    assert find_cycle("a", ["a"], {}) == ["a", "a"]


def test_the_planner_skips_jobs_that_are_not_ready() -> None:
    profile = JobProfile(package="builtin")
    server = _server("s1", "builtin")
    jobs = [
        JobView(
            id=j,
            priority=50,
            created_at=1.0,
            profile=profile,
            running_tasks=0,
            running_servers=frozenset(),
            ready=j == "ok",
        )
        for j in ("held", "ok")
    ]
    tasks = [TaskView(id=i, job_id=j, attempt=0, frames=(i,)) for i, j in ((1, "held"), (2, "ok"))]
    assert [a.job_id for a in plan_dispatch(jobs, tasks, [server])] == ["ok"]
    nobody = _server("s2", "povray")
    assert set(unplaceable_jobs(jobs, [nobody])) == {"ok"}


def _server(name: str, package: str) -> ServerView:
    return ServerView(
        id=name,
        name=name,
        cores=4,
        memory_mb=4096,
        gpus=0,
        packages={package: "3.7"},
        tags=frozenset(),
        slots=2,
        free_slots=2,
        status="idle",
    )


def test_frame_edges_hold_back_tasks_not_jobs() -> None:
    frames = up("running", DependencyKind.FRAMES, job_id="render")
    other = up("done", job_id="prep")
    assert dispatchable([frames, other]) and not ready([frames, other])
    assert not dispatchable([frames, up("running", job_id="prep")])
    stored = {"render": {1, 2, 3}}
    assert frames_ready([1, 2], [frames, other], stored)
    assert not frames_ready([3, 4], [frames, other], stored)
    assert not frames_ready([1], [frames], {})
    done = up("done", DependencyKind.FRAMES, job_id="render")
    assert frames_ready([9], [done], {}) and ready([done])
    assert doomed_by(up("failed", DependencyKind.FRAMES)) == "failed"
