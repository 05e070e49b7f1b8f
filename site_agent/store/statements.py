"""The fenced statements of the store, run inside one transaction.

:class:`SqlTransaction` is what ``SqlStore.transaction()`` yields: each method is
one statement (or one ``executemany``) over the jobs, tasks, frames and
failures tables, with no rule of its own. Which statements make up a
transition, and in which order, is decided by :mod:`site_agent.lifecycle`.
Task updates are fenced on ``(id, attempt, server_id)`` in the SQL itself.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from . import queries as q
from . import task_logs
from .base import StoreConflictError, StoreNotFoundError
from .database import Connection
from .dependencies import DependencyStatements
from .records import (
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
from .rows import (
    encode_frames,
    frame_file_params,
    frame_params,
    job_from_row,
    job_params,
    task_from_row,
)
from .split import SplitStatements
from .usage import UsageEntry, record_attempts, record_entries


def job_not_found(job_id: str) -> StoreNotFoundError:
    return StoreNotFoundError(f"job {job_id} does not exist; list jobs with `spillway jobs`")


class SqlTransaction:
    """The :class:`~site_agent.store.base.JobTransaction` over one connection in a transaction."""

    def __init__(self, conn: Connection) -> None:
        self.connection = conn
        self.dependencies = DependencyStatements(conn)
        self.split = SplitStatements(conn)

    # --- jobs -------------------------------------------------------------
    async def insert_job(self, job: JobRecord, chunks: Sequence[tuple[int, ...]]) -> int:
        rows = [(job.id, index, encode_frames(chunk)) for index, chunk in enumerate(chunks)]
        try:
            await self.connection.execute(q.INSERT_JOB, *job_params(job))
            await self.connection.insert_many("tasks", q.TASK_INSERT_COLUMNS, rows)
        except StoreConflictError as exc:
            raise StoreConflictError(
                f"job {job.id} already exists; submit with a new job id"
            ) from exc
        return len(rows)

    async def lock_job(self, job_id: str) -> JobState | None:
        state = await self.connection.fetchval(q.LOCK_JOB, job_id)
        return None if state is None else JobState(state)

    async def lock_jobs(self, job_ids: Sequence[str]) -> None:
        if self.connection.serialized_writes:
            return  # SQLite: the transaction holds the whole database (and a no-op UPDATE writes)
        await self.connection.executemany(q.LOCK_JOB_NO_RESULT, [(job_id,) for job_id in job_ids])

    async def get_job(self, job_id: str) -> JobRecord | None:
        row = await self.connection.fetchrow(q.GET_JOB, job_id)
        return None if row is None else job_from_row(row)

    async def job_states(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        rows = await self.connection.fetch(q.JOB_STATES, list(job_ids))
        return {row["id"]: JobState(row["state"]) for row in rows}

    async def set_job_state(
        self,
        job_id: str,
        state: JobState,
        *,
        at: float,
        expected: Collection[JobState],
        error: str = "",
    ) -> bool:
        finished_at = at if state.finished else None
        args = (job_id, state.value, at, finished_at, error, [s.value for s in expected])
        return await self.connection.execute(q.UPDATE_JOB_STATE_IF, *args) > 0

    async def set_job_priority(self, job_id: str, priority: int, *, at: float) -> None:
        await self.connection.execute(q.SET_JOB_PRIORITY, job_id, priority, at)

    async def start_jobs(self, job_ids: Sequence[str], *, at: float) -> None:
        await self.connection.executemany(q.START_JOB, [(job_id, at) for job_id in job_ids])

    async def finish_job(self, job_id: str, state: JobState, *, at: float, error: str) -> None:
        await self.connection.execute(q.FINISH_JOB, job_id, state.value, at, error)

    async def cancel_job(self, job_id: str, *, at: float) -> None:
        await self.connection.execute(q.CANCEL_JOB, job_id, at)

    async def requeue_job(self, job_id: str, *, at: float) -> None:
        await self.connection.execute(q.REQUEUE_JOB, job_id, at)

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
        args = (job_id, placement, reason, new_epoch, at, old_epoch)
        return await self.connection.execute(q.REPLACE_JOB, *args) > 0

    # --- what is left of a job --------------------------------------------
    async def has_open_tasks(self, job_id: str) -> bool:
        return bool(await self.connection.fetchval(q.HAS_OPEN_TASKS, job_id))

    async def failed_summary(self, job_id: str) -> FailedSummary:
        row = await self.connection.fetchrow(q.FAILED_TASKS, job_id)
        if row is None or not row["n"]:
            return FailedSummary(count=0, first_index=None, first_error="")
        error = await self.connection.fetchval(q.TASK_ERROR_AT, job_id, row["first"])
        return FailedSummary(count=row["n"], first_index=row["first"], first_error=error or "")

    # --- tasks ------------------------------------------------------------
    async def task_job(self, task_id: int) -> str | None:
        job_id = await self.connection.fetchval(q.TASK_JOB, task_id)
        return None if job_id is None else str(job_id)

    async def get_tasks(self, task_ids: Sequence[int]) -> dict[int, TaskRecord]:
        rows = await self.connection.fetch(q.GET_TASKS, list(task_ids))
        return {task.id: task for task in map(task_from_row, rows)}

    async def claim_candidates(self, task_ids: Sequence[int]) -> dict[int, ClaimCandidate]:
        rows = await self.connection.fetch(q.CLAIMABLE, list(task_ids))
        return {
            row["id"]: ClaimCandidate(
                task_id=row["id"],
                job_id=row["job_id"],
                state=TaskState(row["state"]),
                attempt=row["attempt"],
                job_state=JobState(row["job_state"]),
                placement=row["placement"],
            )
            for row in rows
        }

    async def claim_tasks(self, claims: Sequence[TaskClaim], *, at: float) -> None:
        await self.connection.executemany(
            q.CLAIM_TASK,
            [(c.task_id, c.attempt, c.server_id, c.lease_expires_at, at) for c in claims],
        )

    async def mark_running(self, reports: Sequence[StartedReport]) -> None:
        await self.connection.executemany(
            q.MARK_RUNNING,
            [(r.task_id, r.attempt, r.server_id, r.at, r.lease_expires_at) for r in reports],
        )

    async def append_logs(self, reports: Sequence[LogReport]) -> None:
        await self.connection.executemany(
            q.APPEND_LOG,
            [(r.task_id, r.attempt, r.server_id, r.text, max(r.max_chars, 0)) for r in reports],
        )
        await task_logs.append_chunks(self.connection, reports)

    async def upsert_frames(self, frames: Sequence[FrameRecord]) -> None:
        await self.connection.executemany(q.UPSERT_FRAME, [frame_params(f) for f in frames])
        # A frame recorded again (a retry, a re-render) replaces its other files.
        await self.connection.executemany(
            q.DELETE_FRAME_FILES, [(f.job_id, f.frame) for f in frames]
        )
        files = [row for f in frames for row in frame_file_params(f)]
        if files:
            await self.connection.executemany(q.INSERT_FRAME_FILE, files)

    async def complete_tasks(self, reports: Sequence[CompletionReport]) -> None:
        await self.connection.executemany(
            q.COMPLETE_TASK_NO_RESULT,
            [(r.task_id, r.attempt, r.server_id, r.at, r.log_tail) for r in reports],
        )
        await task_logs.end_completed(self.connection, reports)

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
        fence = (task_id, attempt, server_id, error, log_tail)
        if retry:
            row = await self.connection.fetchrow(q.FAIL_TASK_RETRY, *fence)
        else:
            row = await self.connection.fetchrow(q.FAIL_TASK_FINAL, *fence, at)
        if row is None:
            return None
        task = task_from_row(row)
        await task_logs.end_failed(
            self.connection, task, attempt, server_id, error=error, log_tail=log_tail, at=at
        )
        return task

    async def record_failure(
        self, task: TaskRecord, server_id: str, attempt: int, error: str, *, at: float
    ) -> None:
        await self.connection.execute(
            q.INSERT_FAILURE, task.id, task.job_id, server_id, attempt, error, at
        )

    async def active_tasks(self, job_id: str) -> list[TaskRecord]:
        return [task_from_row(r) for r in await self.connection.fetch(q.ACTIVE_TASKS, None, job_id)]

    async def requeue_job_tasks(self, job_id: str) -> None:
        await self.connection.execute(q.REQUEUE_JOB_TASKS, job_id)

    async def requeue_server_tasks(self, server_id: str) -> list[TaskRecord]:
        rows = await self.connection.fetch(q.REQUEUE_SERVER_TASKS, server_id)
        return [task_from_row(row) for row in rows]

    async def unqueue_task(self, task_id: int, attempt: int, server_id: str) -> TaskRecord | None:
        row = await self.connection.fetchrow(q.UNQUEUE_TASK, task_id, attempt, server_id)
        return None if row is None else task_from_row(row)

    async def hand_back_task(
        self, task_id: int, attempt: int, server_id: str, *, reason: str
    ) -> TaskRecord | None:
        row = await self.connection.fetchrow(q.HAND_BACK_TASK, task_id, attempt, server_id, reason)
        return None if row is None else task_from_row(row)

    async def last_failure(self, job_id: str) -> tuple[str, str]:
        error = await self.connection.fetchval(q.LAST_FAILURE, job_id)
        tail = await self.connection.fetchval(q.FAILED_LOG_TAIL, job_id)
        return ("" if error is None else str(error), "" if tail is None else str(tail))

    async def set_job_notice(self, job_id: str, notice: str, *, at: float) -> None:
        await self.connection.execute(q.SET_JOB_NOTICE, job_id, notice, at)

    async def reset_failed_tasks(self, job_id: str) -> int:
        """Failed tasks back to waiting, their failure count and history forgotten."""
        await self.connection.execute(q.FORGET_FAILURES_OF_FAILED_TASKS, job_id)
        return await self.connection.execute(q.RETRY_FAILED_TASKS, job_id)

    async def end_waiting_tasks(
        self, job_id: str, state: TaskState, *, at: float, error: str
    ) -> None:
        await self.connection.execute(q.COMPLETE_FORWARDED_TASKS, job_id, state.value, at, error)

    async def relay_tasks(self, job_id: str, tasks: Sequence[RelayedTask]) -> None:
        rows = [
            (
                job_id,
                t.index,
                t.state.value,
                t.attempt,
                t.server_id,
                t.started_at,
                t.finished_at,
                t.error,
            )
            for t in tasks
        ]
        await self.connection.executemany(q.RELAY_TASK, rows)

    async def reset_relayed_tasks(self, job_id: str) -> None:
        await self.connection.execute(q.RESET_RELAYED_TASKS, job_id)

    async def rerender_tasks(self, job_id: str, task_ids: Sequence[int]) -> int:
        ended = (TaskState.DONE, TaskState.FAILED)
        tasks = [t for t in (await self.get_tasks(task_ids)).values() if t.job_id == job_id]
        chosen = [t.id for t in tasks if t.state in ended]
        frames = [n for t in tasks if t.state in ended for n in t.frames]
        await self.connection.execute(q.FORGET_FAILURES_OF_TASKS, chosen)
        await self.connection.execute(q.DELETE_FRAMES, job_id, frames)
        return await self.connection.execute(q.RERENDER_TASKS, job_id, chosen)

    # --- accounting (site_agent.store.usage) --------------------------------
    async def record_attempt_usage(
        self, ended: Sequence[tuple[TaskRecord, float]], *, failed: bool
    ) -> None:
        await record_attempts(self.connection, ended, failed=failed)

    async def record_usage(self, entries: Sequence[UsageEntry]) -> None:
        await record_entries(self.connection, entries)
