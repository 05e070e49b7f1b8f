"""The lifecycle service against an in-memory fake of its store (tests/unit/lifecycle_fakes.py).

The transition tables are checked against a second, literal statement of the
state machines; each service method is checked for the state it leaves, the
event it emits (once, after the commit) and the fences it keeps.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest
from lifecycle_fakes import FakeStore

from scheduler.dependencies import DependencyKind
from scheduler.profile import JobProfile
from site_agent.errors import ConflictError, JobExistsError, NotFoundError
from site_agent.lifecycle import (
    Event,
    JobCancelled,
    JobCreated,
    JobEvent,
    JobFinished,
    JobReplaced,
    JobStateChanged,
    Lifecycle,
    TaskEvent,
    TaskFinished,
    TasksAssigned,
    TasksRequeued,
    TransitionRefusedError,
)
from site_agent.lifecycle.states import job_sources, next_job_state, next_task_state
from site_agent.store.records import (
    LOCAL,
    CompletionReport,
    FileEntry,
    FrameRecord,
    JobRecord,
    JobState,
    StartedReport,
    TaskClaim,
    TaskRecord,
    TaskState,
)

J, T = JobState, TaskState
EXPECTED_JOB = {
    (J.QUEUED, JobEvent.DISPATCH): J.RUNNING,
    (J.RUNNING, JobEvent.DISPATCH): J.RUNNING,
    (J.QUEUED, JobEvent.REMOTE_START): J.RUNNING,
    (J.QUEUED, JobEvent.PAUSE): J.PAUSED,
    (J.RUNNING, JobEvent.PAUSE): J.PAUSED,
    (J.PAUSED, JobEvent.RESUME): J.QUEUED,
    (J.QUEUED, JobEvent.CANCEL): J.CANCELLED,
    (J.RUNNING, JobEvent.CANCEL): J.CANCELLED,
    (J.PAUSED, JobEvent.CANCEL): J.CANCELLED,
    (J.QUEUED, JobEvent.FINISH): J.DONE,
    (J.RUNNING, JobEvent.FINISH): J.DONE,
    (J.PAUSED, JobEvent.FINISH): J.DONE,
    (J.QUEUED, JobEvent.FAIL): J.FAILED,
    (J.RUNNING, JobEvent.FAIL): J.FAILED,
    (J.PAUSED, JobEvent.FAIL): J.FAILED,
    (J.QUEUED, JobEvent.RETRY): J.QUEUED,
    (J.RUNNING, JobEvent.RETRY): J.RUNNING,
    (J.PAUSED, JobEvent.RETRY): J.PAUSED,
    (J.FAILED, JobEvent.RETRY): J.QUEUED,
    (J.CANCELLED, JobEvent.RETRY): J.QUEUED,
    (J.QUEUED, JobEvent.REPLACE): J.QUEUED,
    (J.RUNNING, JobEvent.REPLACE): J.RUNNING,
    (J.PAUSED, JobEvent.REPLACE): J.PAUSED,
    (J.QUEUED, JobEvent.RERENDER): J.QUEUED,
    (J.RUNNING, JobEvent.RERENDER): J.RUNNING,
    (J.PAUSED, JobEvent.RERENDER): J.PAUSED,
    (J.DONE, JobEvent.RERENDER): J.QUEUED,
    (J.FAILED, JobEvent.RERENDER): J.QUEUED,
}
EXPECTED_TASK = {
    (T.WAITING, TaskEvent.ASSIGN): T.DISPATCHED,
    (T.DISPATCHED, TaskEvent.START): T.RUNNING,
    (T.RUNNING, TaskEvent.START): T.RUNNING,
    (T.DISPATCHED, TaskEvent.COMPLETE): T.DONE,
    (T.RUNNING, TaskEvent.COMPLETE): T.DONE,
    (T.DISPATCHED, TaskEvent.FAIL_RETRY): T.WAITING,
    (T.RUNNING, TaskEvent.FAIL_RETRY): T.WAITING,
    (T.DISPATCHED, TaskEvent.FAIL_FINAL): T.FAILED,
    (T.RUNNING, TaskEvent.FAIL_FINAL): T.FAILED,
    (T.DISPATCHED, TaskEvent.REQUEUE): T.WAITING,
    (T.RUNNING, TaskEvent.REQUEUE): T.WAITING,
    (T.FAILED, TaskEvent.RESET): T.WAITING,
    (T.WAITING, TaskEvent.FORWARD_DONE): T.DONE,
    (T.WAITING, TaskEvent.FORWARD_FAIL): T.FAILED,
    (T.DONE, TaskEvent.RERENDER): T.WAITING,
    (T.FAILED, TaskEvent.RERENDER): T.WAITING,
    (T.WAITING, TaskEvent.ABANDON): T.FAILED,
    (T.DISPATCHED, TaskEvent.HAND_BACK): T.WAITING,
    (T.RUNNING, TaskEvent.HAND_BACK): T.WAITING,
    (T.DISPATCHED, TaskEvent.UNQUEUE): T.WAITING,
}


@pytest.mark.parametrize(("state", "event"), list(itertools.product(JobState, JobEvent)))
def test_job_transition_table(state: JobState, event: JobEvent) -> None:
    expected = EXPECTED_JOB.get((state, event))
    if expected is None:
        with pytest.raises(TransitionRefusedError, match=f"a {state} job cannot {event}"):
            next_job_state(state, event)
    else:
        assert next_job_state(state, event) is expected


@pytest.mark.parametrize(("state", "event"), list(itertools.product(TaskState, TaskEvent)))
def test_task_transition_table(state: TaskState, event: TaskEvent) -> None:
    expected = EXPECTED_TASK.get((state, event))
    if expected is None:
        with pytest.raises(TransitionRefusedError):
            next_task_state(state, event)
    else:
        assert next_task_state(state, event) is expected


def test_refused_transitions_are_conflicts_and_sources_follow_the_table() -> None:
    assert issubclass(TransitionRefusedError, ConflictError)
    assert job_sources(JobEvent.PAUSE) == {J.QUEUED, J.RUNNING}
    assert job_sources(JobEvent.RESUME) == {J.PAUSED}


# --- the service -----------------------------------------------------------------
PROFILE = JobProfile(package="builtin", max_attempts=2, task_timeout_s=60.0)


def make_job(job_id: str = "j1", **fields: Any) -> JobRecord:
    values: dict[str, Any] = {
        "id": job_id,
        "name": f"shot {job_id}",
        "owner": "ana",
        "origin_site": "studio",
        "priority": 50,
        "profile": PROFILE,
        "frames": "1-3",
        "frame_count": 3,
        "chunk_size": 1,
        "scene": "s.json",
        "manifest": (FileEntry(path="s.json", sha256="a" * 64, size=1),),
        "output_name": "shot",
        "created_at": 1.0,
        "updated_at": 1.0,
    }
    return JobRecord(**(values | fields))


class Recorder:
    """A subscriber that records each event with the committed state it saw."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.events: list[Event] = []
        self.commits_seen: list[int] = []

    async def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.commits_seen.append(self.store.commits)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def life(store: FakeStore) -> Lifecycle:
    return Lifecycle(store, bad_server_threshold=2, clock=lambda: 50.0)


@pytest.fixture
def events(store: FakeStore, life: Lifecycle) -> Recorder:
    recorder = Recorder(store)
    life.subscribe(recorder)
    return recorder


def claim(task: TaskRecord, server: str = "s1") -> TaskClaim:
    return TaskClaim(
        task_id=task.id,
        job_id=task.job_id,
        attempt=task.attempt + 1,
        server_id=server,
        lease_expires_at=100.0,
    )


def done(task: TaskRecord, server: str = "s1", *, at: float = 20.0) -> CompletionReport:
    return CompletionReport(
        task_id=task.id, attempt=task.attempt, server_id=server, job_id=task.job_id, at=at
    )


async def created(
    life: Lifecycle,
    store: FakeStore,
    job_id: str = "j1",
    *,
    after: Sequence[tuple[str, DependencyKind]] = (),
    **fields: Any,
) -> list[TaskRecord]:
    await life.create(make_job(job_id, **fields), [(1,), (2,), (3,)], after=after)
    return sorted((t for t in store.t.tasks.values() if t.job_id == job_id), key=lambda t: t.index)


async def running(life: Lifecycle, store: FakeStore, server: str = "s1") -> list[TaskRecord]:
    tasks = await created(life, store)
    return await life.assign([claim(t, server) for t in tasks], at=10.0)


async def test_create_emits_job_created_once_after_the_commit(
    life: Lifecycle, store: FakeStore, events: Recorder
) -> None:
    job = await life.create(make_job(), [(1,), (2,)])
    assert store.t.jobs["j1"] == job and len(store.t.tasks) == 2
    assert events.events == [JobCreated(job=job)] and events.commits_seen == [1]
    with pytest.raises(JobExistsError, match="already exists"):
        await life.create(make_job(), [(1,)])
    assert len(events.events) == 1 and len(store.t.tasks) == 2


async def test_assign_claims_each_task_once_and_starts_the_job(
    life: Lifecycle, store: FakeStore, events: Recorder
) -> None:
    t0, t1, _ = await created(life, store)
    claimed = await life.assign([claim(t0, "s1"), claim(t0, "s2"), claim(t1, "s2")], at=10.0)
    assert [(t.id, t.server_id, t.state) for t in claimed] == [
        (t0.id, "s1", T.DISPATCHED),
        (t1.id, "s2", T.DISPATCHED),
    ]
    assert store.t.jobs["j1"].state is J.RUNNING
    [assigned] = events.of(TasksAssigned)
    assert assigned.started_jobs == ("j1",) and assigned.tasks == tuple(claimed)
    assert await life.assign([claim(t0, "s3")], at=11.0) == []  # attempt 0 is gone


async def test_claims_on_a_paused_or_forwarded_job_lose(life: Lifecycle, store: FakeStore) -> None:
    [t0, *_] = await created(life, store, "paused", state=J.PAUSED)
    [f0, *_] = await created(life, store, "away", placement="paris")
    assert await life.assign([claim(t0), claim(f0)], at=10.0) == []
    assert {t.state for t in store.t.tasks.values()} == {T.WAITING}


async def test_fenced_reports_are_ignored_and_the_job_finishes_once(
    life: Lifecycle, store: FakeStore, events: Recorder
) -> None:
    t0, t1, t2 = await running(life, store)
    assert await life.complete(done(t0, "s2")) is None  # not its server
    assert await life.complete(done(t0)) is not None
    assert await life.complete(done(t0, at=21.0)) is None  # already done
    await life.complete(done(t1))
    last = await life.complete(done(t2))
    assert last is not None and (last.job_state, last.job_finished) == (J.DONE, True)
    assert len(events.of(TaskFinished)) == 3
    assert events.of(JobFinished) == [JobFinished(job_id="j1", state=J.DONE)]
    await life.close()


async def test_a_batch_finishes_the_job_on_its_last_completion(
    life: Lifecycle, store: FakeStore
) -> None:
    t0, t1, t2 = await running(life, store)
    started = StartedReport(
        task_id=t0.id, attempt=1, server_id="s1", job_id="j1", at=11.0, lease_expires_at=90.0
    )
    frame = FrameRecord(
        job_id="j1",
        frame=1,
        task_id=t0.id,
        name="f",
        sha256="b" * 64,
        size=1,
        server_id="s1",
        rendered_at=12.0,
    )
    outcomes = await life.apply_reports(
        [started], [frame], [done(t0), done(t1), done(t0, at=21.0), done(t2)], at=30.0
    )
    assert [None if o is None else o.job_finished for o in outcomes] == [False, False, None, True]
    assert store.t.tasks[t0.id].started_at == 11.0 and ("j1", 1) in store.t.frames


async def test_a_failure_is_retried_then_final(
    life: Lifecycle, store: FakeStore, events: Recorder
) -> None:
    t0, t1, t2 = await running(life, store)
    retried = await life.fail(t0, "s1", 1, "out of memory", None)
    assert retried is not None and retried.task.state is T.WAITING and retried.task.failures == 1
    assert events.of(TaskFinished)[-1].retry is True
    [again] = await life.assign([claim(retried.task, "s2")], at=12.0)
    final = await life.fail(again, "s2", 2, "scene error", "log")
    assert final is not None and final.task.state is T.FAILED and not final.job_finished
    assert await life.fail(again, "s2", 2, "late duplicate", None) is None  # fenced
    await life.complete(done(t1))
    last = await life.complete(done(t2))
    assert last is not None and (last.job_state, last.job_finished) == (J.FAILED, True)
    assert "task 0: scene error" in store.t.jobs["j1"].error
    assert await store.server_failures("j1") == {"s1": 1, "s2": 1}
    assert events.of(JobFinished) == [JobFinished(job_id="j1", state=J.FAILED)]


async def test_expire_counts_a_failed_attempt(life: Lifecycle, store: FakeStore) -> None:
    t0, _, _ = await running(life, store)
    outcome = await life.expire(t0)
    assert outcome is not None and outcome.task.error == "timed out after 60s without a report"


async def test_cancel_stops_the_active_tasks(
    life: Lifecycle, store: FakeStore, events: Recorder
) -> None:
    t0, t1, _ = await running(life, store)
    stopped = await life.cancel("j1", at=40.0)
    assert [(t.id, t.server_id, t.state) for t in stopped] == [
        (t0.id, "s1", T.DISPATCHED),
        (t1.id, "s1", T.DISPATCHED),
        (stopped[2].id, "s1", T.DISPATCHED),
    ]
    [cancelled] = events.of(JobCancelled)
    assert cancelled.stopped == tuple(stopped) and cancelled.job.state is J.CANCELLED
    assert {t.state for t in store.t.tasks.values()} == {T.WAITING}
    assert await life.complete(done(t0)) is None  # the server's late report changes nothing
    assert await life.cancel("j1", at=41.0) == [] and len(events.of(JobCancelled)) == 1
    with pytest.raises(NotFoundError, match="job nope does not exist"):
        await life.cancel("nope", at=1.0)


async def test_pause_and_resume_follow_the_table(
    life: Lifecycle, store: FakeStore, events: Recorder
) -> None:
    await created(life, store)
    await life.pause("j1", at=5.0)
    with pytest.raises(ConflictError, match="job j1 is paused; only queued or running jobs"):
        await life.pause("j1", at=6.0)
    await life.resume("j1", at=7.0)
    with pytest.raises(ConflictError, match="only paused jobs can be resumed"):
        await life.resume("j1", at=8.0)
    assert events.of(JobStateChanged) == [
        JobStateChanged(job_id="j1", state=J.PAUSED),
        JobStateChanged(job_id="j1", state=J.QUEUED),
    ]
    assert await life.remote_start("j1", at=9.0) and store.t.jobs["j1"].state is J.RUNNING
    assert not await life.remote_start("j1", at=9.5)


async def test_retry_failed_resets_failed_tasks_and_queues_the_job(
    life: Lifecycle, store: FakeStore
) -> None:
    t0, t1, t2 = await running(life, store)
    await life.fail_task(t0.id, 1, "s1", error="bad", at=15.0, retry=False)
    await life.complete(done(t1))
    await life.complete(done(t2))
    assert store.t.jobs["j1"].state is J.FAILED
    assert await life.retry_failed("j1", at=30.0) == 1
    job, task = store.t.jobs["j1"], store.t.tasks[t0.id]
    assert (job.state, job.error, task.state, task.failures) == (J.QUEUED, "", T.WAITING, 0)
    assert await store.server_failures("j1") == {}


async def test_requeue_server_emits_the_requeued_tasks(
    life: Lifecycle, store: FakeStore, events: Recorder
) -> None:
    t0, t1, t2 = await created(life, store)
    await life.assign([claim(t0, "s1"), claim(t1, "s1"), claim(t2, "s2")], at=10.0)
    requeued = await life.requeue_server("s1", at=30.0)
    assert sorted(t.id for t in requeued) == [t0.id, t1.id]
    assert events.of(TasksRequeued) == [TasksRequeued(server_id="s1", tasks=tuple(requeued))]
    assert await life.requeue_server("s1", at=31.0) == [] and len(events.of(TasksRequeued)) == 1


async def test_replace_is_fenced_on_the_epoch_and_runs_extra_in_the_transaction(
    life: Lifecycle, store: FakeStore, events: Recorder
) -> None:
    await created(life, store, placement="paris", placement_epoch=1)
    seen: list[object] = []

    async def extra(conn: object) -> None:
        seen.append(conn)

    assert await life.replace_job("j1", old_epoch=0, placement=LOCAL, reason="x", at=5.0) is None
    new = await life.replace_job(
        "j1", old_epoch=1, placement=LOCAL, reason="lost", at=6.0, hook=extra
    )
    assert new == 2 and seen == ["fake-connection"]
    assert (store.t.jobs["j1"].placement, store.t.jobs["j1"].placement_epoch) == (LOCAL, 2)
    assert events.of(JobReplaced) == [JobReplaced(job_id="j1", placement=LOCAL, epoch=2)]


async def test_finish_forwarded_is_fenced_on_the_epoch(
    life: Lifecycle, store: FakeStore, events: Recorder
) -> None:
    await created(life, store, placement="paris", placement_epoch=3)
    extra_calls: list[object] = []

    async def extra(conn: object) -> None:
        extra_calls.append(conn)

    args: dict[str, Any] = {"state": J.DONE, "frames": (), "error": "", "at": 9.0}
    assert not await life.finish_forwarded_job("j1", epoch=2, hook=extra, **args)
    assert store.t.jobs["j1"].state is J.QUEUED and extra_calls == []
    assert not events.of(JobFinished)
    assert await life.finish_forwarded_job("j1", epoch=3, hook=extra, **args)
    assert store.t.jobs["j1"].state is J.DONE and extra_calls == ["fake-connection"]
    assert {t.state for t in store.t.tasks.values()} == {T.DONE}
    assert events.of(JobFinished) == [JobFinished(job_id="j1", state=J.DONE)]
    assert not await life.finish_forwarded_job("j1", epoch=3, **args)  # finished already


async def test_a_failing_subscriber_reaches_the_caller_after_the_commit(
    life: Lifecycle, store: FakeStore
) -> None:
    async def broken(event: Event) -> None:
        raise RuntimeError("subscriber failed")

    life.subscribe(broken, (JobCreated,))
    with pytest.raises(RuntimeError, match="subscriber failed"):
        await life.create(make_job(), [(1,)])
    assert "j1" in store.t.jobs
