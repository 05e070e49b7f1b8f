"""Applying a batch of task reports in one transaction (group commit).

The agent's report path (task started, frame uploaded, task done) used to cost
a transaction or more per report. :func:`apply_reports` takes everything that
arrived in one event-loop moment and writes it with one statement per kind
(``executemany``), then reads back which completions held their fence and
finishes jobs left with nothing to do. Every update keeps the same
``(id, attempt, server_id)`` fence as the one-at-a-time methods.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from . import queries as q
from .database import Connection
from .records import (
    CompletionReport,
    FrameRecord,
    JobState,
    LogReport,
    StartedReport,
    TaskOutcome,
    TaskRecord,
    TaskState,
)
from .rows import frame_params, task_from_row

FinishJob = Callable[[Connection, str, JobState, float], Awaitable[tuple[JobState, bool]]]
"""``SqlStore._finish_job_if_done``: (conn, job_id, state, at) -> (new state, finished now)."""


def _held(task: TaskRecord | None, report: CompletionReport) -> bool:
    """Whether the task, read back after the batch, was completed by this report."""
    return (
        task is not None
        and task.state is TaskState.DONE
        and task.attempt == report.attempt
        and task.server_id == report.server_id
        and task.finished_at == report.at
    )


def _first_per_task(completions: Sequence[CompletionReport]) -> list[CompletionReport | None]:
    """The completions, with any repeat of an earlier one's task replaced by None (it cannot win)."""
    seen: set[int] = set()
    unique: list[CompletionReport | None] = []
    for report in completions:
        unique.append(None if report.task_id in seen else report)
        seen.add(report.task_id)
    return unique


async def apply_reports(
    conn: Connection,
    started: Sequence[StartedReport],
    frames: Sequence[FrameRecord],
    completions: Sequence[CompletionReport],
    *,
    at: float,
    finish_job: FinishJob,
    logs: Sequence[LogReport] = (),
) -> list[TaskOutcome | None]:
    """Apply the batch inside the caller's transaction; one outcome per completion (None: fence failed).

    Lock order as everywhere in the store when completions are present: the jobs
    involved first, in id order, then their tasks (see below for starts and frames
    alone). A job finished by the batch is reported as finished on its last
    completion in the batch only, so finish hooks run once.
    """
    if completions:
        # Completions read "what is left" of their jobs: lock those (and every job the batch
        # touches, in id order) before any task row. A batch of starts, logs and frames only takes
        # no job lock, so it no longer holds up the dispatcher's claims on a busy job (with
        # 500 servers on one job that contention cost a quarter of the throughput). It locks
        # only task and frame rows, in task id order, and nothing after them; the rare
        # deadlock with a requeue of the same server's tasks is detected by PostgreSQL and
        # the batcher then applies the reports one by one.
        job_ids = sorted(
            {r.job_id for r in started}
            | {f.job_id for f in frames}
            | {r.job_id for r in completions}
        )
        await conn.executemany(q.LOCK_JOB_NO_RESULT, [(job_id,) for job_id in job_ids])
    if started:
        await conn.executemany(
            q.MARK_RUNNING,
            [
                (r.task_id, r.attempt, r.server_id, r.at, r.lease_expires_at)
                for r in sorted(started, key=lambda r: r.task_id)
            ],
        )
    if logs:
        # In arrival order: a task's lines must stay in sequence.
        await conn.executemany(
            q.APPEND_LOG,
            [(r.task_id, r.attempt, r.server_id, r.text, max(r.max_chars, 0)) for r in logs],
        )
    if frames:
        await conn.executemany(q.UPSERT_FRAME, [frame_params(f) for f in frames])
    if not completions:
        return []
    unique = _first_per_task(completions)
    await conn.executemany(
        q.COMPLETE_TASK_NO_RESULT,
        [(r.task_id, r.attempt, r.server_id, r.at, r.log_tail) for r in unique if r is not None],
    )
    rows = await conn.fetch(q.GET_TASKS, [r.task_id for r in completions])
    tasks = {task.id: task for task in map(task_from_row, rows)}
    held = [r if r is not None and _held(tasks.get(r.task_id), r) else None for r in unique]
    return await _outcomes(conn, held, tasks, at=at, finish_job=finish_job)


async def _outcomes(
    conn: Connection,
    held: list[CompletionReport | None],
    tasks: dict[int, TaskRecord],
    *,
    at: float,
    finish_job: FinishJob,
) -> list[TaskOutcome | None]:
    # The job of a completed task comes from its row, not from the report.
    done_jobs = sorted({tasks[r.task_id].job_id for r in held if r is not None})
    if not done_jobs:
        return [None] * len(held)
    states = {
        row["id"]: JobState(row["state"]) for row in await conn.fetch(q.JOB_STATES, done_jobs)
    }
    before = dict(states)
    finished: set[str] = set()
    for job_id in done_jobs:
        states[job_id], now_finished = await finish_job(conn, job_id, states[job_id], at)
        if now_finished:
            finished.add(job_id)
    last = {tasks[r.task_id].job_id: i for i, r in enumerate(held) if r is not None}
    outcomes: list[TaskOutcome | None] = []
    for i, report in enumerate(held):
        if report is None:
            outcomes.append(None)
            continue
        task = tasks[report.task_id]
        finishing = task.job_id in finished and last[task.job_id] == i
        state = (
            states[task.job_id] if finishing or task.job_id not in finished else before[task.job_id]
        )
        outcomes.append(TaskOutcome(task=task, job_state=state, job_finished=finishing))
    return outcomes
