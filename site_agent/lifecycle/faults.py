"""Transitions for work that cannot go on: jobs that can run nowhere, output the agent cannot take.

Neither blames a render server: an unrunnable job's waiting tasks are abandoned
(they never ran again), and an attempt whose output the agent could not store
goes back to waiting with no failure counted.
"""

from __future__ import annotations

import logging

from spillway.packages.error_line import renderer_error

from ..store.records import JobState, TaskRecord, TaskState
from .base import TransitionsBase, settled_events
from .batch import finish_if_done
from .dependencies import settle
from .events import Event, JobFinished, TasksRequeued
from .states import JobEvent, TaskEvent, job_allows, next_task_state

log = logging.getLogger(__name__)


class FaultTransitions(TransitionsBase):
    async def fail_unrunnable(self, job_id: str, reason: str, *, at: float) -> bool:
        """The job's waiting tasks can run nowhere: they fail (ABANDON) with ``reason``.

        The job fails at once when nothing of it is active (its error is ``reason``
        plus the last renderer error, if any), else when its last active task ends.
        ``spillway retry`` resets the abandoned tasks like any failed ones. False
        when the job is gone or already finished.
        """
        abandoned = next_task_state(TaskState.WAITING, TaskEvent.ABANDON)
        async with self._store.transaction() as tx:
            state = await tx.lock_job(job_id)
            if state is None or not job_allows(state, JobEvent.FAIL):
                return False
            last, tail = await tx.last_failure(job_id)
            own = renderer_error(tail)
            if own and own not in last:
                last = f"{last} ({own})" if last else own
            error = f"{reason}; last error: {last}" if last else reason
            await tx.end_waiting_tasks(job_id, abandoned, at=at, error=error)
            if await tx.has_open_tasks(job_id):
                finished = False
            else:
                hint = f"fix the cause, then `spillway retry {job_id}`"
                await tx.finish_job(job_id, JobState.FAILED, at=at, error=f"{error}; {hint}")
                state, finished = JobState.FAILED, True
            if not finished:
                state, finished = await finish_if_done(tx, job_id, state, at)
            events: list[Event] = []
            if finished:
                settled = await settle(tx, job_id, state, at=at)
                events = [JobFinished(job_id=job_id, state=state), *settled_events(settled)]
                await self._events.stage(tx, events)
        log.warning("job %s cannot run: %s", job_id, error)
        await self._events.emit_all(events)
        return True

    async def hand_back(
        self, task_id: int, attempt: int, server_id: str, reason: str, *, at: float
    ) -> TaskRecord | None:
        """The agent could not take the attempt's output: waiting again, no failure counted.

        ``reason`` becomes the task's error and the job's notice (shown while it
        waits), so the user sees why nothing progresses. Fenced; None if stale.
        """
        async with self._store.transaction() as tx:
            job_id = await tx.task_job(task_id)
            if job_id is None or await tx.lock_job(job_id) is None:
                return None
            task = await tx.hand_back_task(task_id, attempt, server_id, reason=reason)
            if task is None:
                return None
            await tx.set_job_notice(job_id, reason, at=at)
            requeued = TasksRequeued(server_id=server_id, tasks=(task,))
            await self._events.stage(tx, [requeued])
        log.warning(
            "task %s of job %s attempt %s handed back from %s: %s",
            task_id,
            job_id,
            attempt,
            server_id,
            reason,
        )
        await self._events.emit(requeued)
        return task
