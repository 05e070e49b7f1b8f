"""An in-memory fake of the store as the lifecycle uses it (LifecycleStore + JobTransaction).

It follows the SQL statements' semantics (fences included) closely enough to
test the lifecycle's decisions and events without a database. A transaction
works on a copy and commits it on normal exit, so a test can see whether an
event was emitted before or after the write.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from scheduler.dependencies import DependencyKind, Upstream
from site_agent.lifecycle import LifecycleStore
from site_agent.store.base import JobTransaction, StoreConflictError, StoreNotFoundError
from site_agent.store.records import (
    ClaimCandidate,
    CompletionReport,
    FailedSummary,
    FrameRecord,
    JobRecord,
    JobState,
    LogReport,
    RelayedTask,
    StartedReport,
    TaskClaim,
    TaskRecord,
    TaskState,
)

_UNFINISHED = {JobState.QUEUED, JobState.RUNNING, JobState.PAUSED}


@dataclass
class Tables:
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    tasks: dict[int, TaskRecord] = field(default_factory=dict)
    frames: dict[tuple[str, int], FrameRecord] = field(default_factory=dict)
    failures: list[tuple[int, str, str]] = field(default_factory=list)
    """(task id, job id, server id)."""
    usage: list[Any] = field(default_factory=list)
    """Ledger rows: (task id, attempt, at, failed) per ended attempt, or a UsageEntry."""
    edges: dict[str, dict[str, DependencyKind]] = field(default_factory=dict)
    """Job id -> the jobs it waits for, with the kind of each edge."""


class FakeDependencies:
    """The statements of :class:`~site_agent.store.base.DependencyRows` over :class:`Tables`."""

    def __init__(self, t: Tables) -> None:
        self.t = t

    async def add(self, job_id: str, upstreams: Sequence[tuple[str, DependencyKind]]) -> None:
        self.t.edges.setdefault(job_id, {}).update(upstreams)

    async def upstreams(self, job_ids: Sequence[str]) -> dict[str, tuple[Upstream, ...]]:
        found: dict[str, tuple[Upstream, ...]] = {}
        for job_id in job_ids:
            edges = self.t.edges.get(job_id, {})
            if edges:
                found[job_id] = tuple(
                    Upstream(
                        job_id=up,
                        name=self.t.jobs[up].name,
                        kind=kind,
                        state=self.t.jobs[up].state.value,
                        frames_done=sum(1 for j, _ in self.t.frames if j == up),
                        frame_count=self.t.jobs[up].frame_count,
                    )
                    for up, kind in sorted(edges.items())
                )
        return found

    async def dependents(self, upstream_id: str) -> list[tuple[str, DependencyKind]]:
        return [
            (job_id, edges[upstream_id])
            for job_id, edges in sorted(self.t.edges.items())
            if upstream_id in edges and self.t.jobs[job_id].state in _UNFINISHED
        ]

    async def edges_from(self, job_ids: Sequence[str]) -> dict[str, list[str]]:
        return {j: sorted(self.t.edges[j]) for j in job_ids if self.t.edges.get(j)}

    async def stored_frames(self, job_id: str, frames: Sequence[int]) -> frozenset[int]:
        return frozenset(n for n in frames if (job_id, n) in self.t.frames)


def _fenced(task: TaskRecord | None, attempt: int, server_id: str) -> bool:
    return (
        task is not None
        and task.attempt == attempt
        and task.server_id == server_id
        and task.state.active
    )


def _waiting(task: TaskRecord) -> TaskRecord:
    return dataclasses.replace(
        task,
        state=TaskState.WAITING,
        server_id=None,
        lease_expires_at=None,
        dispatched_at=None,
        started_at=None,
        finished_at=None,
    )


def _reset(task: TaskRecord) -> dict[str, Any]:
    waiting = _waiting(task)
    return {
        f: getattr(waiting, f)
        for f in ("state", "server_id", "lease_expires_at", "dispatched_at", "started_at")
    } | {"finished_at": None, "attempt": 0, "error": ""}


class FakeTransaction:
    """The statements of :class:`~site_agent.store.base.JobTransaction` over :class:`Tables`."""

    connection: Any = "fake-connection"

    def __init__(self, t: Tables) -> None:
        self.t = t
        self.dependencies = FakeDependencies(t)

    async def record_attempt_usage(
        self, ended: Sequence[tuple[TaskRecord, float]], *, failed: bool
    ) -> None:
        self.t.usage += [(task.id, task.attempt, at, failed) for task, at in ended]

    async def record_usage(self, entries: Sequence[Any]) -> None:
        self.t.usage += list(entries)

    def _job(self, job_id: str, **changes: Any) -> None:
        self.t.jobs[job_id] = dataclasses.replace(self.t.jobs[job_id], **changes)

    def _task(self, task_id: int, **changes: Any) -> TaskRecord:
        task = self.t.tasks[task_id] = dataclasses.replace(self.t.tasks[task_id], **changes)
        return task

    async def insert_job(self, job: JobRecord, chunks: Sequence[tuple[int, ...]]) -> int:
        if job.id in self.t.jobs:
            raise StoreConflictError(f"job {job.id} already exists; submit with a new job id")
        self.t.jobs[job.id] = job
        for index, frames in enumerate(chunks):
            task_id = len(self.t.tasks) + 1
            self.t.tasks[task_id] = TaskRecord(
                id=task_id, job_id=job.id, index=index, frames=frames
            )
        return len(chunks)

    async def lock_job(self, job_id: str) -> JobState | None:
        job = self.t.jobs.get(job_id)
        return None if job is None else job.state

    async def lock_jobs(self, job_ids: Sequence[str]) -> None:
        assert list(job_ids) == sorted(job_ids), "jobs are locked in id order"

    async def get_job(self, job_id: str) -> JobRecord | None:
        return self.t.jobs.get(job_id)

    async def job_states(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        return {j: self.t.jobs[j].state for j in job_ids if j in self.t.jobs}

    async def set_job_state(
        self,
        job_id: str,
        state: JobState,
        *,
        at: float,
        expected: Collection[JobState],
        error: str = "",
    ) -> bool:
        job = self.t.jobs.get(job_id)
        if job is None or job.state not in expected:
            return False
        finished_at = at if state.finished else None
        self._job(job_id, state=state, updated_at=at, finished_at=finished_at, error=error)
        return True

    async def start_jobs(self, job_ids: Sequence[str], *, at: float) -> None:
        for job_id in job_ids:
            if self.t.jobs[job_id].state is JobState.QUEUED:
                self._job(job_id, state=JobState.RUNNING, updated_at=at)

    async def finish_job(self, job_id: str, state: JobState, *, at: float, error: str) -> None:
        if self.t.jobs[job_id].state in _UNFINISHED:
            self._job(job_id, state=state, finished_at=at, updated_at=at, error=error)

    async def cancel_job(self, job_id: str, *, at: float) -> None:
        if self.t.jobs[job_id].state in _UNFINISHED:
            self._job(job_id, state=JobState.CANCELLED, finished_at=at, updated_at=at)

    async def requeue_job(self, job_id: str, *, at: float) -> None:
        if self.t.jobs[job_id].state in (JobState.FAILED, JobState.CANCELLED):
            self._job(job_id, state=JobState.QUEUED, finished_at=None, updated_at=at, error="")

    async def replace_job(
        self,
        job_id: str,
        *,
        old_epoch: int,
        new_epoch: int,
        placement: str,
        reason: str,
        at: float,
    ) -> bool:
        job = self.t.jobs.get(job_id)
        if job is None or job.placement_epoch != old_epoch or job.state not in _UNFINISHED:
            return False
        self._job(
            job_id,
            placement=placement,
            placement_reason=reason,
            placement_epoch=new_epoch,
            remote_job_id=None,
            updated_at=at,
        )
        return True

    def _of(self, job_id: str) -> list[TaskRecord]:
        return sorted(
            (t for t in self.t.tasks.values() if t.job_id == job_id), key=lambda t: t.index
        )

    async def has_open_tasks(self, job_id: str) -> bool:
        return any(t.state is TaskState.WAITING or t.state.active for t in self._of(job_id))

    async def failed_summary(self, job_id: str) -> FailedSummary:
        failed = [t for t in self._of(job_id) if t.state is TaskState.FAILED]
        if not failed:
            return FailedSummary(count=0, first_index=None, first_error="")
        return FailedSummary(
            count=len(failed), first_index=failed[0].index, first_error=failed[0].error
        )

    async def task_job(self, task_id: int) -> str | None:
        task = self.t.tasks.get(task_id)
        return None if task is None else task.job_id

    async def get_tasks(self, task_ids: Sequence[int]) -> dict[int, TaskRecord]:
        return {i: self.t.tasks[i] for i in task_ids if i in self.t.tasks}

    async def claim_candidates(self, task_ids: Sequence[int]) -> dict[int, ClaimCandidate]:
        found = {}
        for task_id in task_ids:
            task = self.t.tasks.get(task_id)
            if task is not None:
                job = self.t.jobs[task.job_id]
                found[task_id] = ClaimCandidate(
                    task_id=task_id,
                    job_id=task.job_id,
                    state=task.state,
                    attempt=task.attempt,
                    job_state=job.state,
                    placement=job.placement,
                )
        return found

    async def claim_tasks(self, claims: Sequence[TaskClaim], *, at: float) -> None:
        for c in claims:
            task = self.t.tasks.get(c.task_id)
            if (
                task is not None
                and task.state is TaskState.WAITING
                and task.attempt == c.attempt - 1
            ):
                self._task(
                    c.task_id,
                    state=TaskState.DISPATCHED,
                    attempt=c.attempt,
                    server_id=c.server_id,
                    lease_expires_at=c.lease_expires_at,
                    dispatched_at=at,
                    started_at=None,
                    finished_at=None,
                    log_tail="",
                )

    async def mark_running(self, reports: Sequence[StartedReport]) -> None:
        for r in reports:
            task = self.t.tasks.get(r.task_id)
            if _fenced(task, r.attempt, r.server_id):
                assert task is not None
                self._task(
                    r.task_id,
                    state=TaskState.RUNNING,
                    started_at=task.started_at or r.at,
                    lease_expires_at=r.lease_expires_at,
                )

    async def append_logs(self, reports: Sequence[LogReport]) -> None:
        for r in reports:
            task = self.t.tasks.get(r.task_id)
            if _fenced(task, r.attempt, r.server_id):
                assert task is not None
                tail = task.log_tail + r.text
                self._task(
                    r.task_id,
                    log_tail=tail[len(tail) - r.max_chars :] if len(tail) > r.max_chars else tail,
                )

    async def upsert_frames(self, frames: Sequence[FrameRecord]) -> None:
        for f in frames:
            if f.job_id not in self.t.jobs:
                raise StoreNotFoundError(f"refers to a row that does not exist ({f.job_id})")
            self.t.frames[f.job_id, f.frame] = f

    async def complete_tasks(self, reports: Sequence[CompletionReport]) -> None:
        for r in reports:
            task = self.t.tasks.get(r.task_id)
            if _fenced(task, r.attempt, r.server_id):
                assert task is not None
                self._task(
                    r.task_id,
                    state=TaskState.DONE,
                    finished_at=r.at,
                    lease_expires_at=None,
                    error="",
                    log_tail=task.log_tail if r.log_tail is None else r.log_tail,
                )

    async def fail_task(
        self,
        task_id: int,
        attempt: int,
        server_id: str,
        *,
        error: str,
        log_tail: str | None,
        retry: bool,
        at: float,
    ) -> TaskRecord | None:
        task = self.t.tasks.get(task_id)
        if task is None or not _fenced(task, attempt, server_id):
            return None
        tail = task.log_tail if log_tail is None else log_tail
        if retry:
            task = dataclasses.replace(
                _waiting(task), failures=task.failures + 1, error=error, log_tail=tail
            )
            self.t.tasks[task_id] = task
            return task
        return self._task(
            task_id,
            state=TaskState.FAILED,
            failures=task.failures + 1,
            error=error,
            log_tail=tail,
            lease_expires_at=None,
            finished_at=at,
        )

    async def record_failure(
        self, task: TaskRecord, server_id: str, attempt: int, error: str, *, at: float
    ) -> None:
        self.t.failures.append((task.id, task.job_id, server_id))

    async def active_tasks(self, job_id: str) -> list[TaskRecord]:
        return [t for t in self._of(job_id) if t.state.active]

    async def requeue_job_tasks(self, job_id: str) -> None:
        for task in self._of(job_id):
            if task.state.active:
                self.t.tasks[task.id] = _waiting(task)

    async def requeue_server_tasks(self, server_id: str) -> list[TaskRecord]:
        requeued = []
        for task in list(self.t.tasks.values()):
            if task.server_id == server_id and task.state.active:
                self.t.tasks[task.id] = _waiting(task)
                requeued.append(self.t.tasks[task.id])
        return requeued

    async def reset_failed_tasks(self, job_id: str) -> int:
        failed = {t.id for t in self._of(job_id) if t.state is TaskState.FAILED}
        self.t.failures = [f for f in self.t.failures if f[0] not in failed]
        for task_id in failed:
            self.t.tasks[task_id] = dataclasses.replace(_waiting(self.t.tasks[task_id]), failures=0)
        return len(failed)

    async def end_waiting_tasks(
        self, job_id: str, state: TaskState, *, at: float, error: str
    ) -> None:
        for task in self._of(job_id):
            if task.state is not TaskState.DONE:
                self._task(task.id, state=state, finished_at=task.finished_at or at, error=error)

    async def relay_tasks(self, job_id: str, tasks: Sequence[RelayedTask]) -> None:
        by_index = {t.index: t for t in tasks}
        for task in self._of(job_id):
            relayed = by_index.get(task.index)
            if relayed is not None and task.state is not TaskState.DONE:
                self._task(
                    task.id,
                    state=relayed.state,
                    attempt=relayed.attempt,
                    server_id=relayed.server_id,
                    started_at=relayed.started_at,
                    finished_at=relayed.finished_at,
                    error=relayed.error,
                )

    async def reset_relayed_tasks(self, job_id: str) -> None:
        for task in self._of(job_id):
            if task.state not in (TaskState.DONE, TaskState.WAITING):
                self._task(task.id, **_reset(task))


class FakeStore:
    """The lifecycle's store: committed tables, transactions on a copy, two reads."""

    def __init__(self) -> None:
        self.t = Tables()
        self.commits = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakeTransaction]:
        work = copy.deepcopy(self.t)
        yield FakeTransaction(work)
        self.t = work  # commit: only on normal exit
        self.commits += 1

    async def get_job(self, job_id: str) -> JobRecord | None:
        return self.t.jobs.get(job_id)

    async def server_failures(self, job_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, failed_job, server_id in self.t.failures:
            if failed_job == job_id:
                counts[server_id] = counts.get(server_id, 0) + 1
        return counts


def _conforms(store: FakeStore, tx: FakeTransaction) -> tuple[LifecycleStore, JobTransaction]:
    return store, tx  # mypy checks the fakes against the Protocols they stand in for
