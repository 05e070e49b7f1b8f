"""The Store contract, run against SQLite and PostgreSQL (see the ``store`` fixture).

Transitions are made through the lifecycle (:func:`lc`), the one user of the
store's transaction statements; what they leave in the database is the contract.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Sequence

import pytest

from scheduler.profile import JobProfile
from site_agent.errors import JobExistsError, NotFoundError
from site_agent.lifecycle import Lifecycle
from site_agent.lifecycle.events import Event, FramesStored
from site_agent.store import (
    LOCAL,
    CompletionReport,
    FrameFile,
    FrameRecord,
    JobRecord,
    JobState,
    LogReport,
    RunningSummary,
    ServerRecord,
    ServerStatus,
    StartedReport,
    Store,
    StoreConflictError,
    StoreNotFoundError,
    TaskClaim,
    TaskOutcome,
    TaskRecord,
    TaskState,
)
from spillway.core.records import FileEntry, FileKind

ALL_STATES = tuple(JobState)

PROFILE = JobProfile(
    package="povray",
    version=">=3.7",
    min_memory_mb=2048,
    min_cores=2,
    tags=frozenset({"linux", "fast"}),
    max_servers=4,
    task_timeout_s=600.0,
    max_attempts=3,
)


def make_job(
    job_id: str = "job-1",
    *,
    created_at: float = 100.0,
    priority: int = 0,
    state: JobState = JobState.QUEUED,
    placement: str = LOCAL,
) -> JobRecord:
    return JobRecord(
        id=job_id,
        name=f"shot {job_id}",
        owner="ana",
        origin_site="studio",
        priority=priority,
        profile=PROFILE,
        frames="1-240x10",
        frame_count=24,
        chunk_size=3,
        scene="scene.pov",
        manifest=(
            FileEntry(path="scene.pov", sha256="a" * 64, size=1200),
            FileEntry(path="tex/wood.png", sha256="b" * 64, size=88_000),
        ),
        output_name="shot",
        output_ext="exr",
        settings={"width": 640, "height": 360, "quality": {"aa": 0.3}},
        state=state,
        placement=placement,
        created_at=created_at,
        updated_at=created_at,
    )


def make_server(name: str = "r1", *, server_id: str = "", **fields: object) -> ServerRecord:
    server = ServerRecord(
        id=server_id or f"id-{name}",
        name=name,
        host=f"{name}.farm",
        cores=16,
        memory_mb=65_536,
        gpus=("RTX 4090",),
        os="linux",
        cpu_model="EPYC",
        packages={"povray": "3.7.0.10", "builtin": "1.0"},
        tags=frozenset({"linux"}),
        slots=4,
        status=ServerStatus.IDLE,
        last_heartbeat=50.0,
        registered_at=40.0,
    )
    return dataclasses.replace(server, **fields)  # type: ignore[arg-type]


def lc(store: Store) -> Lifecycle:
    """The lifecycle over ``store`` (cheap: it starts nothing until reports are queued)."""
    return Lifecycle(store)


async def complete(
    store: Store,
    task_id: int,
    attempt: int,
    server_id: str,
    *,
    at: float,
    log_tail: str | None = None,
    job_id: str = "job-1",
) -> TaskOutcome | None:
    """One fenced completion, applied as a batch of one."""
    report = CompletionReport(
        task_id=task_id,
        attempt=attempt,
        server_id=server_id,
        job_id=job_id,
        at=at,
        log_tail=log_tail,
    )
    [outcome] = await lc(store).apply_reports([], [], [report], at=at)
    return outcome


async def start(
    store: Store, task: TaskRecord, server_id: str, *, at: float, lease_expires_at: float
) -> None:
    """One fenced start, applied as a batch of one."""
    report = StartedReport(
        task_id=task.id,
        attempt=task.attempt,
        server_id=server_id,
        job_id=task.job_id,
        at=at,
        lease_expires_at=lease_expires_at,
    )
    await lc(store).apply_reports([report], [], [], at=at)


async def append_log(
    store: Store, task: TaskRecord, server_id: str, text: str, *, max_chars: int
) -> None:
    """One fenced log append, applied as a batch of one."""
    report = LogReport(
        task_id=task.id, attempt=task.attempt, server_id=server_id, text=text, max_chars=max_chars
    )
    await lc(store).apply_reports([], [], [], at=0.0, logs=[report])


async def set_state(
    store: Store,
    job_id: str,
    state: JobState,
    *,
    at: float,
    expected: Sequence[JobState] = ALL_STATES,
    error: str = "",
) -> bool:
    async with store.transaction() as tx:
        return await tx.set_job_state(job_id, state, at=at, expected=expected, error=error)


async def new_job(
    store: Store,
    job_id: str = "job-1",
    chunks: Sequence[tuple[int, ...]] = ((1,), (2,), (3,)),
    **fields: object,
) -> list[TaskRecord]:
    """Create a job; returns its tasks in index order."""
    await lc(store).create(make_job(job_id, **fields), list(chunks))  # type: ignore[arg-type]
    return await store.list_tasks(job_id)


def claim_of(task: TaskRecord, server: str = "s1", *, lease: float = 1000.0) -> TaskClaim:
    return TaskClaim(
        task_id=task.id,
        job_id=task.job_id,
        attempt=task.attempt + 1,
        server_id=server,
        lease_expires_at=lease,
    )


async def claim(
    store: Store, task: TaskRecord, server: str = "s1", *, lease: float = 1000.0
) -> TaskRecord:
    [claimed] = await lc(store).assign([claim_of(task, server, lease=lease)], at=10.0)
    return claimed


# --- render servers ---------------------------------------------------------
async def test_upsert_server_keeps_id_and_disabled_status(store: Store) -> None:
    first = await store.upsert_server(make_server("r1"))
    assert first == make_server("r1")

    again = await store.upsert_server(make_server("r1", server_id="new-id", cores=32, slots=8))
    assert (again.id, again.cores, again.slots, again.registered_at) == ("id-r1", 32, 8, 40.0)

    await store.set_server_status("id-r1", ServerStatus.DISABLED, at=60.0)
    after = await store.upsert_server(
        make_server("r1", server_id="other", status=ServerStatus.IDLE)
    )
    assert after.status is ServerStatus.DISABLED
    assert await store.get_server_by_name("r1") == after
    assert await store.get_server("id-r1") == after
    assert await store.get_server("nope") is None


async def test_servers_listed_by_name_and_unknown_ones_rejected(store: Store) -> None:
    for name in ("r2", "r1", "r3"):
        await store.upsert_server(make_server(name, tags=frozenset({"a", name})))
    servers = await store.list_servers()
    assert [s.name for s in servers] == ["r1", "r2", "r3"]
    assert servers[0].tags == frozenset({"a", "r1"})
    assert servers[0].gpus == ("RTX 4090",) and servers[0].packages["povray"] == "3.7.0.10"
    with pytest.raises(StoreConflictError):  # an id taken by another name
        await store.upsert_server(make_server("r9", server_id="id-r1"))
    with pytest.raises(StoreNotFoundError, match="not registered"):
        await store.set_server_status("nope", ServerStatus.OFFLINE, at=1.0)


async def test_heartbeats_update_in_batches_and_never_go_back(store: Store) -> None:
    await store.upsert_server(make_server("r1"))
    await store.upsert_server(make_server("r2", last_heartbeat=None))
    await store.record_heartbeats([("id-r1", 70.0), ("id-r2", 71.0), ("unknown", 72.0)])
    await store.record_heartbeats([("id-r1", 65.0)])
    beats = {s.name: s.last_heartbeat for s in await store.list_servers()}
    assert beats == {"r1": 70.0, "r2": 71.0}


async def test_heartbeats_heard_at_one_moment_share_a_statement_and_never_go_back(
    store: Store,
) -> None:
    """A liveness batch: several servers at one time, mixed with servers heard alone."""
    for name in ("r1", "r2", "r3", "r4"):
        await store.upsert_server(make_server(name, server_id=f"id-{name}", last_heartbeat=None))
    await store.record_heartbeats([("id-r1", 80.0), ("id-r2", 80.0), ("id-r3", 75.0)])
    await store.record_heartbeats(
        [("id-r1", 78.0), ("id-r2", 81.0), ("id-r3", 81.0), ("unknown", 81.0), ("id-r4", 79.0)]
    )
    beats = {s.name: s.last_heartbeat for s in await store.list_servers()}
    assert beats == {"r1": 80.0, "r2": 81.0, "r3": 81.0, "r4": 79.0}


# --- jobs -------------------------------------------------------------------
async def test_job_roundtrip_keeps_every_field(store: Store) -> None:
    job = dataclasses.replace(
        make_job("job-rt"),
        forward_allowed=False,
        origin_job_id="paris-17",
        placement_reason="accepted from paris",
        placement_epoch=2,
        remote_job_id="r-5",
        error="",
    )
    await lc(store).create(job, [(1, 11, 21), (31, 41, 51)])
    assert await store.get_job("job-rt") == job
    assert await store.get_job("missing") is None
    with pytest.raises(JobExistsError, match="already exists"):
        await lc(store).create(job, [(1,)])


async def test_task_frames_roundtrip(store: Store) -> None:
    chunks = [(1, 11, 21), (31,), (5, 6, 7, 8), (9, 3), (-2, -1, 0, 1), (4, 5)]
    tasks = await new_job(store, chunks=chunks)
    assert [t.frames for t in tasks] == chunks
    assert [t.index for t in tasks] == list(range(len(chunks)))
    assert all(t.state is TaskState.WAITING and t.attempt == 0 for t in tasks)
    assert await store.get_task(tasks[0].id) == tasks[0]
    assert await store.get_task(10**9) is None


async def test_list_jobs_newest_first_with_state_filter(store: Store) -> None:
    await new_job(store, "old", created_at=1.0)
    await new_job(store, "mid", created_at=2.0, state=JobState.PAUSED)
    await new_job(store, "new", created_at=3.0)
    assert [j.id for j in await store.list_jobs()] == ["new", "mid", "old"]
    assert [j.id for j in await store.list_jobs(limit=2)] == ["new", "mid"]
    assert [j.id for j in await store.list_jobs(states=[JobState.QUEUED])] == ["new", "old"]
    assert [j.id for j in await store.list_jobs(states={JobState.PAUSED, JobState.DONE})] == ["mid"]
    assert await store.list_jobs(states=[]) == []


async def test_update_job_state_and_placement(store: Store) -> None:
    await new_job(store)
    ok = await set_state(store, "job-1", JobState.PAUSED, at=5.0, expected=[JobState.RUNNING])
    assert not ok
    assert await set_state(store, "job-1", JobState.FAILED, at=6.0, error="no server")
    job = await store.get_job("job-1")
    assert job is not None and (job.state, job.finished_at, job.error) == (
        JobState.FAILED,
        6.0,
        "no server",
    )
    assert await set_state(store, "job-1", JobState.QUEUED, at=7.0, expected=[JobState.FAILED])
    job = await store.get_job("job-1")
    assert job is not None and (job.finished_at, job.updated_at, job.error) == (None, 7.0, "")
    assert not await set_state(store, "missing", JobState.DONE, at=8.0)

    await store.set_job_placement(
        "job-1", placement="paris", reason="no local povray", epoch=1, remote_job_id="p-1", at=9.0
    )
    job = await store.get_job("job-1")
    assert job is not None
    assert (job.placement, job.placement_reason, job.placement_epoch, job.remote_job_id) == (
        "paris",
        "no local povray",
        1,
        "p-1",
    )
    with pytest.raises(StoreNotFoundError):
        await store.set_job_placement(
            "x", placement="p", reason="", epoch=1, remote_job_id=None, at=1.0
        )


# --- dispatch -----------------------------------------------------------------
async def test_dispatch_snapshot_contents(store: Store) -> None:
    a = await new_job(store, "a", chunks=[(i,) for i in range(5)], created_at=1.0)
    b = await new_job(store, "b", chunks=[(1,), (2,)], created_at=2.0, priority=5)
    await new_job(store, "forwarded", placement="paris")
    await new_job(store, "paused", state=JobState.PAUSED)
    [e] = await new_job(store, "busy", chunks=[(1,)])
    await claim(store, a[0], "s1")
    await claim(store, a[1], "s2")
    await claim(store, e, "s1")
    failed = await claim(store, a[2], "s3")
    await lc(store).fail_task(failed.id, 1, "s3", error="segfault", at=11.0, retry=True)

    snap = await store.dispatch_snapshot(per_job_limit=2)

    assert [j.id for j in snap.jobs] == ["b", "a"]
    assert [(t.job_id, t.index) for t in snap.waiting] == [("b", 0), ("b", 1), ("a", 2), ("a", 3)]
    # Servers are read only for the snapshot's jobs that limit them (PROFILE: max_servers 4).
    assert snap.running["a"] == RunningSummary(tasks=2, servers=frozenset({"s1", "s2"}))
    assert snap.running["busy"] == RunningSummary(tasks=1, servers=frozenset())
    assert snap.running["b"].tasks == 0
    assert snap.server_failures["a"] == {"s3": 1}
    assert snap.server_failures["b"] == {}
    assert snap.failed_on[a[2].id] == frozenset({"s3"})
    assert snap.failed_on[b[0].id] == frozenset()


async def test_dispatch_snapshot_counts_active_tasks_of_accepted_jobs_per_peer(
    store: Store,
) -> None:
    async def accepted(job_id: str, site: str, chunks: int) -> list[TaskRecord]:
        job = dataclasses.replace(make_job(job_id), origin_site=site, origin_job_id=f"o-{job_id}")
        await lc(store).create(job, [(i,) for i in range(chunks)])
        return await store.list_tasks(job_id)

    p1, p2 = await accepted("from-paris", "paris", 2)
    [p3] = await accepted("also-paris", "paris", 1)
    [o1] = await accepted("from-oslo", "oslo", 1)
    [own] = await new_job(store, "own", chunks=[(1,)])
    for task in (p1, p2, p3, o1, own):
        await claim(store, task)
    await lc(store).fail_task(p3.id, 1, "s1", error="segfault", at=12.0, retry=False)

    snap = await store.dispatch_snapshot(per_job_limit=1)

    assert snap.guest_running == {"paris": 2, "oslo": 1}


async def test_assign_tasks_is_fenced(store: Store) -> None:
    t0, t1, t2 = await new_job(store)
    [won] = await lc(store).assign([claim_of(t0, "s1"), claim_of(t0, "s2")], at=10.0)
    assert (won.id, won.state, won.attempt, won.server_id) == (t0.id, TaskState.DISPATCHED, 1, "s1")
    assert (won.dispatched_at, won.lease_expires_at) == (10.0, 1000.0)
    job = await store.get_job("job-1")
    assert job is not None and job.state is JobState.RUNNING

    assert await lc(store).assign([claim_of(t0, "s2")], at=11.0) == []  # already dispatched
    stale = TaskClaim(
        task_id=t1.id, job_id=t1.job_id, attempt=2, server_id="s1", lease_expires_at=1.0
    )
    assert await lc(store).assign([stale], at=11.0) == []  # attempt is 0, not 1
    missing = TaskClaim(
        task_id=10**9, job_id=t1.job_id, attempt=1, server_id="s1", lease_expires_at=1.0
    )
    claimed = await lc(store).assign([missing, claim_of(t1), claim_of(t2)], at=12.0)
    assert [t.id for t in claimed] == [t1.id, t2.id]


async def test_a_claim_naming_another_job_loses(store: Store) -> None:
    """The claim's job is locked before the task is read; a claim naming the wrong job must not win."""
    [t0] = await new_job(store, "job-1", [(1,)])
    await new_job(store, "job-2", [(1,)])
    wrong = TaskClaim(
        task_id=t0.id, job_id="job-2", attempt=1, server_id="s1", lease_expires_at=1.0
    )
    assert await lc(store).assign([wrong], at=10.0) == []
    task = await store.get_task(t0.id)
    assert task is not None and task.state is TaskState.WAITING
    job = await store.get_job("job-1")
    assert job is not None and job.state is JobState.QUEUED


@pytest.mark.parametrize("state", [JobState.PAUSED, JobState.CANCELLED, JobState.DONE])
async def test_assign_tasks_skips_jobs_that_are_not_dispatchable(
    store: Store, state: JobState
) -> None:
    [task] = await new_job(store, chunks=[(1,)])
    await set_state(store, "job-1", state, at=5.0)
    assert await lc(store).assign([claim_of(task)], at=10.0) == []


async def test_concurrent_assign_never_double_claims(store: Store) -> None:
    tasks = await new_job(store, chunks=[(i,) for i in range(60)])

    async def dispatcher(server: str) -> list[TaskRecord]:
        won: list[TaskRecord] = []
        for start in range(0, 60, 15):
            batch = [claim_of(t, server) for t in tasks[start : start + 15]]
            won += await lc(store).assign(batch, at=10.0)
        return won

    results = await asyncio.gather(*(dispatcher(f"s{i}") for i in range(4)))
    claimed = [t.id for won in results for t in won]
    assert sorted(claimed) == sorted(t.id for t in tasks)
    for won in results:
        for task in won:
            current = await store.get_task(task.id)
            assert current is not None and current.server_id == task.server_id


async def test_create_job_with_100k_chunks(store: Store) -> None:
    chunks = [(frame,) for frame in range(1, 100_001)]
    await lc(store).create(dataclasses.replace(make_job("huge"), frame_count=100_000), chunks)
    counts = await store.task_counts("huge")
    assert counts[TaskState.WAITING] == 100_000 and counts[TaskState.DONE] == 0
    snap = await store.dispatch_snapshot(per_job_limit=10)
    assert [t.frames for t in snap.waiting] == chunks[:10]
    tasks = await store.list_tasks("huge")
    assert (tasks[-1].index, tasks[-1].frames) == (99_999, (100_000,))


# --- frames -------------------------------------------------------------------
def frame(number: int, *, sha: str = "c", task_id: int | None = None) -> FrameRecord:
    return FrameRecord(
        job_id="job-1",
        frame=number,
        task_id=task_id,
        name=f"shot_{number:04d}.exr",
        sha256=sha * 64,
        size=4096,
        server_id="s1",
        rendered_at=20.0,
    )


async def test_recorded_frames_are_announced_before_their_task_ends(store: Store) -> None:
    """The monitor's grid shows a chunk's frames as each is stored, not when the task ends."""
    await new_job(store)
    life, heard = lc(store), []

    async def hear(event: Event) -> None:
        heard.append(event)

    life.subscribe(hear, (FramesStored,))
    await life.apply_reports([], [frame(1), frame(2)], [], at=20.0)
    await life.apply_reports([], [], [], at=20.0)
    assert heard == [FramesStored(job_ids=("job-1",))]


async def test_record_frames_upserts(store: Store) -> None:
    tasks = await new_job(store)
    await lc(store).apply_reports([], [frame(2, task_id=tasks[1].id), frame(1)], [], at=20.0)
    await lc(store).apply_reports([], [frame(2, sha="d")], [], at=20.0)
    frames = await store.list_frames("job-1")
    assert frames == [frame(1), frame(2, sha="d")]
    assert await store.get_frame("job-1", 1) == frame(1)
    assert await store.get_frame("job-1", 9) is None
    await lc(store).apply_reports([], [], [], at=20.0)
    with pytest.raises(StoreNotFoundError, match="frames of job nope: no such job"):
        await lc(store).apply_reports(
            [], [dataclasses.replace(frame(1), job_id="nope")], [], at=20.0
        )


async def test_a_frames_other_files_are_recorded_with_it_and_replaced_with_it(
    store: Store,
) -> None:
    await new_job(store)
    right = FrameFile(name="shot_0002_R.exr", sha256="e" * 64, size=10, kind=FileKind.EXTRA)
    preview = FrameFile(
        name=".previews/shot_0002.exr.png", sha256="f" * 64, size=5, kind=FileKind.PREVIEW
    )
    two = dataclasses.replace(frame(2), files=(preview, right))
    await lc(store).apply_reports([], [frame(1), two], [], at=20.0)
    assert await store.list_frames("job-1") == [frame(1), two]
    assert await store.get_frame("job-1", 2) == two
    assert (await store.get_frame("job-1", 2)).preview == preview  # type: ignore[union-attr]
    assert await store.frames_of("job-1", [2, 3]) == [two]
    # Which frame holds a name: main files and other files alike, only in this job.
    names = ["shot_0001.exr", "shot_0002_R.exr", ".previews/shot_0002.exr.png", "other.exr"]
    assert await store.frame_name_owners("job-1", names) == {
        "shot_0001.exr": 1,
        "shot_0002_R.exr": 2,
        ".previews/shot_0002.exr.png": 2,
    }
    assert await store.frame_name_owners("job-2", names) == {}
    # Recording the frame again replaces its files (a retry that wrote fewer files).
    again = dataclasses.replace(frame(2, sha="d"), files=(right,))
    await lc(store).apply_reports([], [again], [], at=21.0)
    assert await store.get_frame("job-1", 2) == again
    await lc(store).apply_reports([], [frame(2)], [], at=22.0)
    assert await store.get_frame("job-1", 2) == frame(2)
    assert await store.frame_name_owners("job-1", ["shot_0002_R.exr"]) == {}


# --- task lifecycle -----------------------------------------------------------
async def test_running_and_log_tail_are_fenced(store: Store) -> None:
    [task] = await new_job(store, chunks=[(1,)])
    task = await claim(store, task, "s1")
    await start(store, task, "s2", at=11.0, lease_expires_at=500.0)  # not its server
    assert await store.get_task(task.id) == task
    await start(store, task, "s1", at=11.0, lease_expires_at=500.0)
    await start(store, task, "s1", at=12.0, lease_expires_at=600.0)
    await append_log(store, task, "s1", "abcdef", max_chars=8)
    await append_log(store, task, "s1", "ghij", max_chars=8)
    await append_log(store, dataclasses.replace(task, attempt=2), "s1", "late", max_chars=8)
    current = await store.get_task(task.id)
    assert current is not None
    assert (current.state, current.started_at, current.lease_expires_at) == (
        TaskState.RUNNING,
        11.0,
        600.0,
    )
    assert current.log_tail == "cdefghij"
    await append_log(store, task, "s1", "é" * 20, max_chars=5)
    current = await store.get_task(task.id)
    assert current is not None and current.log_tail == "ééééé"


async def test_complete_task_is_fenced(store: Store) -> None:
    t0, _ = await new_job(store, chunks=[(1,), (2,)])
    t0 = await claim(store, t0, "s1")
    assert await complete(store, t0.id, 1, "s2", at=20.0) is None  # wrong server
    assert await complete(store, t0.id, 2, "s1", at=20.0) is None  # wrong attempt
    assert await complete(store, 10**9, 1, "s1", at=20.0) is None
    assert await store.get_task(t0.id) == t0

    outcome = await complete(store, t0.id, 1, "s1", at=20.0, log_tail="all good")
    assert outcome is not None
    assert (outcome.task.state, outcome.task.finished_at, outcome.task.log_tail) == (
        TaskState.DONE,
        20.0,
        "all good",
    )
    assert (outcome.job_state, outcome.job_finished) == (JobState.RUNNING, False)
    assert await complete(store, t0.id, 1, "s1", at=21.0) is None  # already done


async def test_job_done_when_last_task_completes(store: Store) -> None:
    tasks = [await claim(store, t, "s1") for t in await new_job(store, chunks=[(1,), (2,)])]
    first = await complete(store, tasks[0].id, 1, "s1", at=20.0)
    last = await complete(store, tasks[1].id, 1, "s1", at=21.0)
    assert first is not None and not first.job_finished
    assert last is not None and (last.job_state, last.job_finished) == (JobState.DONE, True)
    job = await store.get_job("job-1")
    assert job is not None and (job.state, job.finished_at, job.error) == (JobState.DONE, 21.0, "")
    assert await store.task_counts("job-1") == {
        TaskState.WAITING: 0,
        TaskState.DISPATCHED: 0,
        TaskState.RUNNING: 0,
        TaskState.DONE: 2,
        TaskState.FAILED: 0,
    }


async def test_concurrent_completions_finish_the_job_exactly_once(store: Store) -> None:
    tasks = await new_job(store, chunks=[(i,) for i in range(12)])
    claimed = await lc(store).assign([claim_of(t, f"s{t.index % 3}") for t in tasks], at=10.0)
    outcomes = await asyncio.gather(
        *(complete(store, t.id, 1, t.server_id or "", at=20.0) for t in claimed)
    )
    assert sum(1 for o in outcomes if o is not None and o.job_finished) == 1
    job = await store.get_job("job-1")
    assert job is not None and job.state is JobState.DONE


async def test_fail_task_retries_then_fails_the_job(store: Store) -> None:
    [task] = await new_job(store, chunks=[(1,)])
    task = await claim(store, task, "s1")
    assert await lc(store).fail_task(task.id, 1, "s2", error="x", at=15.0, retry=True) is None

    retried = await lc(store).fail_task(
        task.id, 1, "s1", error="out of memory", at=15.0, retry=True
    )
    assert retried is not None and not retried.job_finished
    assert (retried.task.state, retried.task.failures, retried.task.server_id) == (
        TaskState.WAITING,
        1,
        None,
    )
    assert retried.task.error == "out of memory" and retried.job_state is JobState.RUNNING

    task = await claim(store, retried.task, "s2")
    assert task.attempt == 2
    final = await lc(store).fail_task(task.id, 2, "s2", error="scene error", at=16.0, retry=False)
    assert final is not None and (final.job_state, final.job_finished) == (JobState.FAILED, True)
    assert (final.task.state, final.task.failures, final.task.finished_at) == (
        TaskState.FAILED,
        2,
        16.0,
    )
    assert await store.server_failures("job-1") == {"s1": 1, "s2": 1}
    job = await store.get_job("job-1")
    assert job is not None and job.state is JobState.FAILED and "scene error" in job.error


async def test_failed_job_waits_for_its_active_tasks(store: Store) -> None:
    t0, t1 = [await claim(store, t, "s1") for t in await new_job(store, chunks=[(1,), (2,)])]
    failed = await lc(store).fail_task(t0.id, 1, "s1", error="bad", at=15.0, retry=False)
    assert failed is not None and (failed.job_state, failed.job_finished) == (
        JobState.RUNNING,
        False,
    )
    last = await complete(store, t1.id, 1, "s1", at=16.0)
    assert last is not None and (last.job_state, last.job_finished) == (JobState.FAILED, True)


async def test_requeue_server_tasks(store: Store) -> None:
    t0, t1, t2 = await new_job(store)
    t0, t1, t2 = (
        await claim(store, t0, "s1"),
        await claim(store, t1, "s1"),
        await claim(store, t2, "s2"),
    )
    await start(store, t1, "s1", at=11.0, lease_expires_at=900.0)

    requeued = await lc(store).requeue_server("s1", at=30.0)
    assert sorted(t.id for t in requeued) == sorted([t0.id, t1.id])
    assert all(
        (t.state, t.attempt, t.failures, t.server_id) == (TaskState.WAITING, 1, 0, None)
        for t in requeued
    )
    late = await complete(store, t0.id, 1, "s1", at=31.0)  # from the lost server
    assert late is None
    assert [t.id for t in await store.active_tasks()] == [t2.id]
    assert await store.server_failures("job-1") == {}
    [again] = await lc(store).assign([claim_of(requeued[0], "s3")], at=32.0)
    assert again.attempt == 2


async def test_expired_and_active_tasks(store: Store) -> None:
    a0, a1 = await new_job(store, "a", chunks=[(1,), (2,)])
    [b0] = await new_job(store, "b", chunks=[(1,)])
    a0 = await claim(store, a0, "s1", lease=50.0)
    a1 = await claim(store, a1, "s2", lease=150.0)
    b0 = await claim(store, b0, "s1", lease=40.0)
    assert [t.id for t in await store.expired_tasks(now=100.0)] == [b0.id, a0.id]
    assert {t.id for t in await store.active_tasks()} == {a0.id, a1.id, b0.id}
    assert {t.id for t in await store.active_tasks(server_id="s1")} == {a0.id, b0.id}
    assert {t.id for t in await store.active_tasks(job_id="a")} == {a0.id, a1.id}
    assert [t.id for t in await store.active_tasks(server_id="s1", job_id="a")] == [a0.id]


async def test_cancel_job(store: Store) -> None:
    t0, t1, t2 = await new_job(store)
    t0 = await claim(store, t0, "s1")
    await start(store, t0, "s1", at=11.0, lease_expires_at=900.0)

    stopped = await lc(store).cancel("job-1", at=40.0)
    assert [(t.id, t.server_id, t.attempt, t.state) for t in stopped] == [
        (t0.id, "s1", 1, TaskState.RUNNING)
    ]
    job = await store.get_job("job-1")
    assert job is not None and (job.state, job.finished_at) == (JobState.CANCELLED, 40.0)
    assert {t.state for t in await store.list_tasks("job-1")} == {TaskState.WAITING}
    assert await complete(store, t0.id, 1, "s1", at=41.0) is None
    assert (await store.dispatch_snapshot(per_job_limit=10)).jobs == ()
    assert await lc(store).assign([claim_of(t1)], at=42.0) == []
    assert await lc(store).cancel("job-1", at=43.0) == []
    with pytest.raises(NotFoundError, match="job nope does not exist"):
        await lc(store).cancel("nope", at=1.0)


async def test_retry_job(store: Store) -> None:
    t0, t1 = [await claim(store, t, "s1") for t in await new_job(store, chunks=[(1,), (2,)])]
    await complete(store, t1.id, 1, "s1", at=20.0)
    await lc(store).fail_task(t0.id, 1, "s1", error="bad", at=21.0, retry=False)

    assert await lc(store).retry_failed("job-1", at=30.0) == 1
    job = await store.get_job("job-1")
    assert job is not None and (job.state, job.finished_at, job.error) == (
        JobState.QUEUED,
        None,
        "",
    )
    task = await store.get_task(t0.id)
    assert task is not None and (task.state, task.failures, task.attempt) == (
        TaskState.WAITING,
        0,
        1,
    )
    snap = await store.dispatch_snapshot(per_job_limit=5)
    assert [t.id for t in snap.waiting] == [t0.id] and snap.failed_on[t0.id] == frozenset()
    assert await lc(store).retry_failed("job-1", at=31.0) == 0
    with pytest.raises(NotFoundError):
        await lc(store).retry_failed("nope", at=1.0)


# --- batched reports (group commit) --------------------------------------------
def started_of(task: TaskRecord, server: str = "s1", *, at: float = 11.0) -> StartedReport:
    return StartedReport(
        task_id=task.id,
        attempt=task.attempt,
        server_id=server,
        job_id=task.job_id,
        at=at,
        lease_expires_at=at + 600.0,
    )


def done_of(
    task: TaskRecord, server: str = "s1", *, attempt: int | None = None, at: float = 20.0
) -> CompletionReport:
    return CompletionReport(
        task_id=task.id,
        attempt=task.attempt if attempt is None else attempt,
        server_id=server,
        job_id=task.job_id,
        at=at,
        log_tail="ok",
    )


async def test_apply_reports_is_fenced_per_report(store: Store) -> None:
    t0, t1, t2 = [await claim(store, t, "s1") for t in await new_job(store)]
    outcomes = await lc(store).apply_reports(
        [started_of(t0), started_of(t1, "s2")],  # the second from a server that does not hold it
        [frame(1, task_id=t0.id)],
        [
            done_of(t0),
            done_of(t1, attempt=2),  # wrong attempt
            dataclasses.replace(done_of(t2), task_id=10**9),  # no such task
            done_of(t0, at=21.0),  # the same task twice in a batch: only the first counts
        ],
        at=22.0,
    )
    first, wrong_attempt, unknown, repeated = outcomes
    assert first is not None and (
        first.task.state,
        first.task.finished_at,
        first.task.log_tail,
    ) == (TaskState.DONE, 20.0, "ok")
    assert (first.task.started_at, first.job_state, first.job_finished) == (
        11.0,
        JobState.RUNNING,
        False,
    )
    assert (wrong_attempt, unknown, repeated) == (None, None, None)
    current = await store.get_task(t1.id)
    assert current is not None and (current.state, current.started_at) == (
        TaskState.DISPATCHED,
        None,
    )
    assert await store.list_frames("job-1") == [frame(1, task_id=t0.id)]
    assert await lc(store).apply_reports([], [], [], at=23.0) == []


async def test_a_batch_of_starts_and_frames_only_is_fenced_too(store: Store) -> None:
    """The batch without completions (which takes no job lock) applies the same fences."""
    t0, t1, _ = [await claim(store, t, "s1") for t in await new_job(store)]
    assert (
        await lc(store).apply_reports(
            [started_of(t1, at=12.0), started_of(t0, "s2"), started_of(t0, at=11.0)],
            [frame(1, task_id=t0.id)],
            [],
            at=13.0,
        )
        == []
    )
    tasks = {t.id: t for t in await store.list_tasks("job-1")}
    assert (tasks[t0.id].state, tasks[t0.id].started_at) == (TaskState.RUNNING, 11.0)
    assert (tasks[t1.id].state, tasks[t1.id].started_at) == (TaskState.RUNNING, 12.0)
    assert await store.list_frames("job-1") == [frame(1, task_id=t0.id)]
    job = await store.get_job("job-1")
    assert job is not None and job.state is JobState.RUNNING


async def test_log_lines_in_a_batch_are_appended_in_order_and_fenced(store: Store) -> None:
    t0, _, _ = [await claim(store, t, "s1") for t in await new_job(store)]
    logs = [
        LogReport(task_id=t0.id, attempt=1, server_id="s1", text="abcdef", max_chars=8),
        LogReport(task_id=t0.id, attempt=1, server_id="s2", text="stranger"),  # not its server
        LogReport(task_id=t0.id, attempt=2, server_id="s1", text="late"),  # not its attempt
        LogReport(task_id=t0.id, attempt=1, server_id="s1", text="ghij", max_chars=8),
    ]
    assert await lc(store).apply_reports([started_of(t0)], [], [], at=12.0, logs=logs) == []
    task = await store.get_task(t0.id)
    assert task is not None and (task.state, task.log_tail) == (TaskState.RUNNING, "cdefghij")


async def test_apply_reports_finishes_a_job_once(store: Store) -> None:
    t0, t1 = [await claim(store, t, "s1") for t in await new_job(store, chunks=[(1,), (2,)])]
    outcomes = await lc(store).apply_reports(
        [started_of(t1)],
        [frame(1, task_id=t0.id), frame(2, task_id=t1.id)],
        [done_of(t0), done_of(t1)],
        at=25.0,
    )
    assert [(o.job_state, o.job_finished) for o in outcomes if o is not None] == [
        (JobState.RUNNING, False),
        (JobState.DONE, True),
    ]
    job = await store.get_job("job-1")
    assert job is not None and (job.state, job.finished_at) == (JobState.DONE, 25.0)


async def test_apply_reports_across_jobs(store: Store) -> None:
    [a0] = [await claim(store, t, "s1") for t in await new_job(store, "a", chunks=[(1,)])]
    b0, b1 = [await claim(store, t, "s2") for t in await new_job(store, "b", chunks=[(1,), (2,)])]
    c0, c1 = [await claim(store, t, "s1") for t in await new_job(store, "c", chunks=[(1,), (2,)])]
    await lc(store).fail_task(c0.id, 1, "s1", error="bad scene", at=15.0, retry=False)
    outcomes = await lc(store).apply_reports(
        [], [], [done_of(b0, "s2"), done_of(a0), done_of(b1, "s1"), done_of(c1)], at=30.0
    )
    b_done, a_done, b_stale, c_done = outcomes
    assert a_done is not None and (a_done.job_state, a_done.job_finished) == (JobState.DONE, True)
    assert b_done is not None and (b_done.job_state, b_done.job_finished) == (
        JobState.RUNNING,
        False,
    )
    assert b_stale is None  # b1 is held by s2
    assert c_done is not None and (c_done.job_state, c_done.job_finished) == (JobState.FAILED, True)
    states = {job_id: (await store.get_job(job_id)) for job_id in ("a", "b", "c")}
    assert {k: v.state for k, v in states.items() if v is not None} == {
        "a": JobState.DONE,
        "b": JobState.RUNNING,
        "c": JobState.FAILED,
    }


async def test_apply_reports_is_all_or_nothing(store: Store) -> None:
    [t0] = [await claim(store, t, "s1") for t in await new_job(store, chunks=[(1,)])]
    with pytest.raises(StoreNotFoundError, match="frames of job nope"):
        await lc(store).apply_reports(
            [started_of(t0)], [dataclasses.replace(frame(1), job_id="nope")], [done_of(t0)], at=30.0
        )
    current = await store.get_task(t0.id)
    assert current is not None and current.state is TaskState.DISPATCHED
    assert await store.active_task_servers() == {"s1"}


async def test_locking_jobs_writes_nothing_where_the_transaction_holds_the_database(
    store: Store, store_url: str
) -> None:
    # SQLite's write transaction already excludes every other writer: the row locks that order
    # PostgreSQL's writers take no statement there (a no-op UPDATE would write the job's page).
    if not store_url.startswith("sqlite:///"):
        pytest.skip("PostgreSQL takes the row locks; its lock order relies on them")
    await lc(store).create(make_job(), [(1,)])
    wal = store_url.removeprefix("sqlite:///") + "-wal"
    size = os.path.getsize(wal)
    async with store.transaction() as tx:
        await tx.lock_jobs(["job-1"])
    assert os.path.getsize(wal) == size
    async with store.transaction() as tx:  # and the same transaction still writes what it changes
        await tx.set_job_priority("job-1", 5, at=200.0)
    assert os.path.getsize(wal) > size
    assert (await store.get_job("job-1")).priority == 5  # type: ignore[union-attr]
