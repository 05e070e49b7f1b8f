"""Split-job transitions: send some waiting chunks to a peer as a part, settle a part.

A part is an ordinary job of this site (``part_of`` = the split job) placed at a
peer, so federation forwards it, relays it and re-places it like any other. The
split job's tasks for its chunks are held as sent (``part_job_id``, not
dispatchable here) from the transaction that creates the part until the one
that settles them: done with the part's frames, or back to waiting here. A chunk
is thus waiting here, rendering here, or in exactly one part, never two at once.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ..store.base import JobTransaction
from ..store.records import FrameRecord, JobRecord, JobState, TaskRecord
from .base import TransitionsBase, settled_events
from .batch import finish_if_done
from .dependencies import settle
from .events import Event, JobCreated, JobFinished, TasksRequeued

log = logging.getLogger(__name__)

_SENDABLE = (JobState.QUEUED, JobState.RUNNING)


class _NotAllWaiting(Exception):
    """A chunk to send was claimed meanwhile: the part is not created (rolled back)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PartChunk:
    """A chunk the part rendered, for the split job's task with the same frames."""

    frames: tuple[int, ...]
    server: str
    """Where it rendered, e.g. ``facility/node-2`` (shown by ``spillway job``)."""
    started_at: float | None
    finished_at: float
    outputs: tuple[FrameRecord, ...]
    """Its frames, recorded under the split job (files already in the split job's folder)."""


class SplitTransitions(TransitionsBase):
    async def send_part(
        self,
        job_id: str,
        part: JobRecord,
        chunks: Sequence[tuple[int, ...]],
        indices: Sequence[int],
        *,
        at: float,
    ) -> bool:
        """Create ``part`` (placed at a peer, one task per chunk) and hold the split job's
        chunks at ``indices`` as sent to it, in one transaction.

        False, changing nothing, unless the split job is still queued or running here
        and every one of those chunks is still waiting (none claimed meanwhile).
        """
        try:
            async with self._store.transaction() as tx:
                state = await tx.lock_job(job_id)
                if state not in _SENDABLE:
                    return False
                await tx.insert_job(part, chunks)
                sent = await tx.split.send_to_part(
                    job_id, indices, part_job_id=part.id, peer=part.placement, at=at
                )
                if sent != len(indices):
                    raise _NotAllWaiting()
                if state == JobState.QUEUED:
                    await tx.start_jobs([job_id], at=at)
                created = JobCreated(job=part)
                await self._events.stage(tx, [created])
        except _NotAllWaiting:
            return False
        log.info(
            "split job %s: %d chunk(s) sent to %s as part %s (frames %s)",
            job_id,
            len(indices),
            part.placement,
            part.id,
            part.frames,
        )
        await self._events.emit(created)
        return True

    async def settle_part(
        self, part: JobRecord, rendered: Sequence[PartChunk], *, ended: bool, at: float
    ) -> tuple[int, int]:
        """The split job's chunks ``rendered`` by ``part`` are done with their frames; when
        the part ``ended``, its other chunks go back to waiting here. One transaction.

        Returns (chunks done, chunks returned). A chunk no longer held as sent to this
        part (the split job was cancelled or retried meanwhile) is left alone.
        """
        assert part.part_of is not None
        job_id = part.part_of
        async with self._store.transaction() as tx:
            state = await tx.lock_job(job_id)
            if state is None:
                return 0, 0
            held = {t.frames: t for t in await tx.split.part_tasks(part.id)}
            done = await _record_done(tx, part.id, held, rendered)
            returned: list[TaskRecord] = []
            # The peer the chunks were sent to (the part itself may have been re-placed).
            peer = next((t.server_id for t in held.values() if t.server_id), part.placement)
            why = f"part {part.id} at {peer} ended {part.state.value}"
            if ended:
                returned = [t for t in held.values() if t.frames not in done]
                await tx.split.return_part_tasks(part.id, error=why if returned else "")
            new_state, finished = await finish_if_done(tx, job_id, state, at)
            events: list[Event] = []
            if returned:
                events.append(TasksRequeued(server_id=peer, tasks=tuple(returned)))
            if finished:
                settled = await settle(tx, job_id, new_state, at=at)
                events += [JobFinished(job_id=job_id, state=new_state), *settled_events(settled)]
            await self._events.stage(tx, events)
        if done or returned:
            log.info(
                "split job %s: part %s brought back %d chunk(s), %d back to waiting here%s",
                job_id,
                part.id,
                len(done),
                len(returned),
                f" ({why})" if returned else "",
            )
        await self._events.emit_all(events)
        return len(done), len(returned)


async def _record_done(
    tx: JobTransaction,
    part_job_id: str,
    held: dict[tuple[int, ...], TaskRecord],
    rendered: Sequence[PartChunk],
) -> set[tuple[int, ...]]:
    done: set[tuple[int, ...]] = set()
    for chunk in rendered:
        task = held.get(chunk.frames)
        if task is None:
            continue
        marked = await tx.split.part_task_done(
            task.id,
            part_job_id,
            server=chunk.server,
            started_at=chunk.started_at,
            finished_at=chunk.finished_at,
        )
        if marked:
            await tx.upsert_frames([dataclasses.replace(f, task_id=task.id) for f in chunk.outputs])
            done.add(chunk.frames)
    return done
