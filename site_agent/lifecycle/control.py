"""Transitions a user (or a peer) asks for: cancel, pause, resume, retry, re-render, remote start."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..errors import ConflictError
from ..store.records import JobState, TaskRecord
from .base import TransitionsBase, no_job, settled_events
from .dependencies import settle
from .events import Event, JobCancelled, JobPriorityChanged, JobStateChanged, TasksRequeued
from .states import JobEvent, job_allows, job_sources, next_job_state

log = logging.getLogger(__name__)


class ControlTransitions(TransitionsBase):
    async def cancel(self, job_id: str, *, at: float) -> list[TaskRecord]:
        """Job to cancelled; its active tasks go back to waiting.

        Returns those tasks as they were (with server and attempt), so the
        subscribers can tell each server to stop. A finished job is left as it is
        (nothing returned, no event).
        """
        async with self._store.transaction() as tx:
            state = await tx.lock_job(job_id)
            if state is None:
                raise no_job(job_id)
            if not job_allows(state, JobEvent.CANCEL):
                return []
            active = await tx.active_tasks(job_id)
            await tx.cancel_job(job_id, at=at)
            await tx.requeue_job_tasks(job_id)
            job = await tx.get_job(job_id)
            assert job is not None
            settled = await settle(tx, job_id, JobState.CANCELLED, at=at)
            events = [JobCancelled(job=job, stopped=tuple(active)), *settled_events(settled)]
            await self._events.stage(tx, events)
        log.info("job %s cancelled with %d active task(s)", job_id, len(active))
        await self._events.emit_all(events)
        return active

    async def pause(self, job_id: str, *, at: float) -> None:
        await self._set_state(
            job_id, JobEvent.PAUSE, at, "only queued or running jobs can be paused"
        )

    async def resume(self, job_id: str, *, at: float) -> None:
        await self._set_state(job_id, JobEvent.RESUME, at, "only paused jobs can be resumed")

    async def set_priority(self, job_id: str, priority: int, *, at: float) -> None:
        """The job's dispatch priority (higher first); a finished job keeps its own."""
        async with self._store.transaction() as tx:
            state = await tx.lock_job(job_id)
            if state is None:
                raise no_job(job_id)
            if state.finished:
                raise ConflictError(f"job {job_id} is {state}; only unfinished jobs get a priority")
            await tx.set_job_priority(job_id, priority, at=at)
            events: list[Event] = [JobPriorityChanged(job_id=job_id, priority=priority)]
            await self._events.stage(tx, events)
        log.info("job %s priority set to %d", job_id, priority)
        await self._events.emit_all(events)

    async def remote_start(self, job_id: str, *, at: float) -> bool:
        """A forwarded job runs at its peer: queued to running (no-op otherwise)."""
        return await self._set_state(job_id, JobEvent.REMOTE_START, at, None)

    async def _set_state(
        self, job_id: str, event: JobEvent, at: float, refusal: str | None
    ) -> bool:
        """Move the job by ``event`` if its state allows; ConflictError with ``refusal`` if not."""
        sources = job_sources(event)
        async with self._store.transaction() as tx:
            state = await tx.lock_job(job_id)
            if state is None:
                raise no_job(job_id)
            changed = job_allows(state, event) and await tx.set_job_state(
                job_id, next_job_state(state, event), at=at, expected=sources
            )
            if changed:
                changed_event = JobStateChanged(job_id=job_id, state=next_job_state(state, event))
                await self._events.stage(tx, [changed_event])
        if not changed:
            if refusal is None:
                return False
            raise ConflictError(f"job {job_id} is {state}; {refusal}")
        await self._events.emit(changed_event)
        return True

    async def unqueue(
        self, task_id: int, attempt: int, server_id: str, *, at: float
    ) -> TaskRecord | None:
        """A task waiting in its server's queue goes back to waiting before it starts (its
        job was paused); no failure counted. Fenced, and only while it has not started
        (dispatched); None otherwise. The caller tells the server to drop it."""
        async with self._store.transaction() as tx:
            job_id = await tx.task_job(task_id)
            if job_id is None or await tx.lock_job(job_id) is None:
                return None
            task = await tx.unqueue_task(task_id, attempt, server_id)
            if task is None:
                return None
            requeued = TasksRequeued(server_id=server_id, tasks=(task,))
            await self._events.stage(tx, [requeued])
        log.info(
            "task %s of job %s attempt %s taken out of %s's queue at %.3f",
            task_id,
            job_id,
            attempt,
            server_id,
            at,
        )
        await self._events.emit(requeued)
        return task

    async def retry_failed(self, job_id: str, *, at: float) -> int:
        """Failed tasks back to waiting with their failure history forgotten; returns the count.

        Servers they failed on are eligible again. A failed or cancelled job is
        queued again; a job still queued, running or paused keeps its state.
        """
        async with self._store.transaction() as tx:
            state = await tx.lock_job(job_id)
            if state is None:
                raise no_job(job_id)
            count = await tx.reset_failed_tasks(job_id)
            events: list[Event] = []
            if job_allows(state, JobEvent.RETRY):
                await tx.requeue_job(job_id, at=at)
                new_state = next_job_state(state, JobEvent.RETRY)
                events.append(JobStateChanged(job_id=job_id, state=new_state))
                await self._events.stage(tx, events)
        log.info("job %s retried: %d failed task(s) waiting again", job_id, count)
        await self._events.emit_all(events)
        return count

    async def rerender(self, job_id: str, task_ids: Sequence[int], *, at: float) -> int:
        """Done or failed tasks of ``task_ids`` back to waiting; returns how many.

        Each renders as a new attempt (failures forgotten); its frames count as not
        rendered until the new output replaces them. A done or failed job is queued
        again; other tasks of ``task_ids`` (waiting or active) are left as they are.
        """
        async with self._store.transaction() as tx:
            state = await tx.lock_job(job_id)
            if state is None:
                raise no_job(job_id)
            if not job_allows(state, JobEvent.RERENDER):
                raise ConflictError(f"job {job_id} is {state}; retry it first")
            count = await tx.rerender_tasks(job_id, task_ids)
            new_state = next_job_state(state, JobEvent.RERENDER)
            changed = count > 0 and new_state != state
            if changed:
                await tx.set_job_state(job_id, new_state, at=at, expected=(state,))
                await self._events.stage(tx, [JobStateChanged(job_id=job_id, state=new_state)])
        log.info("job %s: %d task(s) to render again", job_id, count)
        if changed:
            await self._events.emit(JobStateChanged(job_id=job_id, state=new_state))
        return count
