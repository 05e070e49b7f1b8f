"""Split jobs at the origin: placement keeps them here (``--split``, ``[federation] split``).

Runs :class:`federation.placing.Placer` against the in-memory fakes of ``test_fed_roles.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pytest
from test_fed_roles import FakeJobs, FakePeers, FakeRows, FakeSite, fed_config, make_job, server

from federation.errors import FederationConfigError
from federation.peers import PeerConfig, parse_federation
from federation.placing import SPLIT_REASON, Placer
from federation.split import Splitter
from scheduler.ranking import PeerCapacity
from site_agent.lifecycle import JobStateChanged, PartChunk
from site_agent.store.records import (
    LOCAL,
    FrameRecord,
    JobRecord,
    JobState,
    TaskRecord,
    TaskState,
)

A = PeerConfig(name="facility-a", url="https://a:8743")
FREE_A = PeerCapacity(name="facility-a", servers=(server("fa-1", free=2),), queue_depth=0)


def placer(tmp_path: Path, job: JobRecord, *, local: bool, split: bool, waiting: int) -> Placer:
    jobs = FakeJobs(job)
    jobs.waiting = waiting
    config = dataclasses.replace(fed_config(A), overflow_after_s=10.0, split=split)
    site = FakeSite(tmp_path, *([server("s1", free=0)] if local else []))
    return Placer(
        name="studio",
        config=config,
        jobs=jobs,
        forwards=FakeRows(),
        peers=FakePeers(FREE_A),
        views=site,
        offers=None,
    )


async def test_split_on_submit_keeps_the_job_here(tmp_path: Path) -> None:
    job = dataclasses.replace(make_job(), split=True)
    placed = await placer(tmp_path, job, local=True, split=False, waiting=0).place(job, None)
    assert (placed.placement, placed.split) == (LOCAL, True)
    assert placed.placement_reason.startswith(SPLIT_REASON)


async def test_a_split_job_nothing_here_can_run_is_forwarded_whole(tmp_path: Path) -> None:
    job = dataclasses.replace(make_job(), split=True)
    placed = await placer(tmp_path, job, local=False, split=False, waiting=0).place(job, None)
    assert placed.placement == "facility-a"


async def test_a_split_job_asked_for_a_site_goes_there(tmp_path: Path) -> None:
    job = dataclasses.replace(make_job(), split=True)
    p = placer(tmp_path, job, local=True, split=False, waiting=0)
    assert (await p.place(job, "facility-a")).placement == "facility-a"


async def test_the_site_policy_splits_what_would_overflow(tmp_path: Path) -> None:
    job = make_job()
    overflowing = await placer(tmp_path, job, local=True, split=True, waiting=1000).place(job, None)
    assert (overflowing.placement, overflowing.split) == (LOCAL, True)
    assert "overflow" in overflowing.placement_reason or "wait" in overflowing.placement_reason
    # Without the policy the same job is forwarded whole; with no wait it stays, unsplit.
    whole = await placer(tmp_path, job, local=True, split=False, waiting=1000).place(job, None)
    assert whole.placement == "facility-a" and not whole.split
    calm = await placer(tmp_path, job, local=True, split=True, waiting=0).place(job, None)
    assert (calm.placement, calm.split) == (LOCAL, False)


def test_the_split_key(tmp_path: Path) -> None:
    base = {"listen": "127.0.0.1:1", "ca": "ca.pem", "cert": "c.pem", "key": "k.pem"}
    on = parse_federation(
        {"federation": {**base, "split": True}}, source="s.toml", base_dir=tmp_path
    )
    assert on.split
    off = parse_federation({"federation": base}, source="s.toml", base_dir=tmp_path)
    assert not off.split
    with pytest.raises(FederationConfigError, match=r"federation\.split.*true or false"):
        parse_federation(
            {"federation": {**base, "split": "yes"}}, source="s.toml", base_dir=tmp_path
        )


# --- the Splitter over in-memory fakes --------------------------------------------------


class FakeSplitStore:
    """SplitStore and SplitRows over dicts."""

    def __init__(self, job: JobRecord, chunks: list[tuple[int, ...]]) -> None:
        self.jobs = {job.id: job}
        self.tasks = {
            job.id: [
                TaskRecord(id=i + 1, job_id=job.id, index=i, frames=c) for i, c in enumerate(chunks)
            ]
        }

    @property
    def split(self) -> FakeSplitStore:
        return self

    async def split_jobs(self) -> list[JobRecord]:
        return [j for j in self.jobs.values() if j.split]

    async def parts(self, job_id: str) -> list[JobRecord]:
        return [j for j in self.jobs.values() if j.part_of == job_id]

    async def open_parts(self) -> list[JobRecord]:
        return [j for j in self.jobs.values() if j.part_of and not j.state.finished]

    async def get_job(self, job_id: str) -> JobRecord | None:
        return self.jobs.get(job_id)

    async def list_tasks(self, job_id: str) -> list[TaskRecord]:
        return self.tasks.get(job_id, [])

    async def list_frames(self, job_id: str) -> list[FrameRecord]:
        return []


class FakeSplitLifecycle:
    def __init__(self, store: FakeSplitStore) -> None:
        self.store = store
        self.calls: list[tuple[str, str]] = []

    async def send_part(
        self,
        job_id: str,
        part: JobRecord,
        chunks: Sequence[tuple[int, ...]],
        indices: Sequence[int],
        *,
        at: float,
    ) -> bool:
        self.store.jobs[part.id] = part
        self.store.tasks[part.id] = [
            TaskRecord(id=100 + i, job_id=part.id, index=i, frames=c) for i, c in enumerate(chunks)
        ]
        for task in self.store.tasks[job_id]:
            if task.index in indices:
                self.store.tasks[job_id][task.index] = dataclasses.replace(
                    task, state=TaskState.DISPATCHED, server_id=part.placement
                )
        self.calls.append(("send", part.id))
        return True

    async def settle_part(
        self, part: JobRecord, rendered: Sequence[PartChunk], *, ended: bool, at: float
    ) -> tuple[int, int]:
        self.calls.append(("settle", part.id))
        return 0, 0

    async def cancel(self, job_id: str, *, at: float) -> list[TaskRecord]:
        self.calls.append(("cancel", job_id))
        job = self.store.jobs[job_id]
        self.store.jobs[job_id] = dataclasses.replace(job, state=JobState.CANCELLED)
        return []

    async def pause(self, job_id: str, *, at: float) -> None:
        self.calls.append(("pause", job_id))

    async def resume(self, job_id: str, *, at: float) -> None:
        self.calls.append(("resume", job_id))


def splitter(tmp_path: Path, store: FakeSplitStore) -> tuple[Splitter, FakeSplitLifecycle]:
    lifecycle = FakeSplitLifecycle(store)
    return (
        Splitter(
            name="studio",
            config=fed_config(A),
            jobs=store,
            lifecycle=lifecycle,
            peers=FakePeers(FREE_A),
            views=FakeSite(tmp_path, server("s1", free=0)),  # one capable server, 2 slots
            dirs=FakeSite(tmp_path),
        ),
        lifecycle,
    )


async def test_a_part_carries_the_last_chunks_and_one_batch_at_a_time(tmp_path: Path) -> None:
    job = dataclasses.replace(make_job(), split=True, frames="1-12", frame_count=12, chunk_size=2)
    store = FakeSplitStore(job, [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12)])
    s, lifecycle = splitter(tmp_path, store)
    await s.step()
    [part] = await store.parts(job.id)
    assert (part.placement, part.part_of, part.placement_epoch) == ("facility-a", job.id, 1)
    assert (part.frames, part.frame_count, part.chunk_size) == ("9-12", 4, 2)
    assert part.name == f"{job.name}-part1" and not part.split
    assert part.placement_reason.startswith(f"part 1 of split job {job.id}: 2 chunk(s) (9-12)")
    await s.step()  # facility-a has not started the part: no second batch
    assert [c for c in lifecycle.calls if c[0] == "send"] == [("send", part.id)]
    # The peer relayed that it started both chunks: the next batch goes.
    store.tasks[part.id] = [
        dataclasses.replace(t, state=TaskState.RUNNING) for t in store.tasks[part.id]
    ]
    await s.step()
    second = [p for p in await store.parts(job.id) if p.id != part.id]
    assert [p.frames for p in second] == ["5-8"]


async def test_a_split_job_paused_or_resumed_takes_its_parts_along(tmp_path: Path) -> None:
    job = dataclasses.replace(make_job(), split=True)
    store = FakeSplitStore(job, [(1,), (2,)])
    part = dataclasses.replace(make_job("p1", placement="facility-a"), part_of=job.id)
    store.jobs[part.id] = part
    s, lifecycle = splitter(tmp_path, store)
    await s.on_event(JobStateChanged(job_id=job.id, state=JobState.PAUSED))
    store.jobs[part.id] = dataclasses.replace(part, state=JobState.PAUSED)
    await s.on_event(JobStateChanged(job_id=job.id, state=JobState.RUNNING))
    await s.on_event(JobStateChanged(job_id=part.id, state=JobState.PAUSED))  # not split
    assert lifecycle.calls == [("pause", "p1"), ("resume", "p1")]


async def test_a_re_placed_part_is_cancelled_and_settled(tmp_path: Path) -> None:
    job = dataclasses.replace(make_job(), split=True)
    store = FakeSplitStore(job, [(1,), (2,)])
    part = dataclasses.replace(make_job("p1", epoch=2), part_of=job.id)  # back here: lease
    store.jobs[part.id] = part
    s, lifecycle = splitter(tmp_path, store)
    await s.settle(part)
    assert lifecycle.calls == [("cancel", "p1"), ("settle", "p1")]
