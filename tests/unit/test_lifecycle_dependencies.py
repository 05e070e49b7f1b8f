"""Job dependencies in the lifecycle, against the in-memory store fake: edges checked when
added, dependents released, failed or cancelled with their upstream in the same transaction."""

from __future__ import annotations

import pytest
from lifecycle_fakes import FakeStore
from test_lifecycle import Recorder, claim, created, done

from scheduler.dependencies import DependencyKind
from site_agent.errors import BadRequestError, ConflictError, NotFoundError
from site_agent.lifecycle import (
    JobCancelled,
    JobCreated,
    JobFinished,
    JobsReleased,
    Lifecycle,
)
from site_agent.store.records import JobState as J
from site_agent.store.records import TaskState as T

DONE, END = DependencyKind.DONE, DependencyKind.END


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


async def finish(life: Lifecycle, store: FakeStore, job_id: str) -> None:
    tasks = [t for t in store.t.tasks.values() if t.job_id == job_id]
    for task in await life.assign([claim(t) for t in tasks], at=10.0):
        await life.complete(done(task))


async def test_a_dependent_is_held_then_released_when_its_upstream_is_done(
    life: Lifecycle, store: FakeStore, events: Recorder
) -> None:
    await created(life, store, "render")
    comp = await created(life, store, "comp", after=[("render", DONE)])
    assert store.t.edges == {"comp": {"render": DONE}}
    assert [e.ready for e in events.of(JobCreated)] == [True, False]
    await finish(life, store, "render")
    assert events.of(JobsReleased) == [JobsReleased(job_ids=("comp",))]
    assert store.t.jobs["comp"].state is J.QUEUED and {t.state for t in comp} == {T.WAITING}


async def test_a_failed_upstream_fails_the_chain_below_it_with_the_reason(
    life: Lifecycle, store: FakeStore, events: Recorder
) -> None:
    await created(life, store, "render")
    await created(life, store, "comp", after=[("render", DONE)])
    await created(life, store, "grade", after=[("comp", DONE)])
    await created(life, store, "notify", after=[("render", END)])
    [t0, t1, t2] = await life.assign(
        [claim(t) for t in store.t.tasks.values() if t.job_id == "render"], at=10.0
    )
    await life.complete(done(t1))
    await life.complete(done(t2))
    await life.fail(t0, "s1", 1, "boom", None)
    again = store.t.tasks[t0.id]
    [retried] = await life.assign([claim(again, "s2")], at=12.0)
    await life.fail(retried, "s2", 2, "boom", None)
    jobs = store.t.jobs
    assert jobs["render"].state is J.FAILED
    assert jobs["comp"].state is J.FAILED and "upstream job render failed" in jobs["comp"].error
    assert jobs["grade"].state is J.FAILED and "upstream job comp failed" in jobs["grade"].error
    assert jobs["notify"].state is J.QUEUED  # --after-any: released however render ended
    assert {t.state for t in store.t.tasks.values() if t.job_id == "comp"} == {T.FAILED}
    finished = {e.job_id: e.state for e in events.of(JobFinished)}
    assert finished == {"render": J.FAILED, "comp": J.FAILED, "grade": J.FAILED}
    assert events.of(JobsReleased) == [JobsReleased(job_ids=("notify",))]


async def test_a_cancelled_upstream_cancels_its_dependents(
    life: Lifecycle, store: FakeStore, events: Recorder
) -> None:
    await created(life, store, "render")
    await created(life, store, "comp", after=[("render", DONE)])
    await life.cancel("render", at=30.0)
    assert store.t.jobs["comp"].state is J.CANCELLED
    assert store.t.jobs["comp"].error == "upstream job render was cancelled"
    assert [e.job.id for e in events.of(JobCancelled)] == ["render", "comp"]


async def test_edges_are_checked_when_added(life: Lifecycle, store: FakeStore) -> None:
    await created(life, store, "a")
    with pytest.raises(NotFoundError, match="no job 'nope' to wait for"):
        await created(life, store, "b", after=[("nope", DONE)])
    assert "b" not in store.t.jobs  # the whole create rolled back
    with pytest.raises(BadRequestError, match="cannot wait for itself"):
        await created(life, store, "c", after=[("c", DONE)])
    await created(life, store, "b", after=[("a", DONE)])
    with pytest.raises(ConflictError, match=r"would make a cycle \(a -> b -> a\)"):
        await life.add_dependencies("a", [("b", DONE)], at=40.0)
    assert store.t.edges == {"b": {"a": DONE}}
    await life.cancel("a", at=41.0)
    with pytest.raises(ConflictError, match="job a was cancelled.*--after-any"):
        await created(life, store, "d", after=[("a", DONE)])
    await created(life, store, "e", after=[("a", END)])  # already ended: ready at once
    assert store.t.jobs["e"].state is J.QUEUED


async def test_only_a_job_not_yet_rendering_can_be_made_to_wait(
    life: Lifecycle, store: FakeStore
) -> None:
    await created(life, store, "a")
    [t0, *_] = await created(life, store, "b")
    await life.assign([claim(t0)], at=10.0)
    with pytest.raises(ConflictError, match="job b is running"):
        await life.add_dependencies("b", [("a", DONE)], at=11.0)
