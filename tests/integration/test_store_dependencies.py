"""Job dependency statements and transitions on SQLite and PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

import dataclasses

import pytest
from test_store_contract import claim, complete, frame, lc, make_job, new_job

from scheduler.dependencies import DependencyKind
from site_agent.errors import ConflictError
from site_agent.store.base import Store
from site_agent.store.records import JobState

DONE, END, FRAMES = DependencyKind.DONE, DependencyKind.END, DependencyKind.FRAMES


async def test_upstreams_in_the_snapshot_and_job_views(store: Store) -> None:
    [r0, _] = await new_job(store, "render", chunks=[(1,), (2,)])
    await lc(store).create(make_job("comp"), [(1,), (2,)], after=[("render", DONE)])
    await lc(store).create(make_job("notify"), [(1,)], after=[("render", END), ("comp", END)])
    await lc(store).apply_reports(
        [], [dataclasses.replace(frame(1, task_id=r0.id), job_id="render")], [], at=12.0
    )

    snap = await store.dispatch_snapshot(per_job_limit=1)
    assert sorted(snap.upstreams) == ["comp", "notify"]
    [up] = snap.upstreams["comp"]
    assert (up.job_id, up.kind, up.state, up.frames_done, up.frame_count) == (
        "render",
        DONE,
        "queued",
        1,
        24,
    )
    ups = await store.job_upstreams(["notify", "render"])
    assert list(ups) == ["notify"] and [u.job_id for u in ups["notify"]] == ["comp", "render"]
    async with store.transaction() as tx:
        assert await tx.dependencies.dependents("render") == [("comp", DONE), ("notify", END)]
        assert await tx.dependencies.edges_from(["notify", "comp", "render"]) == {
            "notify": ["comp", "render"],
            "comp": ["render"],
        }


async def test_the_end_of_a_job_settles_its_dependents_in_its_transaction(store: Store) -> None:
    [r0] = await new_job(store, "render", chunks=[(1,)])
    await lc(store).create(make_job("comp"), [(1,)], after=[("render", DONE)])
    await lc(store).create(make_job("grade"), [(1,)], after=[("comp", DONE)])
    with pytest.raises(ConflictError, match="cycle"):
        await lc(store).add_dependencies("comp", [("grade", DONE)], at=5.0)
    running = await claim(store, r0)
    await lc(store).fail_task(running.id, 1, "s1", error="boom", at=11.0, retry=False)
    for job_id, reason in (("comp", "upstream job render failed"), ("grade", "job comp failed")):
        job = await store.get_job(job_id)
        assert job is not None and job.state is JobState.FAILED and reason in job.error
    async with store.transaction() as tx:
        assert await tx.dependencies.dependents("render") == []  # finished jobs are left alone

    [u0] = await new_job(store, "u", chunks=[(1,)])
    await lc(store).create(make_job("d"), [(1,)], after=[("u", DONE)])
    outcome = await complete(store, (await claim(store, u0)).id, 1, "s1", at=20.0, job_id="u")
    assert outcome is not None and outcome.settled.released == ("d",)


async def test_the_snapshot_says_which_upstream_frames_are_stored(store: Store) -> None:
    [r0, _] = await new_job(store, "render", chunks=[(1,), (2,)])
    await lc(store).create(make_job("comp"), [(1,), (2,), (3,)], after=[("render", FRAMES)])
    await lc(store).apply_reports(
        [], [dataclasses.replace(frame(1, task_id=r0.id), job_id="render")], [], at=12.0
    )
    snap = await store.dispatch_snapshot(per_job_limit=2)
    assert snap.upstream_frames == {"comp": {"render": frozenset({1})}}
    [up] = snap.upstreams["comp"]
    assert up.kind is FRAMES
