"""JobService against small fakes of its narrow collaborators (no store, no web app)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from scheduler.dependencies import DependencyKind
from scheduler.profile import ServerView
from site_agent.errors import BadRequestError, ConflictError, MissingAssetsError, NotFoundError
from site_agent.jobs import JobService
from site_agent.store.records import LOCAL, JobRecord, JobState, TaskRecord, TaskState

SHA = "a" * 64
BODY = {
    "scene": "scene.json",
    "manifest": [{"path": "scene.json", "sha256": SHA, "size": 10}],
    "frames": "1-4",
    "chunk_size": 2,
    "profile": {"package": "builtin"},
}


class FakeSite:
    """The job reader, blob index, placement and lifecycle, recording every call."""

    def __init__(self, *, missing: Sequence[str] = (), placement: str = LOCAL) -> None:
        self.jobs: dict[str, JobRecord] = {}
        self.calls: list[tuple[str, Any]] = []
        self._missing = list(missing)
        self._placement = placement
        self.retried = 1
        self.tasks: list[TaskRecord] = []

    async def get_job(self, job_id: str) -> JobRecord | None:
        return self.jobs.get(job_id)

    async def get_job_by_origin_id(self, origin_job_id: str) -> JobRecord | None:
        return next((j for j in self.jobs.values() if j.origin_job_id == origin_job_id), None)

    def missing(self, hashes: Iterable[str]) -> list[str]:
        return [h for h in hashes if h in self._missing]

    async def place(self, job: JobRecord, requested: str | None) -> JobRecord:
        self.calls.append(("place", requested))
        return dataclasses.replace(job, placement=self._placement)

    async def create(
        self,
        job: JobRecord,
        chunks: Sequence[tuple[int, ...]],
        *,
        after: Sequence[tuple[str, DependencyKind]] = (),
    ) -> JobRecord:
        self.calls.append(("create", list(chunks)))
        if after:
            self.calls.append(("after", list(after)))
        self.jobs[job.id] = job
        return job

    async def add_dependencies(
        self, job_id: str, after: Sequence[tuple[str, DependencyKind]], *, at: float
    ) -> bool:
        self.calls.append(("add_dependencies", list(after)))
        return False

    async def cancel(self, job_id: str, *, at: float) -> list[TaskRecord]:
        self.calls.append(("cancel", job_id))
        return []

    async def pause(self, job_id: str, *, at: float) -> None:
        self.calls.append(("pause", job_id))

    async def resume(self, job_id: str, *, at: float) -> None:
        self.calls.append(("resume", job_id))

    async def retry_failed(self, job_id: str, *, at: float) -> int:
        self.calls.append(("retry", job_id))
        return self.retried

    async def list_tasks(self, job_id: str) -> list[TaskRecord]:
        return self.tasks

    async def rerender(self, job_id: str, task_ids: Sequence[int], *, at: float) -> int:
        self.calls.append(("rerender", list(task_ids)))
        return len(task_ids)


def service(site: FakeSite, servers: list[ServerView] | None = None) -> JobService:
    async def views() -> list[ServerView]:
        return servers or []

    return JobService(
        servers=views,
        site_name="studio",
        known_packages={"builtin", "povray"},
        jobs=site,
        blobs=site,
        placement=site,
        lifecycle=site,
        clock=lambda: 100.0,
    )


async def test_submit_validates_places_and_creates_once() -> None:
    site = FakeSite()
    job = await service(site).submit(BODY | {"site": "paris"})
    assert (job.frame_count, job.chunk_size, job.origin_site, job.created_at) == (
        4,
        2,
        "studio",
        100.0,
    )
    assert site.calls == [("place", "paris"), ("create", [(1, 2), (3, 4)])]


async def test_submit_passes_the_jobs_it_waits_for_and_checks_them() -> None:
    site = FakeSite()
    jobs = service(site)
    await jobs.submit(BODY | {"after": ["a1", "b2", "a1"]})
    await jobs.submit(BODY | {"after": ["a1"], "after_any": True})
    assert [c for c in site.calls if c[0] == "after"] == [
        ("after", [("a1", DependencyKind.DONE), ("b2", DependencyKind.DONE)]),
        ("after", [("a1", DependencyKind.END)]),
    ]
    for bad, message in (
        ({"after": "a1"}, "'after' must be a list of job ids"),
        ({"after": [""]}, "'after' must be a list of job ids"),
        ({"after_any": True}, "'after_any' needs 'after'"),
    ):
        with pytest.raises(BadRequestError, match=message):
            await jobs.submit(BODY | bad)
    with pytest.raises(BadRequestError, match='send {"after"'):
        await jobs.add_dependencies("x", {"after": []})


async def test_submit_refuses_missing_blobs_and_bad_bodies_before_any_write() -> None:
    site = FakeSite(missing=[SHA])
    with pytest.raises(MissingAssetsError) as err:
        await service(site).submit(BODY)
    assert err.value.extra == {"missing": [SHA]}
    with pytest.raises(BadRequestError, match="unknown render package"):
        await service(site).submit(BODY | {"profile": {"package": "nope"}})
    assert site.calls == []


async def test_control_calls_the_lifecycle_and_refuses_what_cannot_apply() -> None:
    site = FakeSite()
    jobs = service(site)
    job = await jobs.submit(BODY)
    for action in ("pause", "resume", "retry", "cancel"):
        assert await jobs.control(job.id, action) == job
    assert [c for c, _ in site.calls[2:]] == ["pause", "resume", "retry", "cancel"]
    site.retried = 0
    with pytest.raises(ConflictError, match="no failed tasks to retry"):
        await jobs.control(job.id, "retry")
    site.jobs[job.id] = dataclasses.replace(job, state=JobState.DONE)
    with pytest.raises(ConflictError, match="already done"):
        await jobs.control(job.id, "cancel")
    site.jobs[job.id] = dataclasses.replace(job, placement="paris")
    with pytest.raises(ConflictError, match="runs at paris; retry it there"):
        await jobs.control(job.id, "retry")
    with pytest.raises(NotFoundError, match="unknown action"):
        await jobs.control(job.id, "explode")
    with pytest.raises(NotFoundError, match="no job 'nope'"):
        await jobs.control("nope", "cancel")


def _server(packages: dict[str, str]) -> ServerView:
    return ServerView(
        id="s1",
        name="s1",
        packages=packages,
        cores=8,
        memory_mb=8192,
        gpus=0,
        tags=frozenset(),
        slots=1,
        free_slots=0,
        status="offline",
    )


async def test_a_job_no_known_server_can_run_is_refused_unless_queued_anyway() -> None:
    site = FakeSite()
    povray = _server({"builtin": "1", "povray": "3.7.0.10"})  # offline still counts
    jobs = service(site, [povray, dataclasses.replace(povray, id="s2", name="s2")])
    body = BODY | {"profile": {"package": "povray", "version": ">=9"}}
    with pytest.raises(ConflictError, match=r"no server has povray>=9; 2 servers have povray 3\.7"):
        await jobs.submit(body)
    assert site.calls == [("place", None)]
    assert (await jobs.submit(body | {"queue_anyway": True})).profile.package == "povray"
    assert (await jobs.submit(BODY | {"profile": {"package": "povray"}})).frame_count == 4
    # Forwarded to a peer: the peer can run it. No server known yet: nothing to judge by.
    assert await service(FakeSite(placement="paris"), [povray]).submit(body)
    assert await service(FakeSite()).submit(body)


async def test_retry_frames_rerenders_the_ended_tasks_holding_them() -> None:
    site = FakeSite()
    jobs = service(site)
    job = await jobs.submit(BODY)
    site.tasks = [
        TaskRecord(id=1, job_id=job.id, index=0, frames=(1, 2), state=TaskState.DONE),
        TaskRecord(id=2, job_id=job.id, index=1, frames=(3, 4), state=TaskState.RUNNING),
    ]
    await jobs.retry_frames(job.id, "2")
    assert site.calls[-1] == ("rerender", [1])
    with pytest.raises(ConflictError, match="already waiting or rendering"):
        await jobs.retry_frames(job.id, "3-4")
    with pytest.raises(BadRequestError, match="has no frame 5-6"):
        await jobs.retry_frames(job.id, "1,5-6")
    with pytest.raises(BadRequestError, match="frame spec"):
        await jobs.retry_frames(job.id, 7)
