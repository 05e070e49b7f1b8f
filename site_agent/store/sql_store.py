"""The store: every rule of the resource database, over either backend's adapter.

All logic lives here once; the SQL is in :mod:`site_agent.store.queries` and the
backend differences in the adapters. Task state changes are fenced on
``(id, attempt, server_id)`` and made in one transaction with whatever they
imply for the job (a job finishes in the same transaction as its last task).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence

from . import queries as q
from .base import ConflictError, NotFoundError, Store
from .database import Connection, Database, Row
from .migrate import apply_migrations
from .placement import PlacementStoreMixin
from .records import (
    LOCAL,
    CompletionReport,
    DispatchSnapshot,
    FrameRecord,
    JobRecord,
    JobState,
    LogReport,
    ServerRecord,
    ServerStatus,
    StartedReport,
    TaskClaim,
    TaskOutcome,
    TaskRecord,
    TaskState,
)
from .report_batch import apply_reports
from .rows import (
    encode_frames,
    frame_from_row,
    frame_params,
    job_from_row,
    job_params,
    server_from_row,
    server_params,
    task_from_row,
)
from .snapshot import read_snapshot

log = logging.getLogger(__name__)

_CLAIMABLE_JOB_STATES = frozenset({JobState.QUEUED.value, JobState.RUNNING.value})
_FINISHABLE_JOB_STATES = frozenset({JobState.QUEUED, JobState.RUNNING, JobState.PAUSED})


def _job_not_found(job_id: str) -> NotFoundError:
    return NotFoundError(f"job {job_id} does not exist; list jobs with `spillway jobs`")


def _claimable(row: Row | None, claim: TaskClaim) -> bool:
    return (
        row is not None
        and row["job_id"] == claim.job_id
        and row["state"] == TaskState.WAITING.value
        and row["attempt"] == claim.attempt - 1
        and row["job_state"] in _CLAIMABLE_JOB_STATES
        and row["placement"] == LOCAL
    )


def _holds(task: TaskRecord | None, claim: TaskClaim, at: float) -> bool:
    """Whether the task, read back after claiming, is the one this claim made."""
    return (
        task is not None
        and task.state is TaskState.DISPATCHED
        and task.attempt == claim.attempt
        and task.server_id == claim.server_id
        and task.dispatched_at == at
    )


def _first_claim_per_task(claims: Sequence[TaskClaim]) -> list[TaskClaim]:
    seen: set[int] = set()
    unique: list[TaskClaim] = []
    for claim in claims:
        if claim.task_id not in seen:
            seen.add(claim.task_id)
            unique.append(claim)
    return unique


class SqlStore(PlacementStoreMixin):
    """The :class:`~site_agent.store.base.Store` on SQLite or PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    async def open(cls, db: Database) -> SqlStore:
        """Bring the schema up to date, then serve; closes ``db`` if that fails."""
        try:
            applied = await apply_migrations(db)
        except BaseException:
            await db.close()
            raise
        if applied:
            log.info("%s schema migrated to version %d", db.dialect, applied[-1])
        return cls(db)

    @property
    def database(self) -> Database:
        """The adapter underneath (for tests and maintenance tools)."""
        return self._db

    async def close(self) -> None:
        await self._db.close()

    # --- render servers -------------------------------------------------
    async def upsert_server(self, server: ServerRecord) -> ServerRecord:
        try:
            row = await self._db.fetchrow(q.UPSERT_SERVER, *server_params(server))
        except ConflictError as exc:
            raise ConflictError(
                f"server id {server.id} is already registered under another name than "
                f"{server.name!r}; give each render server a unique name"
            ) from exc
        assert row is not None  # an upsert always returns its row
        return server_from_row(row)

    async def set_server_status(self, server_id: str, status: ServerStatus, *, at: float) -> None:
        if not await self._db.execute(q.SET_SERVER_STATUS, server_id, status.value, at):
            raise NotFoundError(
                f"render server {server_id} is not registered; list servers with `spillway servers`"
            )

    async def record_heartbeats(self, beats: Sequence[tuple[str, float]]) -> None:
        if beats:
            await self._db.executemany(q.RECORD_HEARTBEAT, [(sid, at) for sid, at in beats])

    async def list_servers(self) -> list[ServerRecord]:
        return [server_from_row(row) for row in await self._db.fetch(q.LIST_SERVERS)]

    async def get_server(self, server_id: str) -> ServerRecord | None:
        row = await self._db.fetchrow(q.GET_SERVER, server_id)
        return None if row is None else server_from_row(row)

    async def get_server_by_name(self, name: str) -> ServerRecord | None:
        row = await self._db.fetchrow(q.GET_SERVER_BY_NAME, name)
        return None if row is None else server_from_row(row)

    # --- jobs -----------------------------------------------------------
    async def create_job(self, job: JobRecord, chunks: Sequence[tuple[int, ...]]) -> None:
        rows = [(job.id, index, encode_frames(chunk)) for index, chunk in enumerate(chunks)]
        try:
            async with self._db.transaction() as conn:
                await conn.execute(q.INSERT_JOB, *job_params(job))
                await conn.insert_many("tasks", q.TASK_INSERT_COLUMNS, rows)
        except ConflictError as exc:
            raise ConflictError(f"job {job.id} already exists; submit with a new job id") from exc
        log.info("job %s created with %d tasks", job.id, len(rows))

    async def get_job(self, job_id: str) -> JobRecord | None:
        row = await self._db.fetchrow(q.GET_JOB, job_id)
        return None if row is None else job_from_row(row)

    async def list_jobs(
        self, *, states: Collection[JobState] | None = None, limit: int = 100
    ) -> list[JobRecord]:
        if states is None:
            rows = await self._db.fetch(q.LIST_JOBS, limit)
        elif not states:
            return []
        else:
            rows = await self._db.fetch(q.LIST_JOBS_IN_STATES, [s.value for s in states], limit)
        return [job_from_row(row) for row in rows]

    async def update_job_state(
        self,
        job_id: str,
        state: JobState,
        *,
        at: float,
        expected: Collection[JobState] | None = None,
        error: str = "",
    ) -> bool:
        finished_at = at if state.finished else None
        args = (job_id, state.value, at, finished_at, error)
        if expected is None:
            changed = await self._db.execute(q.UPDATE_JOB_STATE, *args)
        elif not expected:
            return False
        else:
            changed = await self._db.execute(
                q.UPDATE_JOB_STATE_IF, *args, [s.value for s in expected]
            )
        return changed > 0

    async def set_job_placement(
        self,
        job_id: str,
        *,
        placement: str,
        reason: str,
        epoch: int,
        remote_job_id: str | None,
        at: float,
    ) -> None:
        args = (job_id, placement, reason, epoch, remote_job_id, at)
        if not await self._db.execute(q.SET_JOB_PLACEMENT, *args):
            raise _job_not_found(job_id)

    async def task_counts(self, job_id: str) -> dict[TaskState, int]:
        counts = dict.fromkeys(TaskState, 0)
        for row in await self._db.fetch(q.TASK_COUNTS, job_id):
            counts[TaskState(row["state"])] = row["n"]
        return counts

    async def list_tasks(self, job_id: str) -> list[TaskRecord]:
        return [task_from_row(row) for row in await self._db.fetch(q.LIST_TASKS, job_id)]

    async def get_task(self, task_id: int) -> TaskRecord | None:
        row = await self._db.fetchrow(q.GET_TASK, task_id)
        return None if row is None else task_from_row(row)

    # --- dispatch -------------------------------------------------------
    async def dispatch_snapshot(self, *, per_job_limit: int) -> DispatchSnapshot:
        async with self._db.transaction(readonly=True) as conn:
            return await read_snapshot(conn, per_job_limit=per_job_limit)

    async def assign_tasks(self, claims: Sequence[TaskClaim], *, at: float) -> list[TaskRecord]:
        """Claim waiting tasks in one transaction; returns those claimed (state dispatched).

        Jobs of claimed tasks in state queued move to running. A claim loses when
        its task is no longer waiting at ``attempt - 1``, or its job was paused,
        cancelled or forwarded meanwhile; of two claims for one task only the first counts.
        """
        unique = _first_claim_per_task(claims)
        if not unique:
            return []
        ids = [claim.task_id for claim in unique]
        async with self._db.transaction() as conn:
            # Lock the jobs first (in id order), then read: no other writer can change
            # these tasks' waiting state until commit, so every claim read as winnable wins.
            job_ids = sorted({claim.job_id for claim in unique})
            await conn.executemany(q.LOCK_JOB_NO_RESULT, [(job_id,) for job_id in job_ids])
            current = {row["id"]: row for row in await conn.fetch(q.CLAIMABLE, ids)}
            won = [claim for claim in unique if _claimable(current.get(claim.task_id), claim)]
            if not won:
                return []
            await conn.executemany(
                q.CLAIM_TASK,
                [(c.task_id, c.attempt, c.server_id, c.lease_expires_at, at) for c in won],
            )
            rows = await conn.fetch(q.GET_TASKS, [claim.task_id for claim in won])
            tasks = {task.id: task for task in map(task_from_row, rows)}
            claimed = [tasks[c.task_id] for c in won if _holds(tasks.get(c.task_id), c, at)]
            # Only a job's first claims move it from queued to running (read under its lock).
            queued = {
                current[c.task_id]["job_id"]
                for c in won
                if current[c.task_id]["job_state"] == "queued"
            }
            started = sorted({task.job_id for task in claimed} & queued)
            if started:
                await conn.executemany(q.START_JOB, [(job_id, at) for job_id in started])
        return claimed

    async def mark_task_running(
        self, task_id: int, attempt: int, server_id: str, *, at: float, lease_expires_at: float
    ) -> bool:
        args = (task_id, attempt, server_id, at, lease_expires_at)
        return await self._db.execute(q.MARK_RUNNING, *args) > 0

    async def append_task_log(
        self, task_id: int, attempt: int, server_id: str, text: str, *, max_chars: int = 16000
    ) -> bool:
        args = (task_id, attempt, server_id, text, max(max_chars, 0))
        return await self._db.execute(q.APPEND_LOG, *args) > 0

    async def record_frames(self, frames: Sequence[FrameRecord]) -> None:
        if not frames:
            return
        try:
            await self._db.executemany(q.UPSERT_FRAME, [frame_params(f) for f in frames])
        except NotFoundError as exc:
            jobs = ", ".join(sorted({f.job_id for f in frames}))
            raise NotFoundError(f"cannot record frames of job {jobs}: no such job") from exc

    async def complete_task(
        self, task_id: int, attempt: int, server_id: str, *, at: float, log_tail: str | None = None
    ) -> TaskOutcome | None:
        async with self._db.transaction() as conn:
            job_id = await conn.fetchval(q.TASK_JOB, task_id)
            if job_id is None:
                return None
            job_state = JobState(await conn.fetchval(q.LOCK_JOB, job_id))
            row = await conn.fetchrow(q.COMPLETE_TASK, task_id, attempt, server_id, at, log_tail)
            if row is None:
                return None
            job_state, finished = await self._finish_job_if_done(conn, job_id, job_state, at)
        return TaskOutcome(task=task_from_row(row), job_state=job_state, job_finished=finished)

    async def apply_reports(
        self,
        started: Sequence[StartedReport],
        frames: Sequence[FrameRecord],
        completions: Sequence[CompletionReport],
        *,
        at: float,
        logs: Sequence[LogReport] = (),
    ) -> list[TaskOutcome | None]:
        if not (started or frames or completions or logs):
            return []
        try:
            async with self._db.transaction() as conn:
                return await apply_reports(
                    conn,
                    started,
                    frames,
                    completions,
                    at=at,
                    finish_job=self._finish_job_if_done,
                    logs=logs,
                )
        except NotFoundError as exc:
            jobs = ", ".join(sorted({f.job_id for f in frames}))
            raise NotFoundError(f"cannot record frames of job {jobs}: no such job") from exc

    async def fail_task(
        self,
        task_id: int,
        attempt: int,
        server_id: str,
        *,
        error: str,
        at: float,
        retry: bool,
        log_tail: str | None = None,
    ) -> TaskOutcome | None:
        fence = (task_id, attempt, server_id, error, log_tail)
        async with self._db.transaction() as conn:
            job_id = await conn.fetchval(q.TASK_JOB, task_id)
            if job_id is None:
                return None
            job_state = JobState(await conn.fetchval(q.LOCK_JOB, job_id))
            if retry:
                row = await conn.fetchrow(q.FAIL_TASK_RETRY, *fence)
            else:
                row = await conn.fetchrow(q.FAIL_TASK_FINAL, *fence, at)
            if row is None:
                return None
            await conn.execute(q.INSERT_FAILURE, task_id, job_id, server_id, attempt, error, at)
            finished = False
            if not retry:
                job_state, finished = await self._finish_job_if_done(conn, job_id, job_state, at)
        return TaskOutcome(task=task_from_row(row), job_state=job_state, job_finished=finished)

    async def _finish_job_if_done(
        self, conn: Connection, job_id: str, state: JobState, at: float
    ) -> tuple[JobState, bool]:
        """Done (or failed if a task failed) when nothing is waiting or active; never if cancelled."""
        if state not in _FINISHABLE_JOB_STATES or await conn.fetchval(q.HAS_OPEN_TASKS, job_id):
            return state, False
        failed = await conn.fetchrow(q.FAILED_TASKS, job_id)
        if failed is not None and failed["n"]:
            first_error = await conn.fetchval(q.TASK_ERROR_AT, job_id, failed["first"])
            state = JobState.FAILED
            error = (
                f"{failed['n']} task(s) failed; task {failed['first']}: {first_error}; "
                f"fix the cause, then `spillway retry {job_id}`"
            )
        else:
            state, error = JobState.DONE, ""
        await conn.execute(q.FINISH_JOB, job_id, state.value, at, error)
        log.info("job %s finished: %s", job_id, state.value)
        return state, True

    async def requeue_server_tasks(self, server_id: str, *, at: float) -> list[TaskRecord]:
        """Active tasks on the server go back to waiting (attempt kept, no failure counted).

        Returns the tasks as they are now (waiting, no server). Tasks keep no
        requeue time, so ``at`` only appears in the log.
        """
        rows = await self._db.fetch(q.REQUEUE_SERVER_TASKS, server_id)
        if rows:
            log.info("requeued %d task(s) of server %s at %.3f", len(rows), server_id, at)
        return [task_from_row(row) for row in rows]

    async def expired_tasks(self, *, now: float) -> list[TaskRecord]:
        return [task_from_row(row) for row in await self._db.fetch(q.EXPIRED_TASKS, now)]

    async def active_tasks(
        self, *, server_id: str | None = None, job_id: str | None = None
    ) -> list[TaskRecord]:
        rows = await self._db.fetch(q.ACTIVE_TASKS, server_id, job_id)
        return [task_from_row(row) for row in rows]

    async def active_task_servers(self) -> set[str]:
        return {row["server_id"] for row in await self._db.fetch(q.ACTIVE_TASK_SERVERS)}

    async def cancel_job(self, job_id: str, *, at: float) -> list[TaskRecord]:
        """Job to cancelled; its active tasks go back to waiting.

        Returns those tasks as they were (with server and attempt), so the agent
        can tell each server to stop. A finished job is left as it is.
        """
        async with self._db.transaction() as conn:
            state = await conn.fetchval(q.LOCK_JOB, job_id)
            if state is None:
                raise _job_not_found(job_id)
            if JobState(state).finished:
                return []
            active = [task_from_row(row) for row in await conn.fetch(q.ACTIVE_TASKS, None, job_id)]
            await conn.execute(q.CANCEL_JOB, job_id, at)
            await conn.execute(q.REQUEUE_JOB_TASKS, job_id)
        log.info("job %s cancelled with %d active task(s)", job_id, len(active))
        return active

    async def retry_job(self, job_id: str, *, at: float) -> int:
        """Failed tasks back to waiting with their failure count reset; job back to queued.

        The retried tasks' failure history is forgotten too, so servers they
        failed on are eligible again. A failed or cancelled job is queued again;
        a job still queued, running or paused keeps its state.
        """
        async with self._db.transaction() as conn:
            if await conn.fetchval(q.LOCK_JOB, job_id) is None:
                raise _job_not_found(job_id)
            await conn.execute(q.FORGET_FAILURES_OF_FAILED_TASKS, job_id)
            count = await conn.execute(q.RETRY_FAILED_TASKS, job_id)
            await conn.execute(q.REQUEUE_JOB, job_id, at)
        log.info("job %s retried: %d failed task(s) waiting again", job_id, count)
        return count

    async def server_failures(self, job_id: str) -> dict[str, int]:
        rows = await self._db.fetch(q.SERVER_FAILURES, job_id)
        return {row["server_id"]: row["n"] for row in rows}

    # --- frames ---------------------------------------------------------
    async def list_frames(self, job_id: str) -> list[FrameRecord]:
        return [frame_from_row(row) for row in await self._db.fetch(q.LIST_FRAMES, job_id)]

    async def stored_task_frames(
        self, job_id: str, task_id: int, frames: Sequence[int]
    ) -> set[int]:
        """Which of ``frames`` are stored as uploaded by ``task_id`` (one indexed read)."""
        rows = await self._db.fetch(q.STORED_TASK_FRAMES, job_id, task_id, list(frames))
        return {row["frame"] for row in rows}

    async def get_frame(self, job_id: str, frame: int) -> FrameRecord | None:
        row = await self._db.fetchrow(q.GET_FRAME, job_id, frame)
        return None if row is None else frame_from_row(row)


def _conforms(store: SqlStore) -> Store:
    return store  # mypy checks here that SqlStore satisfies the Store protocol
