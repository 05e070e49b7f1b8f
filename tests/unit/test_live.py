"""The monitor's live stream state: coalesced, bounded per client, closed on shutdown."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from site_agent.errors import UnavailableError
from site_agent.lifecycle.events import (
    FramesStored,
    JobCancelled,
    JobPriorityChanged,
    JobStateChanged,
    TasksAssigned,
    TasksStarted,
)
from site_agent.live import MAX_DIRTY_JOBS, Change, LiveHub, event_job_ids
from site_agent.store.records import JobState, TaskRecord, TaskState
from tests.integration.test_store_contract import make_job


def task(job_id: str, task_id: int = 1) -> TaskRecord:
    return TaskRecord(
        id=task_id, job_id=job_id, index=0, frames=(1,), state=TaskState.DISPATCHED, attempt=1
    )


def test_every_event_names_its_jobs() -> None:
    assert event_job_ids(JobStateChanged(job_id="a", state=JobState.PAUSED)) == {"a"}
    assert event_job_ids(JobPriorityChanged(job_id="b", priority=3)) == {"b"}
    assert event_job_ids(JobCancelled(job=make_job("c"), stopped=())) == {"c"}
    assigned = TasksAssigned(tasks=(task("d"), task("e", 2)), started_jobs=("d",))
    assert event_job_ids(assigned) == {"d", "e"}
    assert event_job_ids(FramesStored(job_ids=("f", "g"))) == {"f", "g"}


async def test_a_started_task_names_its_job_through_the_lookup() -> None:
    hub = LiveHub(task_jobs=lambda ids: {"j"} if 7 in set(ids) else set())
    client = hub.connect()
    await hub.on_event(TasksStarted(task_ids=(7,)))
    assert await client.next(1.0) == Change(jobs=("j",))


async def test_changes_coalesce_until_read() -> None:
    hub = LiveHub()
    client = hub.connect()
    await hub.on_event(JobStateChanged(job_id="a", state=JobState.PAUSED))
    await hub.on_event(JobStateChanged(job_id="b", state=JobState.PAUSED))
    await hub.on_event(JobStateChanged(job_id="a", state=JobState.QUEUED))
    assert await client.next(1.0) == Change(jobs=("a", "b"))
    assert await client.next(0.01) is None  # nothing new: a tick
    hub.servers_changed()
    assert await client.next(1.0) == Change(servers=True)


async def test_a_slow_client_holds_a_bounded_set() -> None:
    hub = LiveHub()
    client = hub.connect()
    for n in range(10 * MAX_DIRTY_JOBS):
        await hub.on_event(JobStateChanged(job_id=f"job-{n}", state=JobState.RUNNING))
        assert client.pending <= MAX_DIRTY_JOBS
    change = await client.next(1.0)
    assert change == Change(all_jobs=True)
    assert change.to_json() == {"jobs": [], "servers": False, "all": True}


async def test_clients_are_limited_and_closed_on_shutdown() -> None:
    hub = LiveHub(max_clients=2)
    first, second = hub.connect(), hub.connect()
    with pytest.raises(UnavailableError, match="already connected"):
        hub.connect()
    hub.disconnect(second)
    assert hub.clients == 1
    hub.close()
    assert first.closed and await first.next(10.0) is None
    with pytest.raises(UnavailableError, match="shutting down"):
        hub.connect()


async def test_no_lookup_while_no_page_is_open() -> None:
    looked_up: list[tuple[int, ...]] = []

    def task_jobs(ids: Iterable[int]) -> set[str]:
        looked_up.append(tuple(ids))
        return {"j"}

    hub = LiveHub(task_jobs=task_jobs)
    await hub.on_event(TasksStarted(task_ids=(7,)))
    assert looked_up == []  # nothing listens: the event costs nothing
    client = hub.connect()
    await hub.on_event(TasksStarted(task_ids=(8,)))
    assert looked_up == [(8,)]
    assert await client.next(1.0) == Change(jobs=("j",))
