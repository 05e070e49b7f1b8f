"""Placement of jobs forwarded to peers: the job-table changes and the inputs of placement.

These statements touch the site's own ``jobs`` and ``tasks`` tables, so they
stay with the site's store (mixed into :class:`~site_agent.store.sql_store.SqlStore`).
A layer above that keeps its own rows about a placement (federation's
forwards) passes its statements in as ``hook``, run in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from . import queries as q
from .database import Connection, Database
from .records import FrameRecord, JobState, TaskState
from .rows import frame_params

log = logging.getLogger(__name__)

TransactionHook = Callable[[Connection], Awaitable[None]]
"""Extra statements run on the transaction's connection, before it commits."""


class PlacementStore(Protocol):
    """Re-placing and finishing forwarded jobs, and what placement estimates from."""

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
        """Move the job to a new placement with epoch + 1, if it is still at ``old_epoch``
        and unfinished, running ``hook`` in the same transaction. Returns the new epoch, or None."""

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
    ) -> bool:
        """Record the fetched frames and finish the job, fenced on its placement epoch.

        The origin's own (never dispatched) tasks end with the job; ``hook`` runs in
        the same transaction. False when the job moved to another placement or
        finished meanwhile: nothing is changed.
        """

    async def local_frames_waiting(self) -> int:
        """Frames of locally placed jobs still waiting for a server."""

    async def seconds_per_frame(self) -> float | None:
        """Average render time per frame of the most recent tasks, None before any."""


class PlacementStoreMixin:
    """:class:`PlacementStore` for the SQL store; the host class provides ``_db``."""

    _db: Database

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
        new_epoch = old_epoch + 1
        async with self._db.transaction() as conn:
            changed = await conn.execute(
                q.REPLACE_JOB, job_id, placement, reason, new_epoch, at, old_epoch
            )
            if not changed:
                return None
            if hook is not None:
                await hook(conn)
        log.info("job %s re-placed to %s (epoch %d): %s", job_id, placement, new_epoch, reason)
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
    ) -> bool:
        task_state = TaskState.DONE if state == JobState.DONE else TaskState.FAILED
        async with self._db.transaction() as conn:
            await conn.execute(q.LOCK_JOB, job_id)
            row = await conn.fetchrow(q.GET_JOB, job_id)
            if row is None or row["placement_epoch"] != epoch or JobState(row["state"]).finished:
                return False
            if frames:
                await conn.executemany(q.UPSERT_FRAME, [frame_params(f) for f in frames])
            await conn.execute(q.COMPLETE_FORWARDED_TASKS, job_id, task_state.value, at, error)
            await conn.execute(q.FINISH_JOB, job_id, state.value, at, error)
            if hook is not None:
                await hook(conn)
        log.info("forwarded job %s finished: %s with %d frames", job_id, state.value, len(frames))
        return True

    async def local_frames_waiting(self) -> int:
        return int(await self._db.fetchval(q.LOCAL_FRAMES_WAITING) or 0)

    async def seconds_per_frame(self) -> float | None:
        value = await self._db.fetchval(q.RECENT_SECONDS_PER_FRAME)
        return None if value is None else float(value)
