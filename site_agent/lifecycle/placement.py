"""Placement transitions: re-place a job, relay a forwarded job's progress, finish it.

Each takes ``hook``, statements of another package run in the same transaction
(federation updates its forward record with the job); the recorders of their
events (:meth:`.events.EventBus.record`) run in it too. Every one is fenced on
the job's placement epoch: a late report of an older placement changes nothing.

While a job runs at a peer, its tasks here mirror the peer's (state, attempt,
``<peer>/<server>``, times, error): :meth:`PlacementTransitions.relay_progress`.
Those are not transitions of this site's task state machine, since no server of this site
holds them; the one rule is that a task done here stays done: it becomes done
only when its frames were fetched into this site's storage
(:meth:`PlacementTransitions.record_relayed_frames`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..store.base import JobTransaction
from ..store.records import FrameRecord, JobState, RelayedTask, TaskState
from ..store.usage import UsageEntry
from .base import TransactionHook, TransitionsBase, settled_events
from .dependencies import settle
from .events import JobFinished, JobReplaced, TasksRelayed
from .states import JobEvent, TaskEvent, job_allows, task_allows

log = logging.getLogger(__name__)

_FORWARDED_END = {
    JobState.DONE: JobEvent.FINISH,
    JobState.FAILED: JobEvent.FAIL,
    JobState.CANCELLED: JobEvent.CANCEL,
}


class PlacementTransitions(TransitionsBase):
    async def replace_job(
        self,
        job_id: str,
        *,
        old_epoch: int,
        placement: str,
        reason: str,
        at: float,
        hook: TransactionHook | None = None,
    ) -> int | None:
        """Move the job to ``placement`` with epoch + 1 if it is still at ``old_epoch`` and
        unfinished; ``hook`` runs in the same transaction. Returns the new epoch, or None."""
        new_epoch = old_epoch + 1
        async with self._store.transaction() as tx:
            moved = await tx.replace_job(
                job_id,
                old_epoch=old_epoch,
                new_epoch=new_epoch,
                placement=placement,
                reason=reason,
                at=at,
            )
            if not moved:
                return None
            # What the old placement was doing is void; what it brought back stays done.
            await tx.reset_relayed_tasks(job_id)
            if hook is not None:
                await hook(tx.connection)
            replaced = JobReplaced(job_id=job_id, placement=placement, epoch=new_epoch)
            await self._events.stage(tx, [replaced])
        log.info("job %s re-placed to %s (epoch %d): %s", job_id, placement, new_epoch, reason)
        await self._events.emit(replaced)
        return new_epoch

    async def finish_forwarded_job(
        self,
        job_id: str,
        *,
        epoch: int,
        state: JobState,
        frames: Sequence[FrameRecord],
        error: str,
        at: float,
        hook: TransactionHook | None = None,
        usage: UsageEntry | None = None,
        tasks: Sequence[RelayedTask] = (),
    ) -> bool:
        """Record the fetched frames and finish the job, fenced on its placement epoch.

        The origin's own tasks (never dispatched here) take the peer's last view of them
        (``tasks``) and end with the job; ``hook`` runs in the same transaction, and so
        does the ledger row of what the peer reported it spent on the job (``usage``).
        False when the job moved to another placement or
        finished meanwhile: nothing is changed.
        """
        event = _FORWARDED_END[state]
        task_event = TaskEvent.FORWARD_DONE if state == JobState.DONE else TaskEvent.FORWARD_FAIL
        task_state = TaskState.DONE if state == JobState.DONE else TaskState.FAILED
        async with self._store.transaction() as tx:
            current = await tx.lock_job(job_id)
            job = await tx.get_job(job_id)
            if current is None or job is None or job.placement_epoch != epoch:
                return False
            if not job_allows(current, event) or not task_allows(TaskState.WAITING, task_event):
                return False
            if frames:
                await tx.upsert_frames(frames)
            if tasks:
                await tx.relay_tasks(job_id, tasks)
            await tx.end_waiting_tasks(job_id, task_state, at=at, error=error)
            await tx.finish_job(job_id, state, at=at, error=error)
            if usage is not None:
                await tx.record_usage([usage])
            # The jobs waiting for it start only now, with its frames stored here.
            settled = await settle(tx, job_id, state, at=at)
            if hook is not None:
                await hook(tx.connection)
            events = [JobFinished(job_id=job_id, state=state), *settled_events(settled)]
            await self._events.stage(tx, events)
        log.info("forwarded job %s finished: %s with %d frames", job_id, state.value, len(frames))
        await self._events.emit_all(events)
        return True

    async def relay_progress(
        self,
        job_id: str,
        *,
        epoch: int,
        tasks: Sequence[RelayedTask],
        at: float,
        hook: TransactionHook | None = None,
    ) -> bool:
        """Mirror the peer's view of the job's tasks on its task rows (tasks done here stay).

        False, changing nothing, when the job moved to another placement or finished.
        """
        async with self._store.transaction() as tx:
            if not await _holds_placement(tx, job_id, epoch):
                return False
            if tasks:
                await tx.relay_tasks(job_id, tasks)
            if hook is not None:
                await hook(tx.connection)
        if tasks:
            await self._events.emit(TasksRelayed(job_id=job_id))
        return True

    async def record_relayed_frames(
        self,
        job_id: str,
        *,
        epoch: int,
        task: RelayedTask,
        frames: Sequence[FrameRecord],
        at: float,
    ) -> bool:
        """Frames of one task fetched from the peer running the job: record them, task done.

        False, changing nothing, when the job moved to another placement or finished
        (the frames' files stay; a later completion or re-render replaces them).
        """
        if task.state != TaskState.DONE:
            raise ValueError("record_relayed_frames takes a task done at the peer")
        async with self._store.transaction() as tx:
            if not await _holds_placement(tx, job_id, epoch):
                return False
            await tx.upsert_frames(frames)
            await tx.relay_tasks(job_id, [task])
        log.info(
            "job %s: %d frame(s) of task %d fetched from %s",
            job_id,
            len(frames),
            task.index,
            task.server_id,
        )
        await self._events.emit(TasksRelayed(job_id=job_id))
        return True


async def _holds_placement(tx: JobTransaction, job_id: str, epoch: int) -> bool:
    """Lock the job; whether it is unfinished and still at placement ``epoch``."""
    state = await tx.lock_job(job_id)
    job = await tx.get_job(job_id) if state is not None else None
    return job is not None and not job.state.finished and job.placement_epoch == epoch
