"""Reclaiming chunks of split jobs' parts, on SQLite and PostgreSQL (the ``store`` fixture).

The peer's withdrawal fence (only chunks no server holds and none failed, under the
job's lock) and the origin's transition that takes them back.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

from test_store_contract import claim, claim_of, complete, lc, make_job, new_job
from test_store_split import CHUNKS, part_of, send

from federation.store import FederationStore
from site_agent.lifecycle import Event, JobCancelled, JobFinished, TasksRequeued, TasksWithdrawn
from site_agent.store.base import Store
from site_agent.store.database import Connection
from site_agent.store.records import JobState, TaskState


class Answers:
    """The withdrawal hook: what the transition recorded, as its transaction saw it."""

    def __init__(self) -> None:
        self.recorded: list[tuple[int, ...]] = []

    async def __call__(self, conn: Connection, withdrawn: Sequence[int]) -> None:
        self.recorded.append(tuple(withdrawn))


async def accepted(store: Store) -> None:
    """A job accepted from a peer (an ordinary job here), frames 1-8 in four chunks."""
    job = dataclasses.replace(make_job(), frames="1-8", frame_count=8, origin_job_id="part-x")
    await lc(store).create(job, CHUNKS)


async def test_only_chunks_no_server_holds_and_none_failed_are_withdrawn(store: Store) -> None:
    await accepted(store)
    tasks = await store.list_tasks("job-1")
    await claim(store, tasks[0])  # rendering here: stays
    failed = await claim(store, tasks[1])
    await lc(store).fail_task(
        failed.id, failed.attempt, "s1", error="boom", at=11.0, retry=True
    )  # waiting again, but it failed here once: stays (its failure is on record)
    lost = await claim(store, tasks[2], "s2")
    await lc(store).requeue_server("s2", at=12.0)  # its server was lost: waiting, no failure
    answers = Answers()
    withdrawn = await lc(store).withdraw_chunks(
        "job-1", [0, 1, 2, 3], reason="reclaimed by studio", at=13.0, record=answers
    )
    assert withdrawn == (2, 3) and answers.recorded == [(2, 3)]
    after = await store.list_tasks("job-1")
    assert [t.index for t in after] == [0, 1]
    assert after[0].state is TaskState.DISPATCHED and after[1].failures == 1
    job = await store.get_job("job-1")
    assert job is not None and (job.frames, job.frame_count) == ("1-4", 4)
    assert job.state is JobState.RUNNING
    # A late claim of a withdrawn chunk wins nothing.
    assert await lc(store).assign([claim_of(lost, "s3")], at=14.0) == []
    # Asking again gives nothing more: what is left has started or failed here.
    again = await lc(store).withdraw_chunks(
        "job-1", [0, 1, 2, 3], reason="again", at=15.0, record=answers
    )
    assert again == () and answers.recorded[-1] == ()


async def test_withdrawing_every_chunk_cancels_the_job(store: Store) -> None:
    await accepted(store)
    events: list[Event] = []

    async def heard(event: Event) -> None:
        events.append(event)

    lifecycle = lc(store)
    lifecycle.subscribe(heard)
    withdrawn = await lifecycle.withdraw_chunks(
        "job-1", [0, 1, 2, 3], reason="reclaimed by studio", at=13.0, record=Answers()
    )
    assert withdrawn == (0, 1, 2, 3)
    job = await store.get_job("job-1")
    assert job is not None and job.state is JobState.CANCELLED
    assert "every chunk was withdrawn: reclaimed by studio" in job.error
    assert await store.list_tasks("job-1") == []
    assert [type(e) for e in events] == [TasksWithdrawn, JobCancelled]


async def test_withdrawing_what_is_left_of_a_job_whose_other_chunks_are_done_ends_it(
    store: Store,
) -> None:
    await accepted(store)
    tasks = await store.list_tasks("job-1")
    claimed = await claim(store, tasks[0])
    await complete(store, claimed.id, claimed.attempt, "s1", at=12.0)
    events: list[Event] = []

    async def heard(event: Event) -> None:
        events.append(event)

    lifecycle = lc(store)
    lifecycle.subscribe(heard)
    assert await lifecycle.withdraw_chunks(
        "job-1", [1, 2, 3], reason="r", at=13.0, record=Answers()
    ) == (1, 2, 3)
    job = await store.get_job("job-1")
    assert job is not None and (job.state, job.frames) == (JobState.DONE, "1-2")
    assert JobFinished(job_id="job-1", state=JobState.DONE) in events


async def test_a_finished_or_forwarded_job_gives_nothing_back(store: Store) -> None:
    await new_job(store, "gone", chunks=CHUNKS, placement="elsewhere")
    answers = Answers()
    assert await lc(store).withdraw_chunks("gone", [0], reason="r", at=1.0, record=answers) == ()
    await accepted(store)
    await lc(store).cancel("job-1", at=2.0)
    assert await lc(store).withdraw_chunks("job-1", [0], reason="r", at=3.0, record=answers) == ()
    assert answers.recorded == [(), ()]  # the answer is recorded all the same
    assert len(await store.list_tasks("job-1")) == 4


async def test_a_claim_racing_a_withdrawal_never_lets_a_chunk_be_both(store: Store) -> None:
    """The dispatcher's claim and the withdrawal lock the job first: one of them wins."""
    for round_ in range(5):
        job_id = f"race-{round_}"
        await new_job(store, job_id, chunks=CHUNKS)
        tasks = await store.list_tasks(job_id)
        claims = [claim_of(t, "s1") for t in tasks]
        claimed, withdrawn = await asyncio.gather(
            lc(store).assign(claims, at=10.0),
            lc(store).withdraw_chunks(job_id, [0, 1, 2, 3], reason="r", at=10.0, record=Answers()),
        )
        won = {t.index for t in claimed}
        assert won.isdisjoint(withdrawn) and won | set(withdrawn) == {0, 1, 2, 3}


# --- the origin takes the chunks back ------------------------------------------------


async def test_the_split_job_gets_back_what_its_part_withdrew(store: Store) -> None:
    await lc(store).create(dataclasses.replace(make_job(), split=True), CHUNKS)
    assert await send(store, part_of("job-1"), [2, 3])  # part tasks 0, 1 = chunks 2, 3
    part = await store.get_job("part-1")
    assert part is not None
    events: list[Event] = []

    async def heard(event: Event) -> None:
        events.append(event)

    hooks: list[str] = []

    async def hook(conn: Connection) -> None:
        hooks.append("answered")

    lifecycle = lc(store)
    lifecycle.subscribe(heard)
    returned = await lifecycle.reclaim_part(part, [1], at=40.0, hook=hook)
    assert [t.index for t in returned] == [3] and hooks == ["answered"]
    tasks = await store.list_tasks("job-1")
    assert tasks[3].state is TaskState.WAITING and tasks[3].server_id is None
    assert tasks[3].error == "reclaimed from facility (part part-1)"
    assert tasks[2].state is TaskState.DISPATCHED  # still the part's
    snap = await store.dispatch_snapshot(per_job_limit=10)
    assert 3 in [t.index for t in snap.waiting]  # dispatchable here again
    shrunk = await store.get_job("part-1")
    assert shrunk is not None and (shrunk.frames, shrunk.frame_count) == ("5-6", 2)
    assert [t.index for t in await store.list_tasks("part-1")] == [0]
    assert any(isinstance(e, TasksRequeued) for e in events)

    # The rest too: the part is left with nothing, but its peer's notification ends it.
    assert [t.index for t in await lifecycle.reclaim_part(part, [0], at=41.0, hook=hook)] == [2]
    empty = await store.get_job("part-1")
    assert empty is not None and empty.state is JobState.QUEUED
    assert await store.list_tasks("part-1") == []


async def test_an_answer_for_a_part_that_ended_returns_nothing(store: Store) -> None:
    await lc(store).create(dataclasses.replace(make_job(), split=True), CHUNKS)
    assert await send(store, part_of("job-1"), [2, 3])
    part = await store.get_job("part-1")
    assert part is not None
    await lc(store).cancel("part-1", at=40.0)
    hooks: list[str] = []

    async def hook(conn: Connection) -> None:
        hooks.append("answered")

    assert await lc(store).reclaim_part(part, [0, 1], at=41.0, hook=hook) == ()
    assert hooks == ["answered"]  # marked, so it is not asked again
    assert len(await store.list_tasks("part-1")) == 2


# --- the federation's rows, with the transitions, across a restart ---------------------


async def test_reclaim_rows_survive_a_restart_and_answers_commit_with_their_change(
    store: Store,
) -> None:
    fed = await FederationStore.open(store.database)
    await lc(store).create(dataclasses.replace(make_job(), split=True), CHUNKS)
    assert await send(store, part_of("job-1"), [2, 3])
    await fed.reclaims.ask(
        key="studio:part-1:1:k1", job_id="part-1", epoch=1, peer="facility", indices=[0, 1], at=50.0
    )
    await fed.reclaims.ask(  # a repeat of the key keeps the first record
        key="studio:part-1:1:k1", job_id="part-1", epoch=1, peer="facility", indices=[1], at=51.0
    )
    # A restarted agent opens the same database: the request is still to be sent.
    reopened = await FederationStore.open(store.database)
    [row] = await reopened.reclaims.asked()
    assert (row.key, row.job_id, row.peer, row.indices, row.state) == (
        "studio:part-1:1:k1",
        "part-1",
        "facility",
        (0, 1),
        "asked",
    )
    part = await store.get_job("part-1")
    assert part is not None
    hook = reopened.reclaims.answered_hook(row.key, [1], "7-8", at=52.0)
    assert [t.index for t in await lc(store).reclaim_part(part, [1], at=52.0, hook=hook)] == [3]
    assert await reopened.reclaims.asked() == []
    [answered] = await reopened.reclaims.of_jobs(["part-1"])
    assert (answered.state, answered.withdrawn, answered.frames) == ("answered", (1,), "7-8")
    assert not await reopened.reclaims.abandon(row.key, at=53.0)  # answered stays answered

    # The peer's answer is recorded with its withdrawal, once per (site, key).
    await accepted_as(store, "r1")
    record = reopened.reclaims.withdrawal_hook("studio", "studio:part-1:1:k2", "r1", at=60.0)
    withdrawn = await lc(store).withdraw_chunks("r1", [3], reason="r", at=60.0, record=record)
    assert withdrawn == (3,)
    assert await reopened.reclaims.answer("studio", "studio:part-1:1:k2") == (3,)
    assert await reopened.reclaims.answer("other", "studio:part-1:1:k2") is None


async def accepted_as(store: Store, job_id: str) -> None:
    job = dataclasses.replace(make_job(job_id), frames="1-8", frame_count=8, origin_job_id="p")
    await lc(store).create(job, CHUNKS)
