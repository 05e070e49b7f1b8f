"""Split-job statements and transitions on SQLite and PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

import dataclasses

from test_store_contract import claim, frame, lc, make_job, new_job

from site_agent.lifecycle import PartChunk
from site_agent.store.base import Store
from site_agent.store.records import JobRecord, JobState, TaskState

CHUNKS = [(1, 2), (3, 4), (5, 6), (7, 8)]


def part_of(job_id: str, part_id: str = "part-1", peer: str = "facility") -> JobRecord:
    return dataclasses.replace(
        make_job(part_id, placement=peer), part_of=job_id, placement_epoch=1, frames="5-8"
    )


async def send(store: Store, part: JobRecord, indices: list[int]) -> bool:
    chunks = [CHUNKS[i] for i in indices]
    return await lc(store).send_part("job-1", part, chunks, indices, at=30.0)


async def test_sent_chunks_are_held_by_the_part_and_never_dispatched_here(store: Store) -> None:
    await new_job(store, chunks=CHUNKS)
    assert await send(store, part_of("job-1"), [2, 3])
    tasks = await store.list_tasks("job-1")
    assert [t.state for t in tasks] == [TaskState.WAITING] * 2 + [TaskState.DISPATCHED] * 2
    assert [t.server_id for t in tasks[2:]] == ["facility", "facility"]
    job = await store.get_job("job-1")
    assert job is not None and job.state is JobState.RUNNING
    part = await store.get_job("part-1")
    assert part is not None and part.part_of == "job-1" and part.placement == "facility"
    assert [t.frames for t in await store.list_tasks("part-1")] == [(5, 6), (7, 8)]

    # Not the heartbeat monitor's, the dispatcher's, nor a server's to stop.
    assert await store.active_task_servers() == set()
    snap = await store.dispatch_snapshot(per_job_limit=10)
    assert [j.id for j in snap.jobs] == ["job-1"]
    assert [t.index for t in snap.waiting] == [0, 1]
    assert await store.active_tasks(job_id="job-1") == []
    assert [p.id for p in await store.split.parts("job-1")] == ["part-1"]
    assert [p.id for p in await store.split.open_parts()] == ["part-1"]


async def test_a_chunk_claimed_meanwhile_sends_nothing(store: Store) -> None:
    tasks = await new_job(store, chunks=CHUNKS)
    await claim(store, tasks[3])
    assert not await send(store, part_of("job-1"), [2, 3])
    assert await store.get_job("part-1") is None  # rolled back with the tasks
    assert [t.state for t in await store.list_tasks("job-1")][:3] == [TaskState.WAITING] * 3


async def test_settling_a_part_records_its_chunks_and_returns_the_rest(store: Store) -> None:
    tasks = await new_job(store, chunks=CHUNKS)
    assert await send(store, part_of("job-1"), [2, 3])
    outputs = tuple(dataclasses.replace(frame(n), server_id="facility") for n in (5, 6))
    rendered = PartChunk(
        frames=(5, 6), server="facility/fac-rs", started_at=31.0, finished_at=32.0, outputs=outputs
    )
    part = await store.get_job("part-1")
    assert part is not None
    assert await lc(store).settle_part(part, [rendered], ended=False, at=33.0) == (1, 0)
    # Settling again changes nothing (the chunk is no longer held by the part).
    assert await lc(store).settle_part(part, [rendered], ended=False, at=34.0) == (0, 0)
    failed = dataclasses.replace(part, state=JobState.FAILED)
    assert await lc(store).settle_part(failed, [], ended=True, at=35.0) == (0, 1)

    after = await store.list_tasks("job-1")
    assert after[2].state is TaskState.DONE and after[2].server_id == "facility/fac-rs"
    assert after[3].state is TaskState.WAITING and after[3].server_id is None
    assert "part part-1 at facility ended failed" in after[3].error
    stored = await store.list_frames("job-1")
    assert [(f.frame, f.task_id) for f in stored] == [(5, tasks[2].id), (6, tasks[2].id)]
    assert [p.id for p in await store.split.open_parts()] == ["part-1"]  # unfinished
    await lc(store).cancel("part-1", at=36.0)
    assert await store.split.open_parts() == []  # ended, and none of its chunks held


async def test_the_last_chunk_back_from_a_part_finishes_the_job(store: Store) -> None:
    await new_job(store, chunks=CHUNKS[:1])
    part = dataclasses.replace(part_of("job-1"), frames="1-2")
    assert await lc(store).send_part("job-1", part, CHUNKS[:1], [0], at=30.0)
    rendered = PartChunk(
        frames=(1, 2),
        server="facility",
        started_at=None,
        finished_at=32.0,
        outputs=(frame(1), frame(2)),
    )
    done = dataclasses.replace(part, state=JobState.DONE)
    assert await lc(store).settle_part(done, [rendered], ended=True, at=33.0) == (1, 0)
    job = await store.get_job("job-1")
    assert job is not None and job.state is JobState.DONE


async def test_a_cancelled_split_job_lets_go_of_its_sent_chunks(store: Store) -> None:
    await lc(store).create(dataclasses.replace(make_job(), split=True), CHUNKS)
    assert [j.id for j in await store.split.split_jobs()] == ["job-1"]
    assert await send(store, part_of("job-1"), [3])
    assert await lc(store).cancel("job-1", at=40.0) == []  # nothing for a server to stop
    [last] = (await store.list_tasks("job-1"))[3:]
    assert last.state is TaskState.WAITING and last.server_id is None
    assert await store.split.split_jobs() == []
