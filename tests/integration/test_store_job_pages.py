"""The web monitor's store reads, on SQLite and PostgreSQL: a filtered, sorted page of
jobs, progress of a page in a few reads, the frame grid, server activity, peer counts,
and the priority change."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from scheduler.profile import JobProfile
from site_agent.errors import ConflictError
from site_agent.lifecycle import JobPriorityChanged
from site_agent.store import Store
from site_agent.store.job_pages import JobQuery, LatestFrame
from site_agent.store.records import FrameRecord, JobState, TaskState
from tests.integration.test_store_contract import claim, complete, lc, make_job, start


async def add_job(
    store: Store,
    job_id: str,
    *,
    name: str,
    owner: str = "ana",
    package: str = "povray",
    created_at: float = 100.0,
    priority: int = 50,
    state: JobState = JobState.QUEUED,
    placement: str = "local",
    origin: tuple[str, str] | None = None,
    chunks: Sequence[tuple[int, ...]] = ((1,), (2,)),
) -> None:
    job = dataclasses.replace(
        make_job(
            job_id, created_at=created_at, priority=priority, state=state, placement=placement
        ),
        name=name,
        owner=owner,
        profile=JobProfile(package=package),
    )
    if origin is not None:
        job = dataclasses.replace(job, origin_site=origin[0], origin_job_id=origin[1])
    await lc(store).create(job, list(chunks))


async def ids(store: Store, **query: object) -> list[str]:
    page = await store.job_page(JobQuery(**query))  # type: ignore[arg-type]
    return [j.id for j in page.jobs]


@pytest.fixture
async def jobs(store: Store) -> Store:
    await add_job(store, "j1", name="Forest_01", created_at=1.0, priority=10)
    await add_job(store, "j2", name="forest_02", owner="bo", created_at=2.0, priority=90)
    await add_job(
        store, "j3", name="city 50%", package="blender", created_at=3.0, state=JobState.PAUSED
    )
    await add_job(store, "j4", name="sky", package="povray-beta", created_at=4.0, placement="paris")
    await add_job(store, "j5", name="sea", created_at=5.0, origin=("paris", "p-9"))
    return store


async def test_filters_search_and_sorts_in_sql(jobs: Store) -> None:
    store = jobs
    assert await ids(store) == ["j5", "j4", "j3", "j2", "j1"]
    assert await ids(store, sort="created") == ["j1", "j2", "j3", "j4", "j5"]
    assert await ids(store, sort="-priority") == ["j2", "j5", "j4", "j3", "j1"]
    assert await ids(store, sort="name") == ["j3", "j1", "j2", "j5", "j4"]  # any case
    assert await ids(store, states=[JobState.PAUSED]) == ["j3"]
    assert await ids(store, states=[]) == []
    assert await ids(store, owner="bo") == ["j2"]
    assert await ids(store, search="FOREST") == ["j2", "j1"]
    assert await ids(store, search="j4") == ["j4"]  # the id too
    # LIKE's wildcards in the search text match only themselves.
    assert await ids(store, search="50%") == ["j3"]
    assert await ids(store, search="forest_") == ["j2", "j1"]
    assert await ids(store, search="sk_") == []  # "sky" would match a wildcard
    # The package name exactly: povray is not povray-beta.
    assert await ids(store, package="povray") == ["j5", "j2", "j1"]
    assert await ids(store, package="blender") == ["j3"]
    assert await ids(store, placement="local") == ["j3", "j2", "j1"]
    assert await ids(store, placement="forwarded") == ["j4"]
    assert await ids(store, placement="accepted") == ["j5"]
    assert await ids(store, placement="paris") == ["j5", "j4"]
    assert await ids(store, placement="paris", owner="bo") == []


async def test_pages_never_overlap_and_count_every_match(jobs: Store) -> None:
    store = jobs
    pages = [await store.job_page(JobQuery(limit=2, offset=o, sort="-created")) for o in (0, 2, 4)]
    assert [[j.id for j in p.jobs] for p in pages] == [["j5", "j4"], ["j3", "j2"], ["j1"]]
    assert {p.total for p in pages} == {5}
    page = await store.job_page(JobQuery(limit=1, search="forest"))
    assert (len(page.jobs), page.total) == (1, 2)


async def test_progress_of_a_page_and_the_frame_grid(store: Store) -> None:
    await add_job(store, "job-1", name="a", chunks=[(1, 2), (3, 4), (5,)])
    await add_job(store, "idle", name="b")
    tasks = await store.list_tasks("job-1")
    first = await claim(store, tasks[0], "s1")
    await start(store, first, "s1", at=10.0, lease_expires_at=500.0)
    frames = [
        FrameRecord(
            job_id="job-1",
            frame=n,
            task_id=first.id,
            name=f"a_{n:04d}.png",
            sha256="c" * 64,
            size=10,
            server_id="s1",
            rendered_at=12.0,
        )
        for n in (1, 2)
    ]
    async with store.transaction() as tx:
        await tx.upsert_frames(frames)
    await complete(store, first.id, first.attempt, "s1", at=16.0)
    second = await claim(store, tasks[1], "s2")
    await start(store, second, "s2", at=17.0, lease_expires_at=500.0)

    progress = await store.jobs_progress(["job-1", "idle"])
    p = progress["job-1"]
    assert p.tasks[TaskState.DONE] == 1 and p.tasks[TaskState.RUNNING] == 1
    assert p.tasks[TaskState.WAITING] == 1 and p.frames_done == 2
    assert (p.done_tasks_timed, p.busy_s) == (1, 6.0)
    assert progress["idle"].tasks[TaskState.WAITING] == 2 and progress["idle"].frames_done == 0

    grid = await store.grid_tasks("job-1")
    assert grid.index == [0, 1, 2] and grid.frames == [(1, 2), (3, 4), (5,)]
    assert grid.state == ["done", "running", "waiting"] and grid.attempt == [1, 1, 0]
    assert grid.server_id == ["s1", "s2", None]
    assert grid.started_at == [10.0, 17.0, None] and grid.finished_at == [16.0, None, None]
    assert await store.stored_frame_numbers("job-1") == {1, 2}
    latest = await store.latest_frames("job-1", 1)  # newest first: same time, higher frame
    assert latest == [LatestFrame(frame=2, rendered_at=12.0, preview=False)]

    busy = await store.server_busy(now=20.0, window_s=12.0)  # the window starts at 8
    assert busy == {"s1": 6.0, "s2": 3.0}
    assert await store.server_busy(now=100.0, window_s=10.0) == {"s2": 10.0}


async def test_last_errors_and_peer_counts(store: Store) -> None:
    await add_job(store, "job-1", name="a", chunks=[(1,)])
    await add_job(store, "fwd", name="b", placement="paris")
    await add_job(store, "acc", name="c", origin=("oslo", "o-1"))
    [task] = await store.list_tasks("job-1")
    claimed = await claim(store, task, "s1")
    await lc(store).fail_task(
        claimed.id, claimed.attempt, "s1", error="povray exited 1", at=30.0, retry=True
    )
    assert await store.last_server_errors() == {"s1": ("povray exited 1", 30.0)}
    assert await store.peer_job_counts() == {"paris": (1, 0), "oslo": (0, 1)}


async def test_priority_changes_on_unfinished_jobs_only(store: Store) -> None:
    await add_job(store, "job-1", name="a")
    await add_job(store, "old", name="b", state=JobState.DONE)
    lifecycle = lc(store)
    heard: list[object] = []

    async def listen(event: object) -> None:
        heard.append(event)

    lifecycle.subscribe(listen, (JobPriorityChanged,))
    await lifecycle.set_priority("job-1", 90, at=50.0)
    job = await store.get_job("job-1")
    assert job is not None and (job.priority, job.updated_at) == (90, 50.0)
    assert heard == [JobPriorityChanged(job_id="job-1", priority=90)]
    with pytest.raises(ConflictError, match="unfinished"):
        await lifecycle.set_priority("old", 10, at=51.0)
