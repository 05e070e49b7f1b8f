"""Report transitions in bulk: starts, log lines, frames and completions, one transaction.

Hundreds of render servers report at once; :func:`apply_reports` writes what
arrived in one event-loop moment with one statement per kind, reads back which
completions held their fence, and finishes jobs left with nothing to do. Every
update keeps the ``(id, attempt, server_id)`` fence of the store's statements.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from site_agent.store.base import JobTransaction
from site_agent.store.records import (
    NOTHING_SETTLED,
    CompletionReport,
    DependentsSettled,
    FrameRecord,
    JobState,
    LogReport,
    StartedReport,
    TaskOutcome,
    TaskRecord,
    TaskState,
)

from .dependencies import settle
from .fence import first_per_task, holds
from .states import JobEvent, job_allows, next_job_state

log = logging.getLogger(__name__)


async def finish_if_done(
    tx: JobTransaction, job_id: str, state: JobState, at: float
) -> tuple[JobState, bool]:
    """Done (or failed if a task failed) when nothing is waiting or active; never once finished.

    Returns the job's state afterwards and whether this call finished it.
    """
    if not job_allows(state, JobEvent.FINISH) or await tx.has_open_tasks(job_id):
        return state, False
    failed = await tx.failed_summary(job_id)
    if failed.count:
        state = next_job_state(state, JobEvent.FAIL)
        error = (
            f"{failed.count} task(s) failed; task {failed.first_index}: {failed.first_error}; "
            f"fix the cause, then `spillway retry {job_id}`"
        )
    else:
        state, error = next_job_state(state, JobEvent.FINISH), ""
    await tx.finish_job(job_id, state, at=at, error=error)
    log.info("job %s finished: %s", job_id, state.value)
    return state, True


async def apply_reports(
    tx: JobTransaction,
    started: Sequence[StartedReport],
    frames: Sequence[FrameRecord],
    completions: Sequence[CompletionReport],
    *,
    at: float,
    logs: Sequence[LogReport] = (),
) -> list[TaskOutcome | None]:
    """Apply the batch inside ``tx``; one outcome per completion (None: fence failed).

    Lock order as everywhere when completions are present: the jobs involved
    first, in id order, then their tasks. A job finished by the batch is reported
    as finished on its last completion in the batch only, so it finishes once.
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
        await tx.lock_jobs(job_ids)
    if started:
        await tx.mark_running(sorted(started, key=lambda r: r.task_id))
    if logs:
        await tx.append_logs(logs)  # in arrival order: a task's lines must stay in sequence
    if frames:
        await tx.upsert_frames(frames)
    if not completions:
        return []
    unique = first_per_task(completions)
    await tx.complete_tasks([r for r in unique if r is not None])
    tasks = await tx.get_tasks([r.task_id for r in completions])
    held = [
        r
        if r is not None and holds(tasks.get(r.task_id), r, state=TaskState.DONE, at=r.at)
        else None
        for r in unique
    ]
    # Accounting in the same transaction: each completed attempt's slot time and frames.
    ended = [(tasks[r.task_id], r.at) for r in held if r is not None]
    await tx.record_attempt_usage(ended, failed=False)
    return await _outcomes(tx, held, tasks, at=at)


async def _outcomes(
    tx: JobTransaction,
    held: list[CompletionReport | None],
    tasks: dict[int, TaskRecord],
    *,
    at: float,
) -> list[TaskOutcome | None]:
    # The job of a completed task comes from its row, not from the report.
    done_jobs = sorted({tasks[r.task_id].job_id for r in held if r is not None})
    if not done_jobs:
        return [None] * len(held)
    states = await tx.job_states(done_jobs)
    before = dict(states)
    finished: dict[str, DependentsSettled] = {}
    for job_id in done_jobs:
        states[job_id], now_finished = await finish_if_done(tx, job_id, states[job_id], at)
        if now_finished:
            finished[job_id] = await settle(tx, job_id, states[job_id], at=at)
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
        settled = finished[task.job_id] if finishing else NOTHING_SETTLED
        outcomes.append(
            TaskOutcome(task=task, job_state=state, job_finished=finishing, settled=settled)
        )
    return outcomes
