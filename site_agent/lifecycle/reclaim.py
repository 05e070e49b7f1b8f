"""Chunks taken back from a split job's part: withdrawn at the peer, returned at the origin.

A split job's part sits at a peer as an ordinary accepted job. When the origin has
idle slots and the part still has chunks the peer has not started, the origin asks
for them back. Two transitions, one at each end:

- :meth:`ReclaimTransitions.withdraw_chunks` (the peer): under the job's lock, the
  chunks asked for that are waiting and never failed there are deleted (no server
  holds them: the dispatcher claims only under the same lock, so none can start
  meanwhile), the job's frame spec shrinks to the chunks left, and the answer is
  recorded in the same transaction. A job left with no chunk ends cancelled; one left
  with only done chunks ends done.
- :meth:`ReclaimTransitions.reclaim_part` (the origin): the part's copies of the
  withdrawn chunks go, its frame spec shrinks (cancelled when nothing is left), and the
  split job's tasks for them are waiting here again, with the answer marked applied in
  the same transaction. The part still ends by its peer's notification (with the peer's
  accounting). A chunk is thus never held by two places at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from scheduler.frames import format_frames

from ..store.base import JobTransaction
from ..store.database import Connection
from ..store.records import LOCAL, JobRecord, JobState, TaskRecord
from .base import TransactionHook, TransitionsBase, settled_events
from .batch import finish_if_done
from .dependencies import settle
from .events import Event, JobCancelled, JobFinished, TasksRequeued, TasksWithdrawn

log = logging.getLogger(__name__)

WithdrawalHook = Callable[[Connection, Sequence[int]], Awaitable[None]]
"""Another package's statement recording which chunks were withdrawn, in the same transaction."""

_OPEN = (JobState.QUEUED, JobState.RUNNING, JobState.PAUSED)


@dataclass(frozen=True, slots=True, kw_only=True)
class Shrunk:
    """What withdrawing chunks left of a job."""

    removed: tuple[TaskRecord, ...]
    frames: str
    """The frame spec of the chunks left (unchanged when none are)."""
    ended: JobState | None
    """The state the job ended in because of it (cancelled: nothing left; done: all left done)."""


class ReclaimTransitions(TransitionsBase):
    async def withdraw_chunks(
        self,
        job_id: str,
        indices: Sequence[int],
        *,
        reason: str,
        at: float,
        record: WithdrawalHook,
    ) -> tuple[int, ...]:
        """Withdraw the job's chunks at ``indices`` not started here; returns their positions.

        Only a job of this site's own scheduler (placed here) gives chunks back; one
        finished or placed elsewhere gives none. ``record`` writes the answer in the
        same transaction, so it is never lost while the chunks are gone.
        """
        events: list[Event] = []
        async with self._store.transaction() as tx:
            state = await tx.lock_job(job_id)
            job = await tx.get_job(job_id) if state in _OPEN else None
            withdrawn: tuple[int, ...] = ()
            if job is not None and job.placement == LOCAL:
                shrunk = await _shrink(
                    tx, job, await tx.split.withdraw_waiting(job_id, indices), reason, at, end=True
                )
                withdrawn = tuple(t.index for t in shrunk.removed)
                events = await _shrink_events(tx, job, shrunk, at)
            await record(tx.connection, withdrawn)
            await self._events.stage(tx, events)
        if withdrawn:
            log.info(
                "job %s: %d chunk(s) withdrawn (%s): %s",
                job_id,
                len(withdrawn),
                ", ".join(map(str, withdrawn)),
                reason,
            )
        await self._events.emit_all(events)
        return withdrawn

    async def reclaim_part(
        self,
        part: JobRecord,
        withdrawn: Sequence[int],
        *,
        at: float,
        hook: TransactionHook,
    ) -> tuple[TaskRecord, ...]:
        """The part's peer withdrew its chunks at positions ``withdrawn``: the split job's
        tasks for them wait here again. Returns those tasks (waiting). ``hook`` runs in the
        same transaction (it marks the answer applied).

        A part that ended or was re-placed meanwhile gives nothing back here: settling it
        returns all its chunks anyway.
        """
        assert part.part_of is not None
        job_id = part.part_of
        events: list[Event] = []
        returned: list[TaskRecord] = []
        async with self._store.transaction() as tx:
            await tx.lock_jobs(sorted({job_id, part.id}))
            current = await tx.get_job(part.id)
            if (
                withdrawn
                and current is not None
                and current.state in _OPEN
                and current.placement_epoch == part.placement_epoch
            ):
                dropped = await tx.split.drop_part_tasks(part.id, withdrawn)
                why = f"reclaimed from {part.placement} (part {part.id})"
                shrunk = await _shrink(tx, current, dropped, why, at, end=False)
                held = {t.frames: t for t in await tx.split.part_tasks(part.id)}
                ids = [held[t.frames].id for t in dropped if t.frames in held]
                returned = await tx.split.return_some_part_tasks(part.id, ids, error=why)
                events = await _shrink_events(tx, current, shrunk, at)
                if returned:
                    events.append(TasksRequeued(server_id=part.placement, tasks=tuple(returned)))
            await hook(tx.connection)
            await self._events.stage(tx, events)
        if returned:
            log.info(
                "split job %s: %d chunk(s) reclaimed from %s (part %s) wait here again",
                job_id,
                len(returned),
                part.placement,
                part.id,
            )
        await self._events.emit_all(events)
        return tuple(returned)


async def _shrink(
    tx: JobTransaction,
    job: JobRecord,
    removed: Sequence[TaskRecord],
    reason: str,
    at: float,
    *,
    end: bool,
) -> Shrunk:
    """The job's frame spec after ``removed`` went. With ``end`` (the site that renders
    it) it ends cancelled when no chunk is left, done when every chunk left is done;
    else (the origin's copy of a part) its peer's notification ends it, as always, with
    the peer's accounting."""
    if not removed:
        return Shrunk(removed=(), frames=job.frames, ended=None)
    left = await tx.split.tasks(job.id)
    frames = [n for t in left for n in t.frames]
    if not frames and not end:
        return Shrunk(removed=tuple(removed), frames=job.frames, ended=None)
    if not frames:
        await tx.finish_job(
            job.id, JobState.CANCELLED, at=at, error=f"every chunk was withdrawn: {reason}"
        )
        return Shrunk(removed=tuple(removed), frames=job.frames, ended=JobState.CANCELLED)
    spec = format_frames(frames)
    await tx.split.set_job_frames(job.id, spec, len(frames), at=at)
    if not end:
        return Shrunk(removed=tuple(removed), frames=spec, ended=None)
    state, finished = await finish_if_done(tx, job.id, job.state, at)
    return Shrunk(removed=tuple(removed), frames=spec, ended=state if finished else None)


async def _shrink_events(
    tx: JobTransaction, job: JobRecord, shrunk: Shrunk, at: float
) -> list[Event]:
    if not shrunk.removed:
        return []
    events: list[Event] = [
        TasksWithdrawn(job_id=job.id, indices=tuple(t.index for t in shrunk.removed))
    ]
    if shrunk.ended is None:
        return events
    settled = await settle(tx, job.id, shrunk.ended, at=at)
    if shrunk.ended == JobState.CANCELLED:
        ended = await tx.get_job(job.id)
        assert ended is not None
        events.append(JobCancelled(job=ended, stopped=()))
    else:
        events.append(JobFinished(job_id=job.id, state=shrunk.ended))
    return [*events, *settled_events(settled)]
