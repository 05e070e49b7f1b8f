"""Placement transitions: re-place a job, finish a job that ran at a peer.

Both take ``hook``, statements of another package run in the same transaction
(federation updates its forward record with the job); the recorders of their
events (:meth:`.events.EventBus.record`) run in it too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..store.records import FrameRecord, JobState, TaskState
from ..store.usage import UsageEntry
from .base import TransactionHook, TransitionsBase, settled_events
from .dependencies import settle
from .events import JobFinished, JobReplaced
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
    ) -> bool:
        """Record the fetched frames and finish the job, fenced on its placement epoch.

        The origin's own (never dispatched) tasks end with the job; ``hook`` runs in
        the same transaction, and so does the ledger row of what the peer reported
        it spent on the job (``usage``). False when the job moved to another placement or
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
